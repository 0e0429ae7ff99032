"""The artist's character around a target mesh: its root, the meshes whose shape keys a take
drives, the head bone (or object) that carries the head pose and how the face's frame maps onto
it, and where the head is in the world.

A character is every mesh under the target's root (the top of its parent chain, or of its
armature's) that has shape keys; the mapping decides which of them a take drives. The head pose
goes on the head (or neck) pose bone of the character's armature, found by its usual names, or,
without an armature, on the head object's delta transforms.
"""

from dataclasses import dataclass

import bpy
import numpy as np

from . import posemath
from .retarget import eye_bones, head_bone

__all__ = ["PoseOwner", "EyeBone", "character_root", "character_meshes", "armature_of", "find_head_bone", "pose_owner",
           "eye_owners", "face_vertices", "world_face_bounds", "follow_selection"]


def _top(obj: bpy.types.Object) -> bpy.types.Object:
    """The top of ``obj``'s parent chain."""
    while obj.parent is not None:
        obj = obj.parent
    return obj


def character_root(obj: bpy.types.Object) -> bpy.types.Object:
    """The root of ``obj``'s character: the top of its armature's parent chain when an armature
    deforms or carries it (`armature_of`), else of its own."""
    armature = armature_of(obj)
    return _top(armature if armature is not None else obj)


def armature_of(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The armature deforming ``obj`` (its parent or its Armature modifier), or carrying it on one
    of its bones (a rigid head parented to the head bone, as glTF game characters come in), or None."""
    found = obj.find_armature()
    parent = obj.parent
    if found is None and parent is not None and parent.type == "ARMATURE" and obj.parent_type == "BONE":
        return parent
    return found


def _skinned_to(obj: bpy.types.Object, armatures: set[str]) -> bool:
    """True when an Armature modifier of ``obj`` uses one of ``armatures`` (by name)."""
    return any(m.type == "ARMATURE" and m.object is not None and m.object.name in armatures for m in obj.modifiers)


def character_meshes(target: bpy.types.Object) -> list[bpy.types.Object]:
    """The meshes with shape keys of ``target``'s character: ``target`` first, then every other
    mesh under its root or skinned to its armature, by name."""
    root = character_root(target)
    family = [root, *root.children_recursive]
    armatures = {obj.name for obj in family if obj.type == "ARMATURE"}
    skinned = [obj for obj in bpy.data.objects if obj.type == "MESH" and _skinned_to(obj, armatures)]
    meshes = {obj.name: obj for obj in (*family, *skinned)
              if obj.type == "MESH" and obj.data.shape_keys is not None and obj != target}
    return [target, *(meshes[name] for name in sorted(meshes))]


def find_head_bone(armature: bpy.types.Object, hint: str = "") -> str:
    """The name of the armature's head bone: ``hint`` when the artist named one, else the one
    `retarget.head_bone` picks by name; '' when there is none. Raises ValueError when ``hint``
    names no bone of the armature."""
    bones = armature.pose.bones
    if hint:
        if hint not in bones:
            raise ValueError(f"the armature '{armature.name}' has no bone '{hint}'")
        return hint
    return head_bone([bone.name for bone in bones])


@dataclass(frozen=True)
class PoseOwner:
    """Where a take's head pose goes: the armature's pose bone ``bone``, or (``bone`` '') the
    object's delta transforms; ``frame`` and ``to_local`` are the conversions of
    `posemath.relative_rotations` and `posemath.local_translations`. Shapes: (3, 3) each."""

    obj: bpy.types.Object
    bone: str
    frame: np.ndarray
    to_local: np.ndarray

    @property
    def can_move(self) -> bool:
        """Whether a location keyed on the owner moves it: Blender ignores the location of a bone
        connected to its parent."""
        return not self.bone or not self.obj.data.bones[self.bone].use_connect

    @property
    def rotation_mode(self) -> str:
        """The rotation mode the pose is keyed in: the bone's or the object's own."""
        return self.obj.pose.bones[self.bone].rotation_mode if self.bone else self.obj.rotation_mode

    def path(self, prop: str) -> str:
        """The data path of ``prop`` (a bone's ``rotation_quaternion``, or an object's
        ``delta_rotation_euler``) on `obj`."""
        if self.bone:
            return f'pose.bones["{bpy.utils.escape_identifier(self.bone)}"].{prop}'
        return f"delta_{prop}"


@dataclass(frozen=True)
class EyeBone:
    """An eye bone a take turns: its ``side`` ("Left" or "Right"), its `PoseOwner` conversions, and
    ``turn``, the share of the take's eye turn it gets (1: 30 degrees sideways, 25 up or down at
    eyeLook 1; less for stylised eyes that must turn less), and ``held``, the eyeLook curves it
    leaves out because shape keys already turn its eyeball that way."""

    side: str
    owner: PoseOwner
    turn: float = 1.0
    held: frozenset[str] = frozenset()


def _matrix3(matrix) -> np.ndarray:
    """The upper-left 3x3 of a mathutils matrix. Shapes: -> (3, 3)."""
    return np.array(matrix, dtype=np.float64)[:3, :3]


def _rest_points(obj: bpy.types.Object) -> np.ndarray:
    """The rest positions of ``obj``'s vertices (its reference key's, when it has shape keys), in
    its own coordinates. Shapes: -> (V, 3)."""
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
    shape_keys = obj.data.shape_keys
    (shape_keys.reference_key.data if shape_keys is not None else obj.data.vertices).foreach_get("co", co)
    return co.reshape(-1, 3)


def _face_centre(obj: bpy.types.Object, points: np.ndarray) -> np.ndarray:
    """The mean of ``points`` (``obj``'s `_rest_points`) over the vertices its shape keys move
    (`face_vertices`; all of them without shape keys). Shapes: points (V, 3) -> (3,)."""
    if obj.data.shape_keys is None:
        return points.mean(axis=0)
    return points[_moved_vertices(obj, [block.name for block in obj.data.shape_keys.key_blocks], points)].mean(axis=0)


def _bone_owner(armature: bpy.types.Object, bone: str, face: bpy.types.Object, pivot: str = "") -> PoseOwner:
    """The pose bone's conversions: its rest rotation in armature space, turned when the character
    faces +Y there (`posemath.facing_turn` of ``face``'s keyed vertices seen from the head of the
    bone ``pivot``, ``bone`` itself by default; the face model faces -Y in Blender's frame), and the
    map from face-frame metres to the bone's rest space (armature scale included)."""
    rest = _matrix3(armature.data.bones[bone].matrix_local)
    world = _matrix3(armature.matrix_world)
    to_armature = np.linalg.inv(np.array(armature.matrix_world, dtype=np.float64)) @ np.array(face.matrix_world)
    centre = to_armature[:3, :3] @ _face_centre(face, _rest_points(face)) + to_armature[:3, 3]
    turn = posemath.facing_turn(centre - np.array(armature.data.bones[pivot or bone].head_local))
    to_local = np.linalg.inv(rest) @ np.linalg.inv(world) @ posemath.orthonormal(world) @ turn
    return PoseOwner(armature, bone, turn @ posemath.orthonormal(rest), to_local)


def _object_owner(obj: bpy.types.Object) -> PoseOwner:
    """The object's delta conversions. Blender applies the delta rotation after the object's own
    (world = parent @ delta @ rotation), so a motion in the object's own axes (the mesh's face
    looks along its local -Y, or +Y when its keyed vertices lie on that side of its centre:
    `posemath.facing_turn`) is the delta ``rot @ turn @ D @ turn @ rot.T``: frame = turn @ rot.T.
    The delta location is in the parent's space."""
    points = _rest_points(obj)
    turn = posemath.facing_turn(_face_centre(obj, points) - points.mean(axis=0))
    own = posemath.orthonormal(_matrix3(obj.matrix_basis))
    parent = _matrix3(obj.parent.matrix_world) if obj.parent is not None else np.eye(3)
    to_local = np.linalg.inv(parent) @ posemath.orthonormal(parent) @ own @ turn
    return PoseOwner(obj, "", turn @ own.T, to_local)


def pose_owner(target: bpy.types.Object, bone_hint: str = "") -> PoseOwner:
    """Where ``target``'s head pose goes: its armature's head bone when it has an armature with
    one, else ``target`` itself. Raises ValueError for an object in axis-angle mode (Blender has
    no delta axis-angle) or a ``bone_hint`` the armature lacks."""
    armature = armature_of(target)
    if armature is not None:
        bone = find_head_bone(armature, bone_hint)
        if bone:
            return _bone_owner(armature, bone, target)
    if bone_hint:
        raise ValueError(f"'{target.name}' has no armature with a bone '{bone_hint}'")
    if target.rotation_mode == "AXIS_ANGLE":
        raise ValueError(f"'{target.name}' rotates in axis-angle mode, which has no delta rotation: set its "
                         f"rotation mode to quaternion or an Euler order, or turn the head pose off")
    return _object_owner(target)


def _bone_weights(obj: bpy.types.Object, bone: str) -> np.ndarray:
    """Each vertex's weight in ``obj``'s vertex group named ``bone`` (0 outside it, or without
    one). Shapes: -> (V,)."""
    group = obj.vertex_groups.get(bone)
    weights = np.zeros(len(obj.data.vertices))
    if group is not None:
        for vertex in obj.data.vertices:
            weights[vertex.index] = next((g.weight for g in vertex.groups if g.group == group.index), 0.0)
    return weights


def _key_turned_looks(meshes: list[bpy.types.Object], look_keys: dict[str, dict[str, float]],
                      bone: str) -> frozenset[str]:
    """The eyeLook curves that driven look keys (``look_keys``: key -> its terms) already show on
    the eyeball of the eye bone ``bone``: those of the keys that move vertices bound to it (Ready
    Player Me's eye meshes turn by their own eyeLook keys; an older avatar's only up and down)."""
    shown: set[str] = set()
    for obj in meshes:
        present = [key for key in look_keys if key in obj.data.shape_keys.key_blocks]
        if not present or obj.vertex_groups.get(bone) is None:
            continue
        bound, rest = _bone_weights(obj, bone) >= 0.5, _rest_points(obj)
        for key in present:
            if (_moved_mask(obj, [key], rest) & bound).any():
                shown.update(name for name in look_keys[key] if name.startswith("eyeLook"))
    return frozenset(shown)


def _bone_moves_something(armature: bpy.types.Object, bone: str) -> bool:
    """Whether turning ``bone`` moves anything: a vertex of a mesh skinned to ``armature`` weighted
    to it, or an object parented to it (a rig's eye bones may deform nothing, the eyeballs being
    weighted to the head)."""
    for obj in bpy.data.objects:
        if obj.parent == armature and obj.parent_type == "BONE" and obj.parent_bone == bone:
            return True
        if obj.type == "MESH" and _skinned_to(obj, {armature.name}) and (_bone_weights(obj, bone) > 0.0).any():
            return True
    return False


def eye_owners(meshes: list[bpy.types.Object], look_keys: dict[str, dict[str, float]],
               turn: float = 1.0) -> tuple[EyeBone, ...]:
    """The eye bones a take turns by ``turn`` of its eye turn (`EyeBone`): those of the armature of
    ``meshes[0]`` (the head mesh; `retarget.eye_bones` by name) that move something
    (`_bone_moves_something`), each leaving out the eyeLook curves the driven ``look_keys`` (key ->
    its terms) already show on its eyeball (`_key_turned_looks`) and left alone when they show all
    four, the character's facing judged from its head bone."""
    armature = armature_of(meshes[0])
    if armature is None:
        return ()
    names = [bone.name for bone in armature.pose.bones]
    pivot = head_bone(names)
    eyes = []
    for side, bone in zip(("Left", "Right"), eye_bones(names)):
        if not bone or not _bone_moves_something(armature, bone):
            continue
        held = _key_turned_looks(meshes, look_keys, bone)
        if not {f"eyeLook{way}{side}" for way in ("In", "Out", "Up", "Down")} <= held:
            eyes.append(EyeBone(side, _bone_owner(armature, bone, meshes[0], pivot), turn, held))
    return tuple(eyes)


def face_vertices(obj: bpy.types.Object, keys: list[str]) -> np.ndarray:
    """Indices of the vertices that the shape keys ``keys`` of ``obj`` move (the face); every
    vertex when none moves. Shapes: -> (N,)."""
    return _moved_vertices(obj, keys, _rest_points(obj))


def _moved_mask(obj: bpy.types.Object, keys: list[str], basis: np.ndarray) -> np.ndarray:
    """Whether the shape keys ``keys`` of ``obj`` move each vertex away from ``basis``, ``obj``'s
    `_rest_points`. Shapes: basis (V, 3) -> (V,) bool."""
    shape_keys = obj.data.shape_keys
    moved = np.zeros(len(basis), dtype=bool)
    co = np.empty(basis.size, dtype=np.float64)
    for name in keys:
        block = shape_keys.key_blocks.get(name)
        if block is not None and block != shape_keys.reference_key:
            block.data.foreach_get("co", co)
            moved |= np.abs(co.reshape(-1, 3) - basis).max(axis=1) > 1e-6
    return moved


def _moved_vertices(obj: bpy.types.Object, keys: list[str], basis: np.ndarray) -> np.ndarray:
    """`face_vertices` against ``basis``, ``obj``'s `_rest_points`. Shapes: basis (V, 3) -> (N,)."""
    moved = _moved_mask(obj, keys, basis)
    return np.flatnonzero(moved) if moved.any() else np.arange(len(basis))


def world_face_bounds(obj: bpy.types.Object, vertices: np.ndarray,
                      depsgraph: bpy.types.Depsgraph) -> tuple[np.ndarray, np.ndarray, bool]:
    """(min, max) corners of ``vertices`` of ``obj`` in world space as evaluated now (parents,
    armature deformation and shape keys included), and whether the face looks towards +Y there
    (their mean vertex normal). Shapes: (3,), (3,), bool."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        normals = np.empty_like(co)
        mesh.vertices.foreach_get("co", co)
        mesh.vertices.foreach_get("normal", normals)
    finally:
        evaluated.to_mesh_clear()
    co, normals = co.reshape(-1, 3), normals.reshape(-1, 3)
    if len(co) == len(obj.data.vertices):
        co, normals = co[vertices], normals[vertices]
    world = np.array(evaluated.matrix_world, dtype=np.float64)
    points = co @ world[:3, :3].T + world[:3, 3]
    front = normals.sum(axis=0) @ np.linalg.inv(world[:3, :3])  # normals map by the inverse transpose
    return points.min(axis=0), points.max(axis=0), bool(front[1] > 0.0)


def follow_selection(props, active: bpy.types.Object | None) -> bool:
    """Make the active object the target when it is a mesh with shape keys and the artist has not
    picked a target in the panel; returns whether the target changed."""
    if props.target_pinned or active is None or active.type != "MESH" or active.data.shape_keys is None:
        return False
    if props.target == active:
        return False
    props.target = active
    props.target_pinned = False  # set by the field's update callback; this was not the artist's pick
    return True
