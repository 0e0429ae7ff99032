"""core.expression: loudness per frame, speech found from loudness, and takes moved with the line."""

import numpy as np
import pytest

from core.audio import SAMPLE_RATE
from core.expression import frame_energy, move_with_the_line, speaking_from_loudness

FPS = 25.0


def test_frame_energy_is_loudness_per_frame_scaled_to_one() -> None:
    wave = np.concatenate([np.zeros(SAMPLE_RATE // 2), 0.5 * np.ones(SAMPLE_RATE // 2)])
    energy = frame_energy(wave, SAMPLE_RATE, FPS, 25)
    assert energy.max() == pytest.approx(1.0)
    assert energy[:12].max() == 0.0 and energy[13:].min() == pytest.approx(1.0)


def line_loudness() -> np.ndarray:
    """1 s of near-silence, 2 s of syllables (loud, quiet), 1.2 s pause, 2 s of syllables, 1 s silence."""
    syllables = np.where(np.arange(50) % 10 < 5, 1.0, 0.3)  # 200 ms loud, 200 ms soft
    quiet = lambda seconds: np.full(int(seconds * FPS), 0.01)  # noqa: E731
    return np.concatenate([quiet(1.0), syllables, quiet(1.2), syllables, quiet(1.0)])


def test_speech_is_found_from_loudness_and_short_dips_are_bridged() -> None:
    energy = line_loudness()
    speaking = speaking_from_loudness(energy, FPS)
    assert not speaking[:25].any() and speaking[25:75].all() and not speaking[80:100].any()
    assert not speaking_from_loudness(np.zeros(20), FPS).any()


def test_a_take_moves_with_the_line_around_the_level_it_holds_while_speaking(face) -> None:
    """The departure from rest rises into speech, dips in the pause and after the line, peaks on
    loud syllables, and keeps its mean over the spoken frames; other channels are untouched."""
    energy = line_loudness()
    frames = len(energy)
    names = face.names
    brow, jaw = names.index("browInnerUp"), names.index("jawOpen")
    rest = np.zeros(len(names), np.float32)
    rest[brow] = 0.05
    exp = np.full((2, frames, len(names)), 0.1, np.float32)
    exp[:, :, brow] = 0.05 + 0.5  # a flat departure of 0.5, as the flows hold it
    moved = move_with_the_line(exp, rest, [brow], names, energy, FPS)
    departure = moved[0, :, brow] - 0.05
    speaking = speaking_from_loudness(energy, FPS)
    assert departure[speaking].mean() == pytest.approx(0.5, rel=1e-4)
    assert departure[0] < 0.05  # the line starts from the neutral face
    pause = departure[int(3.0 * FPS) + 20]
    assert pause < 0.75 * departure[speaking].mean()  # eased in the pause
    assert pause > 0.2 * 0.5  # but held above rest: eased towards TAKE_HOLD of the level, not to nothing
    assert departure[-1] > 0.2 * 0.5  # after the line too
    middle = slice(35, 75)
    loud, soft = energy[middle] > 0.5, energy[middle] < 0.5
    assert departure[middle][loud].mean() > 1.1 * departure[middle][soft].mean()  # accented on loud syllables
    np.testing.assert_array_equal(moved[..., jaw], exp[..., jaw])
    np.testing.assert_array_equal(moved[0], moved[1])
