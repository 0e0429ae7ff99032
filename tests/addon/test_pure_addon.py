"""The add-on's pure modules, without Blender: they never import bpy, and the frame-range rule."""

import numpy as np
import pytest

from .pure import PURE, imported_names, pure_module

BLENDER_ONLY = {"bpy", "bpy_extras", "mathutils"}


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_never_import_blender(name):
    """Directly or through the add-on's other modules."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        seen.add(current)
        names = imported_names(current)
        assert not names & BLENDER_ONLY, f"addon/{current}.py imports {names & BLENDER_ONLY}"
        todo += [n[1:] for n in names if n.startswith(".") and n[1:] and n[1:] not in seen]
    assert pure_module(name).__name__.endswith(name)


def test_an_untouched_range_becomes_the_takes_and_an_artists_range_only_grows():
    timing = pure_module("timing")
    assert timing.frame_range_for((1, 250), None, 1, 115) == timing.FrameRange(1, 115)
    assert timing.frame_range_for((1, 115), (1, 115), 1, 90) == timing.FrameRange(1, 90)  # still the add-on's
    kept = timing.frame_range_for((1, 400), (1, 115), 1, 192)  # the artist lengthened it
    assert (kept.start, kept.end, kept.note) == (1, 400, "")
    grown = timing.frame_range_for((10, 100), (1, 115), 1, 192)
    assert (grown.start, grown.end) == (1, 192) and "extended to 1-192" in grown.note
    assert timing.frame_range_for((1, 250), (1, 115), 1, 90).end == 250  # 1-250 set by the artist now


def test_resampling_keeps_the_duration_and_the_sampled_values():
    rows = np.stack([np.arange(26) / 25.0, np.full(26, 2.0)], axis=1)  # 1 s at 25 fps, value = time
    out = pure_module("timing").resample(rows, 25.0, 30.0)
    assert out.shape == (31, 2)
    np.testing.assert_allclose(out[:, 0], np.arange(31) / 30.0)
    np.testing.assert_allclose(out[:, 1], 2.0)


@pytest.mark.parametrize("bones, head", [
    (["Hips", "Spine", "Neck", "Head", "HeadTop_End", "LeftEye"], "Head"),  # Ready Player Me
    (["MCH-ROT-head", "ORG-head", "DEF-head", "MCH-head", "head", "neck"], "head"),  # Rigify: the control
    (["DEF-spine", "DEF-neck", "DEF-head"], "DEF-head"),  # a deform-only export
    (["mixamorig:Neck", "mixamorig:Head", "mixamorig:HeadTop_End"], "mixamorig:Head"),
    (["CC_Base_NeckTwist01", "CC_Base_Head", "CC_Base_FacialBone"], "CC_Base_Head"),
    (["J_Bip_C_Neck", "J_Bip_C_Head"], "J_Bip_C_Head"),
    (["root", "neck.x", "head.x"], "head.x"),  # Auto-Rig Pro
    (["Hips", "Spine", "Neck"], "Neck"),  # no head bone: the neck
    (["Hips", "ORG-head"], ""),  # only a bone that follows constraints
])
def test_the_head_bone_is_found_by_the_names_rigs_give_it(bones, head):
    assert pure_module("retarget").head_bone(bones) == head


@pytest.mark.parametrize("bones, eyes", [
    (["J_Bip_C_Head", "J_Adj_L_FaceEye", "J_Adj_R_FaceEye", "J_Adj_L_FaceEyeSet"],
     ("J_Adj_L_FaceEye", "J_Adj_R_FaceEye")),
    (["mixamorig:Head", "mixamorig:LeftEye", "mixamorig:RightEye"], ("mixamorig:LeftEye", "mixamorig:RightEye")),
    (["Head", "HeadTop_End", "LeftEye", "RightEye"], ("LeftEye", "RightEye")),  # Ready Player Me
    (["CC_Base_Head", "CC_Base_L_Eye", "CC_Base_R_Eye", "CC_Base_L_Eye_Parent"], ("CC_Base_L_Eye", "CC_Base_R_Eye")),
    (["head", "lEye", "rEye", "lEyelidUpper"], ("lEye", "rEye")),  # Daz
    (["FACIAL_L_Eye", "FACIAL_R_Eye", "FACIAL_L_EyelidUpperA"], ("FACIAL_L_Eye", "FACIAL_R_Eye")),  # MetaHuman
    (["c_eye.l", "c_eye.r", "c_eye_target.l", "c_eye_offset.l"], ("c_eye.l", "c_eye.r")),  # Auto-Rig Pro
    (["DEF-eye.L", "eye.L", "eye.R"], ("eye.L", "eye.R")),  # the posed bone before a deform copy
    (["eye.L", "eye.R", "MCH-eye.L", "MCH-eye.R", "ORG-eye.L"], ("", "")),  # Rigify: eye.L is the eye's target
    (["Head", "Eyeball_L", "EyeLid_L", "eye_target"], ("Eyeball_L", "")),  # one side only
    (["Head", "Neck", "Eyebrow_L"], ("", "")),
])
def test_eye_bones_are_found_by_the_names_rigs_give_them(bones, eyes):
    assert pure_module("retarget").eye_bones(bones) == eyes


def test_eye_turns_follow_the_look_curves_toward_the_characters_left_and_down():
    posemath = pure_module("posemath")
    names = ["jawOpen", "eyeLookOutLeft", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutRight", "eyeLookDownLeft",
             "eyeLookUpLeft"]
    exp = np.array([[0.9, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # the left eye out: to the character's left
                    [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0],   # the left eye in (right), the right eye in (left)
                    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.4]])  # the left eye down, a little up
    left, right = posemath.eye_pose_rows(exp, names, "Left"), posemath.eye_pose_rows(exp, names, "Right")
    np.testing.assert_allclose(np.degrees(left[:, :2]), [[0.0, 30.0], [0.0, -15.0], [15.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(np.degrees(right[:, :2]), [[0.0, 0.0], [0.0, 15.0], [0.0, 0.0]], atol=1e-9)
    assert not left[:, 2:].any() and not right[:, 2:].any()  # no roll, no translation
    assert not posemath.eye_pose_rows(exp[:, :1], names[:1], "Left").any()  # no look curves: no turn
    back = posemath.look_curves(left, "Left")
    for name, values in (("eyeLookOutLeft", [1.0, 0.0, 0.0]), ("eyeLookInLeft", [0.0, 0.5, 0.0]),
                         ("eyeLookDownLeft", [0.0, 0.0, 0.6]), ("eyeLookUpLeft", [0.0, 0.0, 0.0])):
        np.testing.assert_allclose(back[name], values, atol=1e-12, err_msg=name)  # down 1 and up 0.4 net 0.6 down
    np.testing.assert_allclose(posemath.look_curves(right, "Right")["eyeLookInRight"], [0.0, 0.5, 0.0], atol=1e-12)
    sideways = posemath.eye_pose_rows(exp, names, "Left", held=frozenset({"eyeLookDownLeft", "eyeLookUpLeft"}))
    np.testing.assert_allclose(sideways[:, 1], left[:, 1])
    assert not sideways[:, 0].any()  # the keys show up and down
    half = posemath.eye_pose_rows(exp, names, "Left", turn=0.5)  # Eye Turn: half the turn, read back whole
    np.testing.assert_allclose(half, 0.5 * left, atol=1e-12)
    np.testing.assert_allclose(posemath.look_curves(half, "Left", turn=0.5)["eyeLookOutLeft"], [1.0, 0.0, 0.0])
