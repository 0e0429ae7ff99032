"""Tests for `core.align`: forced alignment of a transcript to real and synthetic speech.

Real speech: three LJ Speech clips (tests/data/real/CREDITS.md). Synthetic speech: an MBROLA voice,
whose exact phone timings say how far the aligned phones are from the truth.
"""

from pathlib import Path

import numpy as np
import pytest

from core.align import SILENCE, AlignmentError, align_text, words_of
from core.audio import load_audio
from core.corpus.speech import Prosody, synthesize
from core.visemes import BILABIALS

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
LJ = {
    "LJ001-0002": "in being comparatively modern.",
    "LJ001-0008": "has never been surpassed.",
    "LJ001-0013": "than in the same operations with ugly ones.",
}


@pytest.fixture(scope="module")
def waves() -> dict[str, np.ndarray]:
    return {name: load_audio(REAL / f"{name}.flac") for name in LJ}


def spoken(phones: list[tuple[str, float, float]]) -> list[str]:
    return [symbol for symbol, _, _ in phones if symbol != SILENCE]


def test_a_real_reader_is_aligned_phone_by_phone_in_order_and_contiguous(waves) -> None:
    phones = align_text(waves["LJ001-0008"], LJ["LJ001-0008"])
    # has never been surpassed: h { z n E v 3: b I n s 3: p { s t (CMU's pronunciations)
    assert spoken(phones) == ["h", "{", "z", "n", "E", "v", "3:", "b", "I", "n", "s", "3:", "p", "{", "s", "t"]
    starts, ends = np.array([p[1] for p in phones]), np.array([p[2] for p in phones])
    assert np.allclose(starts[1:], ends[:-1]) and (ends > starts).all()
    assert starts[0] == 0.0 and ends[-1] == pytest.approx(len(waves["LJ001-0008"]) / 16000)


def test_the_aligned_bilabials_fall_where_the_real_reader_is_quiet(waves) -> None:
    """A /p b m/ closure is a drop in loudness: the aligned bilabials sit in quieter frames than
    the aligned vowels of the same line."""
    wave = waves["LJ001-0013"]
    phones = align_text(wave, LJ["LJ001-0013"])

    def loudness(start: float, end: float) -> float:
        part = wave[int(start * 16000): int(end * 16000)]
        return float(np.sqrt(np.mean(part**2)))

    closures = [loudness(a, b) for s, a, b in phones if s in BILABIALS]
    vowels = [loudness(a, b) for s, a, b in phones if s in {"{", "E", "eI", "A", "@", "V", "O", "I", "i", "u"}]
    assert len(closures) == 2  # saMe, oPerations
    assert np.median(closures) < 0.5 * np.median(vowels)


def test_another_lines_transcript_is_refused_as_a_poor_fit(waves) -> None:
    with pytest.raises(AlignmentError, match="fits the audio poorly|no alignment"):
        align_text(waves["LJ001-0013"], "the quick brown fox jumps over the lazy dog beside a tall tree")


def test_a_word_outside_the_dictionary_is_named(waves) -> None:
    with pytest.raises(AlignmentError, match="not in the pronouncing dictionary: zorblax"):
        align_text(waves["LJ001-0002"], "in being zorblax modern")


@pytest.mark.parametrize("text, message", [
    ("it cost 42 pounds", "spell out the numbers"),
    ("... !!", "no words"),
    ("a" * 2001, "at most 2000"),
])
def test_texts_that_cannot_be_aligned_say_why(text: str, message: str) -> None:
    with pytest.raises(AlignmentError, match=message):
        words_of(text)


def test_words_drop_markup_and_punctuation_and_keep_apostrophes() -> None:
    assert words_of("[laughter] Don't  stop, <noise> well-known\u2019s end.") == ["don't", "stop", "well", "known's", "end"]


def test_too_short_audio_is_refused() -> None:
    with pytest.raises(AlignmentError, match="too short"):
        align_text(np.zeros(800, np.float32), "hello")


def test_synthetic_bilabials_are_placed_within_forty_milliseconds_of_the_truth() -> None:
    text = "Bob made a map of the pub by the bay."
    utterance = synthesize(text, "us1", Prosody())
    aligned = align_text(utterance.wave, text)
    truth = [(p.start + p.end) / 2 for p in utterance.phones if p.symbol in BILABIALS]
    found = [(a + b) / 2 for s, a, b in aligned if s in BILABIALS]
    assert len(found) == len(truth) == 9  # BoB Made a MaP of the PuB By the Bay
    assert np.median(np.abs(np.array(found) - np.array(truth))) < 0.04
