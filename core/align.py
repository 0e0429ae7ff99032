"""Forced alignment of a line of dialogue to its recording: the timed phones of known words.

`align_text` lets PocketSphinx's bundled US-English acoustic model and pronouncing dictionary place
each word of the transcript, then each phone of each word, in the audio (two passes: a word-level
alignment, then the phone-level one on it). The CMU (ARPABET) phones become the SAMPA symbols of the
corpus's viseme table (`ARPABET_TO_SAMPA`; silence and fillers `SILENCE`), so an aligned line is the
same kind of phone list as a synthetic utterance's: (symbol, start s, end s), contiguous.

An alignment is refused (`AlignmentError`, with the reason) when the text has a word the dictionary
lacks, when the decoder finds no path, or when the aligned words fit the audio too poorly
(`MIN_SCORE_PER_FRAME`: the mean acoustic log-score per 10 ms frame of the whole alignment, measured
on real and synthetic speech with their own transcripts and with other sentences' transcripts,
docs/training.md "Forced alignment"), which is what a transcript of some other recording gives.

Text normalisation: lower case, transcript markup in brackets dropped (``[laughter]``, ``<noise>``),
digits refused (spell numbers out), hyphens split words, other punctuation dropped, apostrophes kept
(``don't``).
"""

import re
from functools import cache

import numpy as np
import pocketsphinx

from core.audio import SAMPLE_RATE
from core.errors import FlowVQError

__all__ = [
    "AlignmentError", "ARPABET_TO_SAMPA", "SILENCE", "FRAME_RATE", "MIN_SCORE_PER_FRAME", "MAX_TEXT_CHARS",
    "to_pcm16", "words_of", "pronunciations", "align_text",
]

SILENCE = "_"  # the corpus's pause symbol (`core.corpus.speech.SILENCE` is this one)
FRAME_RATE = 100  # PocketSphinx analysis frames per second (10 ms hop)
MAX_TEXT_CHARS = 2000
# The 39 CMU dictionary phones -> SAMPA keys of `core.visemes.PHONE_VISEMES` (American
# values: ER is r-coloured, OW the diphthong @U). AH is CMU's stressed "cup" and unstressed schwa
# alike; it becomes @, whose jaw follows the true one more closely than V's does on the project's
# sentences.
ARPABET_TO_SAMPA: dict[str, str] = {
    "AA": "A", "AE": "{", "AH": "@", "AO": "O", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3:",
    "EY": "eI", "IH": "I", "IY": "i", "OW": "@U", "OY": "OI", "UH": "U", "UW": "u",
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k",
    "L": "l", "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t",
    "TH": "T", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}
MIN_SCORE_PER_FRAME = -30.0
_MIN_SECONDS = 0.1
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*'?")


class AlignmentError(FlowVQError):
    """A transcript that cannot be aligned to its audio: unknown words, digits, no path, a poor fit."""
    code = "alignment"


def to_pcm16(wave: np.ndarray) -> bytes:
    """Little-endian signed 16-bit samples, what PocketSphinx decodes. Shapes: (N,) in [-1, 1] -> 2N bytes."""
    return (np.clip(wave, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def words_of(text: str) -> list[str]:
    """The transcript's words as the dictionary spells them (module docstring); raises
    `AlignmentError` for an empty or too long text or one with digits."""
    if len(text) > MAX_TEXT_CHARS:
        raise AlignmentError(f"the text is {len(text)} characters long; give at most {MAX_TEXT_CHARS} (one line)")
    if re.search(r"\d", text):
        raise AlignmentError(f"spell out the numbers in the text ({re.findall(r'[0-9]+', text)[0]!r})")
    lowered = re.sub(r"\[[^\]]*\]|<[^>]*>", " ", text.lower()).replace("’", "'").replace("-", " ")
    words = [match.group().rstrip("'") for match in _WORD.finditer(lowered)]
    if not words:
        raise AlignmentError("the text has no words to align")
    return words


def _decoder() -> pocketsphinx.Decoder:
    """A fresh decoder on the bundled US-English model, quiet, deterministic."""
    return pocketsphinx.Decoder(samprate=SAMPLE_RATE, bestpath=False, dither=True, seed=1, loglevel="FATAL")


@cache
def _dictionary() -> pocketsphinx.Decoder:
    """One decoder kept for dictionary look-ups only (loading the model costs about 0.1 s)."""
    return _decoder()


def pronunciations(word: str) -> list[str]:
    """Every pronunciation of ``word`` in the bundled pronouncing dictionary ("word", "word(2)",
    ...), each as space-separated CMU phones; empty when the dictionary lacks the word."""
    found: list[str] = []
    while (entry := _dictionary().lookup_word(f"{word}({len(found) + 1})" if found else word)) is not None:
        found.append(entry)
    return found


def _check_words(words: list[str]) -> None:
    """Refuse words the pronouncing dictionary lacks, naming them."""
    unknown = sorted({w for w in words if not pronunciations(w)})
    if unknown:
        raise AlignmentError(f"not in the pronouncing dictionary: {', '.join(unknown[:10])}"
                             f"{' …' if len(unknown) > 10 else ''}; spell them as they sound")


def _decode(decoder: pocketsphinx.Decoder, pcm: bytes) -> None:
    """One full-utterance decoding pass."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def align_text(wave: np.ndarray, text: str, min_score: float = MIN_SCORE_PER_FRAME) -> list[tuple[str, float, float]]:
    """The timed phones of ``text`` in ``wave`` (module docstring); raises `AlignmentError`.

    Shapes: wave (N,) float32 at 16 kHz (`core.audio.load_audio`) -> [(SAMPA symbol, start s,
    end s)], contiguous from 0 s to the end of the wave, in time order."""
    words = words_of(text)
    if len(wave) < _MIN_SECONDS * SAMPLE_RATE:
        raise AlignmentError(f"the audio is {len(wave) / SAMPLE_RATE:.3f} s long; too short to align text to")
    _check_words(words)
    decoder = _decoder()
    pcm = to_pcm16(np.asarray(wave, dtype=np.float32))
    try:
        decoder.set_align_text(" ".join(words))
    except RuntimeError as err:
        raise AlignmentError(f"the text cannot be aligned ({err})") from err
    _decode(decoder, pcm)
    if decoder.hyp() is None:
        raise AlignmentError("no alignment of the text fits the audio; check that the text is what is said")
    decoder.set_alignment()
    _decode(decoder, pcm)
    alignment = decoder.get_alignment()  # owns the word and phone entries: keep it alive while they are read
    words = [(word.start, word.duration, word.score, [(p.name, p.start, p.duration) for p in word]) for word in alignment]
    frames = words[-1][0] + words[-1][1]
    score = sum(word[2] for word in words) / max(frames, 1)
    if score < min_score:
        raise AlignmentError(f"the text fits the audio poorly ({score:.1f} per frame, need "
                             f"{min_score:g}); check that the text is what is said")
    phones = [(ARPABET_TO_SAMPA.get(name, SILENCE), start / FRAME_RATE, (start + duration) / FRAME_RATE)
              for _, _, _, word_phones in words for name, start, duration in word_phones]
    return _cover(phones, len(wave) / SAMPLE_RATE)


def _cover(phones: list[tuple[str, float, float]], seconds: float) -> list[tuple[str, float, float]]:
    """The phones with silence added before the first and after the last, so that they span
    exactly 0 .. ``seconds`` (the decoder's frames stop short of the last partial 10 ms)."""
    start, end = phones[0][1], phones[-1][2]
    head = [(SILENCE, 0.0, start)] if start > 0 else []
    tail = [(SILENCE, end, seconds)] if seconds > end else []
    return head + phones + tail
