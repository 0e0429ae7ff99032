"""A rule-based lip-sync baseline in the manner of Rhubarb Lip Sync: audio -> phones -> mouth curves.

    recognize_phones   16 kHz wave -> PocketSphinx phone recognition (no transcript) -> timed SAMPA phones
    rhubarb_curves     the recognised phones -> `core.visemes.viseme_curves` -> ARKit blendshape curves

Like Rhubarb Lip Sync's transcript-free "phonetic" recogniser, it runs PocketSphinx in allphone
mode: the bundled US-English acoustic model decodes the audio against a phone n-gram language model
(`en-us-phone.lm.bin`), not against words, so it needs neither a transcript nor a vocabulary. The
CMU (ARPABET) phones it returns are mapped onto the SAMPA symbols espeak-ng writes
(`core.align.ARPABET_TO_SAMPA`, shared with the forced aligner) and its silence and noise fillers onto silence, so the recogniser's output is
the same kind of phone list as a synthetic `core.corpus.speech.Utterance`'s.

How it differs from Rhubarb itself: Rhubarb first splits the audio into utterances with a voice
activity detector, recognises each one, and maps phones by hand-written rules onto its nine
cartoon mouth shapes A-H and X, then smooths away shapes too brief to see. This baseline decodes the
whole clip in one pass and lets our viseme table (`core.visemes.PHONE_VISEMES`) with its
dominance-blended coarticulation turn the phones into continuous ARKit curves, exactly as the
ground-truth curves are made from true phones; any difference between the two therefore comes
from recognition alone.
"""

from collections.abc import Sequence

import numpy as np
import pocketsphinx

from core.align import ARPABET_TO_SAMPA, FRAME_RATE, to_pcm16
from core.audio import SAMPLE_RATE
from core.corpus.speech import SILENCE, Phone
from core.visemes import viseme_curves
from core.errors import FlowVQError

__all__ = [
    "RhubarbError",
    "PHONE_LM",
    "recognize_phones",
    "rhubarb_curves",
]

PHONE_LM = "en-us/en-us-phone.lm.bin"  # inside pocketsphinx.get_model_path()
_MIN_SECONDS = 0.1  # shorter clips give the recogniser too few frames to decode anything
# Wide beams and a light phone-LM weight, the settings CMUSphinx's phoneme-recognition tutorial
# gives (an allphone search has one HMM per phone, so pruning buys little). Dither with a fixed seed:
# digital silence (all-zero samples) otherwise decodes as a long /s/, and a fixed seed keeps the
# output deterministic.
_DECODER_OPTIONS: dict[str, float | int | bool | str] = {
    "beam": 1e-20, "pbeam": 1e-20, "lw": 2.0, "dither": True, "seed": 1, "loglevel": "FATAL",
}


class RhubarbError(FlowVQError):
    """Audio the recogniser cannot take: empty or too short, not float, not mono, not finite, or not at 16 kHz."""
    code = "rhubarb"


def _check_wave(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The wave as float32 (N,) after refusing one the recogniser cannot decode."""
    if sample_rate != SAMPLE_RATE:
        raise RhubarbError(
            f"the recogniser needs {SAMPLE_RATE} Hz audio, not {sample_rate} Hz; "
            "load the clip with core.audio.load_audio, which resamples it"
        )
    wave = np.asarray(wave)
    if not np.issubdtype(wave.dtype, np.floating):
        raise RhubarbError(
            f"the recogniser needs float samples in [-1, 1], not {wave.dtype}; "
            "load the clip with core.audio.load_audio"
        )
    if wave.ndim != 1:
        raise RhubarbError(f"the recogniser needs a mono wave of shape (N,), not {wave.shape}; mix the channels down")
    if len(wave) < _MIN_SECONDS * SAMPLE_RATE:
        raise RhubarbError(
            f"the clip is {len(wave) / SAMPLE_RATE:.3f} s long; give at least {_MIN_SECONDS:g} s of audio"
        )
    if not np.all(np.isfinite(wave)):
        raise RhubarbError("the wave holds NaN or infinite samples; decode the clip again")
    return wave.astype(np.float32, copy=False)


def _sampa(symbol: str) -> str:
    """A recognised phone as SAMPA; silence (SIL) and the noise fillers (+NSN+, +SPN+, ...) are `SILENCE`."""
    if symbol == "SIL" or (symbol.startswith("+") and symbol.endswith("+")):
        return SILENCE
    return ARPABET_TO_SAMPA[symbol]


def recognize_phones(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[Phone, ...]:
    """Recognise the phones of a speech clip without a transcript; deterministic.

    A fresh decoder per call, so no state (such as live cepstral-mean normalisation) carries over
    from one clip to the next. Phones are contiguous from the first decoded frame, each spanning
    whole 10 ms frames. Shapes: wave (N,) float32 in [-1, 1] at 16 kHz -> phones, in time order.
    Raises `RhubarbError` for audio it cannot take (see `RhubarbError`).
    """
    pcm = to_pcm16(_check_wave(wave, sample_rate))
    decoder = pocketsphinx.Decoder(
        allphone=pocketsphinx.get_model_path(PHONE_LM), lm=None, samprate=SAMPLE_RATE, **_DECODER_OPTIONS
    )
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return tuple(
        Phone(_sampa(segment.word), segment.start_frame / FRAME_RATE, (segment.end_frame + 1) / FRAME_RATE)
        for segment in decoder.seg()
    )


def rhubarb_curves(
    wave: np.ndarray, names: Sequence[str], fps: float, frames: int, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Baseline lip-sync curves: the recognised phones through `viseme_curves`.

    Shapes: wave (N,) at 16 kHz -> (frames, len(names)) float32 in [0, 1]; only the mouth channels
    are set. Raises `RhubarbError` for unusable audio, `core.visemes.VisemeError` when
    ``names`` lacks a mouth channel.
    """
    phones = recognize_phones(wave, sample_rate)
    return viseme_curves([(p.symbol, p.start, p.end) for p in phones], names, fps, frames)
