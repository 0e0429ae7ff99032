"""core.eval.metrics: the `flowvq eval` metrics behave as defined on ground-truth-like takes built
with the real corpus functions (viseme, emotion, blink and head-motion curves) on the built-in face."""

import time

import numpy as np
import pytest

from core.blinks import blink_curves
from core.corpus.performance import emotion_curves, head_motion
from core.visemes import viseme_curves
from core.emotions import EMOTIONS
from core.eval.metrics import (
    BROWS,
    CLOSED_GAP_MM,
    MOUTH,
    EmotionClassifier,
    EvalError,
    bilabial_closure_rate,
    blink_count,
    jerk,
    landmark_distance,
    open_vowel_opening,
    paired_difference,
    region_spread_mm,
    region_vertices,
    take_diversity,
    vertex_sequence,
)
from core.face.measure import lip_gap
from core.face.model import FaceModel
from tests.core.test_visemes import sequence

FPS = 25.0
CONSONANTS = ("p", "b", "m", "t", "d", "s", "k", "f", "n", "l")
VOWELS = ("A", "{", "i", "u", "E", "@", "O")


def frames_of(phones) -> int:
    return int(np.ceil(phones[-1][2] * FPS))


def lips(face: FaceModel, phones) -> np.ndarray:
    return viseme_curves(phones, face.names, FPS, frames_of(phones)).astype(np.float64)


def random_phones(rng: np.random.Generator, seconds: float) -> list[tuple[str, float, float]]:
    """Random consonant-vowel syllables filling about ``seconds``."""
    spec, total = [], 0.4
    while total < seconds:
        consonant, vowel = rng.uniform(0.05, 0.1), rng.uniform(0.08, 0.2)
        spec += [(str(rng.choice(CONSONANTS)), consonant), (str(rng.choice(VOWELS)), vowel)]
        total += consonant + vowel
    return sequence(*spec)


def performance(face: FaceModel, emotion: str, seed: int, seconds: float = 3.0) -> np.ndarray:
    """A ground-truth-like take: lips for random speech + the emotion's style + blinks, clipped to [0, 1].
    Shapes: -> (T, D)."""
    rng = np.random.default_rng(seed)
    phones = random_phones(rng, seconds)
    frames = frames_of(phones)
    exp = (lips(face, phones)
           + emotion_curves(face.names, emotion, rng.uniform(0.5, 1.0), phones, np.ones(frames), FPS, rng)
           + blink_curves(face.names, emotion, frames, FPS, rng))
    return np.clip(exp, 0.0, 1.0)


def column(face: FaceModel, name: str) -> int:
    return face.names.index(name)


# --- meshes and landmark distance ---------------------------------------------------------------

def test_vertex_sequence_is_the_expression_mesh_of_every_frame(face) -> None:
    exp = performance(face, "happy", 0)[:5]
    meshes = vertex_sequence(face, exp)
    assert meshes.shape == (5, face.n_vertices, 3)
    np.testing.assert_allclose(meshes[3], face.expression_mesh(exp[3]))
    with pytest.raises(EvalError, match="shape"):
        vertex_sequence(face, exp[:, :10])


def test_landmark_distance_is_zero_for_identical_takes_and_symmetric(face) -> None:
    a, b = performance(face, "angry", 1), performance(face, "angry", 2)
    frames = min(len(a), len(b))
    a, b = a[:frames], b[:frames]
    for region in (None, MOUTH):
        assert landmark_distance(face, a, a, region) == 0.0
        assert landmark_distance(face, a, b, region) == pytest.approx(landmark_distance(face, b, a, region))
        assert landmark_distance(face, a, b, region) > 0.0


def test_landmark_distance_grows_with_the_perturbation_and_is_in_millimetres(face) -> None:
    exp = performance(face, "talk", 3)
    jaw = column(face, "jawOpen")
    distances = []
    for amount in (0.05, 0.1, 0.3):
        opened = exp.copy()
        opened[:, jaw] += amount
        distances.append(landmark_distance(face, opened, exp, MOUTH))
    assert distances[0] < distances[1] < distances[2]
    # Opening the jaw by 0.3 opens the lips by about 10 mm; the lip vertices move by millimetres too.
    closed = np.zeros(face.n_expressions)
    opened = closed.copy()
    opened[jaw] = 0.3
    gap_change = 1000 * (lip_gap(face, face.expression_mesh(opened)) - lip_gap(face, face.expression_mesh(closed)))
    assert 5.0 < gap_change < 20.0
    assert gap_change / 5 < distances[2] < gap_change
    # The jaw barely moves the upper face: F-LMD over all vertices is smaller than M-LMD.
    assert landmark_distance(face, exp + 0.3 * np.eye(face.n_expressions)[jaw], exp, None) < distances[2]


def test_landmark_distance_refuses_takes_of_different_length_or_unknown_regions(face) -> None:
    exp = performance(face, "sad", 4)
    with pytest.raises(EvalError, match="length"):
        landmark_distance(face, exp, exp[:-1], MOUTH)
    with pytest.raises(EvalError, match="nostrils"):
        landmark_distance(face, exp, exp, "nostrils")


def test_the_mouth_region_holds_the_lips(face) -> None:
    mouth = region_vertices(face, MOUTH)
    assert set(face.regions["lips"]) <= set(mouth) and set(face.regions["inner_lips"]) <= set(mouth)
    assert len(region_vertices(face, None)) == face.n_vertices


# --- lip sync -----------------------------------------------------------------------------------

BILABIAL_SPEECH = (("A", 0.14), ("m", 0.08), ("A", 0.14), ("b", 0.07), ("i", 0.12), ("p", 0.08), ("u", 0.14))


def test_bilabials_are_closed_on_ground_truth_and_open_when_the_jaw_is_forced(face) -> None:
    phones = sequence(*BILABIAL_SPEECH)
    exp = lips(face, phones)
    assert bilabial_closure_rate(face, exp, phones, FPS) == 1.0
    forced = exp.copy()
    for symbol, start, end in phones:
        if symbol in ("m", "b", "p"):
            centre = int(round((start + end) / 2 * FPS - 0.5))
            forced[centre - 1:centre + 2, column(face, "jawOpen")] = 0.4
            forced[centre - 1:centre + 2, column(face, "mouthClose")] = 0.0
    assert bilabial_closure_rate(face, forced, phones, FPS) == 0.0
    # A stricter threshold than the rig's sealed gap (0.84 mm) fails even the ground truth.
    assert bilabial_closure_rate(face, exp, phones, FPS, gap_mm=0.5) == 0.0


def test_closure_rate_is_nan_without_bilabials(face) -> None:
    phones = sequence(("t", 0.08), ("A", 0.15), ("d", 0.08))
    assert np.isnan(bilabial_closure_rate(face, lips(face, phones), phones, FPS))


def test_the_closed_threshold_lies_between_sealed_lips_and_the_smallest_consonant_opening(face) -> None:
    sealed = 1000 * lip_gap(face, face.expression_mesh(np.zeros(face.n_expressions)))
    consonant = np.zeros(face.n_expressions)
    consonant[column(face, "jawOpen")] = 0.06  # the labiodental / sibilant jaw
    assert sealed < CLOSED_GAP_MM < 1000 * lip_gap(face, face.expression_mesh(consonant))


def test_open_vowels_open_the_lips_wider_than_bilabials_close_them(face) -> None:
    open_phones = sequence(("t", 0.08), ("A", 0.16), ("t", 0.08), ("{", 0.16), ("t", 0.08))
    nasal_phones = sequence(("t", 0.08), ("m", 0.16), ("t", 0.08), ("m", 0.16), ("t", 0.08))
    opening = open_vowel_opening(face, lips(face, open_phones), open_phones, FPS)
    # Score the same frames of the /m/ take by relabelling its phones as the open vowels' timings.
    at_nasals = open_vowel_opening(face, lips(face, nasal_phones), open_phones, FPS)
    assert opening > 8.0 and at_nasals < CLOSED_GAP_MM
    assert np.isnan(open_vowel_opening(face, lips(face, nasal_phones), nasal_phones, FPS))


def test_phones_past_the_end_of_a_take_are_not_scored(face) -> None:
    phones = sequence(*BILABIAL_SPEECH)
    exp = lips(face, phones)
    cut = int(round(phones[3][2] * FPS))  # the take ends after the first /m/
    assert bilabial_closure_rate(face, exp[:cut], phones, FPS) == 1.0


# --- smoothness and blinks ----------------------------------------------------------------------

def test_jerk_is_larger_with_frame_noise(face) -> None:
    exp = performance(face, "happy", 5)
    noisy = np.clip(exp + np.random.default_rng(6).normal(0.0, 0.02, exp.shape), 0.0, 1.0)
    for region in (None, MOUTH):
        smooth = jerk(face, exp, FPS, region)
        assert 0.0 < smooth < jerk(face, noisy, FPS, region)
    assert jerk(face, np.repeat(exp[:1], 10, axis=0), FPS) == 0.0  # a still face has no jerk
    with pytest.raises(EvalError, match="4 frames"):
        jerk(face, exp[:3], FPS)


def test_jerk_scales_with_the_cube_of_the_frame_rate(face) -> None:
    exp = performance(face, "fear", 7)
    assert jerk(face, exp, 2 * FPS) == pytest.approx(8 * jerk(face, exp, FPS))


def test_blink_count_counts_both_lids_closing_above_the_threshold(face) -> None:
    frames = 100
    exp = np.zeros((frames, face.n_expressions))
    left, right = column(face, "eyeBlinkLeft"), column(face, "eyeBlinkRight")
    pulse = np.array([0.3, 0.9, 1.0, 0.6, 0.2])
    for start in (10, 30, 60):  # three blinks
        exp[start:start + 5, [left, right]] = pulse[:, None]
    exp[45:50, [left, right]] = 0.4 * pulse[:, None]  # a flutter that never half-closes the lids
    exp[75:80, left] = pulse  # a wink: one lid only, the mean stays at or below 0.5
    assert blink_count(exp, face.names) == 3
    exp[-2:, [left, right]] = 1.0  # the take ends with the eyes closing
    assert blink_count(exp, face.names) == 4
    keep = [i for i in range(face.n_expressions) if i != left]
    with pytest.raises(EvalError, match="eyeBlinkLeft"):
        blink_count(exp[:, keep], [face.names[i] for i in keep])


def test_blink_count_finds_every_generated_blink(face) -> None:
    fps = 100.0
    exp = blink_curves(face.names, "fear", int(60 * fps), fps, np.random.default_rng(8))
    closure = exp[:, column(face, "eyeBlinkLeft")]
    # Every generated blink starts from open lids: count the rises from zero.
    starts = np.count_nonzero((closure[1:] > 0) & (closure[:-1] == 0)) + int(closure[0] > 0)
    assert 10 < blink_count(exp, face.names) == starts


# --- diversity ----------------------------------------------------------------------------------

def takes(face: FaceModel, seeds: list[int], frames: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Takes of one input that differ only in their random draws. Shapes: -> (K, T, D), (K, T, 6)."""
    exps, poses = [], []
    energy = np.clip(np.sin(np.arange(frames) / 4.0), 0.0, 1.0)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        exps.append(emotion_curves(face.names, "sad", 0.8, [("a", 0.0, frames / FPS)], energy, FPS, rng)
                    + blink_curves(face.names, "fear", frames, FPS, rng))
        poses.append(head_motion(energy, "sad", FPS, rng))
    return np.stack(exps), np.stack(poses)


def test_identical_takes_have_no_diversity(face) -> None:
    exp, pose = takes(face, [9, 9, 9])
    diversity = take_diversity(exp, pose, face.names)
    assert diversity.expression == diversity.brows == diversity.blink_std == diversity.pose_degrees == 0.0
    assert len(set(diversity.blinks)) == 1


def test_takes_with_different_seeds_are_diverse(face) -> None:
    exp, pose = takes(face, [10, 11, 12, 13])
    diversity = take_diversity(exp, pose, face.names)
    assert diversity.expression > 0.0 and diversity.brows > 0.0
    assert diversity.blinks == [blink_count(e, face.names) for e in exp]
    assert 0.5 < diversity.pose_degrees < 10.0  # head motion is a few degrees per take
    mouth_only = exp.copy()
    mouth_only[:] = exp[0]
    mouth_only[:, :, column(face, "jawOpen")] = exp[:, :, column(face, "browInnerUp")]
    assert take_diversity(mouth_only, pose, face.names).expression == 0.0  # mouth channels are excluded


def test_region_spread_is_the_mean_distance_of_the_takes_from_their_mean_in_mm(face) -> None:
    """Two takes whose brows differ by one browInnerUp weight: each lies half of that weight's
    vertex displacement from their mean; identical takes and the untouched mouth have no spread."""
    exp = np.zeros((2, 3, face.n_expressions))
    exp[1, :, column(face, "browInnerUp")] = 1.0
    brows = region_vertices(face, BROWS)
    moved = 1000.0 * np.linalg.norm(face.basis[column(face, "browInnerUp"), brows], axis=-1).mean()
    assert moved > 0.3  # a full brow raise moves the brow area by a fraction of a millimetre on average
    assert region_spread_mm(face, exp, BROWS) == pytest.approx(moved / 2)
    assert region_spread_mm(face, exp, MOUTH) < 0.01 * moved
    assert region_spread_mm(face, np.stack([exp[1], exp[1]]), BROWS) == 0.0
    with pytest.raises(EvalError, match="2 takes"):
        region_spread_mm(face, exp[:1], BROWS)


def test_diversity_needs_two_takes_of_matching_shapes(face) -> None:
    exp, pose = takes(face, [1, 2])
    with pytest.raises(EvalError, match="2 takes"):
        take_diversity(exp[:1], pose[:1], face.names)
    with pytest.raises(EvalError, match="poses"):
        take_diversity(exp, pose[:, :-1], face.names)


# --- emotion classifier -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emotion_data(face) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """Ground-truth-like takes of all nine emotions: train and held-out test sets with disjoint seeds."""
    data = {}
    for split, (first, count) in {"train": (0, 16), "test": (1000, 8)}.items():
        exps, labels = [], []
        for e, emotion in enumerate(EMOTIONS):
            for k in range(count):
                exps.append(performance(face, emotion, 100 * (first + k) + e, seconds=float(2 + k % 3)))
                labels.append(emotion)
        data[split] = (exps, labels)
    return data


def test_classifier_recognises_held_out_emotions(emotion_data) -> None:
    started = time.perf_counter()
    classifier = EmotionClassifier(FPS).fit(*emotion_data["train"])
    seconds = time.perf_counter() - started
    assert seconds < 5.0  # a fit on hundreds of sequences takes a few seconds at most on one CPU core
    assert classifier.classes == EMOTIONS
    accuracy = classifier.accuracy(*emotion_data["test"])
    print(f"held-out emotion accuracy {accuracy:.3f} on {len(emotion_data['test'][1])} takes, fit {seconds:.2f} s")
    assert accuracy >= 0.9
    assert classifier.accuracy(*emotion_data["train"]) >= accuracy


def test_classifier_is_deterministic_and_its_state_round_trips(emotion_data, tmp_path) -> None:
    exps, labels = emotion_data["train"]
    first, second = EmotionClassifier(FPS).fit(exps, labels), EmotionClassifier(FPS).fit(exps, labels)
    np.testing.assert_array_equal(first.weight, second.weight)
    np.savez(tmp_path / "classifier.npz", **first.state_dict())
    with np.load(tmp_path / "classifier.npz") as saved:
        restored = EmotionClassifier.from_state(dict(saved))
    test_exps = emotion_data["test"][0]
    assert restored.predict(test_exps) == first.predict(test_exps)
    assert restored.classes == first.classes and restored.fps == FPS


def test_classifier_refuses_bad_input(face, emotion_data) -> None:
    exps, labels = emotion_data["train"]
    with pytest.raises(EvalError, match="not trained"):
        EmotionClassifier(FPS).predict(exps[:1])
    with pytest.raises(EvalError, match="labels"):
        EmotionClassifier(FPS).fit(exps, labels[:-1])
    with pytest.raises(EvalError, match="two emotion classes"):
        EmotionClassifier(FPS).fit(exps[:3], labels[:3])
    classifier = EmotionClassifier(FPS).fit(exps, labels)
    with pytest.raises(EvalError, match="expression channels"):
        classifier.predict([exps[0][:, :10]])
    with pytest.raises(EvalError, match="lacks"):
        EmotionClassifier.from_state({"fps": np.array(FPS)})


def test_a_paired_difference_separates_a_real_gap_from_the_spread_between_sequences() -> None:
    """Sequences differ far more from each other (std 1) than system a from system b (0.1 lower on
    every sequence, with noise 0.05): pairing by sequence still finds the gap, and with no gap the
    interval holds 0. Same seed, same interval."""
    rng = np.random.default_rng(7)
    hardness = rng.normal(2.0, 1.0, 200)
    b = hardness + rng.normal(0.0, 0.05, 200)
    a = hardness - 0.1 + rng.normal(0.0, 0.05, 200)
    gap = paired_difference(a, b)
    assert gap.ci95[0] <= gap.mean <= gap.ci95[1] < 0 and gap.mean == pytest.approx(-0.1, abs=0.02)
    assert gap.lower_share > 0.85 and gap.sequences == 200
    same = paired_difference(hardness + rng.normal(0.0, 0.05, 200), b)
    assert same.ci95[0] < 0 < same.ci95[1]
    assert paired_difference(a, b) == gap


def test_a_paired_difference_refuses_unpaired_or_too_few_values() -> None:
    with pytest.raises(EvalError, match="two equal lists of at least 2 values"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(EvalError, match="two equal lists"):
        paired_difference([1.0], [2.0])
