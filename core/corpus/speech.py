"""Synthetic speech with exact phone timings, from MBROLA voices or from espeak-ng's own voices.

MBROLA voices (`VOICES`: us1, us2, us3, en1, and `FOREIGN_VOICES` reading English with an accent):
text -> espeak-ng (.pho) -> prosody -> MBROLA -> wave.

    espeak-ng -v mb-<voice> --pho    text -> one phone a line: SAMPA symbol, duration (ms), pitch points
    _shape_pitch                     pitch ratio and pitch range applied to every pitch point
    mbrola -v <volume>               .pho -> 16 kHz wave, rendering exactly the durations it was given

The phones of an `Utterance` are the cumulative .pho durations, so they are the timings the wave was
rendered with, not an alignment guessed afterwards: the wave's length matches the last phone's end
to within a few milliseconds (MBROLA rounds each phone to whole pitch periods). Emotion prosody is
made by `Prosody`: a faster or slower rate, a higher or lower voice, a wide (happy, surprised) or flat
(sad) pitch contour, a louder or softer voice.

The programs are `espeak-ng` and `mbrola` on PATH, or those named by the environment variables
`FLOWVQ_ESPEAK` and `FLOWVQ_MBROLA` (a name or a path); `bash scripts/setup_speech.sh` installs them
with the MBROLA voices us1, us2, us3 (American English), en1 (British English) and `FOREIGN_VOICES`.

espeak-ng's own formant voices (`ESPEAK_VOICES`, named "espeak:<language>[+<variant>]") cannot write
.pho files, so they are driven through libespeak-ng (ctypes, in `_espeak_worker.py`) in synchronous mode
with phoneme events:

    espeak_Synth                     text -> 22050 Hz samples, and an event at the start of every phone
                                     (its audio position in ms and espeak's own phoneme mnemonic)
    ESPEAK_PHONEMES                  mnemonic -> the SAMPA symbol of the voice's accent ("us" symbols as
                                     us1/us2 write them, "gb" as en1 writes them); keys of PHONE_VISEMES
    core.audio's resampling          22050 Hz -> core.audio.SAMPLE_RATE

The phones are the intervals between the events, with a leading pause up to the first phone and the last
phone ending at the end of the wave. Prosody is espeak's own: rate -> words per minute, pitch -> base
pitch, pitch_range -> espeakRANGE; volume is a gain on the samples. The library keeps global state that
drifts from one synthesis to the next, so every synthesis runs in a fresh worker process: the same
text, voice and prosody always give the same samples, and threads never share the library.

More voices come from Festival, Flite, RHVoice and SVOX Pico ("festival:<voice>", "flite:<voice>",
"rhvoice:<voice>", "pico:<language>"; `core.corpus.engines`): their phones are a forced alignment of
the text to the rendered wave, not the timings it was rendered with.
"""

import base64
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite, log2
from pathlib import Path

import numpy as np

from core.align import SILENCE
from core.audio import SAMPLE_RATE, resample_to_16k, load_audio
from core.corpus._espeak_worker import EXIT_MISSING, EXIT_NO_VOICE
from core.corpus.engines import ENGINE_VOICES, EngineVoice, aligner_symbols, installed_engine_voices, render_engine
from core.corpus.speechtools import (
    PROSODY_LIMITS, SETUP_HINT, TOOL_TIMEOUT_S, PhoEntry, Prosody, SpeechError, SpeechToolsMissingError,
    find_tool, run_tool,
)

__all__ = [
    "ESPEAK_ENV", "MBROLA_ENV", "BASE_WPM", "TOOL_TIMEOUT_S", "MIN_PITCH_HZ", "SILENCE", "PROSODY_LIMITS",
    "SENTENCES", "VOICES", "FOREIGN_VOICES", "ESPEAK_VOICES", "ESPEAK_PHONEMES",
    "SpeechError", "SpeechToolsMissingError",
    "Phone", "Prosody", "VoiceInfo", "EspeakVoiceInfo", "Utterance", "PhoEntry",
    "available_voices", "parse_pho", "format_pho", "phone_symbols", "synthesize", "espeak_phone_symbol",
]

ESPEAK_ENV = "FLOWVQ_ESPEAK"
MBROLA_ENV = "FLOWVQ_MBROLA"
BASE_WPM = 175  # espeak-ng's default speaking rate, words per minute, at Prosody.rate == 1
MIN_PITCH_HZ = 40.0  # a wide pitch range never pushes a pitch point below this
# Project-written sentences for the corpus and the tests: short, every common English phone, and
# many bilabials (p b m), labiodentals (f v), rounded vowels (u, O, @U) and open vowels (A, {, aU).
SENTENCES: tuple[str, ...] = (
    "Bob, please pass the soup.",
    "My mother made a few plum muffins.",
    "Five brave men fought the flood.",
    "Put the blue boots by the wooden box.",
    "Father parked the car far from the barn.",
    "Move over, the boat will soon be full.",
    "Pam bought a bamboo fan for a pound.",
    "Very few voters ever vanish.",
    "Who knew the moon could look so huge?",
    "Hop aboard, the ferry is about to leave.",
    "Maybe the baby wants more warm milk.",
    "Our cat sat on the hot tin roof.",
    "Fresh fish and chips cost five pounds.",
    "Bring the map, we might be lost by noon.",
    "Open the window and feel the breeze.",
    "A bottle of vinegar broke on the floor.",
    "The puppy chewed my purple sweater.",
    "Her voice was soft, but firm.",
    "We gave Pablo a very big brown bear.",
    "Thank you for the lovely flowers.",
    "Should we judge the show by its music?",
    "The young ape jumped over the fence.",
    "Pour the orange juice into the cup.",
    "Please bring me both blue bowls.",
    "Oh no, the pie is burning!",
    "Why would anyone paint the mailbox pink?",
    "Grandpa loves his boat on the lake.",
    "The vase fell off the shelf.",
    "Mom makes marvellous lemon pie.",
    "How about a walk along the harbour?",
    "I heard a loud boom outside.",
    "Few people have seen a purple cow.",
    "Pull the rope, Paul, and hold it fast.",
    "The zebra yawned at the measuring stick.",
    "Bubbles float above the warm pool.",
    "Stop, you forgot your wallet!",
    "Everything was calm after the storm.",
    "The poet wrote of love and beauty.",
    "Wow, what a wonderful view!",
    "Maybe Bobby will buy a big map.",
)

# ---------------------------------------------------------------------------------------------
# Voices, prosody, phones
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoiceInfo:
    """An MBROLA voice and how espeak-ng's phones are fitted to its diphone database.

    `renames` maps a symbol espeak-ng writes that the database lacks to the one it has; `bridges`
    maps a missing diphone (a, b) to the symbol that replaces `a` when `b` follows it.
    """

    espeak_voice: str
    database: Path
    sex: str
    renames: Mapping[str, str] = field(default_factory=dict)
    bridges: Mapping[tuple[str, str], str] = field(default_factory=dict)


_FOREIGN_SEXES: dict[str, str] = {
    "de5": "female", "de6": "male", "fr1": "male", "fr4": "female", "nl2": "male", "af1": "male", "pl1": "female",
}
VOICES: dict[str, VoiceInfo] = {
    "us1": VoiceInfo("mb-us1", Path("/usr/share/mbrola/us1/us1"), "female"),
    "us2": VoiceInfo("mb-us2", Path("/usr/share/mbrola/us2/us2"), "male"),
    # espeak-ng 1.51 writes O2 ("warm", "lost") for us3, whose database has only O, and us3 has no h-j
    # diphone ("huge"): mbrola stops on both. The h before j is rendered as a short silence.
    "us3": VoiceInfo("mb-us3", Path("/usr/share/mbrola/us3/us3"), "male",
                     renames={"O2": "O"}, bridges={("h", "j"): SILENCE}),
    "en1": VoiceInfo("mb-en1", Path("/usr/share/mbrola/en1/en1"), "male"),
    # Real voices of other languages reading English through espeak-ng's "mb-<voice>-en" translations:
    # accented English from more speakers, so lip-sync learns the sound of a phone rather than of
    # three voices. Each writes its own language's SAMPA (German 6 and OY, Dutch Ei Au dj tj,
    # Afrikaans $ &, Polish x), mapped in core.visemes. These seven render every corpus
    # sentence; de1, de2, sw2, hu1, ro1, gr2 and de4 lack diphones the sentences need, and sw1's
    # waves drift more than one feature hop from its phone timings.
    **{name: VoiceInfo(f"mb-{name}-en", Path(f"/usr/share/mbrola/{name}/{name}"), sex)
       for name, sex in _FOREIGN_SEXES.items()},
}
FOREIGN_VOICES: tuple[str, ...] = tuple(_FOREIGN_SEXES)


@dataclass(frozen=True)
class EspeakVoiceInfo:
    """One of espeak-ng's own voices: `espeak_voice` is the name given to espeak_SetVoiceByName, a
    language optionally followed by "+variant" (a file in espeak-ng-data/voices/!v); `accent` picks the
    SAMPA family of its phones in `ESPEAK_PHONEMES` ("us" or "gb")."""

    espeak_voice: str
    accent: str
    sex: str

    @property
    def variant(self) -> str | None:
        """The variant after "+", or None for the language's own voice."""
        return self.espeak_voice.partition("+")[2] or None


ESPEAK_VOICES: dict[str, EspeakVoiceInfo] = {
    "espeak:en-us": EspeakVoiceInfo("en-us", "us", "male"),
    "espeak:en-us+m3": EspeakVoiceInfo("en-us+m3", "us", "male"),
    "espeak:en-us+f2": EspeakVoiceInfo("en-us+f2", "us", "female"),
    "espeak:en+f3": EspeakVoiceInfo("en+f3", "gb", "female"),
    "espeak:en-gb-x-rp+m7": EspeakVoiceInfo("en-gb-x-rp+m7", "gb", "male"),
    "espeak:en+klatt": EspeakVoiceInfo("en+klatt", "gb", "male"),  # the Klatt formant synthesiser
    # More variants for training (more voices made lips on unseen voices 12% better: docs/training.md)
    # and two dev voices for choosing settings on voices neither training nor the test split uses.
    # en+david is left out: its /p/ closures are not quiet.
    "espeak:en-us+f4": EspeakVoiceInfo("en-us+f4", "us", "female"),
    "espeak:en+f5": EspeakVoiceInfo("en+f5", "gb", "female"),
    "espeak:en-us+Annie": EspeakVoiceInfo("en-us+Annie", "us", "female"),
    "espeak:en-us+m1": EspeakVoiceInfo("en-us+m1", "us", "male"),
    "espeak:en+m6": EspeakVoiceInfo("en+m6", "gb", "male"),
    "espeak:en+m2": EspeakVoiceInfo("en+m2", "gb", "male"),
    "espeak:en-us+m5": EspeakVoiceInfo("en-us+m5", "us", "male"),
}

# espeak-ng's English phoneme mnemonics (as its phoneme events name them) -> SAMPA as espeak-ng writes it
# for en1 ("gb") and us1/us2 ("us"). Pauses ("_", "_:", "_!", ...) are SILENCE and stress marks are
# dropped before the look-up. A mnemonic with an r- or schwa-glide tail ("aI3", "i@3") keeps its main
# vowel; ";" (the linking glide in "the orange") is a j; "r-" is a linking r.
_ESPEAK_GB: dict[str, str] = {
    **{c: c for c in ("p", "b", "m", "f", "v", "T", "D", "t", "d", "n", "l", "s", "z", "S", "Z", "tS", "dZ",
                      "k", "g", "N", "h", "r", "j", "w")},
    "t2": "t", "t#": "t", "?": "t", "n-": "n", "@L": "l=", "r-": "r", ";": "j", "x": "k",
    "i": "i", "i:": "i:", "I": "I", "I#": "I", "I2": "I", "E": "e", "a": "{", "aa": "A:", "A:": "A:",
    "A@": "A:", "0": "Q", "O2": "Q", "O:": "O:", "O@": "O:", "o@": "O:", "U": "U", "u:": "u:", "V": "V",
    "@": "@", "@2": "@", "@5": "@", "a#": "@", "3": "@", "3:": "3:",
    "eI": "eI", "aI": "aI", "aI@": "aI", "aI3": "aI", "OI": "OI", "aU": "aU", "aU@": "aU", "oU": "@U",
    "i@": "I@", "i@3": "I@", "e@": "e@", "U@": "U@",
}
_ESPEAK_US: dict[str, str] = {
    **_ESPEAK_GB,
    "t#": "4", "i:": "i", "E": "E", "aa": "{", "A:": "A", "A@": "A", "0": "A", "O2": "O", "O:": "O",
    "O@": "Or", "o@": "Or", "u:": "u", "3": "r=", "3:": "r=", "eI": "EI", "aI": "AI", "aI@": "AI", "aI3": "AI",
}
ESPEAK_PHONEMES: dict[str, dict[str, str]] = {"gb": _ESPEAK_GB, "us": _ESPEAK_US}
_STRESS_MARKS = "',%="


@dataclass(frozen=True)
class Phone:
    """One rendered phone: a SAMPA symbol (`SILENCE` for a pause) and its span in seconds."""

    symbol: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        """end - start, in seconds."""
        return self.end - self.start

    @property
    def centre(self) -> float:
        """The middle of the span, in seconds."""
        return 0.5 * (self.start + self.end)


@dataclass(eq=False)
class Utterance:
    """A synthesised sentence (compared by identity: it holds an array).

    wave: (N,) float32 mono at `core.audio.SAMPLE_RATE`; phones: contiguous from 0 s, the timings the
    wave was rendered with (for an engine voice of `core.corpus.engines`, the forced alignment of the
    text to the wave); pho: the .pho text MBROLA rendered (prosody applied), or for an espeak-ng or
    engine voice the phones written as .pho lines (symbol and duration in ms, no pitch points).
    """

    text: str
    voice: str
    prosody: Prosody
    wave: np.ndarray
    phones: tuple[Phone, ...]
    pho: str


def available_voices() -> list[str]:
    """The names in `VOICES` whose MBROLA database is installed, then those in `ESPEAK_VOICES` when
    libespeak-ng is installed with the voice's variant, then the engine voices of
    `core.corpus.engines.ENGINE_VOICES` whose program and voice data are installed."""
    mbrola = [name for name, info in VOICES.items() if info.database.is_file()]
    data = _espeak_data_path()
    espeak = [] if data is None else [name for name, info in ESPEAK_VOICES.items() if _has_variant(data, info)]
    return mbrola + espeak + installed_engine_voices()


# ---------------------------------------------------------------------------------------------
# .pho files
# ---------------------------------------------------------------------------------------------

def parse_pho(text: str) -> list[PhoEntry]:
    """Read .pho text: one phone a line, `SYMBOL DURATION_MS [POSITION% PITCH_HZ]...`; empty lines
    and `;` comments are skipped. Raises `SpeechError` naming the line for a malformed one.
    """
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith(";"):
            continue
        try:
            values = [float(token) for token in tokens[1:]]
        except ValueError:
            values = []
        if not values or len(values) % 2 == 0 or not all(isfinite(value) for value in values):
            raise SpeechError(
                f"line {number} of the .pho text is not `SYMBOL DURATION [POSITION PITCH]...`: {line.strip()!r}"
            )
        points = [(values[k], values[k + 1]) for k in range(1, len(values), 2)]
        entries.append((tokens[0], values[0], points))
    return entries


def _number(value: float) -> str:
    """A float as .pho text that reads back exactly: 65.0 -> '65', 0.1 -> '0.1'."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def format_pho(entries: Iterable[PhoEntry]) -> str:
    """Write entries as .pho text, one tab-separated line each; `parse_pho` reads it back exactly."""
    lines = []
    for symbol, duration, points in entries:
        pitch = " ".join(f"{_number(position)} {_number(hz)}" for position, hz in points)
        lines.append(f"{symbol}\t{_number(duration)}" + (f"\t{pitch}" if pitch else ""))
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------
# Running the tools
# ---------------------------------------------------------------------------------------------

def _voice_info(voice: str) -> VoiceInfo | EspeakVoiceInfo | EngineVoice:
    """The voice's entry in `VOICES`, `ESPEAK_VOICES` or `core.corpus.engines.ENGINE_VOICES`; refuses
    an unknown voice and an MBROLA voice whose database is missing."""
    info = VOICES.get(voice) or ESPEAK_VOICES.get(voice) or ENGINE_VOICES.get(voice)
    if info is None:
        names = ", ".join([*VOICES, *ESPEAK_VOICES, *ENGINE_VOICES])
        raise SpeechError(f"unknown voice {voice!r}; choose one of {names}")
    if isinstance(info, VoiceInfo) and not info.database.is_file():
        raise SpeechToolsMissingError(
            f"the MBROLA voice '{voice}' is not installed (no database at {info.database}); {SETUP_HINT}"
        )
    return info


def _fit_to_voice(entries: list[PhoEntry], info: VoiceInfo) -> list[PhoEntry]:
    """Apply the voice's `renames` and `bridges`, so that MBROLA has every diphone. Same length out."""
    symbols = [info.renames.get(symbol, symbol) for symbol, _, _ in entries]
    symbols = [
        info.bridges.get((symbol, following), symbol)
        for symbol, following in zip(symbols, symbols[1:] + [SILENCE])
    ]
    return [(symbol, duration, points) for symbol, (_, duration, points) in zip(symbols, entries)]


def _espeak_phones(espeak: str, text: str, info: VoiceInfo, words_per_minute: int) -> list[PhoEntry]:
    """espeak-ng's phones for `text` (read from stdin, so no text is taken for an option), fitted to the voice."""
    pho = run_tool([espeak, "-v", info.espeak_voice, "-q", "--pho", "--stdin", "-s", str(words_per_minute)], text)
    return _fit_to_voice(parse_pho(pho), info)


def _shape_pitch(entries: list[PhoEntry], pitch: float, pitch_range: float) -> list[PhoEntry]:
    """Each pitch point f -> max(MIN_PITCH_HZ, pitch * (mean + pitch_range * (f - mean))), to 0.01 Hz,
    where mean is the mean of all the utterance's pitch points."""
    values = [hz for _, _, points in entries for _, hz in points]
    if not values:
        return entries
    mean = sum(values) / len(values)
    return [
        (symbol, duration, [(position, round(max(MIN_PITCH_HZ, pitch * (mean + pitch_range * (hz - mean))), 2))
                            for position, hz in points])
        for symbol, duration, points in entries
    ]


def _timed_phones(entries: list[PhoEntry]) -> tuple[Phone, ...]:
    """Phones whose spans are the cumulative .pho durations, contiguous from 0 s."""
    edges = np.concatenate([[0.0], np.cumsum([duration for _, duration, _ in entries])]) / 1000.0
    return tuple(
        Phone(symbol, float(edges[k]), float(edges[k + 1])) for k, (symbol, _, _) in enumerate(entries)
    )


# ---------------------------------------------------------------------------------------------
# espeak-ng's own voices through libespeak-ng
# ---------------------------------------------------------------------------------------------

_ESPEAK_WORKER = Path(__file__).with_name("_espeak_worker.py")  # one synthesis per fresh process
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4  # espeak_PARAMETER values (speak_lib.h)
_NORMAL_PARAMETER = 50  # espeakPITCH and espeakRANGE: 0..100, 50 is the voice's own


@dataclass(frozen=True)
class _Rendering:
    """One synthesis by libespeak-ng. Shapes: samples (M,) int16 at `sample_rate`; events: (audio
    position in ms, mnemonic) at the start of every phone, in time order."""

    samples: np.ndarray
    sample_rate: int
    events: list[tuple[int, str]]
    data_path: Path


def _espeak_worker(voice: str | None, text: str = "", parameters: Mapping[int, int] | None = None) -> _Rendering:
    """Run `_espeak_worker.py` in a fresh interpreter (libespeak-ng keeps state between syntheses, so
    a reused library would not repeat itself); `voice` None only asks for the data path."""
    request = json.dumps({"voice": voice, "text": text, "parameters": dict(parameters or {})})
    args = [sys.executable, "-I", "-S", str(_ESPEAK_WORKER)]
    try:
        done = subprocess.run(args, input=request, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise SpeechError(f"libespeak-ng did not finish within {TOOL_TIMEOUT_S:g} s; try a shorter text") from err
    message = done.stderr.strip() or "no message"
    if done.returncode in (EXIT_MISSING, EXIT_NO_VOICE):
        raise SpeechToolsMissingError(f"{message}; {SETUP_HINT}")
    if done.returncode != 0:
        raise SpeechError(f"libespeak-ng failed (exit status {done.returncode}): {message}")
    answer = json.loads(done.stdout)
    return _Rendering(
        np.frombuffer(base64.b64decode(answer["samples"]), np.int16), answer["sample_rate"],
        [(position, mnemonic) for position, mnemonic in answer["events"]], Path(answer["data_path"]),
    )


def _espeak_data_path() -> Path | None:
    """espeak-ng-data, or None when libespeak-ng is not installed."""
    try:
        return _espeak_worker(None).data_path
    except SpeechToolsMissingError:
        return None


def _has_variant(data: Path, info: EspeakVoiceInfo) -> bool:
    """Whether espeak-ng-data holds the voice's variant (espeak-ng silently ignores a missing one)."""
    return info.variant is None or (data / "voices" / "!v" / info.variant).is_file()


def _espeak_parameters(prosody: Prosody) -> dict[int, int]:
    """Prosody -> espeak parameters: words per minute, base pitch (50 is the voice's own and each 50
    more doubles it), pitch range (50 the voice's own, up to espeak's 100), volume 100 (gain comes later)."""
    return {
        _RATE: round(BASE_WPM * prosody.rate),
        _PITCH: round(_NORMAL_PARAMETER * (1.0 + log2(prosody.pitch))),
        _RANGE: min(100, round(_NORMAL_PARAMETER * prosody.pitch_range)),
        _VOLUME: 100,
    }


def espeak_phone_symbol(mnemonic: str, voice: str) -> str:
    """The SAMPA symbol (a key of `core.visemes.PHONE_VISEMES`) of one of espeak-ng's phoneme
    mnemonics under an espeak voice: pauses ("_", "_:", ...) are `SILENCE`, stress marks are dropped.
    Raises `SpeechError` naming a mnemonic the voice's accent table lacks, or a voice that is not espeak's."""
    info = _voice_info(voice)
    if not isinstance(info, EspeakVoiceInfo):
        raise SpeechError(f"voice {voice!r} is an MBROLA voice; espeak mnemonics belong to {', '.join(ESPEAK_VOICES)}")
    return _mnemonic_symbol(mnemonic, info)


def _mnemonic_symbol(mnemonic: str, info: EspeakVoiceInfo) -> str:
    """See `espeak_phone_symbol`."""
    bare = mnemonic.strip(_STRESS_MARKS)
    if bare.startswith(SILENCE):
        return SILENCE
    symbol = ESPEAK_PHONEMES[info.accent].get(bare)
    if symbol is None:
        raise SpeechError(
            f"espeak-ng phoneme {mnemonic!r} (voice {info.espeak_voice}) has no SAMPA symbol in "
            f"ESPEAK_PHONEMES[{info.accent!r}]; add it to the table"
        )
    return symbol


def _espeak_entries(events: Sequence[tuple[int, str]], info: EspeakVoiceInfo, total_ms: float) -> list[PhoEntry]:
    """Phone events (start ms, mnemonic) -> .pho entries covering [0, total_ms]: a pause before the first
    phone, each phone lasting until the next one starts, the last until `total_ms`; empty spans dropped
    and neighbouring pauses ("_:" then "_") merged into one."""
    starts = [0] + [position for position, _ in events]
    symbols = [SILENCE] + [_mnemonic_symbol(mnemonic, info) for _, mnemonic in events]
    ends = starts[1:] + [total_ms]
    entries: list[PhoEntry] = []
    for symbol, start, end in zip(symbols, starts, ends):
        if end <= start:
            continue
        if entries and symbol == SILENCE == entries[-1][0]:
            entries[-1] = (SILENCE, entries[-1][1] + end - start, [])
        else:
            entries.append((symbol, float(end - start), []))
    return entries


def _espeak_render(text: str, info: EspeakVoiceInfo, prosody: Prosody) -> tuple[np.ndarray, list[PhoEntry]]:
    """Speak `text` with an espeak voice. Shapes: -> wave (N,) float32 at `SAMPLE_RATE` (prosody gain
    applied, clipped to [-1, 1]), .pho entries whose durations (ms) add up to N / SAMPLE_RATE s."""
    rendering = _espeak_worker(info.espeak_voice, text, _espeak_parameters(prosody))
    if not _has_variant(rendering.data_path, info):
        raise SpeechToolsMissingError(f"espeak-ng has no voice variant {info.variant!r}; {SETUP_HINT}")
    samples = rendering.samples.astype(np.float32) / np.float32(32768.0)  # (M,)
    wave = np.clip(resample_to_16k(samples, rendering.sample_rate) * np.float32(prosody.volume), -1.0, 1.0)  # (N,)
    return wave, _espeak_entries(rendering.events, info, 1000.0 * len(wave) / SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

def synthesize(text: str, voice: str, prosody: Prosody = Prosody()) -> Utterance:
    """Speak `text` and return the wave with the phone timings it was rendered with.

    An MBROLA voice (`VOICES`): espeak-ng writes the phones at `BASE_WPM * prosody.rate` words per
    minute; the pitch points are reshaped (`Prosody`); mbrola renders exactly those durations at
    `prosody.volume`. An espeak voice (`ESPEAK_VOICES`): libespeak-ng speaks with espeak's own rate,
    pitch and range and reports where each phone starts; `prosody.volume` is a gain on the samples.
    An engine voice (`core.corpus.engines.ENGINE_VOICES`): the engine renders the text with what of
    the prosody it supports and the text is force-aligned to the wave (a text the aligner refuses is a
    `SpeechError`).
    Shapes: text -> wave (N,) float32 at 16 kHz, N / 16000 = phones[-1].end within a few ms (exactly,
    for an espeak or engine voice).
    Raises `SpeechError` for empty text, an unknown voice or a tool failure (with the tool's message),
    `SpeechToolsMissingError` when a program, library or the voice is not installed.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpeechError(f"the text to speak is empty ({text!r}); give at least one word")
    info = _voice_info(voice)
    if isinstance(info, EspeakVoiceInfo):
        wave, entries = _espeak_render(text, info, prosody)
        _refuse_silence(text, entries)
    elif isinstance(info, VoiceInfo):
        wave, entries = _mbrola_render(text, info, prosody)
    else:
        wave, entries = render_engine(text, info, prosody)
    return Utterance(text, voice, prosody, wave, _timed_phones(entries), format_pho(entries))


def _refuse_silence(text: str, entries: Sequence[PhoEntry]) -> None:
    """`SpeechError` when the phones are nothing but pauses."""
    if all(symbol == SILENCE for symbol, _, _ in entries):
        raise SpeechError(f"the text {text!r} has nothing to pronounce; give at least one word")


def _mbrola_render(text: str, info: VoiceInfo, prosody: Prosody) -> tuple[np.ndarray, list[PhoEntry]]:
    """Speak `text` with an MBROLA voice. Shapes: -> wave (N,) float32 at 16 kHz, the .pho entries rendered."""
    espeak, mbrola = find_tool(ESPEAK_ENV, "espeak-ng"), find_tool(MBROLA_ENV, "mbrola")
    entries = _espeak_phones(espeak, text, info, round(BASE_WPM * prosody.rate))
    _refuse_silence(text, entries)
    entries = _shape_pitch(entries, prosody.pitch, prosody.pitch_range)
    with tempfile.TemporaryDirectory(prefix="flowvq-speech-") as folder:
        pho_path, wav_path = Path(folder) / "utterance.pho", Path(folder) / "utterance.wav"
        pho_path.write_text(format_pho(entries))
        run_tool([mbrola, "-v", _number(prosody.volume), str(info.database), str(pho_path), str(wav_path)])
        return load_audio(wav_path), entries


def phone_symbols(voice: str, sentences: Sequence[str] = SENTENCES) -> frozenset[str]:
    """Every phone symbol `synthesize` produces for `voice` over `sentences` (including `SILENCE`).

    The symbol sets differ by voice family: us1, us2 and us3 use American SAMPA (i, A, u, O, r=,
    the flap 4, aspirated p_h t_h k_h in us1/us2, syllabic l= in us3), en1 British SAMPA (length
    marks i: A: u: O: 3:, Q, e, eI, aI, dark l 5). Map each family on its own. The espeak voices
    write the family of their accent (`EspeakVoiceInfo.accent`), without aspiration or dark l. An
    engine voice gets every symbol the alignment can place: the American SAMPA of the words'
    dictionary pronunciations (`core.corpus.engines.aligner_symbols`; no synthesis).
    Raises `SpeechError` for an espeak phoneme that `ESPEAK_PHONEMES` lacks, or a word the aligner's
    dictionary lacks.
    """
    info = _voice_info(voice)
    if isinstance(info, EspeakVoiceInfo):
        _, entries = _espeak_render("\n".join(sentences), info, Prosody())
    elif isinstance(info, VoiceInfo):
        entries = _espeak_phones(find_tool(ESPEAK_ENV, "espeak-ng"), "\n".join(sentences), info, BASE_WPM)
    else:
        return aligner_symbols(sentences)
    return frozenset(symbol for symbol, _, _ in entries)
