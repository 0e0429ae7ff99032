"""Takes applied to a real Blender scene through the add-on's own code (what Generate's timer
callback runs when the server's job ends): curves, values, takes as Actions, sound, frame range,
preview plane and its frames folders in a moved .blend, keyframe reduction, retargeting, reference
from pose, and a server that is down."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import PACKAGE, SPEECH
from .scenes import FRAME_H, FRAME_W, assert_scene_plays_take, closed_port, write_frames

FPS = 24.0  # the takes fixture is generated at the default scene's 24 fps


def module(name: str):
    """A module of the installed add-on."""
    return sys.modules[f"{PACKAGE}.{name}"]


def snapshot(**changes):
    """A Generate snapshot for the FlowVQ head from frame 1, every frame keyed."""
    fields = dict(audio=SPEECH, add_audio_strip=True, frame_start=1, fps=FPS, create_head=True,
                  parts=(), mapping=None, tolerance=0.0, with_pose=True)
    return module("apply").Snapshot(**{**fields, **changes})


def apply(bpy, takes, face_npz, frame_dirs=None, **changes):
    """Apply a finished job's result (the face model parsed, as the worker thread leaves it) to the
    current scene; returns the status line."""
    result = module("jobs").GenerateResult(takes=takes, frame_dirs=frame_dirs or {},
                                           face_model=module("face").load_face_model(face_npz))
    return module("apply").apply_generate(bpy.context.scene, snapshot(**changes), result)


@pytest.fixture
def generated(bpy_empty, wire_takes, face_npz, tmp_path):
    """An empty scene after a two-take job with preview frames; returns (bpy, head)."""
    bpy = bpy_empty
    dirs = {t["take"]: write_frames(bpy, tmp_path / f"take_{t['take']}", t["frames"]) for t in wire_takes}
    assert apply(bpy, wire_takes, face_npz, dirs).startswith("2 take(s) generated")
    return bpy, bpy.context.scene.flowvq.head


def test_every_name_has_a_shape_key_curve_with_one_key_per_frame(generated, wire_takes):
    bpy, head = generated
    keys = module("keys")
    action = keys.assigned_action(head.data.shape_keys)
    take = wire_takes[0]
    for name in take["names"]:
        curve = keys.find_curve(action, head.data.shape_keys, f'key_blocks["{name}"].value')
        assert curve is not None, name
        assert len(curve.keyframe_points) == take["frames"]


def test_evaluated_values_and_pose_match_the_take_after_frame_set(generated, wire_takes):
    bpy, head = generated
    take = wire_takes[0]
    assert head.rotation_mode == "XZY"
    assert_scene_plays_take(bpy, head, take, 1, [0, 17, 50, take["frames"] - 1], atol=1e-5)


def test_each_take_is_its_own_named_action_and_switching_plays_the_other(generated, wire_takes):
    bpy, head = generated
    props = bpy.context.scene.flowvq
    names = [item.name for item in props.take_items]
    assert names == ["FlowVQ happy s3 t0", "FlowVQ happy s4 t1"]  # take k uses seed + k
    assert [item.bindings[0].action.name for item in props.take_items] == names
    assert all(b.action.use_fake_user for item in props.take_items for b in item.bindings)
    module("apply").switch_take(bpy.context.scene, 1)
    assert_scene_plays_take(bpy, head, wire_takes[1], 1, [10, 60], atol=1e-5)


def test_the_curves_read_back_as_the_take_with_the_hand_edits(generated, wire_takes):
    """What Re-render sends: the active take's curves sampled per frame, edits included."""
    bpy, head = generated
    props, take = bpy.context.scene.flowvq, wire_takes[0]
    item = props.take_items[0]
    jaw = take["names"].index("jawOpen")
    curve = module("keys").find_curve(item.bindings[0].action, head.data.shape_keys, 'key_blocks["jawOpen"].value')
    curve.keyframe_points[10].co.y = 0.9
    sampled = module("operators")._take_as_drawn(item)
    assert {k: sampled[k] for k in ("take", "seed", "emotion", "face_model", "fps", "frames", "names")} == \
        {k: take[k] for k in ("take", "seed", "emotion", "face_model", "fps", "frames", "names")}
    expected = np.array(take["exp"])
    expected[10, jaw] = 0.9
    np.testing.assert_allclose(sampled["exp"], expected, atol=1e-5)
    np.testing.assert_allclose(sampled["pose"], take["pose"], atol=1e-5)


def test_the_frame_range_covers_the_take(generated, wire_takes):
    bpy, _ = generated
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, wire_takes[0]["frames"])


def test_sound_strip_starts_at_the_first_frame(generated):
    bpy, _ = generated
    if not bpy.app.build_options.audaspace:
        pytest.skip("this bpy module has no audio (test_takes_land_without_audio_support_and_the_status_says_so covers it)")
    strips = module("scene").sound_strips(bpy.context.scene)
    assert [s.name for s in strips] == ["FlowVQ audio"]
    assert strips[0].frame_start == 1


def test_takes_land_without_audio_support_and_the_status_says_so(bpy_empty, wire_takes, face_npz):
    bpy = bpy_empty
    if bpy.app.build_options.audaspace:
        pytest.skip("this Blender has audio (test_sound_strip_starts_at_the_first_frame covers it)")
    status = apply(bpy, wire_takes, face_npz)
    assert status == "2 take(s) generated; no sound strip (Blender compiled without Audaspace support)"
    assert len(bpy.context.scene.flowvq.take_items) == 2
    assert module("scene").sound_strips(bpy.context.scene) == []


def test_preview_plane_shows_the_frame_of_the_scene_frame_with_the_image_aspect(generated):
    bpy, head = generated
    plane = bpy.context.scene.flowvq.preview_plane
    node = next(n for n in plane.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    assert node.image.source == "SEQUENCE" and node.image_user.use_auto_refresh
    for frame in (30, 1, 45):
        bpy.context.scene.frame_set(frame)
        evaluated = plane.data.materials[0].evaluated_get(bpy.context.evaluated_depsgraph_get())
        assert evaluated.node_tree.nodes[node.name].image_user.frame_current == frame - 1  # 00000.png first
    assert plane.scale.x / plane.scale.z == pytest.approx(FRAME_W / FRAME_H)
    assert plane.location.x > head.location.x + head.dimensions.x / 2


def test_the_head_is_smooth_shaded(generated):
    _, head = generated
    smooth = np.zeros(len(head.data.polygons), dtype=bool)
    head.data.polygons.foreach_get("use_smooth", smooth)
    assert len(smooth) > 0 and smooth.all()


def plane_frames_folder(bpy) -> Path:
    """The folder the preview plane's image sequence is read from."""
    plane = bpy.context.scene.flowvq.preview_plane
    node = next(n for n in plane.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    return Path(bpy.path.abspath(node.image.filepath)).parent


@pytest.mark.parametrize("saved_before_generating", [True, False], ids=["saved-first", "saved-later"])
def test_switching_takes_in_a_moved_blend_shows_the_frames_beside_it(bpy_empty, wire_takes, face_npz, tmp_path,
                                                                     saved_before_generating):
    bpy = bpy_empty
    project = tmp_path / "project"
    project.mkdir()
    if saved_before_generating:
        bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    root = project / "flowvq_frames"
    apply(bpy, wire_takes, face_npz, {t["take"]: write_frames(bpy, root / f"take_{t['take']}", t["frames"])
                                      for t in wire_takes})
    module("apply").apply_render(bpy.context.scene, 1, write_frames(bpy, root / "render", wire_takes[1]["frames"]))
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    moved = Path(shutil.move(project, tmp_path / "moved"))
    bpy.ops.wm.open_mainfile(filepath=str(moved / "scene.blend"), load_ui=False)
    props = bpy.context.scene.flowvq
    for index, folder in ((1, "render"), (0, "take_0")):
        module("apply").switch_take(bpy.context.scene, index)
        assert plane_frames_folder(bpy) == moved / "flowvq_frames" / folder
        assert all((moved / "flowvq_frames" / folder / f"{k:05d}.png").is_file()
                   for k in range(props.take_items[index].frame_count))


def test_frames_outside_the_blends_folder_keep_their_absolute_path(bpy_empty, wire_takes, face_npz, tmp_path):
    bpy, project = bpy_empty, tmp_path / "project"
    outside = write_frames(bpy, tmp_path / "temp" / "take_0", wire_takes[0]["frames"])  # an unsaved file's frames
    apply(bpy, wire_takes[:1], face_npz, {0: outside})
    project.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    item = bpy.context.scene.flowvq.take_items[0]
    assert item.frames_dir == str(outside)
    inside = write_frames(bpy, project / "flowvq_frames" / "render", wire_takes[0]["frames"])
    module("apply").apply_render(bpy.context.scene, 0, inside)
    assert item.frames_dir == "//flowvq_frames/render"
    (tmp_path / "copy").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "copy" / "scene.blend"), copy=True)
    assert item.frames_dir == "//flowvq_frames/render"  # still relative to the open file
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "copy" / "scene.blend"), load_ui=False)
    assert bpy.context.scene.flowvq.take_items[0].frames_dir == str(inside)


def test_keyframe_reduction_stays_within_tolerance_and_keeps_lip_closures(bpy_empty, wire_takes, face_npz):
    bpy, tolerance = bpy_empty, 0.02
    apply(bpy, wire_takes[:1], face_npz, tolerance=tolerance)
    head, take = bpy.context.scene.flowvq.head, wire_takes[0]
    keys, reduce = module("keys"), module("reduce")
    action = keys.assigned_action(head.data.shape_keys)
    exp = np.asarray(take["exp"])
    closures = reduce.closure_frames(exp, take["names"])
    assert len(closures) > 0
    total = 0
    for d, name in enumerate(take["names"]):
        curve = keys.find_curve(action, head.data.shape_keys, f'key_blocks["{name}"].value')
        evaluated = np.array([curve.evaluate(1.0 + k) for k in range(take["frames"])])
        assert np.abs(evaluated - exp[:, d]).max() <= tolerance + 1e-6, name
        keyed = {round(p.co.x) - 1 for p in curve.keyframe_points}
        assert set(closures.tolist()) <= keyed
        total += len(keyed)
    assert total < 0.5 * len(take["names"]) * take["frames"]


def test_regenerating_keeps_an_action_the_artist_edited_and_the_earlier_heads_takes(generated, wire_takes,
                                                                                    face_npz):
    """Create FlowVQ Head builds a new head each time: the earlier head keeps its takes (edited or
    not), the new head's get names of their own."""
    bpy, head = generated
    keys = module("keys")
    edited = bpy.data.actions["FlowVQ happy s3 t0"]
    untouched = keys.fingerprint(bpy.data.actions["FlowVQ happy s4 t1"])
    curve = keys.find_curve(edited, head.data.shape_keys, 'key_blocks["jawOpen"].value')
    curve.keyframe_points[5].co.y = 0.9
    apply(bpy, wire_takes, face_npz)
    assert bpy.data.actions["FlowVQ happy s3 t0"] == edited
    assert curve.keyframe_points[5].co.y == pytest.approx(0.9)
    assert keys.fingerprint(bpy.data.actions["FlowVQ happy s4 t1"]) == untouched
    names = [item.name for item in bpy.context.scene.flowvq.take_items]
    assert names == ["FlowVQ happy s3 t0", "FlowVQ happy s4 t1", "FlowVQ happy s3 t0.001", "FlowVQ happy s4 t1.001"]
    assert bpy.context.scene.flowvq.take_items[2].target == bpy.context.scene.flowvq.head != head


def test_takes_retarget_onto_a_mesh_with_other_casing_and_aliases(bpy_empty, wire_takes, face_npz):
    bpy = bpy_empty
    mesh = bpy.data.meshes.new("char")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    char = bpy.data.objects.new("char", mesh)
    bpy.context.scene.collection.objects.link(char)
    key_names = ["Basis", "JAW_OPEN", "EyeBlink_L", "eye.blink.right", "smile_left", "mouthSmile.R",
                 "mouthopen_extra", "tongue-out"]
    for name in key_names:
        char.shape_key_add(name=name)
    props = bpy.context.scene.flowvq
    props.target_mode, props.target = "SELECTED", char
    take = wire_takes[0]
    ops = module("operators")
    ops.fill_character(props, take["names"], char)
    rows = {row.name: row.terms for row in props.mapping}
    assert rows == {"JAW_OPEN": "jawOpen", "EyeBlink_L": "eyeBlinkLeft", "eye.blink.right": "eyeBlinkRight",
                    "smile_left": "mouthSmileLeft", "mouthSmile.R": "mouthSmileRight", "mouthopen_extra": "",
                    "tongue-out": "tongueOut"}
    assert props.unmatched == "mouthopen_extra"
    props.mapping["JAW_OPEN"].terms = ""  # an artist's correction in the panel
    props.mapping["mouthopen_extra"].terms = "jawOpen"
    props.audio_path = str(SPEECH)
    snap, _ = ops.snapshot(bpy.context)
    module("apply").apply_generate(bpy.context.scene, snap, module("jobs").GenerateResult(takes=[take]))
    bpy.context.scene.frame_set(21)
    blocks = char.data.shape_keys.key_blocks
    assert blocks["mouthopen_extra"].value == pytest.approx(take["exp"][20][take["names"].index("jawOpen")], abs=1e-5)
    assert blocks["EyeBlink_L"].value == pytest.approx(take["exp"][20][take["names"].index("eyeBlinkLeft")], abs=1e-5)
    action = module("keys").assigned_action(char.data.shape_keys)
    assert module("keys").find_curve(action, char.data.shape_keys, 'key_blocks["JAW_OPEN"].value') is None


def test_reference_from_current_pose_reads_the_take_row_of_that_frame(generated, wire_takes):
    bpy, _ = generated
    props = bpy.context.scene.flowvq
    bpy.context.scene.frame_set(41)
    assert bpy.ops.flowvq.reference_from_pose() == {"FINISHED"}
    assert props.use_reference
    assert [item.name for item in props.reference] == wire_takes[0]["names"]
    np.testing.assert_allclose([item.value for item in props.reference], wire_takes[0]["exp"][40], atol=1e-5)
    settings = module("operators").settings_dict(props, FPS)
    np.testing.assert_allclose(settings["reference"], wire_takes[0]["exp"][40], atol=1e-5)


def scene_state(bpy) -> tuple:
    """Everything Generate could change: objects, actions, strips, frame range, takes."""
    scene = bpy.context.scene
    return (sorted(bpy.data.objects.keys()), sorted(bpy.data.actions.keys()),
            [s.name for s in module("scene").sound_strips(scene)], scene.frame_start, scene.frame_end,
            len(scene.flowvq.take_items))


def run_generate_to_end(bpy) -> str:
    """Press Generate, then drive the timer callback by hand until the job ends; the status line."""
    runner = module("runner")
    assert bpy.ops.flowvq.generate() == {"FINISHED"}
    task = runner.active.task
    while runner.poll_task() is not None:
        task.join(0.05)
    return bpy.context.scene.flowvq.status


def test_a_server_that_is_down_changes_nothing_in_the_scene(generated):
    bpy, _ = generated
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.server_url = f"http://127.0.0.1:{closed_port()}"
    props = bpy.context.scene.flowvq
    props.audio_path = str(SPEECH)
    before = scene_state(bpy)
    status = run_generate_to_end(bpy)
    assert status.startswith("failed: cannot reach the FlowVQ server")
    assert not props.running
    assert scene_state(bpy) == before


def test_generate_without_a_speech_clip_reports_and_starts_nothing(bpy_empty):
    bpy = bpy_empty
    bpy.context.scene.flowvq.audio_path = "/nonexistent/clip.wav"
    with pytest.raises(RuntimeError, match="is not a file"):
        bpy.ops.flowvq.generate()
    assert module("runner").active.task is None


def test_takes_go_to_their_own_nla_tracks_for_comparison(generated):
    bpy, head = generated
    props = bpy.context.scene.flowvq
    assert bpy.ops.flowvq.takes_to_nla() == {"FINISHED"}
    for owner, what in ((head.data.shape_keys, "KEYS"), (head, "POSE")):
        tracks = owner.animation_data.nla_tracks
        assert [t.name for t in tracks] == [item.name for item in props.take_items]
        assert [t.strips[0].action for t in tracks] == [next(b.action for b in item.bindings if b.what == what)
                                                        for item in props.take_items]
        assert [t.mute for t in tracks] == [False, True]
