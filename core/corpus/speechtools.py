"""The shared primitives of the speech programs: prosody, errors, finding and running a program.

`core.corpus.speech` (MBROLA and espeak-ng voices) and `core.corpus.engines` (Festival, Flite, RHVoice,
SVOX Pico) both build on these: the `Prosody` an utterance is spoken with and its `PROSODY_LIMITS`,
the .pho line `PhoEntry`, the errors `SpeechError` and `SpeechToolsMissingError` (whose messages end
with `SETUP_HINT` when something is not installed), `find_tool` to locate a program on PATH or by an
environment variable, and `run_tool` to run one within `TOOL_TIMEOUT_S`.
"""

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, fields
from math import isfinite
from numbers import Real
from pathlib import Path

from core.errors import FlowVQError

__all__ = [
    "SETUP_HINT", "TOOL_TIMEOUT_S", "PROSODY_LIMITS", "PhoEntry",
    "SpeechError", "SpeechToolsMissingError", "Prosody", "find_tool", "run_tool",
]

SETUP_HINT = "run `bash scripts/setup_speech.sh` to install espeak-ng, mbrola and the voices"
TOOL_TIMEOUT_S = 60.0  # one sentence takes well under a second; a hung program is an error
PROSODY_LIMITS: dict[str, tuple[float, float]] = {
    "rate": (0.5, 2.0),  # 87 .. 350 words per minute
    "pitch": (0.5, 2.0),
    "pitch_range": (0.0, 3.0),
    "volume": (0.05, 2.0),
}

PhoEntry = tuple[str, float, list[tuple[float, float]]]
"""One .pho line: (SAMPA symbol, duration in ms, [(position in % of the phone, pitch in Hz), ...])."""


class SpeechError(FlowVQError):
    """Speech that cannot be synthesised (empty text, an unknown voice, a bad prosody value, a tool failure)."""
    code = "speech"


class SpeechToolsMissingError(SpeechError):
    """espeak-ng, mbrola or an MBROLA voice database is not installed."""
    code = "speech_tools_missing"


@dataclass(frozen=True)
class Prosody:
    """How an utterance is spoken; every value is a ratio and 1.0 is the voice's own.

    rate:        speaking-rate multiplier on `core.corpus.speech.BASE_WPM` words per minute; 1.2 is
                 20% faster (shorter).
    pitch:       frequency ratio applied to every pitch point; 1.3 is 30% higher.
    pitch_range: scales each pitch point's deviation from the utterance's mean pitch (the mean of
                 its .pho pitch points): 0 is monotone (sad), 2 doubles the melody (happy, surprised).
    volume:      amplitude ratio MBROLA applies to the samples (`mbrola -v`).
    Each must lie within `PROSODY_LIMITS`; otherwise `SpeechError`.
    """

    rate: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0
    volume: float = 1.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            low, high = PROSODY_LIMITS[item.name]
            if isinstance(value, bool) or not isinstance(value, Real) or not (isfinite(value) and low <= value <= high):
                raise SpeechError(
                    f"prosody {item.name}={value!r} is out of range; choose a number from {low:g} to {high:g}"
                )


def find_tool(env: str, default: str) -> str:
    """The path of the program named by `env`, or `default` on PATH; refuses one that is missing."""
    name = os.environ.get(env) or default
    path = shutil.which(name)
    if path is None:
        origin = f" (set by {env})" if os.environ.get(env) else ""
        raise SpeechToolsMissingError(
            f"the speech program '{name}'{origin} is not installed or not on PATH; {SETUP_HINT}"
        )
    return path


def run_tool(args: Sequence[str], stdin: str = "") -> str:
    """Run a speech program, returning its stdout; a timeout or a non-zero exit is a `SpeechError`."""
    program = Path(args[0]).name
    try:
        done = subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise SpeechError(f"{program} did not finish within {TOOL_TIMEOUT_S:g} s; try a shorter text") from err
    except OSError as err:
        raise SpeechToolsMissingError(f"{program} could not be started ({err.strerror}); {SETUP_HINT}") from err
    if done.returncode != 0:
        raise SpeechError(
            f"{program} failed with exit status {done.returncode}: {done.stderr.strip() or 'no message'}"
        )
    return done.stdout
