"""Speech recognition without a transcript: the phones a clip says, with their times.

Two recognisers, both on PocketSphinx's bundled US-English acoustic model (trained on recordings
of real speakers, where the flows have mostly heard synthetic voices):

    recognize_phones   allphone decoding against a phone n-gram (`PHONE_LM`), as Rhubarb Lip Sync's
                       transcript-free recogniser does: no vocabulary, about 20x real time here
    recognize_words    word decoding against the bundled English language model and dictionary,
                       then the words force-aligned (`core.align.align_text`) for their phones:
                       about 3x real time here, fewer phones heard that were not said

`heard_phones` picks one by name (`HEARING`). A clip longer than `MAX_SEGMENT_SECONDS` is
recognised in segments cut at its quietest 10 ms within the last `CUT_WINDOW_SECONDS` before each
limit (`segment_bounds`), each decoded on its own, and ``poll()`` runs between segments (the
generator cancels there); a shorter clip is one segment, decoded whole. The CMU (ARPABET) phones become the corpus's SAMPA
symbols (`core.align.ARPABET_TO_SAMPA`), silence and noise fillers `SILENCE`, so either result is
the same kind of phone list as a synthetic utterance's or an aligned text's:
(symbol, start s, end s), in time order.

Both are deterministic: a fresh decoder per call (no state such as live cepstral-mean
normalisation carries over between clips) and dither with a fixed seed (digital silence, all-zero
samples, otherwise decodes as a long /s/).
"""

from collections.abc import Callable, Iterator

import numpy as np
import pocketsphinx

from core.align import ARPABET_TO_SAMPA, FRAME_RATE, SILENCE, AlignmentError, align_text, to_pcm16
from core.audio import SAMPLE_RATE
from core.errors import FlowVQError

__all__ = [
    "RecognitionError", "PHONE_LM", "HEARING", "TimedPhone",
    "MAX_SEGMENT_SECONDS", "CUT_WINDOW_SECONDS", "segment_bounds",
    "recognize_phones", "recognize_words", "heard_phones",
]

PHONE_LM = "en-us/en-us-phone.lm.bin"  # inside pocketsphinx.get_model_path()
HEARING: tuple[str, ...] = ("phones", "words", "off")
TimedPhone = tuple[str, float, float]  # (SAMPA symbol, start s, end s)
Poll = Callable[[], None]  # called between segments; raises to stop
MAX_SEGMENT_SECONDS = 30.0
CUT_WINDOW_SECONDS = 5.0
_MIN_SECONDS = 0.1  # shorter clips give the recogniser too few frames to decode anything
_COMMON_OPTIONS: dict[str, float | int | bool | str] = {"dither": True, "seed": 1, "loglevel": "FATAL"}
# Wide beams and a light phone-LM weight, the settings CMUSphinx's phoneme-recognition tutorial
# gives (an allphone search has one HMM per phone, so pruning buys little).
_PHONE_OPTIONS: dict[str, float | int | bool | str] = {"beam": 1e-20, "pbeam": 1e-20, "lw": 2.0, **_COMMON_OPTIONS}


class RecognitionError(FlowVQError):
    """Audio the recogniser cannot take: empty or too short, not float, not mono, not finite, or not at 16 kHz."""
    code = "recognition"


def _check_wave(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The wave as float32 (N,) after refusing one the recogniser cannot decode."""
    if sample_rate != SAMPLE_RATE:
        raise RecognitionError(
            f"the recogniser needs {SAMPLE_RATE} Hz audio, not {sample_rate} Hz; "
            "load the clip with core.audio.load_audio, which resamples it"
        )
    wave = np.asarray(wave)
    if not np.issubdtype(wave.dtype, np.floating):
        raise RecognitionError(
            f"the recogniser needs float samples in [-1, 1], not {wave.dtype}; "
            "load the clip with core.audio.load_audio"
        )
    if wave.ndim != 1:
        raise RecognitionError(f"the recogniser needs a mono wave of shape (N,), not {wave.shape}; mix the channels down")
    if len(wave) < _MIN_SECONDS * SAMPLE_RATE:
        raise RecognitionError(
            f"the clip is {len(wave) / SAMPLE_RATE:.3f} s long; give at least {_MIN_SECONDS:g} s of audio"
        )
    if not np.all(np.isfinite(wave)):
        raise RecognitionError("the wave holds NaN or infinite samples; decode the clip again")
    return wave.astype(np.float32, copy=False)


def _sampa(symbol: str) -> str:
    """A recognised phone as SAMPA; silence (SIL) and the noise fillers (+NSN+, +SPN+, ...) are `SILENCE`."""
    if symbol == "SIL" or (symbol.startswith("+") and symbol.endswith("+")):
        return SILENCE
    return ARPABET_TO_SAMPA[symbol]


def _decode(decoder: pocketsphinx.Decoder, wave: np.ndarray) -> pocketsphinx.Decoder:
    """Run one whole utterance through ``decoder``. Shapes: wave (N,) float32 at 16 kHz."""
    decoder.start_utt()
    decoder.process_raw(to_pcm16(wave), full_utt=True)
    decoder.end_utt()
    return decoder


def segment_bounds(samples: int, energy: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) sample spans of the segments a clip is recognised in (module docstring), from
    the energy of each of its 10 ms frames. Shapes: energy (ceil(samples / 160),) -> spans."""
    hop, limit, window = SAMPLE_RATE // FRAME_RATE, int(MAX_SEGMENT_SECONDS * FRAME_RATE), int(CUT_WINDOW_SECONDS * FRAME_RATE)
    bounds, start = [], 0  # in 10 ms frames
    while samples - start * hop > MAX_SEGMENT_SECONDS * SAMPLE_RATE:
        first = start + limit - window
        cut = first + int(np.argmin(energy[first:start + limit]))
        bounds.append((start * hop, cut * hop))
        start = cut
    return bounds + [(start * hop, samples)]


def _segments(wave: np.ndarray, poll: Poll | None) -> Iterator[tuple[float, np.ndarray]]:
    """The clip's segments (`segment_bounds`) as (start s, samples), one at a time, with ``poll()``
    run before every segment after the first. Shapes: wave (N,) -> samples (n,)."""
    padded = np.pad(wave, (0, -len(wave) % (SAMPLE_RATE // FRAME_RATE)))
    energy = np.square(padded.reshape(-1, SAMPLE_RATE // FRAME_RATE)).mean(axis=1)
    for index, (start, end) in enumerate(segment_bounds(len(wave), energy)):
        if index and poll is not None:
            poll()
        yield start / SAMPLE_RATE, wave[start:end]


def recognize_phones(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, poll: Poll | None = None) -> tuple[TimedPhone, ...]:
    """The clip's phones by allphone recognition (module docstring), contiguous from the first
    decoded frame of each segment, each spanning whole 10 ms frames. Shapes: wave (N,) float in
    [-1, 1] at 16 kHz. Raises `RecognitionError` for audio it cannot take."""
    wave = _check_wave(wave, sample_rate)
    phones: list[TimedPhone] = []
    for offset, segment in _segments(wave, poll):
        decoder = pocketsphinx.Decoder(
            allphone=pocketsphinx.get_model_path(PHONE_LM), lm=None, samprate=SAMPLE_RATE, **_PHONE_OPTIONS
        )
        phones += [(_sampa(found.word), offset + found.start_frame / FRAME_RATE, offset + (found.end_frame + 1) / FRAME_RATE)
                   for found in _decode(decoder, segment).seg()]
    return tuple(phones)


def recognize_words(
    wave: np.ndarray, sample_rate: int = SAMPLE_RATE, poll: Poll | None = None
) -> tuple[str, tuple[TimedPhone, ...]]:
    """The words the clip says by word recognition and, force-aligned, their phones (module
    docstring); a segment whose words are none or cannot be aligned adds neither.
    Shapes: wave (N,) float in [-1, 1] at 16 kHz. Raises `RecognitionError` for audio it cannot take."""
    wave = _check_wave(wave, sample_rate)
    words: list[str] = []
    phones: list[TimedPhone] = []
    for offset, segment in _segments(wave, poll):
        hypothesis = _decode(pocketsphinx.Decoder(samprate=SAMPLE_RATE, **_COMMON_OPTIONS), segment).hyp()
        said = hypothesis.hypstr.strip() if hypothesis is not None else ""
        try:
            aligned = align_text(segment, said) if said else []
        except AlignmentError:  # the recogniser's own words fit too poorly to trust their timing
            continue
        words.append(said)
        phones += [(symbol, offset + start, offset + end) for symbol, start, end in aligned]
    return " ".join(w for w in words if w), tuple(phones)


def heard_phones(
    wave: np.ndarray, hearing: str, sample_rate: int = SAMPLE_RATE, poll: Poll | None = None
) -> tuple[TimedPhone, ...]:
    """The phones ``hearing`` ("phones": `recognize_phones`, "words": `recognize_words`, "off":
    none) finds in the clip, ``poll()`` run between segments. Shapes: wave (N,) at 16 kHz. Raises
    `RecognitionError` for audio the recogniser cannot take and ValueError for a name outside
    `HEARING`."""
    if hearing == "off":
        return ()
    if hearing == "phones":
        return recognize_phones(wave, sample_rate, poll)
    if hearing == "words":
        return recognize_words(wave, sample_rate, poll)[1]
    raise ValueError(f"hearing must be one of {', '.join(HEARING)}, got {hearing!r}")
