"""A contact sheet of the emotions on a third-party ARKit character, for the docs (issue 24).

``python scripts/emotion_sheet.py --character CHAR.glb --audio CLIP.flac --out docs/images/emotions.png``

It works as the demo does (`buildtools.demo`): a real ``flowvq serve`` on a free loopback port
(`server.process.ServerProcess`, default weights, its job store in a temporary folder), the add-on
built and installed into a temporary Blender user folder of the headless ``bpy``, and the panel's
buttons pressed as an artist would: Check Server, the glTF character imported, its head mesh (the
mesh with the most ARKit shape keys) picked and Find Character pressed, then one take of the clip
per emotion of the server's ``/v1/info`` (seed 5, head pose and blinks off), the timer callback
driven by hand.

Each take is read back from the head mesh's shape keys and two of its frames are rendered: "open",
where ``jawOpen - mouthClose`` is largest, and "closed", where it is smallest among the frames the
lips open from on both sides (a bilabial closure; the take's smallest when there is none). The
camera looks at the face from the front and a little above, the head (its mesh's bounding box, down
to the chin) filling most of the frame. The tiles go into one PNG, three emotions to a row, each an
(open, closed) pair with the emotion's name under it. The signature channels' keyed values at the
open frame and their mean over the take are printed and written beside the PNG (same stem, .json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from buildtools.demo import PACKAGE, DemoError, import_bpy, install_addon, use_still_output, world_bounds
from core.face.rig import ARKIT_NAMES
from server.process import ServerProcess

if TYPE_CHECKING:
    import bpy

# The sheet's order: the two plain classes first, then the emotions; others the server adds follow.
DISPLAY_ORDER = ("neutral", "talk", "happy", "sad", "angry", "fear", "surprised", "disgusted", "contempt")
# The channels that tell the emotions apart (the left side; the model keys both sides alike).
SIGNATURE = ("browInnerUp", "browDownLeft", "browOuterUpLeft", "eyeWideLeft", "eyeSquintLeft", "cheekSquintLeft",
             "noseSneerLeft", "mouthSmileLeft", "mouthFrownLeft", "mouthPressLeft", "mouthStretchLeft",
             "mouthUpperUpLeft", "mouthDimpleLeft", "jawOpen")
JAW, CLOSE = "jawOpen", "mouthClose"
ENGINES = {"workbench": "BLENDER_WORKBENCH", "eevee": "BLENDER_EEVEE", "cycles": "CYCLES"}
SAMPLES = 32  # EEVEE and Cycles (on the CPU): enough for a still with a plain background
FILL = 0.8  # the head (its mesh's bounding box down to the chin) over the frame's height
CHIN_MOVE = 0.5  # the chin: the lowest vertex jawOpen moves by this much of its largest move
LENS_MM = 85.0  # a portrait lens: little perspective distortion at that distance
ELEVATION_DEG = 5.0  # the camera looks slightly down at the head's centre
BACKGROUND = (0.3, 0.3, 0.3)
OPEN_BY = 0.1  # a closure's jawOpen - mouthClose is this much below the open frames around it
CLOSURE_WINDOW_S = 0.25  # how far before and after a closure the open frames may be
EMOTIONS_PER_ROW = 3
LABEL_PX = 36  # the height of the text rows, at --size 320
PAPER, INK = (255, 255, 255), (20, 20, 20)


class SheetError(Exception):
    """A step of the sheet failed; the message says which and why."""


@dataclass(frozen=True)
class Take:
    """One emotion's keyed take as read back from the head mesh: ``values[name]`` holds the shape
    key's value at every frame of the take (NaN where the character lacks the key)."""

    emotion: str
    frame_start: int
    values: dict[str, np.ndarray]

    @property
    def gap(self) -> np.ndarray:
        """``jawOpen - mouthClose`` per frame: how far the lips are apart. Shape: (frames,)."""
        return self.values[JAW] - np.nan_to_num(self.values[CLOSE])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python scripts/emotion_sheet.py", description=__doc__.splitlines()[0])
    parser.add_argument("--character", type=Path, required=True,
                        help="a glTF character (.glb/.gltf) with ARKit shape keys")
    parser.add_argument("--audio", type=Path, required=True, help="a speech clip")
    parser.add_argument("--out", type=Path, required=True, help="the sheet (.png); its values go beside it as .json")
    parser.add_argument("--seed", type=int, default=5, help="the takes' seed (default 5)")
    parser.add_argument("--intensity", type=float, default=1.0, help="the emotions' intensity (default 1)")
    parser.add_argument("--size", type=int, default=320, help="a tile's width and height in pixels (default 320)")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="cycles",
                        help="Blender's renderer (default cycles; workbench is quickest)")
    return parser.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> None:
    """Raise `SheetError` for a missing input file or a size too small to read."""
    for what, path in (("character", args.character), ("audio clip", args.audio)):
        if not path.is_file():
            raise SheetError(f"the {what} {path} does not exist")
    if args.size < 64:
        raise SheetError(f"--size {args.size} is too small: 64 pixels at least")


def server_info(url: str) -> dict:
    """The server's ``GET /v1/info``: emotions, fps, names, limits."""
    with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as response:
        return json.loads(response.read())


def sheet_order(emotions: list[str]) -> list[str]:
    """The server's emotions in `DISPLAY_ORDER`, any others after them in the server's order."""
    return sorted(emotions, key=lambda e: DISPLAY_ORDER.index(e) if e in DISPLAY_ORDER else len(DISPLAY_ORDER))


def arkit_count(obj: bpy.types.Object) -> int:
    """How many of the object's shape keys carry ARKit names."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    return 0 if keys is None else len(set(keys.key_blocks.keys()) & set(ARKIT_NAMES))


def import_character(bpy: ModuleType, path: Path) -> bpy.types.Object:
    """Import the glTF character; returns its head mesh: the mesh with the most ARKit shape keys
    (the most vertices among equals). Raises `SheetError` when it has none, or no jawOpen."""
    try:
        imported = bpy.ops.import_scene.gltf(filepath=str(path))
    except RuntimeError as exc:
        raise SheetError(f"Blender could not import {path}: {exc}") from exc
    if imported != {"FINISHED"}:
        raise SheetError(f"Blender could not import {path}")
    meshes = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
    head = max(meshes, key=lambda obj: (arkit_count(obj), len(obj.data.vertices)), default=None)
    if head is None or arkit_count(head) == 0:
        raise SheetError(f"{path.name} has no mesh with ARKit shape keys (jawOpen, mouthClose, browInnerUp...)")
    if JAW not in head.data.shape_keys.key_blocks:
        raise SheetError(f"{path.name}: the head mesh {head.name!r} has ARKit shape keys but no {JAW}")
    return head


def fill_panel(bpy: ModuleType, url: str, head: bpy.types.Object, args: argparse.Namespace, fps: float) -> None:
    """Point the preferences at the server, press Check Server, pick the head mesh and press Find
    Character, and set the panel: the clip, one take of ``--seed`` at ``--intensity``, no head pose
    and no blinks (a blink in a still would read as part of the expression)."""
    bpy.context.preferences.addons[PACKAGE].preferences.server_url = url
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = round(fps), 1.0
    props = scene.flowvq
    if bpy.ops.flowvq.check_server() != {"FINISHED"}:
        raise SheetError(f"Check Server failed: {props.server_status}")
    props.target_mode, props.target = "SELECTED", head
    if bpy.ops.flowvq.find_character() != {"FINISHED"}:
        raise SheetError(f"Find Character failed on {head.name!r}")
    props.audio_source, props.audio_path = "FILE", str(args.audio.resolve())
    props.seed, props.takes, props.intensity = args.seed, 1, args.intensity
    props.use_pose, props.blinks = False, False


def generate(bpy: ModuleType, emotion: str) -> bpy.types.PropertyGroup:
    """Press Generate for ``emotion`` and drive the timer callback by hand until the take is keyed
    (timers never fire in background mode); returns the take's item in the panel's list."""
    props = bpy.context.scene.flowvq
    runner = sys.modules[f"{PACKAGE}.runner"]
    props.emotion, before = emotion, len(props.take_items)
    if bpy.ops.flowvq.generate() != {"FINISHED"}:
        raise SheetError(f"Generate ({emotion}) did not start: {props.status}")
    task = runner.active.task
    while runner.poll_task() is not None:
        task.join(runner.TIMER_INTERVAL_S)
    if len(props.take_items) != before + 1:
        raise SheetError(f"Generate ({emotion}) failed: {props.status}")
    return props.take_items[props.active_take]


def read_take(bpy: ModuleType, head: bpy.types.Object, emotion: str, item: bpy.types.PropertyGroup) -> Take:
    """The keyed values of `SIGNATURE` and mouthClose on the head mesh at every frame of the take."""
    scene, blocks = bpy.context.scene, head.data.shape_keys.key_blocks
    names = (*SIGNATURE, CLOSE)
    rows = []
    for frame in range(item.frame_start, item.frame_start + item.frame_count):
        scene.frame_set(frame)
        rows.append([blocks[name].value if name in blocks else math.nan for name in names])
    columns = np.asarray(rows, dtype=np.float64).T
    return Take(emotion, item.frame_start, dict(zip(names, columns)))


def open_frame(gap: np.ndarray) -> int:
    """The take's frame (0-based) where the lips are furthest apart."""
    return int(np.argmax(gap))


def closed_frame(gap: np.ndarray, window: int) -> int:
    """The take's frame (0-based) where the lips are closest among the frames they open from by
    `OPEN_BY` both before and after, within ``window`` frames: a bilabial closure inside speech.
    The take's closest frame when no frame has such openings on both sides."""
    closures = [t for t in range(1, len(gap) - 1)
                if gap[max(0, t - window):t].max() >= gap[t] + OPEN_BY
                and gap[t + 1:t + 1 + window].max() >= gap[t] + OPEN_BY]
    return min(closures, key=lambda t: gap[t]) if closures else int(np.argmin(gap))


def shape_positions(head: bpy.types.Object, key: str) -> np.ndarray:
    """World positions of the head mesh's vertices in shape key ``key`` (the armature at rest).
    Shape: (V, 3)."""
    block = head.data.shape_keys.key_blocks[key]
    local = np.empty(len(block.data) * 3)
    block.data.foreach_get("co", local)
    matrix = np.array(head.matrix_world)
    return local.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def chin_height(head: bpy.types.Object) -> float:
    """The world height of the chin: the lowest of the vertices that jawOpen moves by at least
    `CHIN_MOVE` of its largest move (a head mesh often goes on down the neck)."""
    rest = shape_positions(head, head.data.shape_keys.reference_key.name)
    moved = np.linalg.norm(shape_positions(head, JAW) - rest, axis=1)
    return float(rest[moved >= CHIN_MOVE * moved.max(), 2].min())


def add_camera_and_light(bpy: ModuleType, head: bpy.types.Object) -> None:
    """A camera in front of the face (glTF characters face -Y once imported), slightly above it,
    aimed at the head: the head mesh's bounding box from its top down to the chin (`chin_height`),
    which fills `FILL` of the frame; a sun from the upper front left for EEVEE and Cycles
    (Workbench draws its own studio light)."""
    scene = bpy.context.scene
    bpy.context.view_layer.update()
    low, high = world_bounds([head])
    low[2] = max(low[2], chin_height(head))
    centre, size = (low + high) / 2, high - low
    camera = bpy.data.objects.new("Sheet Camera", bpy.data.cameras.new("Sheet Camera"))
    camera.data.lens = LENS_MM
    distance = max(size[0], size[2]) / FILL / (2 * math.tan(camera.data.angle / 2)) + size[1] / 2
    elevation = math.radians(ELEVATION_DEG)
    camera.location = centre + distance * np.array([0.0, -math.cos(elevation), math.sin(elevation)])
    camera.rotation_euler = (math.pi / 2 - elevation, 0.0, 0.0)
    sun = bpy.data.objects.new("Sheet Light", bpy.data.lights.new("Sheet Light", "SUN"))
    sun.rotation_euler, sun.data.energy = (math.radians(50), 0.0, math.radians(-30)), 3.0
    for obj in (camera, sun):
        scene.collection.objects.link(obj)
    scene.camera = camera


def set_up_render(bpy: ModuleType, engine: str, size: int) -> None:
    """``engine`` at ``size`` x ``size`` pixels, a grey world, PNG stills; Workbench shows the
    character's textures under its studio light."""
    scene = bpy.context.scene
    scene.render.engine = ENGINES[engine]
    if engine == "workbench":
        scene.display.shading.light, scene.display.shading.color_type = "STUDIO", "TEXTURE"
    elif engine == "eevee":
        scene.eevee.taa_render_samples = SAMPLES
    else:
        scene.cycles.device, scene.cycles.samples = "CPU", SAMPLES
    scene.world = scene.world or bpy.data.worlds.new("Sheet World")
    scene.world.color = BACKGROUND
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    use_still_output(scene)


def render_frame(bpy: ModuleType, frame: int, path: Path) -> None:
    """Render scene frame ``frame`` to the PNG ``path``."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if not path.is_file():
        raise SheetError(f"Blender did not write {path}")


def tile_sheet(tiles: dict[str, tuple[Path, Path]], size: int, out: Path) -> None:
    """Write the sheet: `EMOTIONS_PER_ROW` emotions to a row, each an (open, closed) pair of tiles
    under "open" and "closed" column heads, with its name under the pair."""
    from PIL import Image, ImageDraw, ImageFont

    label = round(LABEL_PX * size / 320)
    font = ImageFont.load_default(size=round(label * 0.6))
    columns = 2 * min(EMOTIONS_PER_ROW, len(tiles))
    rows = math.ceil(len(tiles) / EMOTIONS_PER_ROW)
    gutter = label // 3
    pair_width = 2 * size + gutter
    sheet = Image.new("RGB", (columns // 2 * pair_width + (columns // 2 - 1) * gutter,
                              label + rows * (size + label)), PAPER)
    draw = ImageDraw.Draw(sheet)
    for pair in range(columns // 2):
        for side, word in enumerate(("open", "closed")):
            x = pair * (pair_width + gutter) + side * (size + gutter) + size // 2
            draw.text((x, label // 2), word, fill=INK, font=font, anchor="mm")
    for index, (emotion, paths) in enumerate(tiles.items()):
        x = index % EMOTIONS_PER_ROW * (pair_width + gutter)
        y = label + index // EMOTIONS_PER_ROW * (size + label)
        for side, path in enumerate(paths):
            with Image.open(path) as tile:
                sheet.paste(tile.convert("RGB"), (x + side * (size + gutter), y))
        draw.text((x + pair_width // 2, y + size + label // 2), emotion, fill=INK, font=font, anchor="mm")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)


def rounded(value: float) -> float | None:
    """A keyed value for the JSON: 3 decimals, None where the character lacks the key."""
    return None if math.isnan(value) else round(float(value), 3)


def take_summary(take: Take, opened: int, closed: int) -> dict:
    """One emotion's entry of the JSON: its frames and the signature channels at the open frame
    and over the take."""
    return {"emotion": take.emotion, "frames": len(take.gap), "open_frame": opened, "closed_frame": closed,
            "gap_open": rounded(take.gap[opened]), "gap_closed": rounded(take.gap[closed]),
            "open": {name: rounded(take.values[name][opened]) for name in SIGNATURE},
            "mean": {name: rounded(np.mean(take.values[name])) for name in SIGNATURE}}


def format_table(summaries: list[dict], which: str) -> str:
    """A text table of the signature channels (rows) per emotion (columns): ``which`` is "open"
    (the values at the open frame) or "mean" (over the take)."""
    width = max(9, *(len(s["emotion"]) + 1 for s in summaries))
    lines = [f"{which:<17}" + "".join(f"{s['emotion']:>{width}}" for s in summaries)]
    for name in SIGNATURE:
        cells = (s[which][name] for s in summaries)
        lines.append(f"{name:<17}" + "".join(f"{'-' if v is None else f'{v:.2f}':>{width}}" for v in cells))
    return "\n".join(lines)


def render_emotions(bpy: ModuleType, url: str, head: bpy.types.Object, args: argparse.Namespace,
                    home: Path) -> tuple[dict[str, tuple[Path, Path]], list[dict], dict]:
    """Fill the panel, then generate, read back and render every emotion of the server; returns
    the (open, closed) tiles per emotion (PNGs under ``home``), the JSON's emotion entries and the
    server's ``/v1/info``."""
    info = server_info(url)
    fill_panel(bpy, url, head, args, info["fps"])
    add_camera_and_light(bpy, head)
    set_up_render(bpy, args.engine, args.size)
    window = max(1, round(CLOSURE_WINDOW_S * info["fps"]))
    tiles, summaries = {}, []
    for emotion in sheet_order(info["emotions"]):
        take = read_take(bpy, head, emotion, generate(bpy, emotion))
        opened, closed = open_frame(take.gap), closed_frame(take.gap, window)
        tiles[emotion] = (home / f"{emotion}-open.png", home / f"{emotion}-closed.png")
        for frame, path in zip((opened, closed), tiles[emotion]):
            render_frame(bpy, take.frame_start + frame, path)
        summaries.append(take_summary(take, opened, closed))
        print(f"emotion_sheet: {emotion}: {len(take.gap)} frames, open at {opened} (gap {take.gap[opened]:.2f}), "
              f"closed at {closed} (gap {take.gap[closed]:.2f})", flush=True)
    return tiles, summaries, info


def run_sheet(args: argparse.Namespace, home: Path) -> list[dict]:
    """Start the server and Blender, make the sheet (see the module's docstring) and write it and
    its JSON; returns the JSON's emotion entries. The server is stopped before this returns, also
    on error (the message of a failure after it was ready then ends with its log)."""
    server = ServerProcess(home / "server-data").start()  # before bpy sets XDG_CACHE_HOME
    try:
        bpy = import_bpy(home)
        install_addon(bpy, home / "dist")
        head = import_character(bpy, args.character)
        try:
            server.wait_ready()
        except RuntimeError as exc:  # its message ends with the server's log
            raise SheetError(str(exc)) from exc
        try:
            tiles, summaries, info = render_emotions(bpy, server.url, head, args, home)
        except (SheetError, RuntimeError) as exc:  # RuntimeError: a Blender operator failed
            raise SheetError(f"{exc}\n--- server log ---\n{server.log_tail()}") from exc
    finally:
        server.stop()
    tile_sheet(tiles, args.size, args.out)
    record = {"character": args.character.name, "head_mesh": head.name, "audio": args.audio.name,
              "seed": args.seed, "intensity": args.intensity, "engine": args.engine, "fps": info["fps"],
              "emotions": summaries}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return summaries


def main(argv: list[str] | None = None) -> int:
    """Make the sheet; a failure prints one error message and returns 2."""
    args = parse_args(argv)
    started = time.monotonic()
    try:
        check_inputs(args)
        with tempfile.TemporaryDirectory(prefix="flowvq-emotion-sheet-") as home:
            summaries = run_sheet(args, Path(home))
    except (SheetError, DemoError) as exc:
        print(f"emotion_sheet: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(summaries, "open"))
    print(format_table(summaries, "mean"))
    print(f"emotion_sheet: {args.out} and {args.out.with_suffix('.json')} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
