"""Characters like the ones animators bring, built with bpy for the tests: an armature with a head
bone (quaternion rotation, a tilted and rolled rest orientation, a parent chain) deforming a head
mesh, teeth and two eyes that carry ARKit-named shape keys in mixed casings, placed and turned away
from the origin; the same with eye bones turning eyeballs that have no keys (as VRoid Studio's) or
that have look keys of their own (as Ready Player Me's); a bust without an armature; a viseme-only
mesh; a VRM-style vowel mesh."""

import math

import numpy as np

# Where the rig stands and how it is turned (a character is rarely at the origin facing -Y).
RIG_LOCATION = (2.0, 3.0, 0.5)
RIG_TURN = 0.4  # radians about Z
HEAD_CENTRE = (0.0, 0.0, 1.65)  # in the armature's space
HEAD_RADIUS = 0.1
# The keys of each part, with the region of the part they move (a test checks that parts move
# together, on the vertices no key moves).
HEAD_KEYS = ("jawOpen", "MouthClose", "eyeBlink_L", "EyeBlinkRight", "mouthSmileLeft", "mouthSmileRight",
             "browInnerUp", "mouthFunnel", "mouthPucker")
TEETH_KEYS = ("JawOpen", "mouthClose")
EYE_KEYS = ("eyeLookUp{side}", "eyeLookDown{side}")
OCULUS_VISEMES = ("viseme_sil", "viseme_PP", "viseme_FF", "viseme_TH", "viseme_DD", "viseme_kk", "viseme_CH",
                  "viseme_SS", "viseme_nn", "viseme_RR", "viseme_aa", "viseme_E", "viseme_I", "viseme_O", "viseme_U")


def _sphere(bpy, name: str, centre, radius: float, segments: int = 12, rings: int = 8):
    """A UV-sphere mesh object (not linked), its vertices around ``centre``."""
    verts = [(0.0, 0.0, -radius)]
    for ring in range(1, rings):
        theta = math.pi * ring / rings - math.pi / 2
        for seg in range(segments):
            phi = 2 * math.pi * seg / segments
            verts.append((radius * math.cos(theta) * math.cos(phi), radius * math.cos(theta) * math.sin(phi),
                          radius * math.sin(theta)))
    verts.append((0.0, 0.0, radius))
    faces = []
    for ring in range(rings - 2):
        for seg in range(segments):
            a, b = 1 + ring * segments + seg, 1 + ring * segments + (seg + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    for seg in range(segments):
        faces.append((0, 1 + (seg + 1) % segments, 1 + seg))
        top, base = len(verts) - 1, 1 + (rings - 2) * segments
        faces.append((top, base + seg, base + (seg + 1) % segments))
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(np.add(v, centre)) for v in verts], [], faces)
    mesh.update()
    return bpy.data.objects.new(name, mesh)


def _add_keys(obj, names: list[str], moves) -> None:
    """A Basis key, then one key per name moving the vertices ``moves(name, co)`` selects by the
    offset it returns. ``moves(name, co (V,3)) -> (V,3)``."""
    obj.shape_key_add(name="Basis", from_mix=False)
    basis = np.array([v.co[:] for v in obj.data.vertices])
    for name in names:
        block = obj.shape_key_add(name=name, from_mix=False)
        block.data.foreach_set("co", (basis + moves(name, basis)).astype(np.float32).ravel())


def _face_moves(centre):
    """Offsets of the head's keys: the jaw and lips move the front-lower vertices, brows and lids
    the front-upper ones; the back of the head never moves."""
    def moves(name: str, co: np.ndarray) -> np.ndarray:
        local = co - np.asarray(centre)
        front = local[:, 1] < -0.03
        lower, upper = front & (local[:, 2] < -0.01), front & (local[:, 2] > 0.03)
        offset = np.zeros_like(co)
        direction = {"jaw": (0, 0, -0.03), "mouthclose": (0, 0, 0.01), "eyeblink": (0, 0, -0.01),
                     "mouthsmile": (0.01, 0, 0.01), "browinnerup": (0, 0, 0.015), "mouthfunnel": (0, -0.01, 0),
                     "mouthpucker": (0, -0.012, 0)}
        key = next(k for k in direction if name.lower().replace("_", "").startswith(k))
        offset[upper if key in ("eyeblink", "browinnerup") else lower] = direction[key]
        return offset
    return moves


def _skin(bpy, obj, armature, bone: str) -> None:
    """Parent ``obj`` to ``armature`` with an Armature modifier and every vertex weighted 1 to ``bone``."""
    obj.parent = armature
    group = obj.vertex_groups.new(name=bone)
    group.add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature


def build_rig(bpy):
    """The Armature ``Rig`` (Hips > Spine > Neck > Head, the head bone tilted and rolled) at
    `RIG_LOCATION` turned by `RIG_TURN`; returns the armature object."""
    data = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    chain = (("Hips", (0, 0, 1.0), (0, 0, 1.2), 0.0), ("Spine", (0, 0, 1.2), (0, 0.02, 1.45), 0.0),
             ("Neck", (0, 0.02, 1.45), (0, 0.01, 1.55), 0.1), ("Head", (0, 0.01, 1.55), (0.03, -0.05, 1.78), 0.5))
    parent = None
    for name, head, tail, roll in chain:
        bone = data.edit_bones.new(name)
        bone.head, bone.tail, bone.roll, bone.parent = head, tail, roll, parent
        bone.use_connect = parent is not None
        parent = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.location, rig.rotation_euler = RIG_LOCATION, (0.0, 0.0, RIG_TURN)
    return rig


def build_character(bpy) -> dict:
    """The Armature with a skinned head, teeth, two eyes (ARKit keys in several casings: the teeth
    with only the jaw/mouth keys, the eyes with only their own look keys) and a body without keys.
    Returns name -> object."""
    rig = build_rig(bpy)
    parts = {"rig": rig}
    head = _sphere(bpy, "Wolf3D_Head", HEAD_CENTRE, HEAD_RADIUS)
    _add_keys(head, list(HEAD_KEYS), _face_moves(HEAD_CENTRE))
    teeth = _sphere(bpy, "Wolf3D_Teeth", (0.0, -0.06, 1.62), 0.02, 6, 4)
    _add_keys(teeth, list(TEETH_KEYS), _face_moves((0.0, -0.03, 1.64)))
    parts.update(head=head, teeth=teeth)
    for side, x in (("Left", 0.035), ("Right", -0.035)):
        eye = _sphere(bpy, f"EyeMesh{side}", (x, -0.08, 1.69), 0.012, 6, 4)
        names = [pattern.format(side=side) for pattern in EYE_KEYS]
        _add_keys(eye, names, lambda name, co, cx=x: np.where(
            (co[:, 1] < -0.088)[:, None], (0.0, 0.0, 0.004 if "Up" in name else -0.004), 0.0))
        parts[f"eye_{side.lower()}"] = eye
    body = _sphere(bpy, "Body", (0.0, 0.0, 1.25), 0.2, 8, 6)
    parts["body"] = body
    for key, obj in parts.items():
        if key != "rig":
            bpy.context.scene.collection.objects.link(obj)
            _skin(bpy, obj, rig, "Spine" if key == "body" else "Head")
    rig.pose.bones["Head"].rotation_mode = "QUATERNION"
    bpy.context.view_layer.update()
    return parts


def add_eye_bones(bpy, parts: dict, names: tuple[str, str], keep_look_keys: bool, skin: bool = True,
                  sideways_keys: bool = False) -> None:
    """Give a `build_character` rig eye bones ``names`` (left, right), children of ``Head`` at the
    eyeballs' centres, pointing up and rolled as a rig's seldom point forward, in quaternion mode,
    and skin each eyeball to its bone (without ``skin`` they stay on the head, the bones deforming
    nothing); without ``keep_look_keys`` the eyeballs lose their shape keys (up and down), with
    ``sideways_keys`` they gain eyeLookIn/Out keys too."""
    rig = parts["rig"]
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name, side, x in ((names[0], "left", 0.035), (names[1], "right", -0.035)):
        bone = rig.data.edit_bones.new(name)
        bone.head, bone.tail, bone.roll = (x, -0.08, 1.69), (x, -0.075, 1.71), 0.7
        bone.parent = rig.data.edit_bones["Head"]
    bpy.ops.object.mode_set(mode="OBJECT")
    for name, side in zip(names, ("left", "right")):
        eye = parts[f"eye_{side}"]
        if skin:
            eye.vertex_groups.remove(eye.vertex_groups["Head"])
            eye.vertex_groups.new(name=name).add(list(range(len(eye.data.vertices))), 1.0, "REPLACE")
        if not keep_look_keys:
            eye.shape_key_clear()
        basis = np.array([v.co[:] for v in eye.data.vertices])
        for way, dx in (("In", -0.004 if side == "left" else 0.004), ("Out", 0.004 if side == "left" else -0.004)):
            if sideways_keys:
                key = eye.shape_key_add(name=f"eyeLook{way}{side.capitalize()}", from_mix=False)
                moved = basis + np.where((basis[:, 1] < -0.088)[:, None], (dx, 0.0, 0.0), 0.0)
                key.data.foreach_set("co", moved.astype(np.float32).ravel())
        rig.pose.bones[name].rotation_mode = "QUATERNION"
    bpy.context.view_layer.update()


def in_centimetres(bpy, parts: dict) -> None:
    """Re-express a `build_character` rig as Character Creator and Mixamo FBX imports do: armature
    and meshes in centimetres under an armature object scaled by 0.01, the world unchanged."""
    rig = parts["rig"]
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for bone in rig.data.edit_bones:
        bone.head, bone.tail = bone.head * 100.0, bone.tail * 100.0
    bpy.ops.object.mode_set(mode="OBJECT")
    for key, obj in parts.items():
        if key == "rig" or obj.type != "MESH":
            continue
        co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
        blocks = obj.data.shape_keys.key_blocks if obj.data.shape_keys else []
        for block in blocks:
            block.data.foreach_get("co", co)
            block.data.foreach_set("co", co * 100.0)
        obj.data.vertices.foreach_get("co", co)
        obj.data.vertices.foreach_set("co", co * 100.0)
        obj.data.update()
    rig.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()


def turn_around(bpy, objects: list) -> None:
    """Turn the rest shape of ``objects`` half a turn about their own Z, as a VRM 0.x character comes
    out of Blender's glTF importer: an armature's bones, a mesh's vertices and shape keys; the
    objects' own transforms unchanged, so the character now faces +Y in its own space."""
    import mathutils

    half = mathutils.Matrix.Rotation(math.pi, 4, "Z")
    for obj in objects:
        if obj.type == "ARMATURE":
            bpy.context.view_layer.objects.active = obj
            bpy.ops.object.mode_set(mode="EDIT")
            for bone in obj.data.edit_bones:
                bone.transform(half)
            bpy.ops.object.mode_set(mode="OBJECT")
        else:
            obj.data.transform(half, shape_keys=True)
            obj.data.update()
    bpy.context.view_layer.update()


def disconnect(bpy, rig, bone: str) -> None:
    """Let ``bone`` move away from its parent (Blender ignores a connected bone's location)."""
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    rig.data.edit_bones[bone].use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")


def build_bust(bpy, rotation_mode: str = "QUATERNION", z: float = 1.6):
    """A head mesh with ARKit keys and no armature, at height ``z``, in ``rotation_mode``."""
    bust = _sphere(bpy, "Bust", (0.0, 0.0, 0.0), HEAD_RADIUS)
    _add_keys(bust, list(HEAD_KEYS), _face_moves((0.0, 0.0, 0.0)))
    bpy.context.scene.collection.objects.link(bust)
    bust.location = (0.5, -0.2, z)
    bust.rotation_mode = rotation_mode
    bpy.context.view_layer.update()
    return bust


def build_viseme_head(bpy):
    """A head mesh whose only mouth keys are the 15 Oculus visemes (plus blinks)."""
    head = _sphere(bpy, "VisemeHead", (0.0, 0.0, 0.0), HEAD_RADIUS)
    _add_keys(head, list(OCULUS_VISEMES) + ["eyeBlinkLeft", "eyeBlinkRight"],
              lambda name, co: np.where((co[:, 1] < -0.03)[:, None], (0.0, 0.0, -0.01), 0.0))
    bpy.context.scene.collection.objects.link(head)
    return head


def build_vrm_head(bpy, extra: tuple[str, ...] = ()):
    """A head mesh with a VRM 0.x rig's keys: the vowels ``A I U E O``, ``Blink``, ``Joy`` and
    the ``extra`` keys."""
    head = _sphere(bpy, "VrmHead", (0.0, 0.0, 0.0), HEAD_RADIUS)
    _add_keys(head, ["A", "I", "U", "E", "O", "Blink", "Joy", *extra],
              lambda name, co: np.where((co[:, 1] < -0.03)[:, None], (0.0, 0.0, -0.01), 0.0))
    bpy.context.scene.collection.objects.link(head)
    return head


def static_vertices(obj) -> np.ndarray:
    """Indices of the vertices no shape key of ``obj`` moves. Shapes: -> (N,)."""
    blocks = obj.data.shape_keys.key_blocks
    basis = np.array([v.co[:] for v in blocks[0].data])
    moved = np.zeros(len(basis), dtype=bool)
    for block in blocks[1:]:
        moved |= np.abs(np.array([v.co[:] for v in block.data]) - basis).max(axis=1) > 1e-7
    return np.flatnonzero(~moved)


def world_vertices(bpy, obj, indices: np.ndarray) -> np.ndarray:
    """World positions of ``obj``'s vertices ``indices`` as evaluated now. Shapes: -> (N, 3)."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.array([mesh.vertices[int(i)].co[:] for i in indices])
    evaluated.to_mesh_clear()
    world = np.array(evaluated.matrix_world)
    return co @ world[:3, :3].T + world[:3, 3]
