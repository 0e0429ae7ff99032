"""A take's mouth projected onto the visemes of a viseme-only rig. No bpy, no core: numpy only.

Rigs made for lip-sync engines rather than face capture (VRoid/VRM vowels, Ready Player Me's
Oculus set, Character Creator's lip shapes) carry one shape key per mouth shape instead of the
ARKit mouth channels. `project` turns each frame of a take's ARKit coefficients into weights on the
visemes a rig has, comparing mouth SHAPES, not coefficient numbers: every viseme id is first
written as ARKit mouth-channel weights (`VISEMES`), the face model turns channels into
displacements of the mouth landmarks (`mouth_operator`: regions ``lips``, ``inner_lips`` and
``chin``), and each frame gets the weights ``w`` in [0, 1] that reproduce its mouth best::

    min_w  1/2 || L (e - V^T w) ||^2 + sparsity * ||L e|| * sum_k ||L V_k|| w_k,   0 <= w_k <= 1

(L: (3M, D) landmark operator, e: the frame's mouth coefficients, V: (K, D) the visemes as
coefficient vectors). Channels that move the lips alike (a dropped jaw and a lowered lower lip, a
funnel and a pucker) then trade off by what the audience sees. The optional ``sparsity`` term
(default 0: the plain bounded least squares) charges each viseme by the size of the displacement
it makes, so that a frame is explained by one viseme rather than a mixture of small ones whose sum
happens to fit; an exact viseme frame then projects to weight ``1 - sparsity``.

Seals are collapsed before the comparison. ARKit seals the lips over an open jaw with
``mouthClose == jawOpen`` (the corpus seals every /p b m/ that way), but a viseme rig has no shape
for "lips shut, jaw down": compared as raw displacements, the dropped chin and lower lip of a
sealed /m/ would be explained by an open vowel (E, on a VRM rig) and the rig would open its
mouth at every bilabial. So the sealed part of the jaw, ``min(jawOpen, mouthClose)``, is taken off
both ``jawOpen`` and ``mouthClose`` of every frame and of every viseme vector (`seal_collapsed`):
a sealed frame reads as closed lips (with its press, it projects onto PP), a half-sealed one as the
jaw opening the lips actually show.

``sil`` is the rest shape: its coefficient vector is zero, so it cannot explain any displacement,
its projection weight is always 0, and a rig's ``sil`` key is not keyed (the mouth is at rest when
every other viseme is 0).

The table (`VISEMES`) follows the phone targets of the project's lip-sync corpus
(core/visemes.py: bilabial, labiodental, dental, alveolar, sibilant, postalveolar, velar,
approximant r, open, mid spread, close spread, mid rounded and close rounded vowels) where the two
overlap. Where several Oculus ids share a corpus target (DD, kk and nn are all "jaw a little open"),
each gets a small secondary cue of its own (DD raises the upper lip, kk dimples the corners, nn
rolls the upper lip, CH and RR add an upper or lower lip shrug to their rounding, E lowers the lower
lip) so that no viseme is a scaled copy or a box-bounded mix of others: on the built-in face every
non-sil viseme has its own direction and an exact viseme frame projects back onto itself alone.
Mixtures stay ambiguous, though (O's shape is within 1 % of a bounded mix of the others), which is
what ``sparsity`` is for: with Gaussian noise of 0.03 on every mouth channel, the right viseme keeps
the largest weight for O in 7/20 frames at ``sparsity=0`` and 20/20 at 0.05 (E: 11/20 and 15/20).
"""

from collections.abc import Collection, Mapping, Sequence

import numpy as np

__all__ = [
    "VISEME_IDS",
    "VISEMES",
    "TAKE_SPARSITY",
    "MOUTH_REGIONS",
    "MOUTH_PREFIXES",
    "seal_collapsed",
    "mouth_vertex_ids",
    "mouth_operator",
    "viseme_matrix",
    "project",
]

# The Oculus / Meta viseme set (Ready Player Me ``viseme_<id>``, OpenXR XR_META_face_tracking_visemes).
VISEME_IDS: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")

# The parsimony `project` uses for takes: a real take's mouth is never exactly one viseme, and
# without it small mixtures win (on a held-out voice's take, /p b m/ frames kept PP at a median
# peak of 0.82 while open vowels read 0.06, against 0.96 and 0.48 at 0; measured with the table's
# hand-written jaw, before its refit below).
TAKE_SPARSITY = 0.05

# Face-model regions whose vertices are "the mouth" for the shape comparison.
MOUTH_REGIONS: tuple[str, ...] = ("lips", "inner_lips", "chin")
# Coefficients that belong to the mouth; the others (brows, eyes, cheeks, nose) are left out of the
# projection, so a frown or a blink never reads as a viseme.
MOUTH_PREFIXES: tuple[str, ...] = ("jaw", "mouth", "tongue")


def _both(**weights: float) -> dict[str, float]:
    """ARKit weights with ``Left``/``Right`` pairs written once: ``mouthPress=0.3`` sets both sides."""
    out: dict[str, float] = {}
    for name, weight in weights.items():
        if name in _PAIRED:
            out[name + "Left"] = out[name + "Right"] = weight
        else:
            out[name] = weight
    return out


_PAIRED = frozenset({"mouthPress", "mouthUpperUp", "mouthLowerDown", "mouthStretch", "mouthSmile", "mouthDimple",
                     "mouthFrown"})

# Each viseme id as ARKit mouth-channel weights (phones after the Oculus reference; the corpus
# target it follows in brackets, jawOpen its jaw target fitted to real speakers: an /f v/ frame of a
# take, lips held on a jaw at 0, keyed PP with the hand-written 0.06 here).
VISEMES: dict[str, dict[str, float]] = {
    "sil": {},  # rest [rest]
    "PP": _both(jawOpen=0.1, mouthClose=0.1, mouthPress=0.35),  # p b m [bilabial, sealed]
    "FF": _both(mouthRollLower=0.65, mouthUpperUp=0.2),  # f v [labiodental]
    "TH": _both(jawOpen=0.04, tongueOut=0.15),  # th dh [dental]
    "DD": _both(jawOpen=0.1, mouthUpperUp=0.1),  # t d [alveolar]
    "kk": _both(jawOpen=0.21, mouthDimple=0.15),  # k g ng [velar]
    "CH": _both(jawOpen=0.05, mouthFunnel=0.4, mouthPucker=0.25, mouthShrugUpper=0.2),  # ch j sh zh [postalveolar]
    "SS": _both(jawOpen=0.06, mouthStretch=0.15),  # s z [sibilant]
    "nn": _both(jawOpen=0.1, mouthRollUpper=0.15),  # n l [alveolar]
    "RR": _both(mouthPucker=0.3, mouthFunnel=0.2, mouthShrugLower=0.15),  # r [approximant r]
    "aa": _both(jawOpen=0.55),  # a: ae ah [open]
    "E": _both(jawOpen=0.48, mouthStretch=0.2, mouthLowerDown=0.15),  # e eh [mid spread]
    "I": _both(jawOpen=0.22, mouthStretch=0.3, mouthSmile=0.1),  # i: ih [close spread]
    "O": _both(jawOpen=0.3, mouthFunnel=0.5, mouthPucker=0.25),  # o: oh [mid rounded]
    "U": _both(mouthFunnel=0.45, mouthPucker=0.6),  # u: w [close rounded]
}


def seal_collapsed(exp: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``exp`` with its sealed jaw, ``min(jawOpen, mouthClose)`` (at least 0), taken off both
    ``jawOpen`` and ``mouthClose`` (a copy; unchanged when the model lacks either channel).
    Shapes: exp (..., D) with D = len(names) -> (..., D) float64.
    """
    exp = np.array(exp, dtype=np.float64)
    if "jawOpen" not in names or "mouthClose" not in names:
        return exp
    jaw, close = list(names).index("jawOpen"), list(names).index("mouthClose")
    sealed = np.maximum(np.minimum(exp[..., jaw], exp[..., close]), 0.0)
    exp[..., jaw] -= sealed
    exp[..., close] -= sealed
    return exp


def mouth_vertex_ids(regions: Mapping[str, Sequence[int] | np.ndarray]) -> np.ndarray:
    """The vertices of `MOUTH_REGIONS` (those ``regions`` has), sorted and unique.

    ``regions`` is the face model's region table (the ``region_<name>`` arrays of its ``.npz``).
    Shapes: -> (M,) int64.
    """
    parts = [np.asarray(regions[name], dtype=np.int64).ravel() for name in MOUTH_REGIONS if name in regions]
    if not parts:
        raise ValueError(f"the face model has none of the mouth regions {', '.join(MOUTH_REGIONS)}")
    return np.unique(np.concatenate(parts))


def mouth_operator(basis: np.ndarray, vertex_ids: np.ndarray) -> np.ndarray:
    """The linear map from coefficients to mouth-landmark displacements.

    Shapes: basis (D, V, 3) per-unit deltas, vertex_ids (M,) -> (3M, D); row ``3 m + k`` is
    coordinate k of vertex ``vertex_ids[m]``.
    """
    basis = np.asarray(basis, dtype=np.float64)
    if basis.ndim != 3 or basis.shape[2] != 3:
        raise ValueError(f"basis must have shape (D, V, 3), got {basis.shape}")
    ids = np.asarray(vertex_ids, dtype=np.int64).ravel()
    if ids.size == 0:
        raise ValueError("no mouth vertices")
    if ids.min() < 0 or ids.max() >= basis.shape[1]:
        raise ValueError(f"mouth vertex ids must lie in [0, {basis.shape[1]}), got {ids.min()}..{ids.max()}")
    return basis[:, ids, :].reshape(basis.shape[0], -1).T.copy()


def viseme_matrix(ids: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """The visemes ``ids`` as coefficient vectors over the model's ``names``.

    A channel a viseme names but the model lacks is left out (its row loses that channel).
    Raises ValueError for an id not in `VISEMES`. Shapes: -> (K, D), K = len(ids), D = len(names).
    """
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(ids), len(names)))
    for row, viseme in enumerate(ids):
        if viseme not in VISEMES:
            raise ValueError(f"unknown viseme id {viseme!r}; known ids: {' '.join(VISEME_IDS)}")
        for channel, weight in VISEMES[viseme].items():
            if channel in index:
                matrix[row, index[channel]] = weight
    return matrix


def project(
    exp: np.ndarray,
    names: Sequence[str],
    ids: Sequence[str],
    operator: np.ndarray,
    *,
    sparsity: float = 0.0,
    shown: Collection[str] = (),
) -> np.ndarray:
    """Per-frame weights of the visemes ``ids`` that best reproduce each frame's mouth shape.

    Only the mouth coefficients (`MOUTH_PREFIXES`) of ``exp`` count, seals collapsed
    (`seal_collapsed`) in the frames and the visemes alike, less the names in ``shown`` (in the
    frames and the visemes alike): curves the rig already shows through keys of their own (a VRM
    ``Joy`` key's smile), which a viseme would otherwise show a second time (a happy take's smile
    read as the I viseme all through its vowels). Weights lie in [0, 1]; a
    viseme that makes no mouth displacement (``sil``, or one whose channels the model lacks) gets 0.
    ``sparsity`` >= 0 is the parsimony term of the module docstring (0: plain bounded least squares).
    Shapes: exp (T, D) with D = len(names), operator (3M, D) from `mouth_operator` -> (T, K) float64,
    K = len(ids).
    """
    exp = np.asarray(exp, dtype=np.float64)
    operator = np.asarray(operator, dtype=np.float64)
    if exp.ndim != 2 or exp.shape[1] != len(names):
        raise ValueError(f"exp must have shape (T, {len(names)}), got {exp.shape}")
    if operator.ndim != 2 or operator.shape[1] != len(names):
        raise ValueError(f"operator must have shape (3M, {len(names)}), got {operator.shape}")
    if not np.isfinite(exp).all():
        raise ValueError("exp has non-finite coefficients")
    if not np.isfinite(sparsity) or sparsity < 0:
        raise ValueError(f"sparsity must be a finite number >= 0, got {sparsity}")
    frames, count = exp.shape[0], len(ids)
    weights = np.zeros((frames, count))
    if frames == 0 or count == 0:
        return weights
    kept = np.array([name not in shown for name in names])
    mouth = np.array([name.startswith(MOUTH_PREFIXES) for name in names]) & kept
    exp_mouth = np.where(mouth, seal_collapsed(exp, names), 0.0)
    table = np.where(kept, viseme_matrix(ids, names), 0.0)
    shapes = operator @ seal_collapsed(table, names).T  # (3M, K): landmark displacements
    gram = shapes.T @ shapes  # (K, K)
    scale = np.trace(gram) / count
    live = np.diag(gram) > 1e-12 * max(scale, 1e-300)
    if not live.any():
        return weights
    shapes, gram = shapes[:, live], gram[np.ix_(live, live)]
    scale = float(np.mean(np.diag(gram)))
    rhs = (exp_mouth @ (operator.T @ shapes)) / scale  # (T, K'): A^T L e
    gram = gram / scale
    if sparsity > 0:
        frame_norm = np.sqrt(np.maximum(np.einsum("td,td->t", exp_mouth @ (operator.T @ operator), exp_mouth), 0.0))
        rhs = rhs - sparsity * frame_norm[:, None] * np.sqrt(np.diag(gram))[None, :] / np.sqrt(scale)
    # A vanishing ridge makes the problem strictly convex (unique weights) when visemes coincide.
    gram = gram + 1e-13 * np.eye(gram.shape[0])
    weights[:, live] = _box_qp(gram, rhs)
    return weights


def _box_qp(gram: np.ndarray, rhs: np.ndarray, iterations: int = 12) -> np.ndarray:
    """``argmin_w 0.5 w^T G w - b^T w`` subject to ``0 <= w <= 1``, for every row b of ``rhs``.

    Primal-dual active sets first (Hintermüller, Ito & Kunisch 2002), vectorised over frames: each
    step fixes the variables whose projected-gradient step leaves [0, 1] at that bound and solves
    the others exactly (one batched K x K solve); a frame is done when its sets stop changing, which
    for most frames takes a few steps. PDAS may cycle when G is not an M-matrix, so the frames that
    have not settled after ``iterations`` steps finish with a primal active-set method
    (`_primal_active_set`), which lowers the objective at every step and ends at the optimum.
    Shapes: gram (K, K) symmetric positive definite with unit mean diagonal, rhs (T, K) -> (T, K).
    """
    frames, count = rhs.shape
    weights = np.clip(np.linalg.solve(gram, rhs.T).T, 0.0, 1.0)
    lower = np.zeros((frames, count), dtype=bool)
    upper = np.zeros((frames, count), dtype=bool)
    todo = np.arange(frames)
    for step in range(iterations):
        if todo.size == 0:
            break
        w = weights[todo]
        trial = w - (w @ gram - rhs[todo])
        new_lower, new_upper = trial <= 0.0, trial >= 1.0
        weights[todo] = _solve_free(gram, rhs[todo], new_lower, new_upper)
        settled = (new_lower == lower[todo]).all(axis=1) & (new_upper == upper[todo]).all(axis=1) & (step > 0)
        lower[todo], upper[todo] = new_lower, new_upper
        todo = todo[~settled]
    weights = np.clip(weights, 0.0, 1.0)
    unsettled = np.flatnonzero(_kkt_violation(gram, rhs, weights) > _TOLERANCE)
    if unsettled.size:
        weights[unsettled] = _primal_active_set(gram, rhs[unsettled], weights[unsettled])
    return weights


_TOLERANCE = 1e-10  # on gradients of the unit-mean-diagonal problem


def _solve_free(gram: np.ndarray, rhs: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Each frame's minimiser with the ``lower`` variables held at 0 and the ``upper`` ones at 1
    (the others free, unbounded). Shapes: gram (K, K), rhs/lower/upper (T, K) -> (T, K)."""
    free = ~(lower | upper)
    fixed = upper.astype(np.float64)
    system = np.where(free[:, :, None] & free[:, None, :], gram[None], 0.0)
    system[:, np.arange(gram.shape[0]), np.arange(gram.shape[0])] += ~free
    target = np.where(free, rhs - fixed @ gram, fixed)
    return np.linalg.solve(system, target[:, :, None])[:, :, 0]


def _kkt_violation(gram: np.ndarray, rhs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How far each frame's weights are from optimal: the largest projected-gradient step.
    Shapes: (T, K) -> (T,)."""
    step = np.clip(weights - (weights @ gram - rhs), 0.0, 1.0) - weights
    return np.abs(step).max(axis=1)


def _primal_active_set(gram: np.ndarray, rhs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The box QP solved from feasible ``weights`` by a primal active-set method, all frames in step.

    The working set is the variables at a bound. Each step solves for the free ones (`_solve_free`):
    if that point is feasible the frame moves there and, unless every bound's multiplier has the
    right sign (optimal: the frame is done), frees the bound that violates most; otherwise it moves
    towards the point until the first free variable reaches a bound, which joins the working set.
    The objective never rises. Shapes: gram (K, K), rhs (T, K), weights (T, K) in [0, 1] -> (T, K).
    """
    weights = np.clip(weights, 0.0, 1.0)
    lower, upper = weights <= 0.0, weights >= 1.0
    weights = np.where(lower, 0.0, np.where(upper, 1.0, weights))
    frames, count = weights.shape
    todo = np.arange(frames)
    for _ in range(20 * count + 50):
        if todo.size == 0:
            break
        w, lo, up = weights[todo], lower[todo], upper[todo]
        free = ~(lo | up)
        target = _solve_free(gram, rhs[todo], lo, up)
        direction = np.where(free, target - w, 0.0)
        feasible = ((target >= 0.0) & (target <= 1.0) | ~free).all(axis=1)
        gradient = target @ gram - rhs[todo]
        violation = np.where(lo, -gradient, 0.0) + np.where(up, gradient, 0.0)
        worst = violation.argmax(axis=1)
        done = feasible & (violation.max(axis=1) <= _TOLERANCE)
        release = np.flatnonzero(feasible & ~done)
        with np.errstate(divide="ignore", invalid="ignore"):
            to_lower = np.where(free & (direction < 0), -w / direction, np.inf)
            to_upper = np.where(free & (direction > 0), (1.0 - w) / direction, np.inf)
        ratio = np.minimum(to_lower, to_upper)
        blocking = ratio.argmin(axis=1)
        alpha = np.clip(ratio.min(axis=1), 0.0, 1.0)
        moved = np.where(feasible[:, None], target, w + alpha[:, None] * direction)
        rows = np.flatnonzero(~feasible)
        hits_lower = to_lower[rows, blocking[rows]] <= to_upper[rows, blocking[rows]]
        lo[rows, blocking[rows]] = hits_lower
        up[rows, blocking[rows]] = ~hits_lower
        moved[rows, blocking[rows]] = np.where(hits_lower, 0.0, 1.0)
        lo[release, worst[release]] = False
        up[release, worst[release]] = False
        weights[todo] = np.clip(moved, 0.0, 1.0)
        lower[todo], upper[todo] = lo, up
        todo = todo[~done]
    return weights
