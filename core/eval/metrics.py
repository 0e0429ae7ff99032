"""The metrics of `flowvq eval`: pure functions of coefficient takes, their phones and a face model.

A take is ``exp`` (T, D) expression coefficients in [0, 1] and ``pose`` (T, 6) (pitch, yaw, roll
radians, tx, ty, tz metres); phones are (SAMPA symbol, start s, end s) tuples. Geometric metrics
measure the face model's *expression-only* mesh (`vertex_sequence`): the head pose is left out, so
they judge the lips and face, not where the head is.

Metrics and units:

- **Landmark distance** (`landmark_distance`, millimetres): the mean Euclidean distance between
  predicted and ground-truth vertices over all frames and the vertices of a region. M-LMD uses the
  region ``"mouth"`` (the ``lips`` ∪ ``inner_lips`` vertex groups, `MOUTH_REGIONS`); F-LMD uses
  every vertex (``region=None``), as in the paper's §4.
- **Bilabial closure rate** (`bilabial_closure_rate`, fraction in [0, 1]): of the /p b m/ phones,
  the share whose centre frame has a lip gap (`core.face.measure.lip_gap`) below `CLOSED_GAP_MM`.
- **Open-vowel opening** (`open_vowel_opening`, millimetres): the mean lip gap at the centre frames
  of the open vowels (`OPEN_VOWELS`).
- **Jerk** (`jerk`, m/s³): the mean magnitude of the third time derivative of the vertex positions
  of a region (finite differences at the take's fps); lower is smoother.
- **Blink count** (`blink_count`, blinks): rises of the mean of eyeBlinkLeft/Right above a threshold.
- **Take diversity** (`take_diversity`): spreads across K takes of the same input — coefficient
  units for expression channels, blinks for blink counts, degrees for head rotation; and
  (`region_spread_mm`) how far the brow vertices of the takes lie from their mean, millimetres.
- **Paired difference** (`paired_difference`, the metric's unit): the mean per-sequence difference
  of one system's metric from another's on the same sequences, a seeded bootstrap 95% interval of
  that mean, and the share of sequences where the first system is lower; says whether a gap
  between two systems' means is more than the luck of which sequences were drawn.
- **Emotion accuracy** (`EmotionClassifier`, fraction): a multinomial logistic regression on
  per-sequence statistics of the expression channels, trained on ground truth and applied to
  generated takes; its accuracy on them says whether the generated emotion is recognisable.

A phone's centre frame is the frame whose centre instant (i + 0.5) / fps is nearest the phone's
acoustic centre (start + end) / 2; phones whose centre falls outside the take are not scored.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from core.visemes import BILABIALS, MOUTH_CHANNELS, PHONE_VISEMES, frames_at
from core.emotions import emotion_index
from core.errors import FlowVQError
from core.face.measure import lip_gap
from core.face.model import FaceModel

__all__ = [
    "EvalError",
    "MOUTH",
    "MOUTH_REGIONS",
    "CLOSED_GAP_MM",
    "OPEN_VOWELS",
    "BLINK_CHANNELS",
    "vertex_sequence",
    "region_vertices",
    "landmark_distance",
    "bilabial_closure_rate",
    "open_vowel_opening",
    "jerk",
    "blink_count",
    "TakeDiversity",
    "take_diversity",
    "region_spread_mm",
    "PairedDifference",
    "paired_difference",
    "BROWS",
    "EmotionClassifier",
]

MOUTH = "mouth"  # the region name of M-LMD
MOUTH_REGIONS: tuple[str, ...] = ("lips", "inner_lips")
BROWS = "area_brows"  # the built-in face's vertex group of both brows (`region_spread_mm`)
# Lips count as closed below this gap. The built-in face's sealed lips measure 0.84 mm (the inner
# contours never quite meet). With the jaw real speakers make (`core.visemes`), a held /f/ (the
# lower lip tucked, the jaw shut) measures about 1.5 mm and /r/ 1.9 mm, which count as closed, as
# a speaker's lips look there; /w/ and /u/ about 2.7 mm, every other phone more.
CLOSED_GAP_MM = 2.0
# Monophthongs whose one viseme drops the jaw fully ("open", "open_spread"): /A A: V {/.
OPEN_VOWELS = frozenset(s for s, v in PHONE_VISEMES.items() if v in (("open",), ("open_spread",)))
BLINK_CHANNELS: tuple[str, str] = ("eyeBlinkLeft", "eyeBlinkRight")


class EvalError(FlowVQError):
    """Takes, phones or labels that cannot be evaluated together (shapes, lengths, names)."""
    code = "eval"


def _expression(face: FaceModel, exp: np.ndarray) -> np.ndarray:
    """``exp`` as float64 (T, D), checked against the face model."""
    exp = np.asarray(exp, dtype=np.float64)
    if exp.ndim != 2 or exp.shape[1] != face.n_expressions:
        raise EvalError(f"expected expression coefficients of shape (frames, {face.n_expressions}) "
                        f"for {face.id}, got {exp.shape}")
    return exp


def vertex_sequence(face: FaceModel, exp: np.ndarray) -> np.ndarray:
    """Expression-only meshes (no head pose), metres. Shapes: exp (T, D) -> (T, V, 3)."""
    return face.expression_mesh(_expression(face, exp))


def region_vertices(face: FaceModel, region: str | None) -> np.ndarray:
    """Vertex indices of a region: every vertex for None, `MOUTH_REGIONS` for ``"mouth"``, else the
    face model's own vertex group of that name. Shapes: -> (n,) sorted, unique."""
    if region is None:
        return np.arange(face.n_vertices)
    groups = MOUTH_REGIONS if region == MOUTH else (region,)
    missing = [g for g in groups if g not in face.regions]
    if missing:
        known = ", ".join(sorted({MOUTH, *face.regions}))
        raise EvalError(f"{face.id} has no vertex group {', '.join(missing)} for region {region!r}; known: {known}")
    return np.unique(np.concatenate([face.regions[g] for g in groups]))


def landmark_distance(face: FaceModel, pred_exp: np.ndarray, true_exp: np.ndarray, region: str | None) -> float:
    """Mean Euclidean vertex distance in millimetres over frames and the region's vertices
    (M-LMD: region ``"mouth"``; F-LMD: None). Shapes: pred_exp, true_exp (T, D) with equal T."""
    pred, true = _expression(face, pred_exp), _expression(face, true_exp)
    if len(pred) != len(true):
        raise EvalError(f"predicted and ground-truth takes differ in length: {len(pred)} vs {len(true)} frames")
    return 1000.0 * _mean_displacement(face, pred - true, region)


def _mean_displacement(face: FaceModel, delta: np.ndarray, region: str | None) -> float:
    """Mean length of the region's vertex displacements that the expression changes ``delta`` make
    (the basis alone: the neutral cancels), metres. Shapes: delta (T, D) -> float."""
    moves = np.einsum("td,dvk->tvk", delta, face.basis[:, region_vertices(face, region)])  # (T, n, 3)
    return float(np.linalg.norm(moves, axis=-1).mean())


def _centre_frames(phones: Sequence[tuple[str, float, float]], symbols: frozenset[str], fps: float,
                   frames: int) -> np.ndarray:
    """Centre frames of the phones in ``symbols`` that lie inside the take. Shapes: -> (n,) int."""
    centres = np.array([(start + end) / 2 for symbol, start, end in phones if symbol in symbols])
    index = frames_at(centres, fps)
    return index[(centres >= 0) & (index < frames)]


def _gaps_mm(face: FaceModel, exp: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Lip gap in millimetres at the given frames. Shapes: exp (T, D), frames (n,) -> (n,)."""
    meshes = vertex_sequence(face, exp[frames])  # (n, V, 3)
    return 1000.0 * np.array([lip_gap(face, mesh) for mesh in meshes])


def bilabial_closure_rate(face: FaceModel, exp: np.ndarray, phones: Sequence[tuple[str, float, float]],
                          fps: float, gap_mm: float = CLOSED_GAP_MM) -> float:
    """Fraction of /p b m/ phones whose centre frame has a lip gap below ``gap_mm``; NaN when the
    take has no bilabial (callers skip it). Shapes: exp (T, D)."""
    exp = _expression(face, exp)
    frames = _centre_frames(phones, BILABIALS, fps, len(exp))
    if frames.size == 0:
        return float("nan")
    return float((_gaps_mm(face, exp, frames) < gap_mm).mean())


def open_vowel_opening(face: FaceModel, exp: np.ndarray, phones: Sequence[tuple[str, float, float]],
                       fps: float) -> float:
    """Mean lip gap in millimetres at the centre frames of the open vowels (`OPEN_VOWELS`); NaN when
    the take has none. Shapes: exp (T, D)."""
    exp = _expression(face, exp)
    frames = _centre_frames(phones, OPEN_VOWELS, fps, len(exp))
    if frames.size == 0:
        return float("nan")
    return float(_gaps_mm(face, exp, frames).mean())


def jerk(face: FaceModel, exp: np.ndarray, fps: float, region: str | None = None) -> float:
    """Mean magnitude of the third time derivative of the region's vertex positions, m/s³
    (third finite difference × fps³). Shapes: exp (T, D) with T >= 4."""
    exp = _expression(face, exp)
    if len(exp) < 4:
        raise EvalError(f"jerk needs at least 4 frames, got {len(exp)}")
    return _mean_displacement(face, np.diff(exp, n=3, axis=0), region) * fps**3


def _columns(names: Sequence[str], channels: Sequence[str]) -> list[int]:
    """Indices of ``channels`` in ``names``; `EvalError` naming the ones missing."""
    missing = [c for c in channels if c not in names]
    if missing:
        raise EvalError(f"the takes have no channel {', '.join(missing)}")
    return [list(names).index(c) for c in channels]


def blink_count(exp: np.ndarray, names: Sequence[str], threshold: float = 0.5) -> int:
    """Number of times the mean of eyeBlinkLeft and eyeBlinkRight rises above ``threshold`` (a take
    that starts with closed eyes counts one). Shapes: exp (T, D)."""
    exp = np.asarray(exp)
    if exp.ndim != 2 or exp.shape[1] != len(names):
        raise EvalError(f"expected a take of shape (frames, {len(names)}), got {exp.shape}")
    closure = exp[:, _columns(names, BLINK_CHANNELS)].mean(axis=1)  # (T,)
    closed = np.concatenate([[False], closure > threshold])
    return int(np.count_nonzero(closed[1:] & ~closed[:-1]))


@dataclass(frozen=True)
class TakeDiversity:
    """Spread across K takes of the same input (population std across takes, then the mean over
    frames and channels). ``expression``: non-mouth, non-blink channels, coefficient units;
    ``brows``: the brow channels; ``blinks``: blink count per take and ``blink_std`` their std;
    ``pose_degrees``: the three head-rotation angles, degrees."""

    expression: float
    brows: float
    blinks: list[int]
    blink_std: float
    pose_degrees: float


def take_diversity(takes_exp: np.ndarray, takes_pose: np.ndarray, names: Sequence[str]) -> TakeDiversity:
    """How different K takes of one input are. Shapes: takes_exp (K, T, D), takes_pose (K, T, 6), K >= 2;
    ``names`` (D,) the channel names."""
    takes_exp, takes_pose = np.asarray(takes_exp, np.float64), np.asarray(takes_pose, np.float64)
    if takes_exp.ndim != 3 or takes_exp.shape[2] != len(names):
        raise EvalError(f"expected takes of shape (takes, frames, {len(names)}), got {takes_exp.shape}")
    if takes_pose.shape != (*takes_exp.shape[:2], 6):
        raise EvalError(f"expected poses of shape {(*takes_exp.shape[:2], 6)}, got {takes_pose.shape}")
    if len(takes_exp) < 2:
        raise EvalError(f"diversity needs at least 2 takes, got {len(takes_exp)}")
    spread = takes_exp.std(axis=0)  # (T, D)
    upper = [n for n in names if n not in MOUTH_CHANNELS and n not in BLINK_CHANNELS]
    brows = [n for n in names if n.startswith("brow")]
    blinks = [blink_count(take, names) for take in takes_exp]
    return TakeDiversity(
        expression=float(spread[:, _columns(names, upper)].mean()),
        brows=float(spread[:, _columns(names, brows)].mean()) if brows else float("nan"),
        blinks=blinks,
        blink_std=float(np.std(blinks)),
        pose_degrees=float(np.degrees(takes_pose[..., :3].std(axis=0)).mean()),
    )


def region_spread_mm(face: FaceModel, takes_exp: np.ndarray, region: str | None) -> float:
    """How far apart K takes of one input look in a region: the mean distance, millimetres, of each
    take's region vertices from the takes' mean positions, over frames, takes and vertices.
    Shapes: takes_exp (K, T, D), K >= 2."""
    takes_exp = np.asarray(takes_exp, np.float64)
    if takes_exp.ndim != 3 or len(takes_exp) < 2:
        raise EvalError(f"a spread needs at least 2 takes of shape (takes, frames, D), got {takes_exp.shape}")
    offsets = takes_exp - takes_exp.mean(axis=0)  # the basis is linear: vertex offsets follow
    return 1000.0 * _mean_displacement(face, offsets.reshape(-1, takes_exp.shape[2]), region)


@dataclass(frozen=True)
class PairedDifference:
    """`paired_difference`'s result: the mean of a − b, its bootstrap 95% interval (low, high), the
    share of sequences with a < b, and the number of sequences."""

    mean: float
    ci95: tuple[float, float]
    lower_share: float
    sequences: int


def paired_difference(a: Sequence[float], b: Sequence[float], resamples: int = 2000,
                      seed: int = 0) -> PairedDifference:
    """Compare two systems' per-sequence values of one metric, paired by sequence: the mean of
    a − b with a percentile bootstrap 95% interval (``resamples`` resamplings of the sequences,
    seeded). Shapes: a (N,), b (N,), N >= 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise EvalError(f"a paired difference needs two equal lists of at least 2 values, got {a.shape} and {b.shape}")
    diff = a - b
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
    return PairedDifference(float(diff.mean()), (float(low), float(high)), float(np.mean(diff < 0)), len(diff))


class EmotionClassifier:
    """Recognises the emotion class of an expression sequence (the emotion-accuracy metric).

    Features: per channel, the mean, std and `PERCENTILE`th percentile over frames, after dropping
    the first ``onset_s`` seconds (the style's build-up) when at least as many frames remain; put on
    a log scale, log(1 + s / `FLOOR`), so that whether a channel is active at all weighs as much as
    how strongly (talk differs from neutral only by a brow raise of a few hundredths, and on a
    linear scale the classifier confused the two); then standardised with the training set's mean
    and std. Model: multinomial logistic regression with an L2 penalty `L2` on the weights, fitted
    in float64 by scipy's L-BFGS from zero weights; the penalty makes the loss strictly convex, so
    the fit is unique and deterministic. Labels must be `core.emotions.EMOTIONS` names.

    Give it sequences minus the source face's resting expression β₀ (``exp - beta0``), in training
    and when applied: β₀ draws faint brow raises of its own, and with it left in, neutral and talk
    were confused (93% held-out accuracy on synthetic-corpus-like takes against 100% without).
    """

    PERCENTILE = 90.0
    FLOOR = 0.01
    L2 = 1e-3

    def __init__(self, fps: float, onset_s: float = 0.5) -> None:
        self.fps, self.onset_s = float(fps), float(onset_s)
        self.classes: tuple[str, ...] = ()
        self.mean, self.scale = np.zeros(0), np.zeros(0)  # (F,) feature standardisation
        self.weight, self.bias = np.zeros((0, 0)), np.zeros(0)  # (C, F), (C,)

    def features(self, exps: Sequence[np.ndarray]) -> np.ndarray:
        """Per-sequence statistics on the log scale, before standardising (negative coefficients
        count as 0). Shapes: exps N × (T_i, D) -> (N, 3 D)."""
        onset = int(round(self.onset_s * self.fps))
        rows = []
        for exp in exps:
            exp = np.asarray(exp, dtype=np.float64)
            if exp.ndim != 2 or len(exp) == 0:
                raise EvalError(f"expected an expression sequence of shape (frames, channels), got {exp.shape}")
            settled = exp[onset:] if len(exp) >= 2 * onset else exp
            rows.append(np.concatenate([settled.mean(0), settled.std(0),
                                        np.percentile(settled, self.PERCENTILE, axis=0)]))
        if len({len(r) for r in rows}) > 1:
            raise EvalError("every sequence must have the same number of expression channels")
        return np.log1p(np.maximum(np.stack(rows), 0.0) / self.FLOOR)

    def fit(self, exps: Sequence[np.ndarray], labels: Sequence[str]) -> "EmotionClassifier":
        """Train on ground-truth sequences with emotion labels (from `core.emotions.EMOTIONS`)."""
        if len(exps) != len(labels):
            raise EvalError(f"{len(exps)} sequences but {len(labels)} labels")
        self.classes = tuple(sorted(set(labels), key=emotion_index))
        if len(self.classes) < 2:
            raise EvalError(f"the classifier needs at least two emotion classes, got {list(self.classes)}")
        raw = self.features(exps)  # (N, F)
        self.mean, std = raw.mean(0), raw.std(0)
        self.scale = np.where(std > 1e-8, std, 1.0)  # constant features stay 0 after standardising
        x = (raw - self.mean) / self.scale  # (N, F)
        target = np.eye(len(self.classes))[[self.classes.index(label) for label in labels]]  # (N, C) one-hot
        shape = (len(self.classes), x.shape[1] + 1)  # weight (C, F) and bias (C,) as one (C, F + 1)
        x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (N, F + 1)

        def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
            """Mean cross-entropy + L2 on the weights (not the bias), and its gradient."""
            params = flat.reshape(shape)
            logits = x1 @ params.T  # (N, C)
            log_p = logits - logsumexp(logits, axis=1, keepdims=True)
            penalty = params.copy()
            penalty[:, -1] = 0.0
            value = -(target * log_p).sum() / len(x) + 0.5 * self.L2 * (penalty**2).sum()
            grad = (np.exp(log_p) - target).T @ x1 / len(x) + self.L2 * penalty
            return value, grad.ravel()

        result = minimize(loss, np.zeros(shape).ravel(), jac=True, method="L-BFGS-B",
                          options={"maxiter": 1000, "gtol": 1e-9})
        params = result.x.reshape(shape)
        self.weight, self.bias = params[:, :-1], params[:, -1]
        return self

    def predict(self, exps: Sequence[np.ndarray]) -> list[str]:
        """The most probable emotion of each sequence. Shapes: exps N × (T_i, D) -> N labels."""
        if not self.classes:
            raise EvalError("the emotion classifier is not trained: call fit or from_state first")
        raw = self.features(exps)  # (N, F)
        if raw.shape[1] != self.mean.size:  # three statistics per channel
            raise EvalError(f"the classifier was trained on {self.mean.size // 3} expression channels, "
                            f"got sequences with {raw.shape[1] // 3}")
        scores = ((raw - self.mean) / self.scale) @ self.weight.T + self.bias  # (N, C)
        return [self.classes[i] for i in scores.argmax(axis=1)]

    def accuracy(self, exps: Sequence[np.ndarray], labels: Sequence[str]) -> float:
        """Fraction of sequences whose predicted emotion is their label."""
        if len(exps) != len(labels) or not labels:
            raise EvalError(f"accuracy needs one label per sequence and at least one: {len(exps)} vs {len(labels)}")
        return float(np.mean([p == t for p, t in zip(self.predict(exps), labels)]))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The trained classifier as plain numpy arrays (``np.savez`` writes them as they are)."""
        return {"classes": np.array(self.classes), "fps": np.array(self.fps), "onset_s": np.array(self.onset_s),
                "mean": self.mean, "scale": self.scale, "weight": self.weight, "bias": self.bias}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "EmotionClassifier":
        """A classifier from `state_dict`'s arrays; `EvalError` if any is missing."""
        missing = {"classes", "fps", "onset_s", "mean", "scale", "weight", "bias"} - set(state)
        if missing:
            raise EvalError(f"emotion-classifier state lacks {', '.join(sorted(missing))}")
        model = cls(float(state["fps"]), float(state["onset_s"]))
        model.classes = tuple(str(c) for c in state["classes"])
        model.mean, model.scale = np.asarray(state["mean"], np.float64), np.asarray(state["scale"], np.float64)
        model.weight, model.bias = np.asarray(state["weight"], np.float64), np.asarray(state["bias"], np.float64)
        return model
