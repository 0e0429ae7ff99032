"""Speech recognition without a transcript: the phones a clip says, with their times.

Two recognisers, both on PocketSphinx's bundled US-English acoustic model (trained on recordings
of real speakers, where the flows have mostly heard synthetic voices):

    recognize_phones   allphone decoding against a phone n-gram (`PHONE_LM`), as Rhubarb Lip Sync's
                       transcript-free recogniser does: no vocabulary, about 20x real time here
    recognize_words    word decoding against the bundled English language model and dictionary,
                       then the words force-aligned (`core.align.align_text`) for their phones:
                       about 3x real time here, fewer phones heard that were not said

`heard_phones` picks one by name (`HEARING`). The CMU (ARPABET) phones become the corpus's SAMPA
symbols (`core.align.ARPABET_TO_SAMPA`), silence and noise fillers `SILENCE`, so either result is
the same kind of phone list as a synthetic utterance's or an aligned text's:
(symbol, start s, end s), in time order.

Both are deterministic: a fresh decoder per call (no state such as live cepstral-mean
normalisation carries over between clips) and dither with a fixed seed (digital silence, all-zero
samples, otherwise decodes as a long /s/).
"""

import numpy as np
import pocketsphinx

from core.align import ARPABET_TO_SAMPA, FRAME_RATE, SILENCE, AlignmentError, align_text, to_pcm16
from core.audio import SAMPLE_RATE
from core.errors import FlowVQError

__all__ = [
    "RecognitionError", "PHONE_LM", "HEARING", "TimedPhone",
    "recognize_phones", "recognize_words", "heard_phones",
]

PHONE_LM = "en-us/en-us-phone.lm.bin"  # inside pocketsphinx.get_model_path()
HEARING: tuple[str, ...] = ("phones", "words", "off")
TimedPhone = tuple[str, float, float]  # (SAMPA symbol, start s, end s)
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


def recognize_phones(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[TimedPhone, ...]:
    """The clip's phones by allphone recognition (module docstring), contiguous from the first
    decoded frame, each spanning whole 10 ms frames. Shapes: wave (N,) float in [-1, 1] at 16 kHz.
    Raises `RecognitionError` for audio it cannot take."""
    wave = _check_wave(wave, sample_rate)
    decoder = pocketsphinx.Decoder(
        allphone=pocketsphinx.get_model_path(PHONE_LM), lm=None, samprate=SAMPLE_RATE, **_PHONE_OPTIONS
    )
    return tuple((_sampa(segment.word), segment.start_frame / FRAME_RATE, (segment.end_frame + 1) / FRAME_RATE)
                 for segment in _decode(decoder, wave).seg())


def recognize_words(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[str, tuple[TimedPhone, ...]]:
    """The words the clip says by word recognition and, force-aligned, their phones (module
    docstring); ("", ()) when nothing is recognised or the recognised words cannot be aligned.
    Shapes: wave (N,) float in [-1, 1] at 16 kHz. Raises `RecognitionError` for audio it cannot take."""
    wave = _check_wave(wave, sample_rate)
    hypothesis = _decode(pocketsphinx.Decoder(samprate=SAMPLE_RATE, **_COMMON_OPTIONS), wave).hyp()
    words = hypothesis.hypstr.strip() if hypothesis is not None else ""
    if not words:
        return "", ()
    try:
        return words, tuple(align_text(wave, words))
    except AlignmentError:  # the recogniser's own words fit too poorly to trust their timing
        return "", ()


def heard_phones(wave: np.ndarray, hearing: str, sample_rate: int = SAMPLE_RATE) -> tuple[TimedPhone, ...]:
    """The phones ``hearing`` ("phones": `recognize_phones`, "words": `recognize_words`, "off":
    none) finds in the clip. Shapes: wave (N,) at 16 kHz. Raises `RecognitionError` for audio the
    recogniser cannot take and ValueError for a name outside `HEARING`."""
    if hearing == "off":
        return ()
    if hearing == "phones":
        return recognize_phones(wave, sample_rate)
    if hearing == "words":
        return recognize_words(wave, sample_rate)[1]
    raise ValueError(f"hearing must be one of {', '.join(HEARING)}, got {hearing!r}")
