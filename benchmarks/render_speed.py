"""Rendering speed: the mesh-warp renderer on the CPU, and the VQIG on the CPU and on a GPU.

Run as ``python benchmarks/render_speed.py [--frames 100] [--repeats 3] [--json]``.

- **Mesh warp** (`core.render.warp.WarpRenderer`) on the scikit-image astronaut at 256 and 512 px:
  frames per second of `render` over a synthetic take (talking mouth, blinks, head motion), the
  portrait's detection and fit excluded (done once per portrait and cached, as in the server).
  Goal: >= 25 fps at 256 px on the CPU.
- **VQIG** (`core.vq.renderer.VQIGRenderer.from_preset`, random weights: speed does not depend on
  training) with "preview-256" at 256 px and "paper-512" at 512 px: the network's forward pass on
  batches of coefficient windows, in variants — fp32 eager (the in-run baseline), bf16 / fp16
  autocast, channels-last memory format, `torch.compile`, and all three together — on the CPU
  (eager, bf16 and channels-last only: compiling and fp16 are GPU tools) and on CUDA when present.
  FLOPs per frame come from `torch.utils.flop_counter.FlopCounterMode`; on a GPU each row also
  gives its achieved FLOP/s as a fraction of a matmul rate measured in the same run (an 8192³
  matmul in the row's precision: fp32 rows against fp32, bf16 rows against bf16, fp16 against fp16).
  Without `core.vq` the VQIG rows are skipped, and the script says so.
"""

import argparse
import copy
import importlib.util
import json
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from timing import best_of
from core.face import builtin
from core.face.build import bundled_photos
from core.render import load_renderer

__all__ = ["main", "synthetic_take", "Variant", "VARIANTS", "warp_rows", "vqig_rows", "matmul_rate"]

WARP_FPS_GOAL = 25.0
SIZES = (256, 512)
VQIG_PRESETS = {256: "preview-256", 512: "paper-512"}
MATMUL_SIDE = 8192


@dataclass(frozen=True)
class Variant:
    """How the VQIG forward pass runs: autocast dtype (None: fp32), channels-last, torch.compile."""

    name: str
    autocast: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32 eager"),
    Variant("bf16 autocast", autocast=torch.bfloat16),
    Variant("fp16 autocast", autocast=torch.float16),
    Variant("channels_last", channels_last=True),
    Variant("torch.compile", compile=True),
    Variant("bf16+cl+compile", autocast=torch.bfloat16, channels_last=True, compile=True),
)
CPU_VARIANTS = ("fp32 eager", "bf16 autocast", "channels_last")


def synthetic_take(frames: int, names: tuple[str, ...], fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """A talking take for a face model's expression ``names``: jaw and lip shapes at syllable rate,
    a blink, a slow head sway. Shapes: -> exp (frames, len(names)), pose (frames, 6) float32.
    """
    t = np.arange(frames) / fps
    exp = np.zeros((frames, len(names)), np.float32)
    exp[:, names.index("jawOpen")] = 0.35 * (1 - np.cos(2 * np.pi * 4.0 * t))
    exp[:, names.index("mouthFunnel")] = 0.3 * (1 + np.sin(2 * np.pi * 1.3 * t))
    blink = np.exp(-(((t % 3.0) - 1.5) / 0.08) ** 2)
    exp[:, names.index("eyeBlinkLeft")] = exp[:, names.index("eyeBlinkRight")] = blink
    pose = np.zeros((frames, 6), np.float32)
    pose[:, 0] = 0.05 * np.sin(2 * np.pi * 0.4 * t)
    pose[:, 1] = 0.12 * np.sin(2 * np.pi * 0.25 * t)
    pose[:, 2] = 0.04 * np.sin(2 * np.pi * 0.3 * t)
    return exp, pose


def warp_rows(image: np.ndarray, exp: np.ndarray, pose: np.ndarray, repeats: int) -> list[dict]:
    """Mesh-warp frames per second at each of `SIZES` on the CPU."""
    renderer = load_renderer("warp")
    rows = []
    for size in SIZES:
        wall = best_of(lambda: list(renderer.render(image, exp, pose, size=size)), repeats)  # noqa: B023
        rows.append({"renderer": "warp", "device": "cpu", "size": size, "variant": "numpy+OpenCV",
                     "fps": len(exp) / wall, "gflop_per_frame": None, "peak_fraction": None})
    return rows


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a `MATMUL_SIDE`³ matmul in ``dtype`` on the device (best of 5)."""
    a = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device, dtype=dtype)
    b = torch.randn(MATMUL_SIDE, MATMUL_SIDE, device=device, dtype=dtype)

    def run() -> None:
        a @ b
        _synchronize(device)

    return 2.0 * MATMUL_SIDE**3 / best_of(run, 5)


def _vqig_inputs(renderer, image: np.ndarray, exp: np.ndarray, pose: np.ndarray, batch: int) -> tuple:
    """The model inputs for ``batch`` frames. Shapes: -> source (B, 3, S, S), exp (B, W, D), pose (B, W, 6)."""
    from core.vq.vqig import coefficient_windows

    window = renderer.model.config.vqig.window
    source = renderer.source_tensor(image).expand(batch, -1, -1, -1).contiguous()
    exp_windows = torch.from_numpy(coefficient_windows(exp[:batch], window)).to(renderer.device)
    pose_windows = torch.from_numpy(coefficient_windows(pose[:batch], window)).to(renderer.device)
    return source, exp_windows, pose_windows


def _flops_per_frame(model: torch.nn.Module, inputs: tuple) -> float:
    """FLOPs of one forward pass divided by the batch size (`FlopCounterMode`)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(*inputs)
    return counter.get_total_flops() / inputs[0].shape[0]


def _variant_seconds(base: torch.nn.Module, inputs: tuple, variant: Variant, device: torch.device,
                     repeats: int) -> float:
    """Seconds of one batched forward pass of a copy of ``base`` run as ``variant``."""
    model = copy.deepcopy(base)
    source, *rest = inputs
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        source = source.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if variant.compile else model
    autocast = torch.autocast(device.type, dtype=variant.autocast) if variant.autocast else nullcontext()

    def run() -> None:
        with torch.inference_mode(), autocast:
            forward(source, *rest)
        _synchronize(device)

    return best_of(run, repeats)


def vqig_rows(image: np.ndarray, exp: np.ndarray, pose: np.ndarray, devices: list[str], batch: int,
              repeats: int) -> list[dict]:
    """VQIG forward-pass frames per second for each preset, device and variant."""
    from core.vq.renderer import VQIGRenderer

    rows, flops = [], {}
    for device in devices:
        names = [v.name for v in VARIANTS] if device == "cuda" else list(CPU_VARIANTS)
        rates = ({dtype: matmul_rate(torch.device(device), dtype) for dtype in (torch.float32, torch.bfloat16,
                                                                               torch.float16)}
                 if device == "cuda" else {})
        for size, preset in VQIG_PRESETS.items():
            renderer = VQIGRenderer.from_preset(preset, device)
            frames = batch if device == "cuda" else 1
            inputs = _vqig_inputs(renderer, image, exp, pose, frames)
            if preset not in flops:
                flops[preset] = _flops_per_frame(renderer.model, inputs)
            for variant in (v for v in VARIANTS if v.name in names):
                seconds = _variant_seconds(renderer.model, inputs, variant, renderer.device,
                                           repeats if device == "cuda" else 1)
                fps = frames / seconds
                peak = rates.get(variant.autocast or torch.float32)
                rows.append({"renderer": f"vqig {preset}", "device": device, "size": size, "variant": variant.name,
                             "fps": fps, "gflop_per_frame": flops[preset] / 1e9,
                             "peak_fraction": flops[preset] * fps / peak if peak else None})
    return rows


def print_table(rows: list[dict], notes: list[str]) -> None:
    print(f"{'renderer':<18} {'device':<6} {'size':>5} {'variant':<16} {'fps':>9} {'GFLOP/frame':>12} {'of matmul peak':>15}")
    for row in rows:
        gflop = f"{row['gflop_per_frame']:.1f}" if row["gflop_per_frame"] is not None else "-"
        peak = f"{100 * row['peak_fraction']:.1f}%" if row["peak_fraction"] is not None else "-"
        print(f"{row['renderer']:<18} {row['device']:<6} {row['size']:>5} {row['variant']:<16} {row['fps']:>9.2f} "
              f"{gflop:>12} {peak:>15}")
    for note in notes:
        print(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the warp take (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after a warm-up (default %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="VQIG frames per forward pass on a GPU (default %(default)s)")
    parser.add_argument("--no-vqig-cpu", action="store_true", help="skip the (slow) VQIG rows on the CPU")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    image = bundled_photos()["astronaut"]
    exp, pose = synthetic_take(max(args.frames, args.batch), builtin().names)
    rows = warp_rows(image, exp[:args.frames], pose[:args.frames], args.repeats)
    warp_256 = next(r["fps"] for r in rows if r["size"] == 256)
    notes = [f"warp at 256 px: {warp_256:.1f} fps (goal >= {WARP_FPS_GOAL:g} fps) — "
             f"{'met' if warp_256 >= WARP_FPS_GOAL else 'NOT met'}"]
    devices = ([] if args.no_vqig_cpu else ["cpu"]) + (["cuda"] if torch.cuda.is_available() else [])
    if importlib.util.find_spec("core.vq") is None:
        notes.append("VQIG rows skipped: core.vq is missing (the learned renderer is not installed)")
    elif not devices:
        notes.append("VQIG rows skipped: --no-vqig-cpu and no CUDA GPU")
    else:
        rows += vqig_rows(image, exp, pose, devices, args.batch, args.repeats)
        notes.append("VQIG: random-init presets (speed only); CPU rows time 1 frame per pass, best of 1 after a "
                     f"warm-up; GPU rows {args.batch} frames per pass, best of {args.repeats}")
    if not torch.cuda.is_available():
        notes.append("no CUDA GPU here: the GPU rows (variants, fraction of the matmul rate) were not run")
    header = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
              "warp_frames": args.frames}
    if args.json:
        print(json.dumps({**header, "results": rows, "notes": notes}, indent=1))
    else:
        print(", ".join(f"{k}: {v}" for k, v in header.items()))
        print_table(rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
