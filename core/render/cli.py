"""``flowvq render``: a portrait + one take of a takes file -> numbered PNG frames (and a video).

``flowvq render --source PORTRAIT --takes takes.json [--take K] [--renderer warp|vqig|auto]
[--weights DIR] [--size 256] --out FRAMES_DIR [--video out.mp4 [--audio clip.wav]]``

Everything that can be checked is checked before the first file is written (takes, portrait and
its face, renderer, audio); errors are `FlowVQError`s, printed by `core.cli.main` as one line.
"""

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from core.audio import load_audio
from core.device import DEVICES
from core.face import builtin
from core.face.landmarks import read_image
from core.render import RENDERER_KINDS, RendererError, load_renderer
from core.formats.render_inputs import take_coefficients
from core.render.video import VideoWriter, frame_path, write_png
from core.formats.takes import Take, TakeError, load_takes

__all__ = ["add_render_parser", "run_render"]


def add_render_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``render`` to the ``flowvq`` subparsers; returns its parser."""
    parser = subparsers.add_parser("render", help="render a talking portrait from a take (PNG frames, video)")
    parser.add_argument("--source", type=Path, required=True, metavar="PORTRAIT",
                        help="a photo with one clearly visible face")
    parser.add_argument("--takes", type=Path, required=True, help="takes file written by `flowvq generate`")
    parser.add_argument("--take", type=int, default=0, metavar="K", help="which take, 0-based (default %(default)s)")
    parser.add_argument("--renderer", choices=RENDERER_KINDS, default="auto",
                        help="warp (mesh warp, no weights), vqig (learned) or auto: vqig when its weights "
                             "are found (default %(default)s)")
    parser.add_argument("--weights", type=Path, metavar="DIR", help="VQIG weights directory")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="VQIG device (default %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, metavar="FRAMES_DIR",
                        help="directory for frame_00000.png, frame_00001.png, ...")
    parser.add_argument("--video", type=Path, metavar="OUT.mp4", help="also write an H.264 video")
    parser.add_argument("--audio", type=Path, metavar="CLIP", help="audio track for --video (e.g. the take's speech)")
    parser.set_defaults(func=run_render)
    return parser


def _select_take(path: Path, index: int) -> Take:
    """Take ``index`` (0-based) of a takes file; `TakeError` when there is no such take."""
    takes = load_takes(path)
    if not 0 <= index < len(takes):
        raise TakeError(f"{path} has {len(takes)} take(s); --take must be in 0..{len(takes) - 1}, got {index}")
    return takes[index]


def _renderer_note(kind: str, chosen: str) -> str:
    """Why the renderer ``chosen`` ran when ``kind`` was asked for, for the user."""
    if kind != "auto":
        return "as asked"
    return "auto: VQIG weights found" if chosen == "vqig" else "auto: no VQIG weights found, using the mesh warp"


def run_render(args: argparse.Namespace) -> None:
    """Render the take's frames to ``args.out`` (and ``args.video``); prints which renderer ran."""
    if args.audio is not None and args.video is None:
        raise RendererError("--audio is the soundtrack of --video; give --video OUT.mp4 as well")
    take = _select_take(args.takes, args.take)
    exp, pose = take_coefficients(take, builtin().names)
    image = read_image(args.source)
    audio = load_audio(args.audio) if args.audio is not None else None
    renderer = load_renderer(args.renderer, args.weights, args.device)
    frames = renderer.render(image, exp, pose, size=args.size)
    print(f"renderer: {renderer.name} ({_renderer_note(args.renderer, renderer.name)})", file=sys.stderr)
    video = VideoWriter(args.video, take.fps, args.size, audio) if args.video is not None else None
    with video or nullcontext():  # the video's format is checked before the frames directory is made
        args.out.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            write_png(frame_path(args.out, index), frame)
            if video is not None:
                video.write(frame)
    print(f"wrote {take.frames} frames ({args.size}x{args.size}, {take.fps:g} fps) to {args.out}"
          + (f" and {args.video}" if args.video is not None else ""))
