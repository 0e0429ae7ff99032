"""A coefficient take (one generated performance) and its wire and file formats (design section 6).

A take holds per-frame expression coefficients ``exp (T, D)`` on a face model's named basis and a
head pose ``pose (T, 6)`` = (pitch, yaw, roll) radians then (tx, ty, tz) in model units
(`core.face.pose`). D always comes from the take's ``names`` (its face model); it is never assumed.

Its JSON object is exactly::

    {"take", "seed", "emotion", "fps", "frames", "names", "exp", "pose", "face_model"}

with ``exp`` and ``pose`` as T rows of floats rounded to `DECIMALS` places. A takes file is
``{"version": 1, "takes": [...]}``. A BFM take (D = `BFM_EXP_DIM`) exports to SadTalker's layout.
"""

import json
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import MAX_FPS
from core.emotions import EMOTIONS, REFERENCE
from core.errors import FlowVQError
from core.fileio import write_atomic
from core.face.bfm import BFM_EXP_DIM, join_sadtalker, write_sadtalker

__all__ = [
    "Take",
    "TakeError",
    "POSE_COLUMNS",
    "POSE_DIM",
    "TAKE_KEYS",
    "FILE_VERSION",
    "MAX_FPS",
    "DECIMALS",
    "validate",
    "resample",
    "save_takes",
    "load_takes",
    "to_sadtalker",
    "save_sadtalker_mat",
]

POSE_COLUMNS: tuple[str, ...] = ("pitch", "yaw", "roll", "tx", "ty", "tz")
POSE_DIM = len(POSE_COLUMNS)  # the pose's width everywhere: takes, datasets, models
TAKE_KEYS: tuple[str, ...] = (
    "take", "seed", "emotion", "fps", "frames", "names", "exp", "pose", "face_model",
)
FILE_VERSION = 1
DECIMALS = 6


class TakeError(FlowVQError):
    """A take, take object or takes file that is malformed or inconsistent."""
    code = "invalid_take"


@dataclass
class Take:
    """One generated performance on a face model.

    Shapes: exp (T, D) float32, one column per entry of ``names``; pose (T, 6) float32 in the order
    `POSE_COLUMNS`. ``emotion`` is one of `core.emotions.EMOTIONS` or `core.emotions.REFERENCE`;
    ``face_model`` is a face-model id such as ``builtin-arkit52@1``.
    """

    take: int
    seed: int
    emotion: str
    fps: float
    names: tuple[str, ...]
    exp: np.ndarray
    pose: np.ndarray
    face_model: str

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.exp = np.asarray(self.exp, dtype=np.float32)
        self.pose = np.asarray(self.pose, dtype=np.float32)

    @property
    def frames(self) -> int:
        """T, the number of frames."""
        return int(self.exp.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds, T / fps."""
        return self.frames / self.fps

    def validate(self, names: Sequence[str] | None = None) -> None:
        """See the module function `validate`."""
        validate(self, names)

    def to_dict(self) -> dict[str, Any]:
        """The take's JSON object (design section 6); validated first: the wire never holds NaN."""
        validate(self)
        return {
            "take": int(self.take),
            "seed": int(self.seed),
            "emotion": self.emotion,
            "fps": float(self.fps),
            "frames": self.frames,
            "names": list(self.names),
            "exp": _rounded_rows(self.exp),
            "pose": _rounded_rows(self.pose),
            "face_model": self.face_model,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> "Take":
        """Parse and validate a take's JSON object; `TakeError` names the key that is wrong."""
        if not isinstance(obj, dict):
            raise TakeError(f"a take must be a JSON object, got {type(obj).__name__}")
        exp = _matrix(obj, "exp")
        frames = _integer(obj, "frames")
        if frames != exp.shape[0]:
            raise TakeError(f"take key 'frames' is {frames} but 'exp' has {exp.shape[0]} rows")
        take = cls(
            take=_integer(obj, "take"),
            seed=_integer(obj, "seed"),
            emotion=_string(obj, "emotion"),
            fps=_number(obj, "fps"),
            names=_names(obj),
            exp=exp,
            pose=_matrix(obj, "pose"),
            face_model=_string(obj, "face_model"),
        )
        validate(take)
        return take


def validate(take: Take, names: Sequence[str] | None = None) -> None:
    """Raise `TakeError` unless the take is consistent and finite.

    Checks: fps in (0, `MAX_FPS`]; a known emotion; exp (T, len(take.names)) and pose (T, 6) with
    T >= 1; unique names; no NaN or inf. With ``names`` (a face model's), every take name must be
    one of them.
    """
    _check_fps(take.fps, f"take {take.take}")
    _check_emotion(take)
    _check_shapes(take)
    _check_names(take, names)
    _check_finite(take, take.exp, "exp", take.names)
    _check_finite(take, take.pose, "pose", POSE_COLUMNS)


def resample(take: Take, fps: float) -> Take:
    """The take linearly interpolated in time to ``fps``; the original is unchanged.

    T' = max(1, round(T * fps / take.fps)); output frame t' samples source time t' / fps, clamped to
    the last source frame. Shapes: exp (T, D) -> (T', D), pose (T, 6) -> (T', 6).
    """
    validate(take)
    _check_fps(fps, "resample")
    n_out = max(1, round(take.frames * fps / take.fps))
    positions = np.minimum(np.arange(n_out) * (take.fps / fps), take.frames - 1)
    return replace(
        take,
        fps=float(fps),
        exp=_interpolate_rows(take.exp, positions),
        pose=_interpolate_rows(take.pose, positions),
    )


def save_takes(path: str | Path, takes: Sequence[Take]) -> None:
    """Write ``{"version": 1, "takes": [...]}`` atomically (a temporary file, then `os.replace`)."""
    text = json.dumps(
        {"version": FILE_VERSION, "takes": [take.to_dict() for take in takes]},
        separators=(",", ":"),
        allow_nan=False,
    )
    try:
        write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    except OSError as exc:
        raise TakeError(f"cannot write takes file {path}: {exc}") from exc


def load_takes(path: str | Path) -> list[Take]:
    """Read a takes file, a bare JSON list of takes, or a single take object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TakeError(f"takes file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TakeError(f"cannot read takes file {path}: {exc}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TakeError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    takes = []
    for index, item in enumerate(_take_objects(obj, path)):
        try:
            takes.append(Take.from_dict(item))
        except TakeError as exc:
            raise TakeError(f"{path}, take #{index}: {exc}") from exc
    return takes


def to_sadtalker(take: Take) -> np.ndarray:
    """SadTalker's coefficient layout: exp, then 3 angles, then 3 translations, as float32.

    Only a BFM take (D = `BFM_EXP_DIM` expression PCA coefficients) fits; any other D raises
    `TakeError`. Shapes: exp (T, D), pose (T, 6) -> (T, D + 6).
    """
    _require_bfm_take(take)
    return join_sadtalker(take.exp, take.pose)


def save_sadtalker_mat(path: str | Path, take: Take) -> None:
    """Write the take as SadTalker's audio2coeff does: a ``.mat`` with ``coeff_3dmm`` (T, 70)."""
    _require_bfm_take(take)
    write_sadtalker(path, take.exp, take.pose)


def _rounded_rows(values: np.ndarray) -> list[list[float]]:
    """Rows of floats rounded to `DECIMALS` places. Shapes: (T, W) -> T lists of W floats."""
    return np.round(values.astype(np.float64), DECIMALS).tolist()


def _field(obj: dict[str, Any], key: str, kinds: tuple[type, ...], expected: str) -> Any:
    """``obj[key]`` if present and one of ``kinds`` (never bool); else `TakeError` naming it."""
    if key not in obj:
        raise TakeError(
            f"take object is missing key {key!r}; a take has keys: {', '.join(TAKE_KEYS)}"
        )
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TakeError(f"take key {key!r} must be {expected}, got {type(value).__name__}")
    return value


def _integer(obj: dict[str, Any], key: str) -> int:
    """A JSON integer field."""
    return _field(obj, key, (int,), "an integer")


def _string(obj: dict[str, Any], key: str) -> str:
    """A JSON string field."""
    return _field(obj, key, (str,), "a string")


def _number(obj: dict[str, Any], key: str) -> float:
    """A JSON number field as a float."""
    value = _field(obj, key, (int, float), "a number")
    try:
        return float(value)
    except OverflowError as exc:
        raise TakeError(f"take key {key!r} is too large: {value}") from exc


def _names(obj: dict[str, Any]) -> tuple[str, ...]:
    """The ``names`` field: a list of strings."""
    names = _field(obj, "names", (list,), "a list of coefficient names")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise TakeError(f"take key 'names' item {index} must be a string, got {name!r}")
    return tuple(names)


def _matrix(obj: dict[str, Any], key: str) -> np.ndarray:
    """A JSON list of equal-length rows of numbers as float32. Shapes: -> (T, W); [] -> (0, 0)."""
    rows = _field(obj, key, (list,), "a list of rows, one list of numbers per frame")
    width = len(rows[0]) if rows and isinstance(rows[0], list) else 0
    for t, row in enumerate(rows):
        if not isinstance(row, list):
            raise TakeError(
                f"take key {key!r} row {t} must be a list of numbers, got {type(row).__name__}"
            )
        if len(row) != width:
            raise TakeError(
                f"take key {key!r} is ragged: row {t} has {len(row)} values, row 0 has {width}"
            )
        bad = next((d for d, v in enumerate(row) if not _is_number(v)), None)
        if bad is not None:
            raise TakeError(
                f"take key {key!r} row {t} column {bad} must be a number, got {row[bad]!r}"
            )
    try:
        return np.array(rows, dtype=np.float32).reshape(len(rows), width)
    except OverflowError as exc:
        raise TakeError(f"take key {key!r} holds a number too large: {exc}") from exc


def _is_number(value: Any) -> bool:
    """True for a JSON number (int or float), false for bool and everything else."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fps(fps: float, where: str) -> None:
    """`TakeError` unless fps is a real number in (0, `MAX_FPS`]."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps <= MAX_FPS:
        raise TakeError(f"{where}: fps is {fps!r}, expected a frame rate in (0, {MAX_FPS:g}]")


def _check_emotion(take: Take) -> None:
    """`TakeError` unless the emotion is a class label or `REFERENCE`."""
    if take.emotion not in EMOTIONS and take.emotion != REFERENCE:
        raise TakeError(
            f"take {take.take}: unknown emotion {take.emotion!r}; expected one of "
            f"{', '.join(EMOTIONS)} or {REFERENCE!r}"
        )


def _check_shapes(take: Take) -> None:
    """`TakeError` unless exp is (T, len(names)) and pose (T, 6) with T >= 1."""
    where = f"take {take.take}"
    if take.exp.ndim != 2 or take.pose.ndim != 2:
        raise TakeError(
            f"{where}: exp and pose must be (frames, columns) tables, got shapes "
            f"{take.exp.shape} and {take.pose.shape}"
        )
    if take.frames == 0:
        raise TakeError(f"{where} has zero frames; a take needs at least one frame")
    if take.pose.shape[0] != take.frames:
        raise TakeError(
            f"{where}: exp has {take.frames} frames but pose has {take.pose.shape[0]}; "
            "both need one row per frame"
        )
    if take.exp.shape[1] != len(take.names):
        raise TakeError(
            f"{where}: exp has {take.exp.shape[1]} columns but names lists {len(take.names)} "
            "coefficients; exp needs one column per name"
        )
    if take.pose.shape[1] != POSE_DIM:
        raise TakeError(
            f"{where}: pose has {take.pose.shape[1]} columns, expected {len(POSE_COLUMNS)} "
            f"({', '.join(POSE_COLUMNS)})"
        )


def _check_names(take: Take, model_names: Sequence[str] | None) -> None:
    """`TakeError` for repeated names, or names missing from ``model_names`` when given."""
    repeated = sorted(name for name, count in Counter(take.names).items() if count > 1)
    if repeated:
        raise TakeError(
            f"take {take.take}: coefficient names repeat: {', '.join(repeated)}; "
            "each must be unique"
        )
    if model_names is not None:
        known = set(model_names)
        unknown = [name for name in take.names if name not in known]
        if unknown:
            raise TakeError(
                f"take {take.take}: names not in the face model ({take.face_model}): "
                f"{', '.join(unknown)}"
            )


def _check_finite(take: Take, values: np.ndarray, which: str, columns: Sequence[str]) -> None:
    """`TakeError` at the first NaN/inf in frame order. Shapes: values (T, len(columns))."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        frame, column = (int(i) for i in bad[0])
        raise TakeError(
            f"take {take.take}: {which} has a non-finite value ({values[frame, column]}) at frame "
            f"{frame}, column {column} ({columns[column]!r}); every value must be a finite number"
        )


def _interpolate_rows(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows linearly interpolated at fractional row positions. Shapes: (T, W), (T',) -> (T', W)."""
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, len(values) - 1)
    weight = (positions - below)[:, None]
    source = values.astype(np.float64)
    return ((1.0 - weight) * source[below] + weight * source[above]).astype(np.float32)


def _take_objects(obj: Any, path: Path) -> list[Any]:
    """The take objects in a takes file: ``{"version", "takes"}``, a list, or one take object."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and "takes" in obj:
        version = obj.get("version", FILE_VERSION)
        if version != FILE_VERSION:
            raise TakeError(
                f"{path} is a version {version!r} takes file; this reads version {FILE_VERSION}"
            )
        if not isinstance(obj["takes"], list):
            raise TakeError(f"{path}: key 'takes' must be a list of take objects")
        return obj["takes"]
    if isinstance(obj, dict):
        return [obj]
    raise TakeError(
        f"{path} holds a JSON {type(obj).__name__}; expected a takes file object, a list of takes "
        "or one take object"
    )


def _require_bfm_take(take: Take) -> None:
    """`TakeError` unless the take is valid and has the BFM's expression width."""
    validate(take)
    if len(take.names) != BFM_EXP_DIM:
        raise TakeError(
            f"take {take.take} cannot be exported to SadTalker: the T x 70 layout holds "
            f"{BFM_EXP_DIM} BFM expression PCA coefficients (then 3 angles and 3 translations), "
            f"and this take's face model ({take.face_model}) has D={len(take.names)} named "
            "coefficients; generate the take with the BFM face model to export it"
        )
