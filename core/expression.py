"""How an emotion's expression moves with a line of speech: shared by the corpus, which draws its
emotion curves with it (`core.corpus.performance.emotion_curves`), and by sampling, which moves the
flows' takes with it (`move_with_the_line`), as `core.blinks` is for blinks.

The expression rises into the speech from the neutral face (onset: time constant `ONSET_SECONDS`,
starting that long before the first word), holds its apex while the speaker talks (pauses shorter
than `BRIDGE_SECONDS` do not count), eases towards a lower level in longer pauses and after the
last word (offset: `OFFSET_SECONDS`), and every channel is accented on loud syllables by
`ACCENT_DEPTH` (the upper face beats with stressed syllables more than the mouth corners do).
"""

from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "ONSET_SECONDS", "OFFSET_SECONDS", "BRIDGE_SECONDS", "TAKE_HOLD", "ACCENT_DEPTH", "UPPER_FACE_PREFIXES",
    "SPEECH_LEVEL", "frame_energy", "bridge_pauses", "speaking_from_loudness", "expression_envelope",
    "syllable_accent", "low_pass", "accent_depths", "move_with_the_line",
]

ONSET_SECONDS = 0.15
OFFSET_SECONDS = 0.5
BRIDGE_SECONDS = 0.35
TAKE_HOLD = 0.45  # the share of the apex a take keeps in long pauses (the corpus draws it from 0.3-0.6)
ACCENT_DEPTH = {"upper": 0.4, "mouth": 0.2}
UPPER_FACE_PREFIXES: tuple[str, ...] = ("brow", "cheek", "eye", "nose")
SPEECH_LEVEL = 0.1  # a frame speaks when its loudness is above this share of the clip's loud frames


def frame_energy(wave: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """Per-frame RMS loudness scaled to [0, 1] (1 = the loudest frame).
    Shapes: wave (N,) at ``sample_rate`` -> (frames,) float64."""
    hop = sample_rate / fps
    edges = np.minimum((np.arange(frames + 1) * hop).round().astype(int), len(wave))
    power = np.array([float(np.mean(wave[a:b] ** 2)) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    rms = np.sqrt(power)
    return rms / max(float(rms.max(initial=0.0)), 1e-12)


def bridge_pauses(speaking: np.ndarray, fps: float) -> np.ndarray:
    """``speaking`` with the pauses between two spoken frames that last at most `BRIDGE_SECONDS`
    filled in. Shapes: (T,) bool -> (T,) bool."""
    bridged = speaking.copy()
    talk = np.flatnonzero(speaking)
    for before, gap in zip(talk[:-1], np.diff(talk)):
        if 1 < gap <= BRIDGE_SECONDS * fps:
            bridged[before:before + gap] = True
    return bridged


def speaking_from_loudness(energy: np.ndarray, fps: float) -> np.ndarray:
    """Frames of speech in a clip without its phones: louder than `SPEECH_LEVEL` of the clip's
    95th-percentile loudness, short pauses bridged. Shapes: energy (T,) -> (T,) bool."""
    top = float(np.percentile(energy, 95)) if len(energy) else 0.0
    return bridge_pauses(energy > SPEECH_LEVEL * top, fps) if top > 0 else np.zeros(len(energy), bool)


def expression_envelope(speaking: np.ndarray, hold: float, fps: float) -> np.ndarray:
    """How much of the apex the face shows per frame: from 0, it rises (time constant
    `ONSET_SECONDS`) towards 1 from `ONSET_SECONDS` before each stretch of speech, and eases
    (`OFFSET_SECONDS`) towards ``hold`` in the pauses between stretches and after the last.
    Shapes: speaking (T,) bool -> (T,) float64 in [0, 1]."""
    lead = int(round(ONSET_SECONDS * fps))
    soon = speaking.copy()
    for shift in range(1, lead + 1):
        soon[:-shift] |= speaking[shift:]
    rise, ease = 1.0 - np.exp(-1.0 / (ONSET_SECONDS * fps)), 1.0 - np.exp(-1.0 / (OFFSET_SECONDS * fps))
    envelope = np.empty(len(speaking))
    level = 0.0
    started = False
    for frame, talking in enumerate(soon):
        started |= bool(talking)
        target = 1.0 if talking else (hold if started else 0.0)
        level += (rise if target > level else ease) * (target - level)
        envelope[frame] = level
    return envelope


def syllable_accent(energy: np.ndarray, fps: float) -> np.ndarray:
    """Loudness accents: per-frame energy smoothed over a syllable (~80 ms) and scaled so that the
    loud syllables (95th percentile) reach 1. Shapes: (T,) in [0, 1] -> (T,) in [0, 1]."""
    smooth = low_pass(energy.astype(np.float64), 0.04 * fps)
    top = float(np.percentile(smooth, 95)) if len(smooth) else 0.0
    return np.clip(smooth / top, 0.0, 1.0) if top > 0 else np.zeros(len(energy))


def low_pass(signal: np.ndarray, frames: float) -> np.ndarray:
    """Two passes of a one-pole low-pass with time constant ``frames``. Shapes: (T,) -> (T,)."""
    pole = np.exp(-1.0 / frames)
    return lfilter([1.0 - pole], [1.0, -pole], lfilter([1.0 - pole], [1.0, -pole], signal))


def accent_depths(names: Sequence[str]) -> np.ndarray:
    """`ACCENT_DEPTH` of each channel: the upper face's or the mouth's. Shapes: -> (len(names),)."""
    return np.array([ACCENT_DEPTH["upper" if name.startswith(UPPER_FACE_PREFIXES) else "mouth"] for name in names])


def move_with_the_line(
    exp: np.ndarray, rest: np.ndarray, columns: Sequence[int], names: Sequence[str], energy: np.ndarray, fps: float,
) -> np.ndarray:
    """Takes whose expression on ``columns`` moves with the line of the clip whose loudness per
    frame is ``energy``: each channel's departure from the resting face ``rest`` is scaled frame by
    frame by the envelope (speech from the loudness, `TAKE_HOLD` in pauses) times the syllable
    accent, normalised to keep its mean over the spoken frames (so the take's level while it
    speaks, its intensity, is the flows'; the flows learned it on utterances that are mostly
    speech). Shapes: exp (N, T, D), rest (D,), energy (T,) -> (N, T, D) float32 (a new array)."""
    speaking = speaking_from_loudness(energy, fps)
    envelope = expression_envelope(speaking, TAKE_HOLD, fps)
    accent = syllable_accent(energy, fps)
    depth = accent_depths([names[c] for c in columns])  # (C,)
    gain = envelope[:, None] * (1.0 - depth[None] + depth[None] * accent[:, None])  # (T, C)
    gain /= np.maximum(gain[speaking if speaking.any() else slice(None)].mean(axis=0, keepdims=True), 1e-6)
    out = np.array(exp, dtype=np.float32)
    out[..., columns] = rest[columns] + (out[..., columns] - rest[columns]) * gain[None]
    return out
