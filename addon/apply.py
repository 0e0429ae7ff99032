"""Finished jobs into the scene (main thread): takes keyed on the character, the take list, the
sound strip, the frame range and the preview plane; switching takes and Takes to NLA.

The take list never lies: every row has all its Actions (rows whose Actions are gone are pruned,
with NLA strips left playing nothing), names are unique (a regenerated take rewrites its unedited
Actions in place and keeps its row; an edited one is kept and the new take gets a free name), and
the scene's frame range is only ever shortened when the add-on set it (`timing.frame_range_for`).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import character, jobs, keys, preview, scene as scene_utils, takes, visemes
from .character import EyeBone, PoseOwner
from .face import FaceModel, build_head
from .mapping import Mapping, direct_keys, identity_mapping
from .timing import frame_range_for

__all__ = ["Snapshot", "apply_generate", "apply_render", "switch_take", "takes_to_nla", "prune_takes",
           "take_owner", "take_eyes", "binding_owner", "plays_own_animation", "HEAD_NAME"]

HEAD_NAME = "FlowVQ Head"
_KEY_PATH = re.compile(r'key_blocks\["(.*)"\]\.value')


@dataclass(frozen=True)
class Snapshot:
    """What Generate read from the scene when pressed; applied unchanged when the job ends.

    ``parts``: the names of the character's meshes to drive (the head mesh first); empty with
    ``create_head``. ``translate``: the panel's head-motion choice (``AUTO``, ``ROTATION``,
    ``ROTATION_TRANSLATION``). ``eye_bones``: turn the character's eye bones with the gaze, by
    ``eye_turn`` of the take's eye turn."""

    audio: Path
    add_audio_strip: bool
    frame_start: int
    fps: float
    create_head: bool
    parts: tuple[str, ...]
    mapping: Mapping | None
    tolerance: float
    with_pose: bool
    translate: str = "AUTO"
    head_bone: str = ""
    eye_bones: bool = True
    eye_turn: float = 1.0


def binding_owner(binding) -> bpy.types.ID:
    """The ID a take binding animates: the object's shape keys, or the object."""
    return binding.obj.data.shape_keys if binding.what == "KEYS" else binding.obj


def _pose_binding(item):
    """The take's POSE binding (its armature or head object), or None."""
    return next((b for b in item.bindings if b.what == "POSE"), None)


def take_owner(item) -> tuple[PoseOwner | None, bpy.types.Action | None]:
    """The take's head pose owner (as converted when it was keyed; None for a take without a head
    pose) and its POSE Action (None without one: no head pose and no eye bones)."""
    binding = _pose_binding(item)
    if binding is None:
        return None, None
    if not item.head_pose:
        return None, binding.action
    owner = PoseOwner(binding.obj, item.bone, np.reshape(item.pose_frame, (3, 3)),
                      np.reshape(item.pose_to_local, (3, 3)))
    return owner, binding.action


def take_eyes(item) -> tuple[EyeBone, ...]:
    """The eye bones the take turns (as converted when it was keyed), on its POSE binding's armature."""
    binding = _pose_binding(item)
    if binding is None or not item.eyes:
        return ()
    return tuple(EyeBone(side, PoseOwner(binding.obj, bone, np.reshape(frame, (3, 3)), np.eye(3)), turn,
                         frozenset(held)) for side, bone, frame, turn, held in json.loads(item.eyes))


def _alive(binding) -> bool:
    """Whether a take binding's object (with its shape keys, for KEYS) and Action still exist."""
    return (binding.obj is not None and binding.action is not None
            and (binding.what == "POSE" or binding.obj.data.shape_keys is not None))


def prune_takes(props) -> int:
    """Remove the take rows whose objects, shape keys or Actions are gone, and NLA strips playing
    nothing on the remaining takes' objects; returns how many rows went."""
    gone = [index for index, item in enumerate(props.take_items)
            if not item.bindings or not all(_alive(b) for b in item.bindings)]
    for index in reversed(gone):
        props.take_items.remove(index)
    for item in props.take_items:
        for binding in item.bindings:
            keys.remove_empty_strips(binding_owner(binding))
    props.active_take = min(props.active_take, max(len(props.take_items) - 1, 0))
    return len(gone)


def _keep_artist_action(owner: bpy.types.ID) -> None:
    """Give the Action now driving ``owner`` a fake user so reassigning never loses it."""
    action = keys.assigned_action(owner)
    if action is not None:
        action.use_fake_user = True


def plays_own_animation(binding) -> bool:
    """Whether a take's head-pose owner (the armature, or a head object) plays an Action that is
    no take's: the character's own animation (a body idle), which the take must not stop."""
    if binding.what != "POSE" or binding.obj is None:
        return False
    action = keys.assigned_action(binding.obj)
    return action is not None and takes.TAKE_PROP not in action


def _keyed_shape_keys(item) -> list[str]:
    """The names of the head's shape keys that the take keys (its curves on the head's Key)."""
    action = next(b.action for b in item.bindings if b.what == "KEYS" and b.obj == item.target)
    curves = keys.curves_for(action, item.target.data.shape_keys, create=False) or []
    names = (_KEY_PATH.fullmatch(curve.data_path) for curve in curves)
    return [bpy.utils.unescape_identifier(match.group(1)) for match in names if match]


def _show_frames(scene: bpy.types.Scene, item, frames_dir: Path) -> None:
    """Show a take's frames on the preview plane (made when missing), placed beside the take's
    face as the scene shows it now, in world space."""
    props = scene.flowvq
    head = item.target
    props.preview_plane = preview.ensure_plane(props.preview_plane, head, scene.collection)
    preview.show_sequence(props.preview_plane, preview.load_sequence(frames_dir), item.frame_start, item.frame_count)
    low, high, faces_plus_y = character.world_face_bounds(
        head, character.face_vertices(head, _keyed_shape_keys(item)), bpy.context.evaluated_depsgraph_get())
    preview.place_plane(props.preview_plane, low, high, faces_plus_y)


def switch_take(scene: bpy.types.Scene, index: int) -> None:
    """Make take ``index`` drive its character and show its preview frames. The Actions it replaces
    keep a fake user; the character's own animation on the head pose's owner (`plays_own_animation`)
    is not replaced but moved onto an NLA track beneath the take (`keys.keep_playing_on_nla`), so the
    body keeps moving while the take turns the head."""
    props = scene.flowvq
    item = props.take_items[index]
    for binding in item.bindings:
        owner = binding_owner(binding)
        if plays_own_animation(binding):
            keys.keep_playing_on_nla(owner)
        _keep_artist_action(owner)
        keys.assign(owner, binding.action)
    props.active_take = index
    if item.frames_dir:
        _show_frames(scene, item, preview.frames_dir_path(item.frames_dir, bpy.data.filepath))


def takes_to_nla(scene: bpy.types.Scene) -> None:
    """One NLA track per take on each object it animates, all muted but the active take's, so
    takes can be compared by unmuting or soloing tracks."""
    props = scene.flowvq
    prune_takes(props)
    for index, item in enumerate(props.take_items):
        for binding in item.bindings:
            track = keys.push_to_nla(binding_owner(binding), binding.action, item.name, item.frame_start)
            track.mute = index != props.active_take


def _head_for(scene: bpy.types.Scene, snap: Snapshot, model: FaceModel | None) -> tuple[list, Mapping]:
    """(the meshes to drive, head first; the mapping): a new FlowVQ head with its own names, or
    the chosen character's meshes that still exist. Raises ValueError, changing nothing, when the
    head mesh (or its shape keys) is gone."""
    if snap.create_head:
        head = build_head(model, HEAD_NAME, scene.collection)
        scene.flowvq.head = head
        return [head], identity_mapping(model.names)
    meshes = [bpy.data.objects.get(name) for name in snap.parts]
    if meshes[0] is None or meshes[0].data.shape_keys is None:
        raise ValueError(f"the target mesh '{snap.parts[0]}' (or its shape keys) was removed while generating")
    return [m for m in meshes if m is not None and m.data.shape_keys is not None], snap.mapping


def _translates(snap: Snapshot, owner: PoseOwner) -> bool:
    """Whether the head pose moves the head too: the panel's choice (Auto moves objects, not bones),
    never for a bone Blender would not move (`PoseOwner.can_move`)."""
    if snap.translate == "AUTO":
        return not owner.bone
    return snap.translate == "ROTATION_TRANSLATION" and owner.can_move


def _look_keys(mapping: Mapping) -> dict[str, dict[str, float]]:
    """The shape keys the mapping drives from eyeLook curves, with their terms."""
    return {key: terms for key, terms in mapping.keys.items() if any(name.startswith("eyeLook") for name in terms)}


def _take_target(snap: Snapshot, meshes: list, mapping: Mapping, model: FaceModel | None) -> takes.TakeTarget:
    """Where the takes go: the eye bones too, unless the head pose goes elsewhere than their
    armature (a rig without a head bone turns its head mesh's delta transforms). Raises ValueError
    when the head pose has nowhere to go."""
    owner = character.pose_owner(meshes[0], snap.head_bone) if snap.with_pose else None
    operator = None
    if mapping.visemes:
        operator = visemes.mouth_operator(model.basis, visemes.mouth_vertex_ids(model.regions))
    eyes = ()
    if snap.eye_bones and not snap.create_head:
        eyes = character.eye_owners(meshes, _look_keys(mapping), snap.eye_turn)
    if owner is not None and eyes and eyes[0].owner.obj != owner.obj:
        eyes = ()
    return takes.TakeTarget(tuple(meshes), mapping, owner, owner is not None and _translates(snap, owner), operator,
                            eyes)


def _store(item, written: takes.WrittenTake, target: takes.TakeTarget, snap: Snapshot, names: list[str]) -> None:
    """Fill a take row from a written take."""
    item.bindings.clear()
    for obj, what, action in written.bindings:
        binding = item.bindings.add()
        binding.obj, binding.what, binding.action = obj, what, action
    item.target = target.meshes[0]
    owner = target.owner
    item.head_pose = owner is not None
    item.eyes = json.dumps([[eye.side, eye.owner.bone, eye.owner.frame.ravel().tolist(), eye.turn, sorted(eye.held)]
                            for eye in target.eyes])
    item.bone = owner.bone if owner is not None else ""
    item.pose_frame = (owner.frame if owner is not None else np.eye(3)).ravel().tolist()
    item.pose_to_local = (owner.to_local if owner is not None else np.eye(3)).ravel().tolist()
    item.direct = json.dumps(direct_keys(target.mapping))
    item.frame_start, item.frame_count, item.fps = snap.frame_start, written.frame_count, snap.fps
    item.meta = json.dumps({**json.loads(written.meta), "names": names})
    item.frames_dir = ""


def _set_range(scene: bpy.types.Scene, start: int, count: int) -> str:
    """Fit the scene's frame range to the take (`timing.frame_range_for`); the note about it."""
    props = scene.flowvq
    last = tuple(props.range_set) if tuple(props.range_set) != (0, 0) else None
    wanted = frame_range_for((scene.frame_start, scene.frame_end), last, start, count)
    scene_utils.set_frame_range(scene, wanted.start, wanted.end)
    props.range_set = (wanted.start, wanted.end)
    return wanted.note


def apply_generate(scene: bpy.types.Scene, snap: Snapshot, result: jobs.GenerateResult) -> str:
    """Put a finished Generate job into the scene (main thread); returns the status line.

    Raises ValueError, before changing anything, when the chosen head mesh is gone or the head pose
    has nowhere to go.
    """
    props = scene.flowvq
    meshes, mapping = _head_for(scene, snap, result.face_model)  # checks first: no change before them
    target = _take_target(snap, meshes, mapping, result.face_model)
    pruned = prune_takes(props)
    first, renamed = None, 0
    for take in result.takes:
        base = takes.action_name(take)
        name = takes.free_take_name(base, target)
        renamed += name != base
        written = takes.write_take(take, name, target, snap.frame_start, snap.fps, snap.tolerance)
        item = props.take_items.get(name) or props.take_items.add()
        item.name = name
        _store(item, written, target, snap, list(take["names"]))
        if take["take"] in result.frame_dirs:
            item.frames_dir = preview.stored_frames_dir(result.frame_dirs[take["take"]], bpy.data.filepath)
        first = name if first is None else first
    notes = [*result.messages, _add_audio(scene, snap) if snap.add_audio_strip else ""]
    if target.owner is not None and snap.translate == "ROTATION_TRANSLATION" and not target.owner.can_move:
        notes.append(f"the head bone '{target.owner.bone}' is connected to its parent, so Blender does not "
                     f"move it: the head only turns")
    if target.eyes:
        notes.append("eyes turned by the bones " + " and ".join(f"'{eye.owner.bone}'" for eye in target.eyes))
    index = props.take_items.find(first)
    notes.append(_set_range(scene, snap.frame_start, props.take_items[index].frame_count))
    switch_take(scene, index)
    if renamed:
        notes.append(f"{renamed} take(s) renamed: the take of that name was edited or is another character's, "
                     f"and is kept")
    if pruned:
        notes.append(f"{pruned} take(s) whose Actions were deleted removed from the list")
    parts = f" on {len(target.meshes)} meshes" if len(target.meshes) > 1 else ""
    return f"{len(result.takes)} take(s) generated{parts}" + "".join(f"; {n}" for n in notes if n)


def _add_audio(scene: bpy.types.Scene, snap: Snapshot) -> str:
    """Add the clip as the take's sound strip; returns a note for the status line when Blender
    cannot (a clip it cannot read, or a Blender built without audio, such as the ``bpy`` module
    4.2): the takes are applied all the same."""
    try:
        scene_utils.add_sound_strip(scene, snap.audio, snap.frame_start)
    except RuntimeError as exc:
        return f"no sound strip ({str(exc).removeprefix('Error: ').strip()})"
    return ""


def apply_render(scene: bpy.types.Scene, index: int, frames_dir: Path) -> str:
    """Show re-rendered frames for take ``index`` (main thread); returns the status line."""
    props = scene.flowvq
    item = props.take_items[index]
    item.frames_dir = preview.stored_frames_dir(frames_dir, bpy.data.filepath)
    _show_frames(scene, item, frames_dir)
    return "preview re-rendered from the curves"
