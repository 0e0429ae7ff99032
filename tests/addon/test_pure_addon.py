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
