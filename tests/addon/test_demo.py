"""The Blender demo (`python -m buildtools.demo`) run end to end into a temporary folder, with a
real server and real bpy, the video cut to a few frames and small preview frames: what it writes
reopens in Blender from a moved copy of the folder, the video carries the speech, and the takes
file holds the server's takes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT
from .test_scene import module

VIDEO_FRAMES = 12
PREVIEW_SIZE = 64


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """The folder the demo wrote (run once for the module)."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "buildtools.demo", "--out", str(out), "--frames", str(VIDEO_FRAMES),
                           "--size", str(PREVIEW_SIZE)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [line.split(":")[1].strip() for line in done.stdout.splitlines() if line.startswith("demo: /")] == [
        str(out / name) for name in ("demo.blend", "demo_takes.json", "demo_frame.png", "demo.mp4")]
    return out


@pytest.fixture
def reopened(addon, demo_dir, tmp_path):
    """demo.blend opened from a copy of the demo folder elsewhere (so only relative paths work);
    returns (bpy, the copy's folder)."""
    import bpy

    moved = shutil.copytree(demo_dir, tmp_path / "moved")
    bpy.ops.wm.open_mainfile(filepath=str(moved / "demo.blend"), load_ui=False)
    return bpy, moved


def test_the_blend_has_the_head_with_two_take_actions(reopened):
    bpy, _ = reopened
    props = bpy.context.scene.flowvq
    head = props.head
    assert head is not None and head.data.shape_keys is not None
    actions = [item.bindings[0].action for item in props.take_items]
    assert len(actions) == 2 and all(a is not None and a.name in bpy.data.actions for a in actions)
    assert actions[0] != actions[1]
    assert module("keys").assigned_action(head.data.shape_keys) == actions[0]


def test_the_blend_has_the_speech_as_a_sound_strip_beside_it(reopened):
    bpy, moved = reopened
    [strip] = module("scene").sound_strips(bpy.context.scene)
    assert strip.frame_start == bpy.context.scene.frame_start
    assert Path(bpy.path.abspath(strip.sound.filepath)).resolve() == moved / "demo_speech.wav"


def test_the_preview_plane_plays_frames_that_exist_beside_the_blend(reopened):
    bpy, moved = reopened
    props = bpy.context.scene.flowvq
    node = next(n for n in props.preview_plane.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    image, count = node.image, props.take_items[0].frame_count
    assert image.source == "SEQUENCE" and image.filepath.startswith("//flowvq_frames/")
    folder = Path(bpy.path.abspath(image.filepath)).parent
    assert folder.is_relative_to(moved)
    assert all((folder / f"{k:05d}.png").is_file() for k in range(count))
    assert node.image_user.frame_duration == count
    assert tuple(image.size) == (PREVIEW_SIZE, PREVIEW_SIZE)


def test_the_video_has_the_frames_asked_for_and_the_speech(demo_dir):
    import av

    with av.open(str(demo_dir / "demo.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == VIDEO_FRAMES
    with av.open(str(demo_dir / "demo.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        samples = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio=0)])
    assert np.sqrt(np.mean(samples ** 2)) > 0.01, "the audio track is silent"


def test_the_takes_file_holds_the_servers_two_happy_takes(demo_dir):
    takes = json.loads((demo_dir / "demo_takes.json").read_text())["takes"]
    assert [(t["take"], t["seed"], t["emotion"]) for t in takes] == [(0, 0, "happy"), (1, 1, "happy")]
    assert {t["frames"] for t in takes} == {len(takes[0]["exp"])}


def test_the_still_is_a_small_video_sized_picture_of_the_widest_open_mouth(demo_dir):
    from PIL import Image

    from buildtools.demo import MOUTH_KEY, DemoSettings, widest_mouth_frame

    take = json.loads((demo_dir / "demo_takes.json").read_text())["takes"][0]
    jaw = np.asarray(take["exp"])[:, take["names"].index(MOUTH_KEY)]
    assert jaw[widest_mouth_frame(take)] == jaw.max() > 0.3
    with Image.open(demo_dir / "demo_frame.png") as still:
        assert still.size == (DemoSettings.width, DemoSettings.height)
    assert (demo_dir / "demo_frame.png").stat().st_size < 300_000
