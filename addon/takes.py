"""Takes (the wire format of docs/api.md) as Actions on a character, and back.

A take's expression coefficients become the shape-key curves ``key_blocks["<key>"].value`` of every
mesh of the character, through the character's `mapping.Mapping` (weighted sums of coefficients,
or the take's mouth projected onto a viseme rig's visemes); its head pose becomes rotation (and
optionally location) curves on the head pose bone or the object's delta transforms, relative to
their rest, in their own rotation mode (`posemath`, `character.PoseOwner`); its eyeLook curves turn
the character's eye bones the same way, the ways no shape key turns the eyeballs
(`character.eye_owners`, `posemath.eye_pose_rows`). On Blender 4.4+ one
Action holds every curve of the take, one slot per animated ID; on 4.2/4.3 each ID gets its own
Action (the first mesh's carries the take's name, the others ``<take> <object>``, the pose
``<take> pose``).

Regenerating a take of the same name on the same character rewrites its Actions in place when
nobody edited them, so whatever points at them (the take list, NLA strips, assignments) stays
valid; when one was edited, or the Actions belong to another character, the new take gets a free
name instead (`free_take_name`).
"""

import json
from dataclasses import dataclass

import bpy
import numpy as np

from . import keys, mapping as mapping_module, posemath, visemes
from .character import EyeBone, PoseOwner
from .client import WIRE_DECIMALS
from .reduce import closure_frames, reduce_keys
from .timing import resample

__all__ = ["TakeTarget", "WrittenTake", "action_name", "take_meta", "free_take_name", "write_take", "sample_take",
           "reference_values", "is_edited", "key_path", "TAKE_PROP", "CHARACTER_PROP", "POSE_TOLERANCE_SCALE"]

TAKE_PROP = "flowvq_take"
# The head mesh a take's Actions were keyed for: a take of another character never reuses them.
CHARACTER_PROP = "flowvq_character"
# The take fields an Action (and a take item) keeps to name and describe the take.
META_FIELDS = ("take", "seed", "emotion", "face_model")
# Pose tolerance per unit of expression tolerance: radians (or quaternion units) for the rotation,
# metres for the location.
POSE_TOLERANCE_SCALE = {"rotation": 0.1, "location": 0.01}
# The rest values (no rotation) of the rotation modes whose rest is not all zeros.
_REST_ROTATION = {"QUATERNION": (1.0, 0.0, 0.0, 0.0), "AXIS_ANGLE": (0.0, 0.0, 1.0, 0.0)}


@dataclass(frozen=True)
class TakeTarget:
    """Where takes go: the character's ``meshes`` (the head mesh first), the ``mapping`` of their
    shape keys, the head pose's `PoseOwner` (None: no pose), whether the pose moves the head as well
    as rotating it, the face model's mouth operator for viseme keys (`visemes.mouth_operator`;
    None when the mapping has none), and the eye bones to turn, on the head pose's armature
    (`character.eye_owners`). Shapes: viseme_operator (3M, D)."""

    meshes: tuple[bpy.types.Object, ...]
    mapping: mapping_module.Mapping
    owner: PoseOwner | None
    translate: bool
    viseme_operator: np.ndarray | None = None
    eyes: tuple[EyeBone, ...] = ()


@dataclass(frozen=True)
class WrittenTake:
    """The Actions of one take, each with the object it animates and what (``KEYS``: the object's
    shape keys, ``POSE``: the object itself); on Blender 4.4+ they are all one Action. How many
    scene frames the take covers, and its `take_meta`."""

    bindings: tuple[tuple[bpy.types.Object, str, bpy.types.Action], ...]
    frame_count: int
    meta: str


def action_name(take: dict) -> str:
    """``FlowVQ <emotion> s<seed> t<take>``: a take's base name."""
    return f"FlowVQ {take['emotion']} s{take['seed']} t{take['take']}"


def take_meta(take: dict) -> str:
    """The JSON of the take's `META_FIELDS` (stored on its Actions and its take item)."""
    return json.dumps({k: take[k] for k in META_FIELDS})


def key_path(key_name: str) -> str:
    """The data path of a shape key's value."""
    return f'key_blocks["{bpy.utils.escape_identifier(key_name)}"].value'


def is_edited(action: bpy.types.Action) -> bool:
    """True when the Action is not exactly as the add-on wrote it (or was never written by it)."""
    return action.get(keys.FINGERPRINT_PROP) != keys.fingerprint(action)


def _owners(target: TakeTarget) -> list[tuple[bpy.types.Object, str]]:
    """(object, KEYS/POSE) for every ID a take on ``target`` animates, the head mesh first."""
    owners = [(mesh, "KEYS") for mesh in target.meshes]
    if target.owner is not None or target.eyes:
        owners.append((target.owner.obj if target.owner is not None else target.eyes[0].owner.obj, "POSE"))
    return owners


def _action_names(name: str, owners: list[tuple[bpy.types.Object, str]]) -> list[str]:
    """The Action name of each owner of a take called ``name`` (all the same on Blender 4.4+)."""
    if keys.LAYERED:
        return [name] * len(owners)
    return [name if index == 0 else f"{name} pose" if what == "POSE" else f"{name} {obj.name}"
            for index, (obj, what) in enumerate(owners)]


def _reusable(action: bpy.types.Action | None, head: bpy.types.Object) -> bool:
    """Whether a take may rewrite ``action``: none exists, or it is an unedited take of this head."""
    return action is None or (not is_edited(action) and action.get(CHARACTER_PROP) == head.name)


def free_take_name(base: str, target: TakeTarget) -> str:
    """``base``, or ``base.001``, ``base.002``...: the first name whose Actions are free or an
    unedited take of the same character, so regenerating never overwrites an artist's edit nor
    another character's take."""
    owners = _owners(target)
    for number in range(1000):
        name = base if number == 0 else f"{base}.{number:03d}"
        existing = [bpy.data.actions.get(n) for n in set(_action_names(name, owners))]
        if all(_reusable(action, target.meshes[0]) for action in existing):
            return name
    raise ValueError(f"a thousand edited takes are called '{base}': rename some of them")


def _claim_action(name: str) -> bpy.types.Action:
    """The Action ``name`` emptied of its curves (an unedited one of a previous run, so its users
    stay valid), or a new one; kept with a fake user."""
    action = bpy.data.actions.get(name)
    if action is None:
        action = bpy.data.actions.new(name)
    else:
        keys.clear_curves(action)
    action.use_fake_user = True
    return action


def _write_reduced(action: bpy.types.Action, owner: bpy.types.ID, path: str, index: int,
                   frames: np.ndarray, values: np.ndarray, tolerance: float, keep: np.ndarray) -> None:
    """One curve with the keys `reduce_keys` keeps."""
    kept = reduce_keys(values, tolerance, keep)
    keys.write_curve(action, owner, path, index, frames[kept], values[kept])


def _key_values(take_exp: np.ndarray, names: list[str], target: TakeTarget) -> dict[str, np.ndarray]:
    """Each driven shape key's values: the mapping's sums, visemes projected from the mouth less
    what those sums already show (`mapping.shown_by_keys`). Shapes: take_exp (T, D) -> each (T,)."""
    viseme_values = None
    if target.mapping.visemes:
        ids = sorted(set(target.mapping.visemes.values()))
        weights = visemes.project(take_exp, names, ids, target.viseme_operator, sparsity=visemes.TAKE_SPARSITY,
                                  shown=mapping_module.shown_by_keys(target.mapping))
        viseme_values = {vid: weights[:, index] for index, vid in enumerate(ids)}
    return mapping_module.evaluate(target.mapping, names, take_exp, viseme_values)


def _pose_curves(pose: np.ndarray, owner: PoseOwner, translate: bool) -> list[tuple[str, str, np.ndarray]]:
    """(data path, kind, values) of the pose curves: the rotation in the owner's mode, then the
    location when ``translate``. Shapes: pose (T, 6) -> values (T, 3 or 4)."""
    mode = owner.rotation_mode
    rotations = posemath.relative_rotations(pose, owner.frame)
    curves = [(owner.path(posemath.rotation_path(mode)), "rotation", posemath.to_rotation_values(rotations, mode))]
    if translate:
        curves.append((owner.path("location"), "location", posemath.local_translations(pose, owner.to_local)))
    return curves


def _turn_curves(take: dict, exp: np.ndarray, names: list[str], target: TakeTarget,
                 scene_fps: float) -> list[tuple[str, str, np.ndarray]]:
    """The curves of the take's POSE owner: the head pose's (`_pose_curves`), then each eye bone's
    rotation from the take's eyeLook curves. Shapes: exp (T, D) at ``scene_fps`` -> values (T, 3 or 4)."""
    curves = []
    if target.owner is not None:
        pose = resample(np.asarray(take["pose"], dtype=np.float64), float(take["fps"]), scene_fps)
        curves += _pose_curves(pose, target.owner, target.translate)
    for eye in target.eyes:
        curves += _pose_curves(posemath.eye_pose_rows(exp, names, eye.side, eye.turn, eye.held), eye.owner, False)
    return curves


def write_take(take: dict, name: str, target: TakeTarget, frame_start: int, scene_fps: float,
               tolerance: float) -> WrittenTake:
    """Key one take called ``name`` on the character (not assigned yet), resampled to
    ``scene_fps`` from ``frame_start`` and reduced within ``tolerance``, keeping the lip closures."""
    names = list(take["names"])
    exp = resample(np.asarray(take["exp"], dtype=np.float64), float(take["fps"]), scene_fps)
    frames = frame_start + np.arange(len(exp), dtype=np.float64)
    closures = closure_frames(exp, names)
    owners = _owners(target)
    actions = [_claim_action(n) for n in _action_names(name, owners)]
    values = _key_values(exp, names, target)
    for (obj, what), action in zip(owners, actions):
        if what == "KEYS":
            blocks = obj.data.shape_keys.key_blocks
            for key, curve in values.items():
                if key in blocks:
                    _write_reduced(action, obj.data.shape_keys, key_path(key), 0, frames, curve, tolerance, closures)
            continue
        for path, kind, channel in _turn_curves(take, exp, names, target, scene_fps):
            for index in range(channel.shape[1]):
                _write_reduced(action, obj, path, index, frames, channel[:, index],
                               tolerance * POSE_TOLERANCE_SCALE[kind], closures)
    meta = take_meta(take)
    for action in set(actions):
        action[TAKE_PROP] = meta
        action[CHARACTER_PROP] = target.meshes[0].name
        action[keys.FINGERPRINT_PROP] = keys.fingerprint(action)
    return WrittenTake(tuple((obj, what, action) for (obj, what), action in zip(owners, actions)), len(exp), meta)


def _evaluate(action: bpy.types.Action | None, owner: bpy.types.ID, path: str, index: int,
              frames: np.ndarray, rest: float) -> np.ndarray:
    """A curve's values at ``frames``; ``rest`` everywhere when the curve does not exist."""
    curve = keys.find_curve(action, owner, path, index) if action is not None else None
    if curve is None:
        return np.full(len(frames), rest)
    return np.array([curve.evaluate(float(f)) for f in frames])


def _sample_pose(owner: PoseOwner, action: bpy.types.Action | None, frames: np.ndarray) -> np.ndarray:
    """The pose rows the owner's curves describe at ``frames`` (missing curves read rest).
    Shapes: -> (N, 6)."""
    mode = owner.rotation_mode
    rest = _REST_ROTATION.get(mode, (0.0,) * posemath.value_count(mode))
    path = owner.path(posemath.rotation_path(mode))
    rotation = np.stack([_evaluate(action, owner.obj, path, i, frames, rest[i]) for i in range(len(rest))], axis=1)
    location = np.stack([_evaluate(action, owner.obj, owner.path("location"), i, frames, 0.0) for i in range(3)],
                        axis=1)
    return posemath.pose_rows(posemath.from_rotation_values(rotation, mode), location, owner.frame, owner.to_local)


def sample_take(head: bpy.types.Object, key_action: bpy.types.Action | None, owner: PoseOwner | None,
                pose_action: bpy.types.Action | None, names: list[str], direct: dict[str, str],
                frame_start: int, frame_count: int, fps: float, meta: dict,
                eyes: tuple[EyeBone, ...] = ()) -> dict:
    """The take (wire format) that the curves, as they are now, describe: one row per frame, its
    numbers rounded to `WIRE_DECIMALS` places as the wire carries them.

    ``direct`` maps a model name to the head's shape key that carries it alone (`mapping.direct_keys`);
    other names read 0. Without a pose owner the pose reads rest. The eye bones ``eyes`` (their
    curves in ``pose_action``) give their eye's eyeLook curves (`posemath.look_curves`) but those
    their shape keys show (`EyeBone.held`).
    """
    frames = frame_start + np.arange(frame_count, dtype=np.float64)
    shape_keys = head.data.shape_keys
    exp = np.zeros((frame_count, len(names)))
    for d, model_name in enumerate(names):
        if model_name in direct and direct[model_name] in shape_keys.key_blocks:
            key = direct[model_name]
            exp[:, d] = _evaluate(key_action, shape_keys, key_path(key), 0, frames, shape_keys.key_blocks[key].value)
    for eye in eyes:
        for name, curve in posemath.look_curves(_sample_pose(eye.owner, pose_action, frames), eye.side,
                                                eye.turn).items():
            if name in names and name not in eye.held:
                exp[:, names.index(name)] = curve
    pose = np.zeros((frame_count, 6)) if owner is None else _sample_pose(owner, pose_action, frames)
    return {**meta, "fps": fps, "frames": frame_count, "names": list(names),
            "exp": np.round(exp, WIRE_DECIMALS).tolist(), "pose": np.round(pose, WIRE_DECIMALS).tolist()}


def reference_values(head: bpy.types.Object, names: list[str], direct: dict[str, str]) -> list[float]:
    """The head's shape-key values at the current frame as model coefficients (0 when no key
    carries a name alone)."""
    blocks = head.data.shape_keys.key_blocks
    return [float(blocks[direct[n]].value) if n in direct and direct[n] in blocks else 0.0 for n in names]
