"""Screenshots of the FlowVQ panel in a running Blender with a window (not the headless ``bpy``).

Run by ``scripts/panel_screenshot.sh``, which starts Blender as
``blender START.blend --python scripts/panel_screenshot.py -- --zip ZIP --server URL ...``.
Blender's own timers drive everything, as they would for an artist: install and enable the
extension zip, fill the panel (two happy takes of the committed demo clip, preview frames on a
portrait; with ``--character``, a glTF character imported and its head mesh selected, then Find
Character), press Check Server and Generate, capture the screen while the job runs (progress bar,
Cancel, status bar), then, once the takes are keyed, frame the head and the preview plane at take 0's
widest mouth and capture again. A heartbeat timer measures how long the UI was ever blocked, for
two seconds before Generate and while the job runs. Each capture is ImageMagick's
``import -window root`` of the X display, because Blender's own screenshot operator reads back
black under a software GL.

Blender's Python needs only what the add-on needs (numpy, requests). Exits Blender with status 0
after the second capture, or 1 with the reason on stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import bpy

PACKAGE = "bl_ext.user_default.flowvq_talker"
EMOTION, TAKES, SEED, PREVIEW_SIZE, FPS = "happy", 2, 0, 256, 25
MOUTH_KEY = "jawOpen"
RUNNING_AT = 0.3  # the running capture waits for this much progress
STEP_S = 0.5  # seconds between state-machine steps (the UI redraws in between)
TICK_S = 0.02  # the heartbeat timer's interval
IDLE_S = 2.0  # the heartbeat's idle baseline before Generate
JOB_TIMEOUT_S = 600.0


def parse_args() -> argparse.Namespace:
    """The arguments after Blender's ``--``."""
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="panel_screenshot.py")
    parser.add_argument("--zip", type=Path, required=True, help="the extension zip (flowvq build-addon)")
    parser.add_argument("--server", required=True, help="URL of a running flowvq server")
    parser.add_argument("--audio", type=Path, required=True, help="the speech clip to generate from")
    parser.add_argument("--portrait", type=Path, required=True, help="the portrait for preview frames")
    parser.add_argument("--running", type=Path, required=True, help="PNG: the panel while Generate runs")
    parser.add_argument("--done", type=Path, required=True, help="PNG: the panel and the scene afterwards")
    parser.add_argument("--character", type=Path, help="a glTF character to drive instead of the FlowVQ head")
    parser.add_argument("--head", default="Wolf3D_Head", help="the character's head mesh (selected, as an artist would)")
    return parser.parse_args(argv)


def view3d() -> tuple[bpy.types.Window, bpy.types.Area, bpy.types.Region]:
    """The first 3D View of the first window, with its main (WINDOW) region."""
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == "VIEW_3D")
    return window, area, next(r for r in area.regions if r.type == "WINDOW")


def install(zip_path: Path) -> None:
    """Install and enable the extension from ``zip_path`` into the user repository."""
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"} or PACKAGE not in sys.modules:
        raise RuntimeError(f"installing {zip_path} failed ({result})")


def fill_panel(args: argparse.Namespace) -> None:
    """Point the preferences at the server and set the panel as an artist would."""
    bpy.context.preferences.addons[PACKAGE].preferences.server_url = args.server
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    props = scene.flowvq
    props.audio_source, props.audio_path = "FILE", str(args.audio)
    props.emotion, props.takes, props.seed = EMOTION, TAKES, SEED
    props.portrait_path = str(args.portrait)
    props.render_preview, props.render_size = True, PREVIEW_SIZE
    props.target_mode = "CREATE" if args.character is None else "SELECTED"


def show_sidebar(args: argparse.Namespace) -> None:
    """Clear the start file's objects (importing the character, its head mesh selected, when there
    is one) and open the 3D View's sidebar."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    if args.character is not None:
        bpy.ops.import_scene.gltf(filepath=str(args.character))
        head = bpy.data.objects[args.head]
        for obj in bpy.context.view_layer.objects:
            obj.select_set(obj == head)
        bpy.context.view_layer.objects.active = head
    _, area, _ = view3d()
    area.spaces.active.show_region_ui = True
    area.tag_redraw()


def show_tab() -> None:
    """Switch the sidebar to the FlowVQ tab (possible once the sidebar has been drawn)."""
    _, area, _ = view3d()
    next(r for r in area.regions if r.type == "UI").active_panel_category = "FlowVQ"
    area.tag_redraw()


def press(operator: str) -> None:
    """Press a FlowVQ button in the 3D View's context; raise unless it finished."""
    window, area, region = view3d()
    with bpy.context.temp_override(window=window, area=area, region=region):
        result = getattr(bpy.ops.flowvq, operator)()
    if result != {"FINISHED"}:
        props = bpy.context.scene.flowvq
        raise RuntimeError(f"{operator} did not finish ({result}): server {props.server_status}; {props.status}")


def capture(path: Path) -> tuple[float, float]:
    """Write the whole X display to ``path`` (ImageMagick); returns when it started and ended."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    print(f"panel_screenshot: {path}")
    return started, time.monotonic()


def widest_mouth_frame(props) -> int:
    """The scene frame of take 0 where the head's shape key carrying ``MOUTH_KEY`` is largest."""
    take = props.take_items[0]
    key = json.loads(take.direct).get(MOUTH_KEY, MOUTH_KEY)
    scene = bpy.context.scene
    values = []
    for frame in range(take.frame_start, take.frame_start + take.frame_count):
        scene.frame_set(frame)
        values.append(take.target.data.shape_keys.key_blocks[key].value)
    return take.frame_start + max(range(len(values)), key=values.__getitem__)


def frame_scene(props) -> None:
    """Take 0 at its widest mouth; the view from the front on the head and the preview plane,
    solid shading with textures so the plane shows its frame."""
    bpy.context.scene.frame_set(widest_mouth_frame(props))
    head = props.take_items[0].target
    window, area, region = view3d()
    shading = area.spaces.active.shading
    shading.type, shading.color_type = "SOLID", "TEXTURE"
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in (head, props.preview_plane))
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.view3d.view_axis(type="FRONT")
        bpy.ops.view3d.view_selected()


class Heartbeat:
    """A timer asking to run every TICK_S while ``keep_going()`` holds: the gaps between its runs
    show how long Blender's UI was ever blocked. Gaps that overlap a span in ``excluded`` (this
    script's own screen captures) are left out of the report."""

    def __init__(self, keep_going: Callable[[], bool]) -> None:
        self.keep_going, self.times = keep_going, []
        self.excluded: list[tuple[float, float]] = []

    def __call__(self) -> float | None:
        """Record one tick; stop once ``keep_going()`` is false."""
        self.times.append(time.monotonic())
        return TICK_S if self.keep_going() else None

    def gaps_ms(self) -> list[float]:
        """Milliseconds between consecutive ticks, captures left out."""
        return [(b - a) * 1000 for a, b in zip(self.times, self.times[1:])
                if not any(a < end and start < b for start, end in self.excluded)]

    def report(self, what: str) -> str:
        """One line: tick count, median and largest gap."""
        gaps = self.gaps_ms()
        return (f"{what}: UI timer every {statistics.median(gaps):.0f} ms (median of {len(gaps)} gaps), "
                f"longest gap {max(gaps):.0f} ms")


class Steps:
    """The timer's state machine: setup, generate, capture while running, capture when done."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.state, self.waited = args, "setup", 0.0
        self.idle_until = 0.0
        self.idle = Heartbeat(lambda: time.monotonic() < self.idle_until)
        self.busy = Heartbeat(lambda: bpy.context.scene.flowvq.running)

    def __call__(self) -> float | None:
        """One step; returns the delay to the next, or None after quitting Blender."""
        try:
            return self.step()
        except Exception:
            traceback.print_exc()
            sys.stderr.write(f"panel_screenshot: failed in step {self.state}\n")
            sys.stderr.flush()
            os._exit(1)  # a timer cannot end Blender with a status; quit_blender would exit 0

    def step(self) -> float | None:
        """Advance by one state."""
        if self.state == "setup":
            install(self.args.zip)
            show_sidebar(self.args)
            fill_panel(self.args)
            press("check_server")
            if self.args.character is not None:
                press("find_character")
            self.state = "tab"
            return STEP_S
        if self.state == "tab":
            show_tab()
            self.idle_until = time.monotonic() + IDLE_S
            bpy.app.timers.register(self.idle, first_interval=TICK_S)
            self.state = "generate"
            return IDLE_S + STEP_S
        props = bpy.context.scene.flowvq
        if self.state == "generate":
            press("generate")
            bpy.app.timers.register(self.busy, first_interval=TICK_S)
            self.state = "running"
        elif self.state == "running":
            self.waited += STEP_S
            if self.waited > JOB_TIMEOUT_S:
                raise RuntimeError(f"the job did not end in {JOB_TIMEOUT_S:.0f} s: {props.status}")
            if props.running and props.progress >= RUNNING_AT:
                self.busy.excluded.append(capture(self.args.running))
                self.state = "wait"
            elif not props.running:
                raise RuntimeError(f"the job ended before a running capture: {props.status}")
        elif self.state == "wait":
            if not props.running:
                if not props.status.startswith(f"{TAKES} take(s) generated"):
                    raise RuntimeError(f"Generate failed: {props.status}")
                print(f"panel_screenshot: {props.status}")
                print(f"panel_screenshot: {self.idle.report('idle')}")
                print(f"panel_screenshot: {self.busy.report('while Generate ran')}")
                frame_scene(props)
                self.state = "done"
        else:
            capture(self.args.done)
            bpy.ops.wm.quit_blender()
            return None
        return STEP_S


bpy.app.timers.register(Steps(parse_args()), first_interval=2.0)
