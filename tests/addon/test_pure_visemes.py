"""`addon/visemes.py` without Blender: the viseme table, the mouth operator, and the bounded
projection of a take's mouth onto a rig's visemes (checked against an exhaustive solver)."""

import itertools

import numpy as np
import pytest

from .pure import pure_module

visemes = pure_module("visemes")
ARKIT = pure_module("mapping").ARKIT_NAMES
ALL = list(visemes.VISEME_IDS)
VOWELS = ["aa", "I", "U", "E", "O"]  # a VRM / VRoid rig


@pytest.fixture(scope="module")
def face():
    """(names, operator) of the built-in face model; skips where core is not installed."""
    model = pytest.importorskip("core.face").builtin()
    ids = visemes.mouth_vertex_ids(model.regions)
    return list(model.names), visemes.mouth_operator(model.basis, ids)


def frame(names, **weights) -> np.ndarray:
    """One frame with the given coefficients. Shapes: -> (1, D)."""
    exp = np.zeros((1, len(names)))
    for name, weight in weights.items():
        exp[0, names.index(name)] = weight
    return exp


def exhaustive_box_qp(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin 0.5 w'Gw - b'w on [0, 1]^K by trying every split of the variables into at 0, at 1
    and free (3^K equality-constrained solves), keeping the feasible point of least objective.
    Shapes: gram (K, K), rhs (K,) -> (K,)."""
    count, best, best_value = len(rhs), None, np.inf
    for states in itertools.product((0, 1, 2), repeat=count):
        states = np.array(states)
        w = np.where(states == 1, 1.0, 0.0)
        free = states == 2
        if free.any():
            w[free] = np.linalg.solve(gram[np.ix_(free, free)], rhs[free] - gram[np.ix_(free, ~free)] @ w[~free])
        if (w < -1e-12).any() or (w > 1 + 1e-12).any():
            continue
        value = 0.5 * w @ gram @ w - rhs @ w
        if value < best_value:
            best, best_value = w, value
    return best


def test_the_table_names_every_id_with_arkit_mouth_channels():
    assert set(visemes.VISEMES) == set(ALL) and len(ALL) == 15
    assert visemes.VISEMES["sil"] == {}
    for viseme, weights in visemes.VISEMES.items():
        assert set(weights) <= set(ARKIT), viseme
        assert all(name.startswith(visemes.MOUTH_PREFIXES) for name in weights), viseme
        assert all(0.0 < w <= 1.0 for w in weights.values()), viseme
    assert visemes.VISEMES["aa"]["jawOpen"] >= 0.5  # the open vowel drops the jaw most
    assert visemes.VISEMES["PP"]["mouthClose"] == visemes.VISEMES["PP"]["jawOpen"]  # sealed


def test_viseme_matrix_rows_are_the_table_over_the_models_names():
    names = ["mouthFunnel", "jawOpen", "browInnerUp"]  # a model without mouthPucker
    matrix = visemes.viseme_matrix(["O", "sil", "O"], names)
    assert matrix.shape == (3, 3)
    np.testing.assert_array_equal(matrix[0], [visemes.VISEMES["O"]["mouthFunnel"], visemes.VISEMES["O"]["jawOpen"], 0])
    np.testing.assert_array_equal(matrix[1], 0)
    np.testing.assert_array_equal(matrix[0], matrix[2])
    with pytest.raises(ValueError, match="unknown viseme id 'ah'"):
        visemes.viseme_matrix(["ah"], names)


def test_seal_collapse_takes_the_sealed_jaw_off_both_channels():
    names = ["jawOpen", "mouthClose", "mouthPressLeft"]
    exp = np.array([[0.3, 0.3, 0.2], [0.5, 0.2, 0.0], [0.1, 0.4, 0.0], [0.4, 0.0, 0.0]])
    np.testing.assert_allclose(visemes.seal_collapsed(exp, names),
                               [[0.0, 0.0, 0.2], [0.3, 0.0, 0.0], [0.0, 0.3, 0.0], [0.4, 0.0, 0.0]])
    assert exp[0, 0] == 0.3  # a copy
    np.testing.assert_array_equal(visemes.seal_collapsed(exp[:, :1], names[:1]), exp[:, :1])


def test_mouth_operator_maps_coefficients_to_the_mouth_vertices_displacements():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 10, 3))
    ids = np.array([7, 2, 5])
    operator = visemes.mouth_operator(basis, ids)
    assert operator.shape == (9, 4)
    exp = rng.normal(size=4)
    moved = np.einsum("d,dvk->vk", exp, basis)  # every vertex's displacement
    np.testing.assert_allclose(operator @ exp, moved[ids].ravel())
    with pytest.raises(ValueError, match="must lie in"):
        visemes.mouth_operator(basis, np.array([10]))


def test_mouth_vertices_are_the_lips_inner_lips_and_chin():
    regions = {"lips": [5, 1, 3], "inner_lips": [3, 9], "chin": [0], "eye_left": [4]}
    np.testing.assert_array_equal(visemes.mouth_vertex_ids(regions), [0, 1, 3, 5, 9])
    with pytest.raises(ValueError, match="none of the mouth regions"):
        visemes.mouth_vertex_ids({"eye_left": [4]})


@pytest.mark.parametrize("ids", [VOWELS, ["PP", "FF", "TH", "DD", "kk"], ["CH", "SS", "nn", "RR", "U"]])
@pytest.mark.parametrize("sparsity", [0.0, 0.05])
def test_projection_is_the_bounded_least_squares_optimum(face, ids, sparsity):
    names, operator = face
    rng = np.random.default_rng(len(ids[0]) + int(100 * sparsity))
    mouth = [i for i, name in enumerate(names) if name.startswith(("jaw", "mouth", "tongue"))]
    exp = np.zeros((12, len(names)))
    exp[:, mouth] = rng.uniform(0.0, 0.7, (12, len(mouth))) * (rng.uniform(size=(12, len(mouth))) < 0.4)
    weights = visemes.project(exp, names, ids, operator, sparsity=sparsity)
    # The objective written out: 1/2 |A w - y|^2 + sparsity |y| sum_k |A_k| w_k, seals collapsed.
    shapes = operator @ visemes.seal_collapsed(visemes.viseme_matrix(ids, names), names).T
    gram = shapes.T @ shapes
    for t in range(len(exp)):
        target = operator @ visemes.seal_collapsed(exp[t], names)
        rhs = shapes.T @ target - sparsity * np.linalg.norm(target) * np.sqrt(np.diag(gram))
        best = exhaustive_box_qp(gram, rhs)
        np.testing.assert_allclose(weights[t], best, atol=1e-6)


def test_a_frame_made_of_one_viseme_projects_onto_that_viseme(face):
    names, operator = face
    table = visemes.viseme_matrix(ALL, names)
    weights = visemes.project(table, names, ALL, operator)
    np.testing.assert_allclose(weights, np.diag([0.0] + [1.0] * 14), atol=1e-5)  # sil: rest, never keyed
    # With the parsimony term an exact viseme keeps 1 - sparsity and the others stay 0.
    weights = visemes.project(table[1:], names, ALL, operator, sparsity=0.05)
    np.testing.assert_allclose(weights[:, 1:], 0.95 * np.eye(14), atol=1e-5)


def test_a_frame_made_of_one_vowel_projects_onto_that_vowel_on_a_vrm_rig(face):
    names, operator = face
    weights = visemes.project(visemes.viseme_matrix(VOWELS, names), names, VOWELS, operator)
    np.testing.assert_allclose(weights, np.eye(5), atol=1e-5)


def test_a_sealed_frame_projects_mostly_onto_pp_and_opens_no_vowel(face):
    names, operator = face
    sealed = frame(names, jawOpen=0.3, mouthClose=0.3, mouthPressLeft=0.3, mouthPressRight=0.3)
    weights = visemes.project(sealed, names, ALL, operator)[0]
    assert weights.argmax() == ALL.index("PP") and weights[ALL.index("PP")] > 0.5
    assert np.delete(weights, ALL.index("PP")).max() < 0.1
    # A rig with only vowels keeps its mouth shut through a /p b m/.
    assert visemes.project(sealed, names, VOWELS, operator).max() < 0.1


def test_an_open_jaw_projects_onto_aa(face):
    names, operator = face
    for ids in (ALL, VOWELS):
        weights = visemes.project(frame(names, jawOpen=0.7), names, ids, operator)[0]
        assert weights.argmax() == ids.index("aa") and weights[ids.index("aa")] > 0.9
        assert np.delete(weights, ids.index("aa")).max() < 0.5


def test_weights_stay_within_bounds_and_ignore_the_rest_of_the_face(face):
    names, operator = face
    rng = np.random.default_rng(7)
    exp = rng.uniform(-0.5, 2.0, (300, len(names)))
    weights = visemes.project(exp, names, ALL, operator)
    assert weights.shape == (300, 15)
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    assert weights.max() == 1.0  # the upper bound was reached, so it was enforced
    np.testing.assert_array_equal(weights[:, ALL.index("sil")], 0.0)
    upper_face = frame(names, browDownLeft=1.0, eyeBlinkLeft=1.0, cheekPuff=1.0, noseSneerRight=1.0)
    np.testing.assert_array_equal(visemes.project(upper_face, names, ALL, operator), 0.0)


def test_projection_refuses_mismatched_shapes_and_handles_empty_input(face):
    names, operator = face
    assert visemes.project(np.zeros((0, len(names))), names, ALL, operator).shape == (0, 15)
    assert visemes.project(np.zeros((3, len(names))), names, [], operator).shape == (3, 0)
    with pytest.raises(ValueError, match="exp must have shape"):
        visemes.project(np.zeros((3, 5)), names, ALL, operator)
    with pytest.raises(ValueError, match="sparsity"):
        visemes.project(np.zeros((3, len(names))), names, ALL, operator, sparsity=-1.0)


def test_only_the_mouth_channels_count_even_where_others_move_the_mouth_vertices():
    names = ["jawOpen", "mouthClose", "cheekSquintLeft"]
    rng = np.random.default_rng(3)
    jaw = rng.normal(size=6)
    operator = np.stack([jaw, rng.normal(size=6), jaw], axis=1)  # the cheek moves the lips like the jaw
    weights = visemes.project(np.array([[0.0, 0.0, 0.5], [0.5, 0.0, 0.0]]), names, ["aa"], operator)
    np.testing.assert_allclose(weights, [[0.0], [0.5 / visemes.VISEMES["aa"]["jawOpen"]]], atol=1e-9)


@pytest.mark.parametrize("symbol", ["f", "v"])
def test_a_takes_held_f_and_v_key_the_ff_viseme_of_an_oculus_rig(face, symbol) -> None:
    """The generator holds a known /f v/ in its own lip shape on whatever jaw the take has
    (`core.visemes.hold_lip_consonants`); on a Ready Player Me-style rig with the 15 Oculus
    visemes, that frame keys FF above every other viseme (not PP, as it did while FF kept the
    corpus's old /f v/ jaw), and not the open vowel of its jaw."""
    core_visemes = pytest.importorskip("core.visemes")
    names, operator = face
    phones = [("A", 0.0, 0.2), (symbol, 0.2, 0.32), ("A", 0.32, 0.52)]
    take = np.zeros((13, len(names)), np.float32)
    take[:, names.index("jawOpen")] = 0.35
    core_visemes.hold_lip_consonants(take, names, phones, 25.0, to_end=True)
    weights = visemes.project(take[6:7], names, ALL, operator, sparsity=visemes.TAKE_SPARSITY)[0]
    assert ALL[int(np.argmax(weights))] == "FF" and weights[ALL.index("aa")] < 0.1


def test_each_visemes_jaw_is_its_corpus_targets_fitted_jaw() -> None:
    """The rig's visemes open the jaw as the corpus's visemes do (core.visemes, fitted to real
    speakers), so a take's frame at a phone reads as that phone's viseme, not its neighbour's."""
    core_visemes = pytest.importorskip("core.visemes")
    corpus = {"FF": "labiodental", "TH": "dental", "DD": "alveolar", "kk": "velar", "CH": "postalveolar",
              "SS": "sibilant", "nn": "alveolar", "RR": "approximant_r", "aa": "open", "E": "mid_spread",
              "I": "close_spread", "O": "mid_rounded", "U": "close_rounded"}
    for viseme, target in corpus.items():
        corpus_jaw = core_visemes.VISEMES[target].targets.get("jawOpen", 0.0)
        assert visemes.VISEMES[viseme].get("jawOpen", 0.0) == corpus_jaw, viseme


def test_a_smile_the_rigs_emotion_key_shows_stays_out_of_its_vowels(face) -> None:
    """A happy take on a VRM rig: its smile read as the I viseme swamped every vowel (an open /a/
    keyed I above A); left out as shown by the rig's Joy key, the /a/ keys A again."""
    names, operator = face
    happy_a = frame(names, jawOpen=visemes.VISEMES["aa"]["jawOpen"], mouthSmileLeft=0.8, mouthSmileRight=0.8)
    smiling = visemes.project(happy_a, names, VOWELS, operator, sparsity=visemes.TAKE_SPARSITY)[0]
    assert VOWELS[int(np.argmax(smiling))] == "I"  # what the smile did before
    shown = {"mouthSmileLeft", "mouthSmileRight"}
    weights = visemes.project(happy_a, names, VOWELS, operator, sparsity=visemes.TAKE_SPARSITY,
                              shown=shown)[0]
    assert VOWELS[int(np.argmax(weights))] == "aa" and weights[VOWELS.index("I")] < 0.1
    plain_a = frame(names, jawOpen=visemes.VISEMES["aa"]["jawOpen"])
    np.testing.assert_allclose(weights, visemes.project(plain_a, names, VOWELS, operator,
                                                        sparsity=visemes.TAKE_SPARSITY, shown=shown)[0], atol=1e-9)
