"""Takes on characters like animators bring (tests/addon/characters.py), through the add-on's own
code as Generate runs it once the server's job has ended: every matching mesh driven from one take,
the head pose on the head bone or on a bust's delta transforms, the preview plane in world space,
and a take list that never lies across runs."""

import json
import math

import numpy as np
import pytest

from .characters import build_bust, build_character, build_rig, static_vertices, turn_around, world_vertices
from .conftest import SPEECH
from .scenes import write_frames
from .test_scene import module

PARTS = ["Wolf3D_Head", "EyeMeshLeft", "EyeMeshRight", "Wolf3D_Teeth"]


def find_character(bpy, head, names: list[str]) -> None:
    """The panel after picking ``head`` and pressing Find Character (names as the server's)."""
    props = bpy.context.scene.flowvq
    props.target_mode, props.target = "SELECTED", head
    module("operators").fill_character(props, names, head)


def generate(bpy, takes: list[dict], face_npz: bytes, frame_dirs=None) -> str:
    """Read the panel as Generate does and apply a finished job's result; the status line."""
    props = bpy.context.scene.flowvq
    props.audio_source, props.audio_path = "FILE", str(SPEECH)
    snap, _ = module("operators").snapshot(bpy.context)
    result = module("jobs").GenerateResult(takes=takes, frame_dirs=frame_dirs or {},
                                           face_model=module("face").load_face_model(face_npz))
    return module("apply").apply_generate(bpy.context.scene, snap, result)


@pytest.fixture
def rigged(bpy_empty, wire_takes, face_npz, tmp_path):
    """The character after one take with head pose and preview frames; (bpy, parts, take)."""
    bpy = bpy_empty
    parts = build_character(bpy)
    take = wire_takes[0]
    find_character(bpy, parts["head"], take["names"])
    parts["before"] = {name: np.array(obj.matrix_basis) for name, obj in parts.items()}
    frames = {0: write_frames(bpy, tmp_path / "take_0", take["frames"])}
    assert generate(bpy, [take], face_npz, frames).startswith("1 take(s) generated on 4 meshes")
    return bpy, parts, take


def column(take: dict, name: str) -> np.ndarray:
    """One coefficient's curve of a take. Shapes: -> (T,)."""
    return np.asarray(take["exp"])[:, take["names"].index(name)]


def test_find_character_lists_every_mesh_with_matching_keys_head_first(bpy_empty, wire_takes):
    bpy = bpy_empty
    parts = build_character(bpy)
    find_character(bpy, parts["head"], wire_takes[0]["names"])
    props = bpy.context.scene.flowvq
    assert [part.name for part in props.parts] == PARTS  # the body has no shape keys
    assert {part.name: part.driven for part in props.parts} == {
        "Wolf3D_Head": 9, "EyeMeshLeft": 2, "EyeMeshRight": 2, "Wolf3D_Teeth": 2}


def test_every_matching_mesh_gets_curves_and_the_teeth_follow_the_jaw(rigged):
    bpy, parts, take = rigged
    for obj in (parts["head"], parts["teeth"], parts["eye_left"], parts["eye_right"]):
        shape_keys = obj.data.shape_keys
        action = module("keys").assigned_action(shape_keys)
        assert action is not None, obj.name
        for block in shape_keys.key_blocks[1:]:
            curve = module("keys").find_curve(action, shape_keys, f'key_blocks["{block.name}"].value')
            assert curve is not None and len(curve.keyframe_points) == take["frames"], (obj.name, block.name)
    jaw = column(take, "jawOpen")
    for k in (0, int(np.argmax(jaw)), take["frames"] - 1):
        bpy.context.scene.frame_set(1 + k)
        teeth = parts["teeth"].data.shape_keys.key_blocks
        head = parts["head"].data.shape_keys.key_blocks
        assert teeth["JawOpen"].value == pytest.approx(head["jawOpen"].value, abs=1e-6)
        assert head["jawOpen"].value == pytest.approx(jaw[k], abs=1e-5)
        assert parts["eye_left"].data.shape_keys.key_blocks["eyeLookUpLeft"].value == pytest.approx(
            column(take, "eyeLookUpLeft")[k], abs=1e-5)


HALF_TURN = np.diag([-1.0, -1.0, 1.0])  # about Z


def expected_head_rotation(rig, bone: str, pose_row, faces_plus_y: bool = False) -> np.ndarray:
    """The head bone's world rotation when the take's head pose turns it: the pose as docs/api.md
    defines it in Blender (Euler XZY of (pitch, -roll, yaw)), turned into the character's frame
    (the rig's, half a turn more for a character facing +Y in it), applied to the bone's rest.
    Shapes: -> (3, 3)."""
    import mathutils

    pitch, yaw, roll = pose_row[:3]
    turn = np.array(mathutils.Euler((pitch, -roll, yaw), "XZY").to_matrix())
    facing = np.array(rig.matrix_world.to_3x3().normalized()) @ (HALF_TURN if faces_plus_y else np.eye(3))
    rest = np.array((rig.matrix_world @ rig.data.bones[bone].matrix_local).to_3x3().normalized())
    return facing @ turn @ facing.T @ rest


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees of the rotation taking ``a`` to ``b``."""
    return math.degrees(math.acos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0)))


def test_head_pose_turns_the_head_bone_and_the_parts_stay_together(rigged):
    bpy, parts, take = rigged
    rig, meshes = parts["rig"], [parts[k] for k in ("head", "teeth", "eye_left", "eye_right")]
    assert rig.pose.bones["Head"].rotation_mode == "QUATERNION"
    statics = {obj.name: static_vertices(obj) for obj in meshes}
    pose = np.asarray(take["pose"])
    turns = np.degrees(np.abs(pose[:, :3]).max(axis=1))
    frames = [0, int(np.argmax(turns)), take["frames"] // 2, take["frames"] - 1]
    assert turns.max() > 2.0  # the take does turn the head
    bpy.context.scene.frame_set(frames[0])
    rest_points = np.concatenate([world_vertices(bpy, obj, statics[obj.name]) for obj in meshes])
    rest_gaps = np.linalg.norm(rest_points[:, None] - rest_points[None], axis=-1)
    for k in frames:
        bpy.context.scene.frame_set(1 + k)
        points = np.concatenate([world_vertices(bpy, obj, statics[obj.name]) for obj in meshes])
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
        assert np.abs(gaps - rest_gaps).max() < 1e-4  # 0.1 mm
        bone = np.array((rig.matrix_world @ rig.pose.bones["Head"].matrix).to_3x3().normalized())
        assert angle_between(bone, expected_head_rotation(rig, "Head", pose[k])) < 0.5
        for name, obj in parts.items():
            if name != "before":
                np.testing.assert_allclose(np.array(obj.matrix_basis), parts["before"][name], atol=1e-9)


def test_a_character_facing_plus_y_nods_and_tilts_its_own_way(bpy_empty, wire_takes, face_npz):
    """A VRM 0.x character comes out of Blender's glTF importer facing +Y in its armature's space;
    the take's pitch and roll are then the face's own (a nod down tips its face down), not
    mirrored as they were when every character was taken to face -Y."""
    bpy = bpy_empty
    parts = build_character(bpy)
    turn_around(bpy, [obj for obj in parts.values()])
    rig, take = parts["rig"], wire_takes[0]
    find_character(bpy, parts["head"], take["names"])
    generate(bpy, [take], face_npz)
    pose = np.asarray(take["pose"])
    turns = np.degrees(np.abs(pose[:, [0, 2]]).max(axis=1))
    assert turns.max() > 2.0  # the take does nod or tilt
    for k in (int(np.argmax(turns)), take["frames"] // 2):
        bpy.context.scene.frame_set(1 + k)
        bone = np.array((rig.matrix_world @ rig.pose.bones["Head"].matrix).to_3x3().normalized())
        assert angle_between(bone, expected_head_rotation(rig, "Head", pose[k], faces_plus_y=True)) < 0.5
        assert angle_between(bone, expected_head_rotation(rig, "Head", pose[k])) > 1.0
    # Re-render reads the bone back as the take's own turn, through the same frame.
    drawn = module("operators")._take_as_drawn(bpy.context.scene.flowvq.take_items[0])
    np.testing.assert_allclose(np.asarray(drawn["pose"])[:, :3], pose[:, :3], atol=1e-4)


def test_a_body_animation_keeps_playing_beneath_the_take_and_is_moved_only_once(bpy_empty, wire_takes, face_npz):
    """A character whose armature plays an idle (here the spine sways): the take's Action drives the
    head bone, and the idle, moved onto an NLA track of its own, still moves the spine on every
    frame; generating again does not move it a second time."""
    bpy = bpy_empty
    parts = build_character(bpy)
    rig, take = parts["rig"], wire_takes[0]
    spine = rig.pose.bones["Spine"]
    spine.rotation_mode = "XYZ"
    for frame, angle in ((1, 0.0), (15, 0.2), (30, -0.1)):
        spine.rotation_euler = (angle, 0.0, 0.0)
        spine.keyframe_insert("rotation_euler", frame=frame)
    idle = rig.animation_data.action
    idle.name = "Idle"
    spine.rotation_euler = (0.0, 0.0, 0.0)
    find_character(bpy, parts["head"], take["names"])
    for _ in range(2):
        generate(bpy, [take], face_npz)
    anim = rig.animation_data
    assert anim.action is not idle and module("takes").TAKE_PROP in anim.action
    playing = [(t.name, s.action) for t in anim.nla_tracks for s in t.strips]
    assert playing == [("Idle", idle)] and not anim.nla_tracks["Idle"].mute
    head_curve = module("keys").find_curve(anim.action, rig, 'pose.bones["Head"].rotation_quaternion', 0)
    for frame, angle in ((15, 0.2), (30, -0.1)):
        bpy.context.scene.frame_set(frame)
        assert spine.rotation_euler.x == pytest.approx(angle, abs=1e-6)
        assert rig.pose.bones["Head"].rotation_quaternion[0] == pytest.approx(head_curve.evaluate(frame), abs=1e-6)


def test_the_preview_plane_stands_beside_the_head_in_world_space(rigged):
    bpy, parts, _ = rigged
    plane = bpy.context.scene.flowvq.preview_plane
    bpy.context.view_layer.update()
    head = world_vertices(bpy, parts["head"], np.arange(len(parts["head"].data.vertices)))
    height = head[:, 2].max() - head[:, 2].min()
    centre = np.array(plane.matrix_world.translation)
    gap = max(centre[0] - plane.scale.x / 2 - head[:, 0].max(), 0.0)
    assert gap < height
    assert abs(centre[2] - (head[:, 2].max() + head[:, 2].min()) / 2) < height
    assert abs(centre[1] - head[:, 1].mean()) < height
    assert plane.dimensions.z == pytest.approx(height, rel=0.35)  # sized to the face the keys move


def test_the_preview_plane_of_a_character_facing_plus_y_faces_its_viewer_on_its_right(
        bpy_empty, wire_takes, face_npz, tmp_path):
    """Seen from in front of a character that looks along +Y, the plane shows its image unmirrored
    (it is turned half round, its front to +Y) and stands to the viewer's right (-X)."""
    bpy = bpy_empty
    parts = build_character(bpy)
    turn_around(bpy, [obj for obj in parts.values()])
    take = wire_takes[0]
    find_character(bpy, parts["head"], take["names"])
    generate(bpy, [take], face_npz, {0: write_frames(bpy, tmp_path / "take_0", take["frames"])})
    plane = bpy.context.scene.flowvq.preview_plane
    bpy.context.view_layer.update()
    front = np.array(plane.matrix_world.to_3x3()) @ np.array([0.0, -1.0, 0.0])  # the image's side
    np.testing.assert_allclose(front, [0.0, 1.0, 0.0], atol=1e-6)
    head = world_vertices(bpy, parts["head"], np.arange(len(parts["head"].data.vertices)))
    height = head[:, 2].max() - head[:, 2].min()
    centre = np.array(plane.matrix_world.translation)
    assert 0.0 < head[:, 0].min() - (centre[0] + plane.scale.x / 2) < height


def test_regenerating_keeps_the_edit_the_rows_and_the_artists_longer_range(rigged, wire_takes, face_npz):
    bpy, parts, take = rigged
    scene, props, keys = bpy.context.scene, bpy.context.scene.flowvq, module("keys")
    edited = props.take_items[0].bindings[0].action
    curve = keys.find_curve(edited, parts["head"].data.shape_keys, 'key_blocks["jawOpen"].value')
    curve.keyframe_points[5].co.y = 0.9
    scene.frame_end = 400  # the artist lengthens the range
    status = generate(bpy, wire_takes, face_npz)
    assert "1 take(s) renamed: the take of that name was edited or is another character's" in status
    assert curve.keyframe_points[5].co.y == pytest.approx(0.9)
    names = [item.name for item in props.take_items]
    assert len(names) == len(set(names)) == 3
    assert all(b.action is not None and b.obj is not None for item in props.take_items for b in item.bindings)
    assert edited in {b.action for b in props.take_items[names.index("FlowVQ happy s3 t0")].bindings}
    assert (scene.frame_start, scene.frame_end) == (1, 400)
    status = generate(bpy, wire_takes, face_npz)  # again: the unedited takes are rewritten in place
    assert [item.name for item in props.take_items] == names


def test_takes_to_nla_then_regenerating_leaves_no_strip_without_an_action(rigged, wire_takes, face_npz):
    bpy, parts, _ = rigged
    props = bpy.context.scene.flowvq
    generate(bpy, wire_takes, face_npz)
    assert bpy.ops.flowvq.takes_to_nla() == {"FINISHED"}
    for item in props.take_items:
        for binding in item.bindings:
            if binding.what == "POSE":
                assert binding.obj == parts["rig"]
    generate(bpy, wire_takes, face_npz)
    owners = [parts["head"].data.shape_keys, parts["teeth"].data.shape_keys, parts["rig"]]
    for owner in owners:
        tracks = owner.animation_data.nla_tracks
        assert len(tracks) == len(props.take_items)
        assert all(strip.action is not None for track in tracks for strip in track.strips)
    bpy.data.actions.remove(props.take_items[1].bindings[0].action)  # the artist deletes a take's Action
    status = generate(bpy, wire_takes[:1], face_npz)
    assert "1 take(s) whose Actions were deleted removed from the list" in status
    assert [item.name for item in props.take_items] == ["FlowVQ happy s3 t0"]
    assert all(b.action is not None for item in props.take_items for b in item.bindings)
    for owner in owners:
        assert all(strip.action is not None for track in owner.animation_data.nla_tracks for strip in track.strips)


def test_rerender_reads_the_head_bone_back_as_the_takes_rotation(rigged):
    bpy, _, take = rigged
    props = bpy.context.scene.flowvq
    drawn = module("operators")._take_as_drawn(props.take_items[0])
    np.testing.assert_allclose(np.asarray(drawn["pose"])[:, :3], np.asarray(take["pose"])[:, :3], atol=1e-4)
    on_head = [take["names"].index(n) for n in ("jawOpen", "mouthClose", "eyeBlinkLeft", "eyeBlinkRight",
                                                "mouthSmileLeft", "browInnerUp", "mouthFunnel")]
    exp, drawn_exp = np.asarray(take["exp"]), np.asarray(drawn["exp"])
    np.testing.assert_allclose(drawn_exp[:, on_head], exp[:, on_head], atol=1e-5)
    others = np.setdiff1d(np.arange(exp.shape[1]), [take["names"].index(n) for n in (
        "jawOpen", "mouthClose", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp",
        "mouthFunnel", "mouthPucker")])
    assert np.all(drawn_exp[:, others] == 0.0)  # names no key of the head carries read 0


@pytest.mark.parametrize("mode", ["QUATERNION", "YXZ"])
def test_a_bust_without_armature_moves_by_its_delta_transforms(bpy_empty, wire_takes, face_npz, mode):
    bpy = bpy_empty
    bust = build_bust(bpy, mode, z=1.6)
    take = wire_takes[0]
    find_character(bpy, bust, take["names"])
    own = (tuple(bust.location), tuple(bust.rotation_quaternion), tuple(bust.rotation_euler))
    generate(bpy, [take], face_npz)
    pose = np.asarray(take["pose"])
    reach = np.abs(pose[:, 3:]).max()
    for k in (0, take["frames"] // 3, take["frames"] - 1):
        bpy.context.scene.frame_set(1 + k)
        assert (tuple(bust.location), tuple(bust.rotation_quaternion), tuple(bust.rotation_euler)) == own
        assert abs(bust.matrix_world.translation.z - 1.6) <= reach + 1e-6
        np.testing.assert_allclose(bust.matrix_world.translation, np.array(own[0]) + np.array(
            [pose[k, 3], -pose[k, 5], pose[k, 4]]), atol=1e-5)
        turn = np.array(bust.matrix_world.to_3x3())
        expected = expected_head_rotation_object(pose[k])
        assert angle_between(turn, expected) < 0.5


def test_a_bust_facing_plus_y_moves_its_own_way(bpy_empty, wire_takes, face_npz):
    """A head mesh without armature whose face is on its +Y side: its delta transforms turn and move
    it as the face model would be, turned half round."""
    bpy = bpy_empty
    bust = build_bust(bpy, "QUATERNION", z=1.6)
    turn_around(bpy, [bust])
    take = wire_takes[0]
    find_character(bpy, bust, take["names"])
    generate(bpy, [take], face_npz)
    pose = np.asarray(take["pose"])
    for k in (take["frames"] // 3, take["frames"] - 1):
        bpy.context.scene.frame_set(1 + k)
        np.testing.assert_allclose(bust.matrix_world.translation, np.array(bust.location) + HALF_TURN @ np.array(
            [pose[k, 3], -pose[k, 5], pose[k, 4]]), atol=1e-5)
        expected = HALF_TURN @ expected_head_rotation_object(pose[k]) @ HALF_TURN
        assert angle_between(np.array(bust.matrix_world.to_3x3()), expected) < 0.5


def test_a_head_mesh_parented_to_the_head_bone_turns_with_the_bone(bpy_empty, wire_takes, face_npz):
    """Rigid game characters (glTF joints carrying meshes) parent the head mesh to the head bone
    rather than skinning it: the take turns that bone, and the mesh's own deltas stay untouched."""
    bpy = bpy_empty
    rig = build_rig(bpy)
    bust = build_bust(bpy, "QUATERNION", z=0.0)
    bust.parent, bust.parent_type, bust.parent_bone = rig, "BONE", "Head"
    bpy.context.view_layer.update()
    take = wire_takes[0]
    find_character(bpy, bust, take["names"])
    generate(bpy, [take], face_npz)
    action = rig.animation_data.action
    assert module("takes").TAKE_PROP in action
    assert module("keys").find_curve(action, rig, 'pose.bones["Head"].rotation_quaternion', 0) is not None
    assert bust.animation_data is None or bust.animation_data.action is None
    pose = np.asarray(take["pose"])
    k = int(np.argmax(np.abs(pose[:, :3]).max(axis=1)))
    bpy.context.scene.frame_set(1 + k)
    bone = np.array((rig.matrix_world @ rig.pose.bones["Head"].matrix).to_3x3().normalized())
    assert angle_between(bone, expected_head_rotation(rig, "Head", pose[k])) < 0.5


def test_a_busts_own_animation_keeps_playing_beneath_the_takes_deltas(bpy_empty, wire_takes, face_npz):
    """A head object that slides along X in an Action of its own keeps sliding; the take's head
    pose lands on its delta transforms on top."""
    bpy = bpy_empty
    bust = build_bust(bpy, "QUATERNION", z=1.6)
    for frame, x in ((1, 0.5), (20, 0.8)):
        bust.location.x = x
        bust.keyframe_insert("location", index=0, frame=frame)
    slide = bust.animation_data.action
    take = wire_takes[0]
    find_character(bpy, bust, take["names"])
    generate(bpy, [take], face_npz)
    assert bust.animation_data.action is not slide
    assert [s.action for t in bust.animation_data.nla_tracks for s in t.strips] == [slide]
    pose = np.asarray(take["pose"])
    bpy.context.scene.frame_set(20)
    assert bust.location.x == pytest.approx(0.8, abs=1e-6)
    assert bust.matrix_world.translation.x == pytest.approx(0.8 + pose[19, 3], abs=1e-5)


def expected_head_rotation_object(pose_row) -> np.ndarray:
    """A bust facing -Y at rest: its world rotation is the pose itself (docs/api.md)."""
    import mathutils

    pitch, yaw, roll = pose_row[:3]
    return np.array(mathutils.Euler((pitch, -roll, yaw), "XZY").to_matrix())


def test_selecting_a_mesh_makes_it_the_target_unless_the_artist_picked_one(bpy_empty):
    bpy = bpy_empty
    parts = build_character(bpy)
    props = bpy.context.scene.flowvq
    character = module("character")
    assert character.follow_selection(props, parts["teeth"]) and props.target == parts["teeth"]
    assert not props.target_pinned
    assert not character.follow_selection(props, parts["rig"])  # not a mesh with shape keys
    props.target = parts["head"]  # the artist picks in the panel
    assert props.target_pinned
    assert not character.follow_selection(props, parts["teeth"]) and props.target == parts["head"]


def test_a_named_head_bone_that_does_not_exist_is_refused_before_anything_changes(bpy_empty, wire_takes, face_npz):
    bpy = bpy_empty
    parts = build_character(bpy)
    find_character(bpy, parts["head"], wire_takes[0]["names"])
    bpy.context.scene.flowvq.head_bone = "CC_Base_Head"
    actions = len(bpy.data.actions)
    with pytest.raises(ValueError, match="has no bone 'CC_Base_Head'"):
        generate(bpy, wire_takes[:1], face_npz)
    assert len(bpy.data.actions) == actions and len(bpy.context.scene.flowvq.take_items) == 0
    assert json.loads(bpy.context.scene.flowvq.model_names) == wire_takes[0]["names"]


# SAMPA phones (as espeak-ng writes them for the US MBROLA voices) that close the lips, and the open
# vowels that drop the jaw.
BILABIAL_PHONES = {"p", "b", "m", "p_h"}
OPEN_VOWELS = {"A", "A:", "V", "{", "aI", "aU", "AI", "Q", "O"}


def phone_frames(phones, symbols: set[str], fps: float) -> list[np.ndarray]:
    """For each phone in ``symbols``, the take frames its span covers. Shapes: each (N,)."""
    return [np.arange(int(start * fps), max(int(np.ceil(end * fps)), int(start * fps) + 1))
            for symbol, start, end in phones if symbol in symbols]


def test_a_viseme_only_rig_closes_on_bilabials_and_opens_on_open_vowels(bpy_empty, phoned_take, face_npz):
    from .characters import build_viseme_head

    bpy = bpy_empty
    take, phones = phoned_take
    head = build_viseme_head(bpy)
    find_character(bpy, head, take["names"])
    rows = {row.name: row.terms for row in bpy.context.scene.flowvq.mapping}
    assert rows["viseme_PP"] == "viseme:PP" and rows["eyeBlinkLeft"] == "eyeBlinkLeft"
    generate(bpy, [take], face_npz)
    action = module("keys").assigned_action(head.data.shape_keys)
    curves = {name: np.array([module("keys").find_curve(action, head.data.shape_keys,
                                                        f'key_blocks["{name}"].value').evaluate(1.0 + k)
                              for k in range(take["frames"])]) for name in ("viseme_PP", "viseme_aa")}
    bilabials = phone_frames(phones, BILABIAL_PHONES, take["fps"])
    vowels = phone_frames(phones, OPEN_VOWELS, take["fps"])
    assert len(bilabials) >= 6 and len(vowels) >= 4
    near = lambda frames, k: np.clip(np.arange(frames[0] - k, frames[-1] + k + 1), 0, take["frames"] - 1)
    pp_at_bilabials = np.array([curves["viseme_PP"][near(f, 2)].max() for f in bilabials])
    pp_at_vowels = np.array([curves["viseme_PP"][f].mean() for f in vowels])
    aa_at_vowels = np.array([curves["viseme_aa"][near(f, 1)].max() for f in vowels])
    aa_at_bilabials = np.array([curves["viseme_aa"][f].mean() for f in bilabials])
    assert np.median(pp_at_bilabials) > 3 * max(np.median(pp_at_vowels), 0.02)
    assert np.median(aa_at_vowels) > 3 * max(np.median(aa_at_bilabials), 0.02)
    assert (pp_at_bilabials > 0.3).mean() >= 0.6  # most bilabials are sealed on the rig


def test_a_happy_takes_smile_goes_to_the_vrm_joy_key_and_leaves_the_vowels_their_own(bpy_empty, phoned_take, face_npz):
    """On a VRM rig a happy take's smile is shown by its Joy key; the vowels' projection leaves it
    out, so an open vowel keys A, not the I that the smile alone would read as."""
    from .characters import build_vrm_head

    bpy = bpy_empty
    take, phones = phoned_take
    exp = np.array(take["exp"], dtype=np.float64)
    for side in ("mouthSmileLeft", "mouthSmileRight"):
        exp[:, take["names"].index(side)] = 0.8  # the smile a happy take holds through its words
    head = build_vrm_head(bpy)
    find_character(bpy, head, take["names"])
    rows = {row.name: row.terms for row in bpy.context.scene.flowvq.mapping}
    assert rows["A"] == "viseme:aa" and "mouthSmileLeft" in rows["Joy"]
    generate(bpy, [{**take, "exp": exp.tolist()}], face_npz)
    action = module("keys").assigned_action(head.data.shape_keys)
    curves = {name: np.array([module("keys").find_curve(action, head.data.shape_keys,
                                                        f'key_blocks["{name}"].value').evaluate(1.0 + k)
                              for k in range(take["frames"])]) for name in ("A", "I", "Joy")}
    vowels = np.concatenate(phone_frames(phones, {"A", "A:", "{", "aI", "aU"}, take["fps"]))
    assert curves["Joy"].min() > 0.6
    assert np.median(curves["A"][vowels]) > 2 * max(np.median(curves["I"][vowels]), 0.02)


def test_a_vrm_heads_look_keys_move_its_eyes_as_the_take_does(bpy_empty, wire_takes, face_npz):
    """A generated take moves its eyes (the gaze layer), and a VRM head's LookLeft/LookRight keys
    follow them: LookLeft is the mean of the left eye's out and the right eye's in."""
    from .characters import build_vrm_head

    bpy = bpy_empty
    take = wire_takes[0]
    head = build_vrm_head(bpy, ("LookUp", "LookDown", "LookLeft", "LookRight"))
    find_character(bpy, head, take["names"])
    generate(bpy, [take], face_npz)
    action = module("keys").assigned_action(head.data.shape_keys)
    curves = {name: np.array([module("keys").find_curve(action, head.data.shape_keys,
                                                        f'key_blocks["{name}"].value').evaluate(1.0 + k)
                              for k in range(take["frames"])]) for name in ("LookLeft", "LookRight")}
    left = 0.5 * (column(take, "eyeLookOutLeft") + column(take, "eyeLookInRight"))
    np.testing.assert_allclose(curves["LookLeft"], left, atol=1e-4)
    assert max(curves["LookLeft"].max(), curves["LookRight"].max()) > 0.1  # the eyes turn by degrees
    assert (np.minimum(curves["LookLeft"], curves["LookRight"]) < 0.01).mean() > 0.9  # one way at a time


def export_as_index_named_vrm(bpy, obj, path) -> None:
    """Export ``obj`` with Blender's glTF exporter, then lay its morph-target names out as some VRM
    0.x exporters do: only indices ("0", "1", ...) on the primitive, no names on the mesh (where
    Blender's importer looks), each key's name kept as the blend-shape group that binds it alone."""
    import struct

    obj.select_set(True)
    bpy.ops.export_scene.gltf(filepath=str(path.with_suffix(".glb")), use_selection=True, export_format="GLB")
    data = path.with_suffix(".glb").read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    document, rest = json.loads(data[20:20 + length]), data[20 + length:]
    mesh = document["meshes"][0]
    names = mesh.pop("extras")["targetNames"]
    mesh["primitives"][0]["extras"] = {"targetNames": [str(i) for i in range(len(names))]}
    document.setdefault("extensionsUsed", []).append("VRM")
    document["extensions"] = {"VRM": {"blendShapeMaster": {"blendShapeGroups": [
        {"name": name, "presetName": name.lower(), "binds": [{"mesh": 0, "index": i, "weight": 100}]}
        for i, name in enumerate(names)]}}}
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + rest
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body)


def test_a_vrm_whose_key_names_the_importer_dropped_is_named_from_the_file_and_then_driven(
        bpy_empty, wire_takes, face_npz, tmp_path):
    """Blender's glTF importer names a VRM's shape keys target_0, ... when the file keeps their
    names only in its expressions: Find Character says so and what to do; Name Keys From File
    reads them back from the .vrm, and the vowels and the Joy key are driven."""
    from .characters import build_vrm_head

    bpy = bpy_empty
    head = build_vrm_head(bpy)
    export_as_index_named_vrm(bpy, head, tmp_path / "hero.vrm")
    bpy.data.objects.remove(head)
    (tmp_path / "hero_import.glb").write_bytes((tmp_path / "hero.vrm").read_bytes())
    assert bpy.ops.import_scene.gltf(filepath=str(tmp_path / "hero_import.glb")) == {"FINISHED"}
    imported = next(obj for obj in bpy.data.objects if obj.type == "MESH" and obj.data.shape_keys)
    keys = imported.data.shape_keys.key_blocks
    assert [b.name for b in keys][1:] == [f"target_{i}" for i in range(7)]  # what users of the plain importer get
    names = wire_takes[0]["names"]
    find_character(bpy, imported, names)
    props = bpy.context.scene.flowvq
    assert props.parts[0].driven == 0 and "Name Keys From File" in props.status

    (tmp_path / "notes.vrm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    with pytest.raises(RuntimeError, match="not a glTF or VRM file"):
        bpy.ops.flowvq.name_keys(filepath=str(tmp_path / "notes.vrm"))
    assert keys[1].name == "target_0"  # nothing renamed by a bad file

    assert bpy.ops.flowvq.name_keys(filepath=str(tmp_path / "hero.vrm")) == {"FINISHED"}
    assert [b.name for b in keys][1:] == ["A", "I", "U", "E", "O", "Blink", "Joy"]
    with pytest.raises(RuntimeError, match="no unnamed shape keys"):
        bpy.ops.flowvq.name_keys(filepath=str(tmp_path / "hero.vrm"))
    assert props.status.startswith(f"named 7 on {imported.name} from hero.vrm; mapped as vrm")
    rows = {row.name: row.terms for row in props.mapping}
    assert rows["A"] == "viseme:aa" and "mouthSmileLeft" in rows["Joy"] and props.parts[0].driven == 7
    assert generate(bpy, wire_takes[:1], face_npz).startswith("1 take(s) generated")


def test_a_mapping_saved_as_a_json_preset_loads_back_and_a_bad_file_changes_nothing(bpy_empty, wire_takes, tmp_path):
    bpy = bpy_empty
    parts = build_character(bpy)
    find_character(bpy, parts["head"], wire_takes[0]["names"])
    props = bpy.context.scene.flowvq
    props.mapping["mouthSmileLeft"].terms = "0.5*mouthSmileLeft + 0.5*mouthSmileRight"
    saved = {row.name: row.terms for row in props.mapping if row.terms}
    assert bpy.ops.flowvq.save_mapping(filepath=str(tmp_path / "rig.json")) == {"FINISHED"}
    assert json.loads((tmp_path / "rig.json").read_text())["keys"]["mouthSmileLeft"] == {
        "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}
    props.mapping.clear()
    assert bpy.ops.flowvq.load_mapping(filepath=str(tmp_path / "rig.json")) == {"FINISHED"}
    assert {row.name: row.terms for row in props.mapping} == saved and props.preset == "CUSTOM"
    (tmp_path / "bad.json").write_text('{"keys": {"jawOpen": {"jawOpen": "lots"}}}')
    with pytest.raises(RuntimeError, match="cannot load the mapping"):
        bpy.ops.flowvq.load_mapping(filepath=str(tmp_path / "bad.json"))
    assert {row.name: row.terms for row in props.mapping} == saved


@pytest.mark.parametrize("mode", ["XYZ", "AXIS_ANGLE"])
def test_a_centimetre_rig_with_an_euler_or_axis_angle_head_bone_turns_and_moves_the_head_in_metres(
        bpy_empty, wire_takes, face_npz, mode):
    """Character Creator / Mixamo imports: an armature scaled 0.01 with bones in centimetres, the head
    bone in another rotation mode; with translation on, the head moves by the take's metres."""
    from .characters import disconnect, in_centimetres

    bpy = bpy_empty
    parts = build_character(bpy)
    in_centimetres(bpy, parts)
    rig, take = parts["rig"], wire_takes[0]
    rig.pose.bones["Head"].rotation_mode = mode
    find_character(bpy, parts["head"], take["names"])
    bpy.context.scene.flowvq.pose_translation = "ROTATION_TRANSLATION"
    assert "connected to its parent, so Blender does not move it" in generate(bpy, [take], face_npz)
    disconnect(bpy, rig, "Head")  # a head bone that may move
    rest = np.array((rig.matrix_world @ rig.data.bones["Head"].matrix_local).translation)
    generate(bpy, [take], face_npz)
    pose = np.asarray(take["pose"])
    facing = np.array(rig.matrix_world.to_3x3().normalized())
    for k in (int(np.argmax(np.abs(pose[:, 3:]).max(axis=1))), take["frames"] // 2):
        bpy.context.scene.frame_set(1 + k)
        bone = rig.matrix_world @ rig.pose.bones["Head"].matrix
        turned = np.array(bone.to_3x3().normalized())
        assert angle_between(turned, expected_head_rotation(rig, "Head", pose[k])) < 0.5
        moved = facing @ np.array([pose[k, 3], -pose[k, 5], pose[k, 4]])  # the take's metres, in the rig's frame
        np.testing.assert_allclose(np.array(bone.translation) - rest, moved, atol=1e-4)
    assert np.abs(pose[:, 3:]).max() > 1e-3  # the take does move the head


def test_a_bust_in_axis_angle_mode_is_refused_with_what_to_do_and_nothing_changes(bpy_empty, wire_takes, face_npz):
    """Blender has no delta axis-angle: the pose would have to overwrite the artist's own rotation."""
    bpy = bpy_empty
    bust = build_bust(bpy, "AXIS_ANGLE", z=1.6)
    find_character(bpy, bust, wire_takes[0]["names"])
    bpy.context.scene.flowvq.audio_path = str(SPEECH)
    with pytest.raises(RuntimeError, match="axis-angle mode, which has no delta rotation"):
        bpy.ops.flowvq.generate()  # refused when pressed, before any job starts
    assert module("runner").active.task is None
    assert len(bpy.data.actions) == 0 and bust.animation_data is None
    bpy.context.scene.flowvq.use_pose = False  # what the message offers
    assert generate(bpy, wire_takes[:1], face_npz).startswith("1 take(s) generated")


def test_a_take_of_another_character_with_the_same_name_is_kept(bpy_empty, wire_takes, face_npz):
    """Two characters, one seed: the second's take gets a name of its own; the first keeps its take."""
    bpy = bpy_empty
    take = wire_takes[0]
    first = build_bust(bpy, "QUATERNION", z=1.6)
    find_character(bpy, first, take["names"])
    generate(bpy, [take], face_npz)
    kept = bpy.context.scene.flowvq.take_items[0].bindings[0].action
    fingerprint = module("keys").fingerprint(kept)
    second = build_bust(bpy, "XYZ", z=1.0)
    find_character(bpy, second, take["names"])
    status = generate(bpy, [take], face_npz)
    assert "1 take(s) renamed" in status
    names = [item.name for item in bpy.context.scene.flowvq.take_items]
    assert names == ["FlowVQ happy s3 t0", "FlowVQ happy s3 t0.001"]
    assert module("keys").fingerprint(kept) == fingerprint  # the first character's curves untouched
    assert [b.obj for b in bpy.context.scene.flowvq.take_items[0].bindings] == [first, first]


def eye_turn(take: dict, side: str) -> np.ndarray:
    """The eye's pose rows that the take's eyeLook curves describe (1 = 30 degrees sideways, 25 up or
    down; yaw toward the character's left, pitch down), written out here from docs/addon.md rather
    than read from the add-on. Shapes: -> (T, 6)."""
    look = {d: column(take, f"eyeLook{d}{side}") for d in ("In", "Out", "Up", "Down")}
    toward_left = look["Out"] - look["In"] if side == "Left" else look["In"] - look["Out"]
    rows = np.zeros((take["frames"], 6))
    rows[:, 0], rows[:, 1] = np.radians(25.0) * (look["Down"] - look["Up"]), np.radians(30.0) * toward_left
    return rows


def eye_centre(rig, bone: str) -> np.ndarray:
    """A pose bone's head in world space as evaluated now. Shapes: -> (3,)."""
    return np.array((rig.matrix_world @ rig.pose.bones[bone].matrix).translation)


def world_rotation(rig, bone: str) -> np.ndarray:
    """A pose bone's world rotation as evaluated now. Shapes: -> (3, 3)."""
    return np.array((rig.matrix_world @ rig.pose.bones[bone].matrix).to_3x3().normalized())


@pytest.mark.parametrize("with_pose, faces_plus_y, turn", [(True, False, 1.0), (False, False, 0.4), (True, True, 1.0)])
def test_vroid_eye_bones_turn_the_eyeballs_as_the_takes_gaze_on_top_of_the_head(
        bpy_empty, wire_takes, face_npz, with_pose, faces_plus_y, turn):
    """A VRoid Studio character's eyeballs have no look keys: its J_Adj_*_FaceEye bones turn with the
    take's eyeLook curves, on top of the head's turn, and the eyeball looks toward the character's
    left when its left eye looks out, also on a character facing +Y (as VRM 0.x comes into Blender);
    with the head pose off the bones still turn and Re-render reads no head pose; Eye Turn scales the
    turn; Re-render reads the bones back as the take's eyeLook curves."""
    from .characters import add_eye_bones

    bpy = bpy_empty
    parts = build_character(bpy)
    add_eye_bones(bpy, parts, ("J_Adj_L_FaceEye", "J_Adj_R_FaceEye"), keep_look_keys=False)
    if faces_plus_y:
        turn_around(bpy, [obj for obj in parts.values()])
    rig, take = parts["rig"], wire_takes[0]
    find_character(bpy, parts["head"], take["names"])
    bpy.context.scene.flowvq.use_pose, bpy.context.scene.flowvq.eye_turn = with_pose, turn
    facing = np.array(rig.matrix_world.to_3x3().normalized()) @ (HALF_TURN if faces_plus_y else np.eye(3))
    eyeball = world_vertices(bpy, parts["eye_left"], np.arange(len(parts["eye_left"].data.vertices)))
    pupil = np.array([int(np.argmax(eyeball @ facing[:, 1] * -1.0))])  # the eyeball's front: the face looks along -Y
    rest_look = facing.T @ (world_vertices(bpy, parts["eye_left"], pupil)[0] - eye_centre(rig, "J_Adj_L_FaceEye"))
    status = generate(bpy, [take], face_npz)
    assert "eyes turned by the bones 'J_Adj_L_FaceEye' and 'J_Adj_R_FaceEye'" in status
    pose = np.asarray(take["pose"]) if with_pose else np.zeros((take["frames"], 6))
    head_rest = np.array((rig.matrix_world @ rig.data.bones["Head"].matrix_local).to_3x3().normalized())
    rows = {side: turn * eye_turn(take, side) for side in ("Left", "Right")}
    sideways = np.abs(rows["Left"][:, 1])
    assert np.degrees(sideways.max()) > 2.0  # the take's gaze does turn the eyes
    for k in (int(np.argmax(sideways)), int(np.argmax(np.abs(rows["Left"][:, 0]))), take["frames"] // 2):
        bpy.context.scene.frame_set(1 + k)
        head_turn = world_rotation(rig, "Head") @ head_rest.T
        np.testing.assert_allclose(head_turn, expected_head_rotation(rig, "Head", pose[k], faces_plus_y) @ head_rest.T,
                                   atol=1e-2)
        for side, bone in (("Left", "J_Adj_L_FaceEye"), ("Right", "J_Adj_R_FaceEye")):
            expected = head_turn @ expected_head_rotation(rig, bone, rows[side][k], faces_plus_y)
            assert angle_between(world_rotation(rig, bone), expected) < 0.5, (k, side)
    k = int(np.argmax(rows["Left"][:, 1]))  # the left eye's furthest look toward the character's left
    bpy.context.scene.frame_set(1 + k)
    head_turn = world_rotation(rig, "Head") @ head_rest.T
    front = world_vertices(bpy, parts["eye_left"], pupil)[0] - eye_centre(rig, "J_Adj_L_FaceEye")
    look = facing.T @ head_turn.T @ front
    assert rows["Left"][k, 1] > 0.02 and look[0] - rest_look[0] > 0.0  # toward the face's +X, its left
    item = bpy.context.scene.flowvq.take_items[0]
    assert [b.what for b in item.bindings if b.obj == rig] == ["POSE"] and item.head_pose == with_pose
    owner, _ = module("apply").take_owner(item)
    assert (owner is not None) == with_pose
    drawn = module("operators")._take_as_drawn(item)
    np.testing.assert_allclose(np.asarray(drawn["pose"])[:, :3], pose[:, :3], atol=1e-4)
    for side in ("Left", "Right"):  # the bones read back as the take's net turn (one of each pair kept)
        for a, b in (("Out", "In"), ("Down", "Up")):
            net = [column(t, f"eyeLook{a}{side}") - column(t, f"eyeLook{b}{side}") for t in (drawn, take)]
            np.testing.assert_allclose(net[0], net[1], atol=1e-3, err_msg=f"{a} - {b} {side}")


def test_eye_bones_turn_only_the_ways_no_look_key_turns_the_eyeball(bpy_empty, wire_takes, face_npz):
    """An older Ready Player Me avatar's eye meshes, skinned to LeftEye/RightEye, turn up and down by
    their own look keys and have none for sideways: the keys keep the vertical turn, the bones take
    only the sideways one (turning both ways would turn the eyes up and down twice)."""
    from .characters import add_eye_bones

    bpy = bpy_empty
    parts = build_character(bpy)
    add_eye_bones(bpy, parts, ("LeftEye", "RightEye"), keep_look_keys=True)  # eyeLookUp/Down keys only
    rig, take = parts["rig"], wire_takes[0]
    find_character(bpy, parts["head"], take["names"])
    assert "eyes turned by the bones 'LeftEye' and 'RightEye'" in generate(bpy, [take], face_npz)
    assert module("keys").assigned_action(parts["eye_left"].data.shape_keys) is not None  # the keys turn up/down
    head_rest = np.array((rig.matrix_world @ rig.data.bones["Head"].matrix_local).to_3x3().normalized())
    rows = {side: eye_turn(take, side) for side in ("Left", "Right")}
    for side in rows:
        rows[side][:, 0] = 0.0  # no pitch on the bones
    assert np.degrees(np.abs(eye_turn(take, "Left")[:, 0]).max()) > 1.0  # though the take looks up and down
    for k in (int(np.argmax(np.abs(rows["Left"][:, 1]))), int(np.argmax(np.abs(eye_turn(take, "Left")[:, 0])))):
        bpy.context.scene.frame_set(1 + k)
        head_turn = world_rotation(rig, "Head") @ head_rest.T
        for side, bone in (("Left", "LeftEye"), ("Right", "RightEye")):
            expected = head_turn @ expected_head_rotation(rig, bone, rows[side][k])
            assert angle_between(world_rotation(rig, bone), expected) < 0.5, (k, side)
    drawn = module("operators")._take_as_drawn(bpy.context.scene.flowvq.take_items[0])
    net = [column(t, "eyeLookOutLeft") - column(t, "eyeLookInLeft") for t in (drawn, take)]
    np.testing.assert_allclose(net[0], net[1], atol=1e-3)  # the bones read back sideways
    assert not column(drawn, "eyeLookUpLeft").any()  # and not up or down: the keys on the eye carry those


def test_eye_bones_are_left_alone_where_look_keys_turn_the_eyeballs_every_way_or_they_move_nothing(
        bpy_empty, wire_takes, face_npz):
    """Ready Player Me's eye meshes turn every way by their own eyeLook keys: turning the bones too
    would turn the eyes twice; the Eye Bones box off leaves VRoid's alone too, and so does a rig whose
    eye bones deform nothing (its eyeballs weighted to the head)."""
    from .characters import add_eye_bones

    bpy = bpy_empty
    take = wire_takes[0]
    for names, looks, skin, box in ((("LeftEye", "RightEye"), "all", True, True),
                                    (("J_Adj_L_FaceEye", "J_Adj_R_FaceEye"), "none", True, False),
                                    (("J_Adj_L_FaceEye", "J_Adj_R_FaceEye"), "none", False, True)):
        bpy.ops.wm.read_homefile(use_empty=True)
        parts = build_character(bpy)
        add_eye_bones(bpy, parts, names, keep_look_keys=looks == "all", skin=skin, sideways_keys=looks == "all")
        find_character(bpy, parts["head"], take["names"])
        bpy.context.scene.flowvq.eye_bones = box
        assert "eyes turned" not in generate(bpy, [take], face_npz), names
        action = module("keys").assigned_action(parts["rig"])
        assert {c.data_path for c in module("keys").curves_for(action, parts["rig"], create=False)} == {
            'pose.bones["Head"].rotation_quaternion'}
