"""F-curves on Actions for Blender 4.2 to 5.0.

Blender 4.4 made Actions layered and slotted: the curves of one animated ID live in
``action.layers[0].strips[0].channelbag(slot).fcurves`` and the ID picks its slot with
``animation_data.action_slot``; one Action can animate several IDs. Blender 4.2/4.3 Actions hold
``action.fcurves`` directly and animate one ID type (``id_root``); 5.0 removed ``Action.fcurves``.
Everything here takes the layered path from 4.4 on (`LAYERED`) and the legacy one before: 4.3
already has ``action.layers``/``slots`` behind an experimental flag, with another ``slots.new``.
Keys are written in bulk with ``keyframe_points.add`` + ``foreach_set``, linearly interpolated.
"""

import hashlib

import bpy
import numpy as np

__all__ = ["LAYERED", "curves_for", "find_curve", "write_curve", "clear_curves", "assign", "assigned_action",
           "push_to_nla", "keep_playing_on_nla", "remove_empty_strips", "fingerprint", "FINGERPRINT_PROP"]

FINGERPRINT_PROP = "flowvq_fingerprint"
# Actions are layered and slotted (one Action, one slot per animated ID) from Blender 4.4.
LAYERED = bpy.app.version >= (4, 4, 0)
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _slot_for(action: bpy.types.Action, owner: bpy.types.ID, create: bool):
    """The Action's slot for ``owner`` (matched by ID type and name), made when ``create``."""
    for slot in action.slots:
        if slot.target_id_type == owner.id_type and slot.name_display == owner.name:
            return slot
    return action.slots.new(id_type=owner.id_type, name=owner.name) if create else None


def curves_for(action: bpy.types.Action, owner: bpy.types.ID, create: bool = True):
    """The F-curve collection holding ``owner``'s curves in ``action`` (None when absent and not
    ``create``)."""
    if not LAYERED:
        if create:
            action.id_root = owner.id_type
        return action.fcurves
    slot = _slot_for(action, owner, create)
    if slot is None:
        return None
    if not action.layers:
        if not create:
            return None
        action.layers.new("Layer").strips.new(type="KEYFRAME")
    bag = action.layers[0].strips[0].channelbag(slot, ensure=create)
    return None if bag is None else bag.fcurves


def find_curve(action: bpy.types.Action, owner: bpy.types.ID, data_path: str,
               index: int = 0) -> bpy.types.FCurve | None:
    """The F-curve of ``data_path[index]`` for ``owner`` in ``action``, or None."""
    curves = curves_for(action, owner, create=False)
    return None if curves is None else curves.find(data_path, index=index)


def write_curve(action: bpy.types.Action, owner: bpy.types.ID, data_path: str, index: int,
                frames: np.ndarray, values: np.ndarray) -> bpy.types.FCurve:
    """Replace ``owner``'s curve ``data_path[index]`` with linear keys at ``frames``.

    Shapes: frames (N,), values (N,).
    """
    curves = curves_for(action, owner)
    old = curves.find(data_path, index=index)
    if old is not None:
        curves.remove(old)
    curve = curves.new(data_path, index=index)
    count = len(frames)
    curve.keyframe_points.add(count)
    co = np.empty((count, 2), dtype=np.float32)
    co[:, 0], co[:, 1] = frames, values
    curve.keyframe_points.foreach_set("co", co.ravel())
    curve.keyframe_points.foreach_set("interpolation", np.full(count, _LINEAR, dtype=np.int32))
    curve.update()
    return curve


def assign(owner: bpy.types.ID, action: bpy.types.Action) -> None:
    """Make ``action`` (and, when layered, ``owner``'s slot in it) drive ``owner``."""
    anim = owner.animation_data or owner.animation_data_create()
    anim.action = action
    if LAYERED:
        anim.action_slot = _slot_for(action, owner, create=True)


def assigned_action(owner: bpy.types.ID) -> bpy.types.Action | None:
    """The Action driving ``owner``, or None."""
    return owner.animation_data.action if owner.animation_data else None


def _new_track(anim: bpy.types.AnimData, name: str, action: bpy.types.Action, frame_start: int,
               slot) -> bpy.types.NlaTrack:
    """A new NLA track ``name`` holding ``action`` as one strip from ``frame_start``, playing
    ``slot`` (None before Blender 4.4)."""
    track = anim.nla_tracks.new()
    track.name = name
    strip = track.strips.new(name, frame_start, action)
    if slot is not None:
        strip.action_slot = slot
    return track


def push_to_nla(owner: bpy.types.ID, action: bpy.types.Action, name: str, frame_start: int) -> bpy.types.NlaTrack:
    """An NLA track ``name`` on ``owner`` holding ``action`` as one strip from ``frame_start``
    (a previous track of that name is replaced)."""
    anim = owner.animation_data or owner.animation_data_create()
    old = anim.nla_tracks.get(name)
    if old is not None:
        anim.nla_tracks.remove(old)
    return _new_track(anim, name, action, frame_start, _slot_for(action, owner, create=True) if LAYERED else None)


def keep_playing_on_nla(owner: bpy.types.ID) -> bpy.types.NlaTrack | None:
    """Move ``owner``'s active Action onto an NLA track of its own (named after it: one strip from
    the Action's first frame, in the slot it plays), so it keeps playing once another Action is
    made the active one; None, changing nothing, when there is no active Action or an unmuted NLA
    strip of ``owner`` already plays it."""
    anim = owner.animation_data
    action = anim.action if anim is not None else None
    if action is None or any(strip.action == action for track in anim.nla_tracks if not track.mute
                             for strip in track.strips):
        return None
    return _new_track(anim, action.name, action, int(round(action.frame_range[0])),
                      anim.action_slot if LAYERED else None)


def _all_curves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    """Every F-curve of the Action, over all its slots."""
    if not LAYERED:
        return list(action.fcurves)
    return [curve for layer in action.layers for strip in layer.strips
            for bag in strip.channelbags for curve in bag.fcurves]


def clear_curves(action: bpy.types.Action) -> None:
    """Remove every F-curve of the Action (its slots, and so whatever they are assigned to, stay)."""
    if not LAYERED:
        action.fcurves.clear()
        return
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                bag.fcurves.clear()


def remove_empty_strips(owner: bpy.types.ID) -> None:
    """Remove ``owner``'s NLA strips that play no Action, and tracks left without strips."""
    anim = owner.animation_data
    if anim is None:
        return
    for track in list(anim.nla_tracks):
        for strip in [s for s in track.strips if s.action is None]:
            track.strips.remove(strip)
        if not track.strips:
            anim.nla_tracks.remove(track)


def fingerprint(action: bpy.types.Action) -> str:
    """A digest of every key of every curve (path, index, frame, value): it changes when
    an artist edits the Action."""
    digest = hashlib.sha1()
    for curve in sorted(_all_curves(action), key=lambda c: (c.data_path, c.array_index)):
        points = np.empty(len(curve.keyframe_points) * 2, dtype=np.float32)
        curve.keyframe_points.foreach_get("co", points)
        digest.update(f"{curve.data_path}[{curve.array_index}]".encode())
        digest.update(points.tobytes())
    return digest.hexdigest()
