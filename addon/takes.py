"""Takes (the wire format of docs/api.md) as Actions on a target, and back.

A take's expression coefficients become the shape-key curves ``key_blocks["<key>"].value`` of the
target's Key, its pose the object's ``rotation_euler``/``location`` curves (Euler mode ``'XZY'``,
``(pitch, -roll, yaw)`` and ``(tx, -tz, ty)``: the mapping of ``core/face/pose.py``). On Blender
4.4+ one Action holds both, in two slots; on 4.2/4.3 the pose goes to a second Action.
"""

import json
from dataclasses import dataclass

import bpy
import numpy as np

from . import keys
from .reduce import closure_frames, reduce_keys

__all__ = ["TakeActions", "action_name", "resample", "pose_channels", "pose_rows", "take_meta", "write_take",
           "sample_take", "reference_from_pose", "is_edited", "TAKE_PROP", "POSE_TOLERANCE_SCALE"]

TAKE_PROP = "flowvq_take"
# The take fields an Action (and a take item) keeps to name and describe the take.
META_FIELDS = ("take", "seed", "emotion", "face_model")
# Pose tolerance per unit of expression tolerance: radians for the rotation, metres for the location.
POSE_TOLERANCE_SCALE = {"rotation_euler": 0.1, "location": 0.01}


@dataclass(frozen=True)
class TakeActions:
    """The Actions of one take (the same Action twice on Blender 4.4+), whether an edited Action of
    the same name was kept (so the new one got another name), how many scene frames the take
    covers, and its `take_meta`."""

    key_action: bpy.types.Action
    pose_action: bpy.types.Action | None
    kept_edited: bool
    frame_count: int
    meta: str


def action_name(take: dict) -> str:
    """``FlowVQ <emotion> s<seed> t<take>``."""
    return f"FlowVQ {take['emotion']} s{take['seed']} t{take['take']}"


def take_meta(take: dict) -> str:
    """The JSON of the take's `META_FIELDS` (stored on its Actions and its take item)."""
    return json.dumps({k: take[k] for k in META_FIELDS})


def resample(rows: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linearly resample per-frame rows to another frame rate over the same duration.

    Shapes: rows (T, C) -> (T', C), T' = floor((T - 1) * dst_fps / src_fps) + 1.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if abs(src_fps - dst_fps) < 1e-9:
        return rows
    count = int(np.floor((len(rows) - 1) * dst_fps / src_fps + 1e-9)) + 1
    src_t = np.arange(len(rows)) / src_fps
    dst_t = np.arange(count) / dst_fps
    return np.stack([np.interp(dst_t, src_t, column) for column in rows.T], axis=1)


def key_path(key_name: str) -> str:
    """The data path of a shape key's value."""
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def is_edited(action: bpy.types.Action) -> bool:
    """True when the Action is not exactly as the add-on wrote it (or was never written by it)."""
    return action.get(keys.FINGERPRINT_PROP) != keys.fingerprint(action)


def new_action(name: str) -> tuple[bpy.types.Action, bool]:
    """A fresh Action named ``name``; an unedited one of that name is replaced, an edited one is
    kept (the new Action then gets Blender's ``.001`` suffix). Returns (action, kept_edited)."""
    old = bpy.data.actions.get(name)
    kept = old is not None and is_edited(old)
    if old is not None and not kept:
        bpy.data.actions.remove(old)
    action = bpy.data.actions.new(name)
    action.use_fake_user = True
    return action, kept


def _write_reduced(action: bpy.types.Action, owner: bpy.types.ID, path: str, index: int,
                   frames: np.ndarray, values: np.ndarray, tolerance: float, keep: np.ndarray) -> None:
    """One curve with the keys `reduce_keys` keeps."""
    kept = reduce_keys(values, tolerance, keep)
    keys.write_curve(action, owner, path, index, frames[kept], values[kept])


def pose_channels(pose: np.ndarray) -> dict[str, np.ndarray]:
    """Pose rows as Blender object channels. Shapes: pose (T, 6) -> each (T, 3)."""
    pitch, yaw, roll, tx, ty, tz = np.asarray(pose, dtype=np.float64).T
    return {"rotation_euler": np.stack([pitch, -roll, yaw], axis=1),
            "location": np.stack([tx, -tz, ty], axis=1)}


def pose_rows(rotation_euler: np.ndarray, location: np.ndarray) -> np.ndarray:
    """The inverse of `pose_channels`. Shapes: each (T, 3) -> pose (T, 6)."""
    (rx, ry, rz), (lx, ly, lz) = np.asarray(rotation_euler).T, np.asarray(location).T
    return np.stack([rx, rz, -ry, lx, lz, -ly], axis=1)


def write_take(take: dict, target: bpy.types.Object, mapping: dict[str, str], frame_start: int,
               scene_fps: float, tolerance: float, with_pose: bool) -> TakeActions:
    """Key one take on ``target`` (not assigned yet): shape keys through ``mapping`` (model name ->
    target key), the pose on the object when ``with_pose``; resampled to ``scene_fps`` from
    ``frame_start``, reduced within ``tolerance`` keeping the lip closures."""
    exp = resample(np.asarray(take["exp"], dtype=np.float64), float(take["fps"]), scene_fps)
    frames = frame_start + np.arange(len(exp), dtype=np.float64)
    closures = closure_frames(exp, list(take["names"]))
    name = action_name(take)
    key_action, kept = new_action(name)
    shape_keys = target.data.shape_keys
    for d, model_name in enumerate(take["names"]):
        if model_name in mapping:
            _write_reduced(key_action, shape_keys, key_path(mapping[model_name]), 0, frames, exp[:, d],
                           tolerance, closures)
    pose_action = None
    if with_pose:
        pose = resample(np.asarray(take["pose"], dtype=np.float64), float(take["fps"]), scene_fps)
        pose_action = key_action if keys.LAYERED else new_action(f"{name} pose")[0]
        for path, channel in pose_channels(pose).items():
            for index in range(3):
                _write_reduced(pose_action, target, path, index, frames, channel[:, index],
                               tolerance * POSE_TOLERANCE_SCALE[path], closures)
    meta = take_meta(take)
    for action in {key_action, pose_action} - {None}:
        action[TAKE_PROP] = meta
        action[keys.FINGERPRINT_PROP] = keys.fingerprint(action)
    return TakeActions(key_action, pose_action, kept, len(exp), meta)


def _evaluate(action: bpy.types.Action | None, owner: bpy.types.ID, path: str, index: int,
              frames: np.ndarray, rest: float) -> np.ndarray:
    """A curve's values at ``frames``; ``rest`` everywhere when the curve does not exist."""
    curve = keys.find_curve(action, owner, path, index) if action is not None else None
    if curve is None:
        return np.full(len(frames), rest)
    return np.array([curve.evaluate(float(f)) for f in frames])


def sample_take(target: bpy.types.Object, mapping: dict[str, str], names: list[str],
                key_action: bpy.types.Action, pose_action: bpy.types.Action | None,
                frame_start: int, frame_count: int, fps: float, meta: dict) -> dict:
    """The take (wire format) that the curves, as they are now, describe: one row per frame.

    Unmapped names read 0; missing pose curves read the object's current transform.
    """
    frames = frame_start + np.arange(frame_count, dtype=np.float64)
    shape_keys = target.data.shape_keys
    exp = np.zeros((frame_count, len(names)))
    for d, model_name in enumerate(names):
        if model_name in mapping:
            exp[:, d] = _evaluate(key_action, shape_keys, key_path(mapping[model_name]), 0, frames,
                                  shape_keys.key_blocks[mapping[model_name]].value)
    channels = {path: np.stack([_evaluate(pose_action, target, path, i, frames, getattr(target, path)[i])
                                for i in range(3)], axis=1) for path in ("rotation_euler", "location")}
    pose = pose_rows(**channels)
    return {**meta, "fps": fps, "frames": frame_count, "names": list(names),
            "exp": exp.tolist(), "pose": pose.tolist()}


def reference_from_pose(target: bpy.types.Object, mapping: dict[str, str], names: list[str]) -> list[float]:
    """The target's shape-key values at the current frame as model coefficients (0 when unmapped)."""
    blocks = target.data.shape_keys.key_blocks
    return [float(blocks[mapping[n]].value) if n in mapping else 0.0 for n in names]
