"""``python -m buildtools.demo --out out``: the Blender demo, with no manual step.

It starts a real ``flowvq serve`` on a free loopback port (`server.process.ServerProcess`, default
weights, its job store in a temporary folder), builds the extension zip and installs it into a
temporary Blender user folder, and presses the add-on's buttons as an artist would: Check Server,
then Generate (two happy takes of ``core/assets/demo_speech.wav``, seed 0, preview frames rendered
on the astronaut portrait), the timer callback driven by hand. Then it frames the head and the
preview plane with a camera and a light and writes, under ``--out``:

- ``demo.blend``: the head with both takes as Actions, the sound strip, the preview plane; the clip,
  the portrait and the frames (``flowvq_frames/``) sit beside it and every path is relative;
- ``demo_takes.json``: the server's takes (``GET /v1/jobs/{id}/takes``);
- ``demo.mp4``: take 0 rendered by Blender (Workbench, FFmpeg H.264 + AAC), checked with PyAV;
- ``demo_frame.png``: the frame where take 0's mouth is widest open;
- ``portrait.png``: the source portrait (scikit-image's astronaut, as ``flowvq demo`` writes it).

The server is stopped at the end, also on error.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from buildtools.addon import build_addon
from core.errors import FlowVQError
from core.formats.takes import Take, save_takes

__all__ = ["DemoError", "DemoSettings", "DemoOutputs", "VideoProbe", "run_demo", "widest_mouth_frame", "probe_video",
           "main", "MOUTH_KEY"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEECH = REPO_ROOT / "core" / "assets" / "demo_speech.wav"
PACKAGE = "bl_ext.user_default.flowvq_talker"
EMOTION, TAKES, SEED = "happy", 2, 0
FPS = 25  # the model's own rate: the takes need no resampling
PORTRAIT = "astronaut"  # a key of core.face.build.bundled_photos()
MOUTH_KEY = "jawOpen"
BACKGROUND = (0.01, 0.01, 0.012)
FRAME_MARGIN = 1.15  # the camera's view over the bounding box of the head and the plane
READ_TIMEOUT_S = 300.0


class DemoError(FlowVQError):
    """A demo step did not produce what it should; the message says which and why."""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo renders: the preview frames' size (server), the video's size, and how many
    frames of take 0 go into the video (None: all)."""

    preview_size: int = 256
    width: int = 640
    height: int = 360
    frames: int | None = None


@dataclass(frozen=True)
class DemoOutputs:
    """The files the demo wrote."""

    blend: Path
    takes: Path
    video: Path
    still: Path
    portrait: Path
    clip: Path


@dataclass(frozen=True)
class VideoProbe:
    """What PyAV reads from a movie: decoded video frames, their size, and the audio stream."""

    frames: int
    width: int
    height: int
    fps: float
    audio_codec: str | None
    video_codec: str


def import_bpy(home: Path) -> ModuleType:
    """``bpy``, with Blender's user folders and caches under ``home`` (set before the import, so
    the demo never touches the machine's Blender configuration), reset to factory settings."""
    os.environ["BLENDER_USER_RESOURCES"] = str(home / "blender")
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no demo.blend1 backups
    return bpy


def install_addon(bpy: ModuleType, dist: Path) -> ModuleType:
    """Build the extension zip (`buildtools.addon.build_addon`), install and enable it through
    Blender's extension API; returns the add-on's package."""
    result = bpy.ops.extensions.package_install_files(filepath=str(build_addon(dist)), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"} or PACKAGE not in sys.modules:
        raise DemoError(f"installing the add-on failed ({result})")
    return sys.modules[PACKAGE]


def write_inputs(outputs: DemoOutputs) -> None:
    """Copy the speech clip and write the portrait beside the .blend."""
    import skimage.io

    from core.face.build import bundled_photos

    shutil.copyfile(SPEECH, outputs.clip)
    skimage.io.imsave(outputs.portrait, bundled_photos()[PORTRAIT], check_contrast=False)


def clear_old_frames(addon: ModuleType, blend: Path) -> None:
    """Remove the preview frames an earlier demo left beside ``blend`` (the add-on's
    `preview.frames_root`), so the folder holds this run's frames only."""
    shutil.rmtree(sys.modules[f"{addon.__name__}.preview"].frames_root(str(blend)), ignore_errors=True)


def fill_panel(bpy: ModuleType, url: str, outputs: DemoOutputs, preview_size: int) -> None:
    """Point the preferences at the server and set the panel as the demo wants it."""
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.server_url, prefs.read_timeout = url, READ_TIMEOUT_S
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = FPS, 1.0
    props = bpy.context.scene.flowvq
    props.audio_source, props.audio_path = "FILE", str(outputs.clip)
    props.emotion, props.takes, props.seed = EMOTION, TAKES, SEED
    props.portrait_path = str(outputs.portrait)
    props.render_preview, props.render_size = True, preview_size
    props.target_mode = "CREATE"


def press_generate(bpy: ModuleType, addon: ModuleType) -> tuple[str, list[dict]]:
    """Check Server, then Generate, driving the timer callback by hand until the job ends (timers
    never fire in background mode); returns the status line and the takes the add-on fetched
    (``GET /v1/jobs/{id}/takes``)."""
    runner = sys.modules[f"{addon.__name__}.runner"]
    if bpy.ops.flowvq.check_server() != {"FINISHED"}:
        raise DemoError(f"Check Server failed: {bpy.context.scene.flowvq.server_status}")
    if bpy.ops.flowvq.generate() != {"FINISHED"}:
        raise DemoError("Generate did not start: the panel's settings were refused")
    task = runner.active.task
    while runner.poll_task() is not None:
        task.join(runner.TIMER_INTERVAL_S)
    status = bpy.context.scene.flowvq.status
    if not status.startswith(f"{TAKES} take(s) generated"):
        raise DemoError(f"Generate failed: {status}")
    return status, task.state.result.takes


def world_bounds(objects: list) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corners of the objects' world-space bounding boxes. Shapes: (3,), (3,)."""
    corners = []
    for obj in objects:
        local = np.c_[np.array(obj.bound_box), np.ones(8)]
        corners.append((local @ np.array(obj.matrix_world).T)[:, :3])
    corners = np.concatenate(corners)
    return corners.min(axis=0), corners.max(axis=0)


def add_camera_and_light(bpy: ModuleType, objects: list, aspect: float) -> None:
    """A front orthographic camera framing ``objects`` side by side, and a sun from the upper
    front (Workbench draws its own studio light; the sun is for EEVEE and Cycles)."""
    scene = bpy.context.scene
    bpy.context.view_layer.update()  # the plane's matrix follows its new scale and location
    low, high = world_bounds(objects)
    centre, size = (low + high) / 2, high - low
    camera = bpy.data.objects.new("Demo Camera", bpy.data.cameras.new("Demo Camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = float(max(size[0], size[2] * aspect) * FRAME_MARGIN)
    camera.location = (float(centre[0]), float(low[1]) - 1.0, float(centre[2]))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    sun = bpy.data.objects.new("Demo Light", bpy.data.lights.new("Demo Light", "SUN"))
    sun.rotation_euler, sun.data.energy = (math.radians(60), 0.0, math.radians(-20)), 3.0
    for obj in (camera, sun):
        scene.collection.objects.link(obj)
    scene.camera = camera


def set_up_render(bpy: ModuleType, settings: DemoSettings) -> None:
    """Workbench (studio light, image textures shown, so the plane plays its frames), plain colour
    management, and FFmpeg H.264 + AAC to ``//demo.mp4``."""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "TEXTURE"
    scene.world = scene.world or bpy.data.worlds.new("Demo World")
    scene.world.color = BACKGROUND
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x, scene.render.resolution_y = settings.width, settings.height
    scene.render.resolution_percentage = 100
    use_movie_output(scene)
    scene.render.filepath = "//demo.mp4"


def set_output(scene, media_type: str, file_format: str):
    """The scene's output format (its ``media_type`` first, from Blender 5.0); returns its image settings."""
    image = scene.render.image_settings
    if hasattr(image, "media_type"):
        image.media_type = media_type
    image.file_format = file_format
    return image


def use_movie_output(scene) -> None:
    """FFmpeg MPEG-4 with H.264 video and AAC audio."""
    set_output(scene, "VIDEO", "FFMPEG")
    ffmpeg = scene.render.ffmpeg
    ffmpeg.format, ffmpeg.codec = "MPEG4", "H264"
    ffmpeg.constant_rate_factor, ffmpeg.ffmpeg_preset = "MEDIUM", "REALTIME"
    ffmpeg.audio_codec, ffmpeg.audio_channels = "AAC", "MONO"


def use_still_output(scene) -> None:
    """PNG stills, RGB, maximum compression (small enough for the README)."""
    image = set_output(scene, "IMAGE", "PNG")
    image.color_mode, image.compression = "RGB", 100


def save_blend(bpy: ModuleType, path: Path) -> None:
    """Save ``path`` with every external path (clip, portrait, frames) relative to it."""
    bpy.ops.file.make_paths_relative()
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


def widest_mouth_frame(take: dict) -> int:
    """The take's row where ``MOUTH_KEY`` is largest."""
    return int(np.argmax(np.asarray(take["exp"])[:, take["names"].index(MOUTH_KEY)]))


def render_still(bpy: ModuleType, frame: int, path: Path) -> None:
    """Render scene frame ``frame`` to the PNG ``path``."""
    scene = bpy.context.scene
    use_still_output(scene)
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def render_video(bpy: ModuleType, path: Path, frames: int) -> None:
    """Render the first ``frames`` frames of the scene's range, with its sound, to ``path``."""
    scene = bpy.context.scene
    use_movie_output(scene)
    scene.frame_end = scene.frame_start + frames - 1
    scene.render.filepath = str(path)
    bpy.ops.render.render(animation=True)
    if not path.is_file():
        raise DemoError(f"Blender did not write {path}")


def probe_video(path: Path) -> VideoProbe:
    """Decode ``path`` with PyAV: its frame count and size, and its audio stream's codec."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video=0))
        return VideoProbe(frames=frames, width=video.codec_context.width, height=video.codec_context.height,
                          fps=float(video.average_rate), audio_codec=audio, video_codec=video.codec_context.name)


def check_video(probe: VideoProbe, frames: int, path: Path) -> None:
    """Raise `DemoError` unless the movie has ``frames`` H.264 frames and an AAC track."""
    if probe.frames != frames or probe.video_codec != "h264" or probe.audio_codec != "aac":
        raise DemoError(f"{path}: expected {frames} h264 frames and an aac track, got {probe}")


def generate_in_blender(home: Path, outputs: DemoOutputs,
                        settings: DemoSettings) -> tuple[ModuleType, list[dict], str]:
    """Start the server, install the add-on in a Blender whose user folders are under ``home``,
    save the empty ``demo.blend`` (so preview frames go beside it) and press Generate; the takes the
    add-on fetched from the server are written to ``outputs.takes`` (the takes file format). Returns (bpy, takes, status line). The server is stopped
    before this returns, also on error (whose message then ends with the server's log)."""
    from server.process import ServerProcess

    server = ServerProcess(home / "server-data").start()
    try:
        bpy = import_bpy(home)
        addon = install_addon(bpy, home / "dist")
        write_inputs(outputs)
        clear_old_frames(addon, outputs.blend)
        server.wait_ready()
        bpy.ops.wm.save_as_mainfile(filepath=str(outputs.blend))
        fill_panel(bpy, server.url, outputs, settings.preview_size)
        status, takes = press_generate(bpy, addon)
        save_takes(outputs.takes, [Take.from_dict(take) for take in takes])
        return bpy, takes, status
    except Exception as exc:
        raise DemoError(f"{exc}\n--- server log ---\n{server.log_tail()}") from exc
    finally:
        server.stop()


def run_demo(out: Path, settings: DemoSettings) -> DemoOutputs:
    """Run the whole demo into ``out`` (see the module's docstring); prints one line per output."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    outputs = DemoOutputs(blend=out / "demo.blend", takes=out / "demo_takes.json", video=out / "demo.mp4",
                          still=out / "demo_frame.png", portrait=out / "portrait.png",
                          clip=out / SPEECH.name)
    with tempfile.TemporaryDirectory(prefix="flowvq-demo-") as tmp:
        bpy, takes, status = generate_in_blender(Path(tmp), outputs, settings)
        props = bpy.context.scene.flowvq
        add_camera_and_light(bpy, [props.head, props.preview_plane], settings.width / settings.height)
        set_up_render(bpy, settings)
        save_blend(bpy, outputs.blend)
        take = props.take_items[0]
        print(f"demo: {outputs.blend}: {status}; sound strip, preview plane "
              f"({take.frame_count} frames of {settings.preview_size} px on {outputs.portrait.name})")
        print(f"demo: {outputs.takes}: {len(takes)} {EMOTION} takes of {SPEECH.name} from the server "
              f"({takes[0]['frames']} frames at {takes[0]['fps']:g} fps, seeds {[t['seed'] for t in takes]})")
        mouth = widest_mouth_frame(takes[0])
        render_still(bpy, take.frame_start + mouth, outputs.still)
        print(f"demo: {outputs.still}: take 0, frame {mouth} ({MOUTH_KEY} "
              f"{takes[0]['exp'][mouth][takes[0]['names'].index(MOUTH_KEY)]:.2f}), "
              f"{outputs.still.stat().st_size // 1024} kB")
        frames = min(settings.frames or take.frame_count, take.frame_count)
        render_video(bpy, outputs.video, frames)
    probe = probe_video(outputs.video)
    check_video(probe, frames, outputs.video)
    print(f"demo: {outputs.video}: {probe.frames} frames {probe.width}x{probe.height} at {probe.fps:g} fps, "
          f"{probe.video_codec} + {probe.audio_codec}")
    return outputs


def preview_size(text: str) -> int:
    """``--size``: the sizes the panel and the server accept (the panel would round others silently)."""
    size = int(text)
    if size % 8 or not 64 <= size <= 1024:
        raise argparse.ArgumentTypeError(f"{size} is not a multiple of 8 from 64 to 1024")
    return size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m buildtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    parser.add_argument("--frames", type=int, help="render only the first N frames of take 0 into the video")
    parser.add_argument("--size", type=preview_size, default=DemoSettings.preview_size,
                        help="preview frame size in pixels: a multiple of 8 from 64 to 1024")
    parser.add_argument("--width", type=int, default=DemoSettings.width, help="video width")
    parser.add_argument("--height", type=int, default=DemoSettings.height, help="video height")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; a failure prints one error message and returns 2."""
    args = parse_args(argv)
    started = time.monotonic()
    try:
        run_demo(args.out, DemoSettings(preview_size=args.size, width=args.width, height=args.height,
                                        frames=args.frames))
    except FlowVQError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"demo: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
