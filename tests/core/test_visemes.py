"""core.visemes: phones with timings become lip-sync curves that do what the phones need,
measured on the built-in face mesh."""

import numpy as np
import pytest

from core.corpus.speech import SENTENCES, available_voices, phone_symbols, synthesize
from core.visemes import (
    BILABIALS,
    LEAD,
    LIP_PARTING,
    MOUTH_CHANNELS,
    PHONE_VISEMES,
    JAW_LEAD,
    UNKNOWN_VISEME,
    VISEMES,
    VISEME_CLASSES,
    VisemeError,
    frame_visemes,
    frames_at,
    hold_lip_consonants,
    jaw_curve,
    LIP_CONSONANT_PHONES,
    seal_bilabials,
    viseme_curves,
    viseme_of,
)
from core.eval.metrics import CLOSED_GAP_MM, bilabial_closure_rate
from core.face.measure import lip_gap
from core.face.model import FaceModel

FPS_VALUES = (25.0, 30.0, 60.0)


def sequence(*spec: tuple[str, float]) -> list[tuple[str, float, float]]:
    """Contiguous phones from (symbol, duration s) pairs, with 0.2 s of silence around them."""
    phones, t = [], 0.0
    for symbol, duration in (("_", 0.2), *spec, ("_", 0.2)):
        phones.append((symbol, t, t + duration))
        t += duration
    return phones


def curves(face: FaceModel, phones, fps: float) -> np.ndarray:
    frames = int(np.ceil(phones[-1][2] * fps))
    return viseme_curves(phones, face.names, fps, frames)


def frame_at(time: float, fps: float) -> int:
    """The frame whose span holds ``time`` (`frames_at`, which the evaluation measures closure on)."""
    return int(frames_at(np.array([time]), fps)[0])


def channel(face: FaceModel, values: np.ndarray, name: str) -> np.ndarray:
    return values[..., face.names.index(name)]


def gap_mm(face: FaceModel, exp: np.ndarray) -> float:
    return 1000 * lip_gap(face, face.expression_mesh(exp))


@pytest.mark.parametrize("fps", FPS_VALUES)
@pytest.mark.parametrize("bilabial", ["p", "b", "m", "p_h"])
@pytest.mark.parametrize("vowel", ["A", "{", "i", "u"])
def test_lips_are_closed_at_the_centre_of_every_bilabial(face, fps, bilabial, vowel) -> None:
    phones = sequence((vowel, 0.12), (bilabial, 0.07), (vowel, 0.12))
    values = curves(face, phones, fps)
    _, start, end = phones[2]
    assert gap_mm(face, values[frame_at((start + end) / 2, fps)]) < 1.5


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_a_bilabial_centred_on_a_frame_boundary_is_closed_where_the_evaluation_looks(face, fps) -> None:
    """The corpus seals, and `bilabial_closure_rate` measures, the same frame even when the centre
    lies exactly between two frame centres: a /p/ from 0.36 s to 0.44 s is centred on 0.4 s, a
    frame boundary at 25 and 30 fps."""
    phones = [("A", 0.0, 0.36), ("p", 0.36, 0.44), ("A", 0.44, 0.7)]
    values = curves(face, phones, fps)
    assert bilabial_closure_rate(face, values, phones, fps) == 1.0


@pytest.mark.parametrize("parting", [*LIP_PARTING, "jawOpen"])
def test_sealing_closes_lips_that_another_layer_parted_and_leaves_other_frames(face, parting) -> None:
    """What the corpus adds on top of the lip-sync (a surprised jaw drop, a disgusted upper-lip
    raise) must not hold the lips apart at a /p b m/; frames away from it keep the layer."""
    fps = 25.0
    phones = sequence(("A", 0.3), ("m", 0.12), ("A", 0.3))
    layered = curves(face, phones, fps)
    layered[:, face.names.index(parting)] += 0.5
    centre = frame_at((phones[2][1] + phones[2][2]) / 2, fps)
    assert gap_mm(face, layered[centre]) > 1.5  # the layer alone parts the lips
    before = layered.copy()
    seal_bilabials(layered, face.names, phones, fps)
    assert gap_mm(face, layered[centre]) < 1.0
    changed = np.flatnonzero(np.any(layered != before, axis=1))
    assert centre in changed and changed.max() - changed.min() < 0.12 * fps + 2
    np.testing.assert_array_equal(layered[: changed.min()], before[: changed.min()])


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_open_vowels_drop_the_jaw_and_silence_rests(face, fps) -> None:
    phones = sequence(("d", 0.06), ("A", 0.16), ("d", 0.06))
    values = curves(face, phones, fps)
    _, start, end = phones[2]
    assert gap_mm(face, values[frame_at((start + end) / 2 - LEAD, fps)]) > 8.0
    assert values[0].max() < 0.01 and values[-1].max() < 0.01  # silence rests


def test_rounded_vowels_funnel_and_pucker_where_spread_vowels_stretch(face) -> None:
    fps = 60.0
    rounded = curves(face, sequence(("t", 0.06), ("u", 0.18), ("t", 0.06)), fps)
    spread = curves(face, sequence(("t", 0.06), ("i", 0.18), ("t", 0.06)), fps)
    middle = frame_at(0.2 + 0.06 + 0.09 - LEAD, fps)
    assert channel(face, rounded[middle], "mouthPucker") > 0.4
    assert channel(face, rounded[middle], "mouthFunnel") > 0.3
    assert channel(face, spread[middle], "mouthStretchLeft") > 0.2
    assert channel(face, spread[middle], "mouthPucker") < 0.05


def test_labiodentals_tuck_the_lower_lip(face) -> None:
    """Between two open vowels the /f/ still rolls its lower lip in and brings the lips under the
    closure threshold at its centre (`hold_lip_consonants`), where the blend alone left 4.2 mm."""
    fps = 60.0
    values = curves(face, sequence(("A", 0.12), ("f", 0.1), ("A", 0.12)), fps)
    at_f = frame_at(0.2 + 0.12 + 0.05 - LEAD, fps)
    at_a = frame_at(0.2 + 0.06 - LEAD, fps)
    assert channel(face, values[at_f], "mouthRollLower") > 0.45 > channel(face, values[at_a], "mouthRollLower")
    assert gap_mm(face, values[frame_at(0.2 + 0.12 + 0.05, fps)]) < CLOSED_GAP_MM


def test_rounding_is_anticipated_before_the_vowel_sounds(face) -> None:
    """Coarticulation: /u/'s pucker is already building during the consonant before it."""
    fps = 100.0
    phones = sequence(("s", 0.12), ("u", 0.15))
    values = channel(face, curves(face, phones, fps), "mouthPucker")
    onset = phones[2][1]
    before_onset = values[frame_at(onset - 0.03, fps)]
    early = values[frame_at(phones[1][1] + 0.01, fps)]
    assert before_onset > 0.2 and before_onset > 3 * early


def test_curves_are_frame_accurate(face) -> None:
    """Delaying every phone by exactly one frame delays the curves by exactly one frame."""
    fps = 30.0
    phones = sequence(("b", 0.07), ("A", 0.14), ("m", 0.08), ("u", 0.12), ("f", 0.09), ("i", 0.1))
    shifted = [(s, a + 1 / fps, b + 1 / fps) for s, a, b in phones]
    frames = int(np.ceil(phones[-1][2] * fps)) + 2
    base = viseme_curves(phones, face.names, fps, frames)
    later = viseme_curves(shifted, face.names, fps, frames)
    np.testing.assert_allclose(later[1:], base[:-1], atol=1e-6)


def test_only_mouth_channels_move_and_stay_in_range(face) -> None:
    values = curves(face, sequence(*((symbol, 0.08) for symbol in PHONE_VISEMES)), 25.0)
    moved = {face.names[i] for i in np.flatnonzero(np.abs(values).max(axis=0) > 0)}
    assert moved <= set(MOUTH_CHANNELS) and {"jawOpen", "mouthFunnel", "mouthClose"} <= moved
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.dtype == np.float32


def test_no_phones_give_rest(face) -> None:
    assert not viseme_curves([], face.names, 25.0, 10).any()


def test_unknown_phone_and_missing_channels_are_named(face) -> None:
    with pytest.raises(VisemeError, match="'xx'"):
        viseme_curves([("xx", 0.0, 0.1)], face.names, 25.0, 3)
    with pytest.raises(VisemeError, match="jawOpen"):
        viseme_curves([("A", 0.0, 0.1)], [n for n in face.names if n != "jawOpen"], 25.0, 3)


@pytest.fixture(scope="module")
def voices() -> list[str]:
    found = available_voices()
    if not found:
        pytest.skip("no MBROLA voices installed: run `bash scripts/setup_speech.sh`")
    return found


def test_every_phone_the_voices_speak_has_a_viseme(voices) -> None:
    for voice in voices:
        assert phone_symbols(voice) <= set(PHONE_VISEMES), voice


def test_synthesized_speech_closes_the_lips_on_every_bilabial_in_every_voice(face, voices) -> None:
    """Whatever SAMPA a voice writes for /p b m/ must be one `BILABIALS` seals: a bilabial viseme
    under another symbol would round the lips without ever closing them."""
    for voice in voices:
        utterance = synthesize(SENTENCES[0], voice)  # "Bob, please pass the soup.": five bilabials
        phones = [(p.symbol, p.start, p.end) for p in utterance.phones]
        lip_phones = [p for p in utterance.phones if viseme_of(p.symbol)[0].name == "bilabial"]
        assert len(lip_phones) == 5 and {p.symbol for p in lip_phones} <= BILABIALS, voice
        for fps in FPS_VALUES:
            values = viseme_curves(phones, face.names, fps, int(np.ceil(phones[-1][2] * fps)))
            gaps = [gap_mm(face, values[frame_at(p.centre, fps)]) for p in lip_phones]
            assert max(gaps) < 1.5, (voice, fps, gaps)


def test_each_frame_takes_the_viseme_class_of_the_phone_that_holds_its_centre() -> None:
    """Frame centres (t + 0.5) / fps: a diphthong gives its onset viseme to its first half and its
    offset viseme to the second; frames past the last phone are unknown."""
    phones = [("_", 0.0, 0.1), ("m", 0.1, 0.2), ("aI", 0.2, 0.4)]
    classes = frame_visemes(phones, 25.0, 12)  # centres 0.02, 0.06, ..., 0.46
    expected = ["rest"] * 2 + ["bilabial"] * 3 + ["open"] * 3 + ["close_spread"] * 2
    assert classes.dtype == np.uint8
    assert [VISEME_CLASSES[c] for c in classes[:10]] == expected
    assert classes[10:].tolist() == [UNKNOWN_VISEME] * 2
    assert frame_visemes([], 25.0, 4).tolist() == [UNKNOWN_VISEME] * 4


def test_frame_visemes_names_a_phone_without_a_viseme() -> None:
    with pytest.raises(VisemeError, match="'QQ'"):
        frame_visemes([("QQ", 0.0, 0.5)], 25.0, 10)


def test_the_corpus_curves_jaw_is_the_jaw_curve_led_by_its_own_lead(face) -> None:
    """`jaw_curve` is the corpus curves' jawOpen frame for frame (the seal never moves the jaw), and
    a held phone reaches its viseme's jaw target at its centre led by `JAW_LEAD`; the jaw rests in
    silence."""
    phones = sequence(("b", 0.08), ("aI", 0.2), ("f", 0.1), ("@", 0.05), ("m", 0.09), ("i:", 0.15))
    for fps in FPS_VALUES:
        frames = int(np.ceil(phones[-1][2] * fps))
        assert np.allclose(jaw_curve(phones, fps, frames), channel(face, curves(face, phones, fps), "jawOpen"), atol=1e-6)
    fps = 100.0
    for symbol, viseme in (("A", "open"), ("E", "mid_spread"), ("u", "close_rounded"), ("f", "labiodental")):
        held = sequence(("_", 0.1), (symbol, 0.6), ("_", 0.1))
        jaw = jaw_curve(held, fps, int(np.ceil(held[-1][2] * fps)))
        assert jaw[frame_at(0.3 + 0.3 - JAW_LEAD, fps)] == pytest.approx(VISEMES[viseme].targets["jawOpen"], abs=0.01)
        assert jaw[0] < 0.01 and jaw[-1] < 0.01 and 0.0 <= jaw.min() and jaw.max() <= 1.0


def test_real_speakers_jaw_barely_drops_for_f_r_and_u_and_more_for_i_than_for_the_reduced_vowel(face) -> None:
    """The fitted jaw targets (module docstring): /f/, /r/ and /u/ between two /d/ keep the lips
    nearly shut, /i/ opens them wider than the reduced vowel /@/, and an open /A/ widest."""
    fps = 100.0
    gaps = {}
    for vowel in ("f", "r", "u", "@", "i", "A"):
        phones = sequence(("d", 0.06), (vowel, 0.16), ("d", 0.06))
        values = curves(face, phones, fps)
        gaps[vowel] = gap_mm(face, values[frame_at(0.2 + 0.06 + 0.08 - JAW_LEAD, fps)])
    assert max(gaps["f"], gaps["r"], gaps["u"]) < gaps["@"] < gaps["i"] < gaps["A"]


def test_the_jaw_curve_moves_with_the_phones_and_rests_without_any() -> None:
    phones = sequence(("d", 0.06), ("A", 0.16), ("d", 0.06))
    shifted = [(symbol, start + 0.04, end + 0.04) for symbol, start, end in phones]
    first, later = jaw_curve(phones, 25.0, 30), jaw_curve(shifted, 25.0, 30)
    assert np.allclose(first[:-1], later[1:], atol=1e-6)  # 40 ms later = one frame later at 25 fps
    assert jaw_curve([], 25.0, 12).shape == (12,) and not jaw_curve([], 25.0, 12).any()


@pytest.mark.parametrize("symbol, viseme", [("f", "labiodental"), ("v", "labiodental"), ("r", "approximant_r")])
def test_f_v_and_r_keep_their_own_lip_shape_on_an_open_jaw_between_open_vowels(face, symbol, viseme) -> None:
    """Between two /A/ on a take whose jaw is dropped and whose lower lip is pulled down, a known
    /f v/ or /r/ brings the lips nearly together in its viseme's shape (under the closure threshold
    on the built-in face, as real speakers' lips are there), keeps the jaw, and leaves the frames
    away from it as they were; a /w/, whose lips stay apart on real speakers, is left alone."""
    fps = 25.0
    phones = sequence(("A", 0.2), (symbol, 0.12), ("A", 0.2))
    frames = int(np.ceil(phones[-1][2] * fps))
    take = np.zeros((frames, len(face.names)), np.float32)
    take[:, face.names.index("jawOpen")] = 0.4
    take[:, face.names.index("mouthLowerDownLeft")] = take[:, face.names.index("mouthLowerDownRight")] = 0.3
    before = take.copy()
    hold_lip_consonants(take, face.names, phones, fps, to_end=True)
    centre = frame_at((phones[2][1] + phones[2][2]) / 2, fps)
    assert gap_mm(face, before[centre]) > 10.0 and gap_mm(face, take[centre]) < CLOSED_GAP_MM
    for name, value in VISEMES[viseme].targets.items():
        if name != "jawOpen":
            assert channel(face, take[centre], name) == pytest.approx(value)
    np.testing.assert_array_equal(channel(face, take, "jawOpen"), channel(face, before, "jawOpen"))
    changed = np.flatnonzero(np.any(take != before, axis=1))
    assert changed.min() >= frame_at(phones[2][1] - LEAD - 0.03, fps) and changed.max() <= frame_at(phones[2][2], fps)
    untouched = before.copy()
    hold_lip_consonants(untouched, face.names, sequence(("A", 0.2), ("w", 0.12), ("A", 0.2)), fps, to_end=True)
    np.testing.assert_array_equal(untouched, before)


def test_the_lip_consonants_are_the_f_v_and_r_of_every_voice() -> None:
    """The /f v/ and /r/ of every voice, the foreign voices' uvular R too; not /w/, the rounded or
    rhotic vowels, a diphthong ending in /r/, or the bilabials (sealed instead)."""
    assert LIP_CONSONANT_PHONES == {"f", "v", "r", "R"}
