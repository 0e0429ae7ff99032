"""End to end against a real `flowvq serve` process on 127.0.0.1 with the default weights: Generate
and Re-render run exactly as their buttons do, and the timer callback is driven by hand."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import requests

from server.process import ServerProcess

from .conftest import FLOWVQ_PYTHON, PACKAGE, SPEECH
from .scenes import assert_scene_plays_take
from .test_scene import module, scene_state

TOKEN = "addon-test-token"
STARTUP_S = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server's URL (`server.process.ServerProcess`); the process is stopped after the module."""
    process = ServerProcess(tmp_path_factory.mktemp("server") / "data", extra_args=("--token", TOKEN),
                            env={"OMP_NUM_THREADS": "1"})
    process.args[0] = FLOWVQ_PYTHON  # the server runs where torch is (scripts/test_bpy42.sh)
    process.start()
    try:
        process.wait_ready(STARTUP_S)
        yield process.url
    finally:
        process.stop()


@pytest.fixture
def connected(bpy_empty, server):
    """An empty scene whose add-on preferences point at the server; returns bpy."""
    prefs = bpy_empty.context.preferences.addons[PACKAGE].preferences
    prefs.server_url, prefs.token, prefs.read_timeout = server, TOKEN, 120.0
    props = bpy_empty.context.scene.flowvq
    props.audio_path, props.emotion, props.takes, props.seed = str(SPEECH), "happy", 2, 5
    return bpy_empty


def run_to_end(bpy, operator) -> str:
    """Run an operator that starts a task, drive the timer callback until it ends; the status."""
    runner = module("runner")
    assert operator() == {"FINISHED"}
    task = runner.active.task
    while runner.poll_task() is not None:
        task.join(0.05)
    return bpy.context.scene.flowvq.status


def newest_takes(server: str) -> list[dict]:
    """The takes of the server's newest job."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    newest = requests.get(f"{server}/v1/jobs", headers=headers, timeout=10).json()[0]
    return requests.get(f"{server}/v1/jobs/{newest['id']}/takes", headers=headers, timeout=10).json()["takes"]


def test_generate_two_takes_with_preview_frames(connected, server):
    bpy = connected
    props = bpy.context.scene.flowvq
    props.render_preview, props.render_size = True, 64
    assert bpy.ops.flowvq.check_server() == {"FINISHED"} and props.server_status.startswith("ready")
    assert run_to_end(bpy, bpy.ops.flowvq.generate).startswith("2 take(s) generated")
    takes = newest_takes(server)
    head, keys = props.head, module("keys")
    assert [t["fps"] for t in takes] == [24.0, 24.0]  # asked at the scene's rate
    for item, take in zip(props.take_items, takes):
        actions = {b.what: b.action for b in item.bindings}
        for name in take["names"]:
            curve = keys.find_curve(actions["KEYS"], head.data.shape_keys, f'key_blocks["{name}"].value')
            assert len(curve.keyframe_points) == take["frames"]
        for path in ("delta_rotation_euler", "delta_location"):
            assert all(keys.find_curve(actions["POSE"], head, path, i) is not None for i in range(3))
    assert_scene_plays_take(bpy, head, takes[0], 1, [0, 30, takes[0]["frames"] - 1], atol=1e-5)
    scene = bpy.context.scene
    if bpy.app.build_options.audaspace:
        assert [s.frame_start for s in module("scene").sound_strips(scene)] == [1]
    assert (scene.frame_start, scene.frame_end) == (1, takes[0]["frames"])
    plane = props.preview_plane
    scene.frame_set(12)
    evaluated = plane.data.materials[0].evaluated_get(bpy.context.evaluated_depsgraph_get())
    node = next(n for n in evaluated.node_tree.nodes if n.type == "TEX_IMAGE")
    assert node.image_user.frame_current == 11
    assert tuple(node.image.size) == (64, 64) and plane.scale.x == pytest.approx(plane.scale.z)
    assert len(os.listdir(props.take_items[0].frames_dir)) == takes[0]["frames"]


def test_rerender_sends_the_hand_edited_curves(connected, server):
    bpy = connected
    props = bpy.context.scene.flowvq
    props.takes, props.render_size = 1, 64
    run_to_end(bpy, bpy.ops.flowvq.generate)
    item = props.take_items[0]
    curve = module("keys").find_curve(item.bindings[0].action, props.head.data.shape_keys, 'key_blocks["jawOpen"].value')
    curve.keyframe_points[10].co.y = 1.0
    assert run_to_end(bpy, bpy.ops.flowvq.rerender) == "preview re-rendered from the curves"
    frames = sorted(os.listdir(item.frames_dir))
    assert len(frames) == item.frame_count
    node = next(n for n in props.preview_plane.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    assert os.path.dirname(bpy.path.abspath(node.image.filepath)) == item.frames_dir.rstrip("/")


def test_a_refused_token_is_reported_and_changes_nothing(connected):
    bpy = connected
    bpy.context.preferences.addons[PACKAGE].preferences.token = "wrong"
    before = scene_state(bpy)
    status = run_to_end(bpy, bpy.ops.flowvq.generate)
    assert "refused the token" in status and status.startswith("failed")
    assert scene_state(bpy) == before


def frames_root_of_saved_file(bpy, folder) -> "os.PathLike":
    """Save the scene's file in ``folder`` and turn preview frames on: the frames go to the
    ``flowvq_frames`` folder returned, which nothing else uses."""
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "scene.blend"))
    bpy.context.scene.flowvq.render_preview, bpy.context.scene.flowvq.render_size = True, 64
    return folder / "flowvq_frames"


def leftovers(frames_root) -> list[str]:
    """Every file and folder under the frames root."""
    return sorted(str(p.relative_to(frames_root)) for p in frames_root.rglob("*")) if frames_root.exists() else []


def test_a_failed_job_is_reported_changes_nothing_and_leaves_no_frames_folder(connected, tmp_path):
    bpy = connected
    frames_root = frames_root_of_saved_file(bpy, tmp_path)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not a sound file")
    bpy.context.scene.flowvq.audio_path = str(not_audio)
    before = scene_state(bpy)
    status = run_to_end(bpy, bpy.ops.flowvq.generate)
    assert status.startswith("failed: server error: ") and status.endswith("; nothing was changed")
    assert scene_state(bpy) == before
    assert leftovers(frames_root) == []


def test_a_cancelled_job_changes_nothing_and_leaves_no_frames_folder(connected, server, tmp_path):
    bpy = connected
    frames_root = frames_root_of_saved_file(bpy, tmp_path)
    runner = module("runner")
    before = scene_state(bpy)
    assert bpy.ops.flowvq.generate() == {"FINISHED"}
    assert bpy.ops.flowvq.cancel() == {"FINISHED"}
    assert bpy.ops.flowvq.cancel() == {"FINISHED"}  # a double click cancels once
    task = runner.active.task
    while runner.poll_task() is not None:
        task.join(0.05)
    assert bpy.context.scene.flowvq.status == "cancelled; nothing was changed"
    assert scene_state(bpy) == before
    assert leftovers(frames_root) == []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    newest = requests.get(f"{server}/v1/jobs", headers=headers, timeout=10).json()[0]
    assert newest["state"] in ("running", "cancelled")  # cancelled on the server, never deleted


def test_a_target_removed_while_generating_fails_and_its_downloaded_frames_are_removed(connected, tmp_path):
    bpy = connected
    frames_root = frames_root_of_saved_file(bpy, tmp_path)
    props = bpy.context.scene.flowvq
    mesh = bpy.data.meshes.new("char")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    char = bpy.data.objects.new("char", mesh)
    bpy.context.scene.collection.objects.link(char)
    for name in ("Basis", "JAW_OPEN"):
        char.shape_key_add(name=name)
    props.target_mode, props.target, props.takes = "SELECTED", char, 1
    assert bpy.ops.flowvq.find_character() == {"FINISHED"}
    runner = module("runner")
    assert bpy.ops.flowvq.generate() == {"FINISHED"}
    task = runner.active.task
    bpy.data.objects.remove(char)  # the artist deletes the target while the server works
    before = scene_state(bpy)
    while runner.poll_task() is not None:
        task.join(0.05)
    assert task.state.result.frame_dirs  # the frames were downloaded, then refused
    assert props.status == "failed: the target mesh 'char' (or its shape keys) was removed while generating; " \
                           "nothing was changed"
    assert scene_state(bpy) == before
    assert leftovers(frames_root) == []


# Job settings the panel deliberately does not offer (the server's defaults apply).
NOT_IN_PANEL = {"manifold_blend", "manifold_k", "renderer"}


def test_the_panels_settings_agree_with_the_servers_published_defaults_and_ranges(connected, server):
    bpy = connected
    headers = {"Authorization": f"Bearer {TOKEN}"}
    info = requests.get(f"{server}/v1/info", headers=headers, timeout=10).json()
    panel = module("operators").SERVER_SETTINGS
    assert set(info["settings"]) - set(panel) == NOT_IN_PANEL
    rna = bpy.context.scene.flowvq.bl_rna.properties
    for name, prop in panel.items():
        published, own = info["settings"][name], rna[prop]
        if published.get("choices") is not None:
            assert own.default == published["default"], name
            assert [item.identifier for item in own.enum_items] == published["choices"], name
            continue
        assert own.default == pytest.approx(published["default"]), name
        if published.get("minimum") is not None:
            assert own.hard_min == pytest.approx(published["minimum"]), name
        if published.get("maximum") is not None:
            assert own.hard_max == pytest.approx(published["maximum"]), name
    module("props").set_emotions(["neutral"])  # a stale list, as before the server was reached
    assert bpy.ops.flowvq.check_server() == {"FINISHED"}
    assert [item[0] for item in module("props")._emotion_enum(None, None)] == info["emotions"]
    assert [item[0] for item in module("props")._blend_enum(None, None)] == ["NONE", *info["emotions"]]



def test_generate_drives_a_rigged_character_found_through_the_servers_names(connected, server):
    """The artist's path on a character: select its head, Find Character (the server's names), Generate."""
    from .characters import build_character
    from .test_character import angle_between, expected_head_rotation

    bpy = connected
    parts = build_character(bpy)
    props = bpy.context.scene.flowvq
    props.target_mode, props.takes = "SELECTED", 1
    bpy.context.view_layer.objects.active = parts["head"]  # selected in the viewport
    assert bpy.ops.flowvq.find_character() == {"FINISHED"}
    assert props.target == parts["head"] and not props.target_pinned
    assert [part.name for part in props.parts] == ["Wolf3D_Head", "EyeMeshLeft", "EyeMeshRight", "Wolf3D_Teeth"]
    assert run_to_end(bpy, bpy.ops.flowvq.generate).startswith("1 take(s) generated on 4 meshes")
    take = newest_takes(server)[0]
    item = props.take_items[0]
    assert [(b.obj.name, b.what) for b in item.bindings][-1] == ("Rig", "POSE") and item.bone == "Head"
    jaw = np.asarray(take["exp"])[:, take["names"].index("jawOpen")]
    k = int(np.argmax(jaw))
    bpy.context.scene.frame_set(1 + k)
    assert parts["teeth"].data.shape_keys.key_blocks["JawOpen"].value == pytest.approx(jaw[k], abs=1e-5)
    rig = parts["rig"]
    turned = np.array((rig.matrix_world @ rig.pose.bones["Head"].matrix).to_3x3().normalized())
    assert angle_between(turned, expected_head_rotation(rig, "Head", take["pose"][k])) < 0.5


REAL_LINE = Path(__file__).resolve().parents[1] / "data" / "real" / "LJ001-0013.flac"


def test_the_dialogue_field_seals_a_real_readers_bilabials_and_a_bad_line_is_reported(connected, server):
    """The panel's Dialogue goes to the server as the job's text: on an LJ Speech line every /p b m/
    is sealed in the keyed curves; a line with a word outside the dictionary still generates, from
    the audio, and the status says why."""
    bpy = connected
    props = bpy.context.scene.flowvq
    props.audio_path, props.takes = str(REAL_LINE), 1
    props.dialogue = "than in the same operations with ugly ones."
    status = run_to_end(bpy, bpy.ops.flowvq.generate)
    assert status.startswith("1 take(s) generated") and "not used" not in status
    (take,) = newest_takes(server)
    names = take["names"]
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    exp = np.asarray(take["exp"])
    sealed = np.isclose(exp[:, close], exp[:, jaw], atol=1e-4) & (exp[:, jaw] > 0.01)
    assert sealed.sum() >= 2  # saMe, oPerations (without the text this take seals 1 frame)
    props.dialogue = "than in the same zorblax with ugly ones"
    status = run_to_end(bpy, bpy.ops.flowvq.generate)
    assert status.startswith("1 take(s) generated") and "the text was not used" in status and "zorblax" in status


def test_the_blend_menu_mixes_a_second_emotion_into_the_take(connected, server):
    """Emotion sad with Blend angry at 0.3 goes to the server as the job's blend: the take's lowered
    brows and pressed lips land between sad's and angry's, on a real reader's line."""
    bpy = connected
    props = bpy.context.scene.flowvq
    props.audio_path, props.takes, props.seed, props.use_pose, props.dialogue = str(REAL_LINE), 1, 5, False, ""
    means = {}
    for emotion, blend in (("sad", "NONE"), ("angry", "NONE"), ("sad", "angry")):
        props.emotion, props.blend, props.blend_weight = emotion, blend, 0.3
        assert run_to_end(bpy, bpy.ops.flowvq.generate).startswith("1 take(s) generated")
        (take,) = newest_takes(server)
        exp = np.asarray(take["exp"])
        means[emotion, blend] = {name: exp[:, take["names"].index(name)].mean()
                                 for name in ("browDownLeft", "mouthPressLeft", "mouthFrownLeft")}
    for name in ("browDownLeft", "mouthPressLeft", "mouthFrownLeft"):
        ends = sorted((means["sad", "NONE"][name], means["angry", "NONE"][name]))
        assert ends[0] < means["sad", "angry"][name] < ends[1], name
    props.blend = "NONE"


def test_a_clip_over_the_servers_upload_limit_is_refused_before_it_is_sent(connected, server, tmp_path):
    """Check Server keeps the limits the server publishes; Generate refuses a clip over its upload
    limit with the sizes, before anything is sent (the server sees no new job)."""
    bpy = connected
    props = bpy.context.scene.flowvq
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert bpy.ops.flowvq.check_server() == {"FINISHED"}
    published = requests.get(f"{server}/v1/info", headers=headers, timeout=10).json()["limits"]
    assert json.loads(props.server_limits) == published
    huge = tmp_path / "long_take.wav"
    with open(huge, "wb") as handle:
        handle.truncate(published["max_upload_bytes"] + 1)  # sparse: costs no disk
    jobs_before = len(requests.get(f"{server}/v1/jobs", headers=headers, timeout=10).json())
    props.audio_path = str(huge)
    with pytest.raises(RuntimeError, match="over the server's upload limit of 50 MB"):
        bpy.ops.flowvq.generate()
    assert module("runner").active.task is None
    assert len(requests.get(f"{server}/v1/jobs", headers=headers, timeout=10).json()) == jobs_before
