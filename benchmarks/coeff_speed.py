"""Speed of `CoeffGenerator.generate` on 10 s of audio: 1 take, 16 takes batched, 16 takes one by one.

Run as ``python benchmarks/coeff_speed.py [--weights DIR] [--json]``. Without ``--weights`` the
default preset (`PRESETS["default"]`) is randomly initialised: speed does not depend on training,
but such a model has no latent bank, so manifold projection is off. Each case is timed end to end
(audio features, sampling, takes) as best of ``--repeats`` after one warm-up, on the CPU and, when
available, on CUDA. RTF is the real-time factor: seconds of audio per second of wall time.

The last two cases are baselines for 1 take: with one intra-op thread, where the expression and
pose flows step one after the other instead of side by side (`core.coeff.sampler._run`), and frame
by frame, one call from Python per frame instead of per chunk of `MAX_CHUNK_FRAMES`.

Goals: 1 take >= 50x real time; 16 batched takes <= 3x the time of 1 take. The cases run with
``closures="off"``: listening to the clip is timed on its own lines, not part of the RTF above.
With a line's text (``--text``), forced alignment runs before sampling (`core.align.align_text` on
a real reader's line, tests/data/real/LJ001-0013.flac); without one, the generator listens for the
clip's bilabials (`core.recognize.heard_phones`, "phones" by default, "words" on request) on a real
speaker's 11 s clip (tests/data/real/jfk.flac).
"""

import argparse
import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from timing import best_of
from core.align import align_text
from core.audio import load_audio
from core.audio import SAMPLE_RATE
from core.coeff import sampler
from core.coeff.config import PRESETS
from core.coeff.generator import CoeffGenerator, GenerateSettings
from core.coeff.model import CoeffModel
from core.coeff.sampler import SampleSettings, take_seeds
from core.coeff.weights import save_weights
from core.face import builtin
from core.recognize import heard_phones

__all__ = ["main", "noise_clip", "time_cases"]

RTF_GOAL = 50.0
BATCH_RATIO_GOAL = 3.0
ALIGN_CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "LJ001-0013.flac"
ALIGN_TEXT = "than in the same operations with ugly ones."
HEAR_CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "jfk.flac"


def noise_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded noise as the test clip: the content does not change the speed. Shapes: -> (N,)."""
    return (0.1 * np.random.default_rng(seed).standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def time_cases(
    generator: CoeffGenerator, audio: Path, seconds: float, settings: GenerateSettings, takes: int, repeats: int
) -> list[dict]:
    """Wall time and RTF of 1 take, ``takes`` batched, and ``takes`` generated one at a time."""
    one = replace(settings, sample=replace(settings.sample, takes=1))
    batched = replace(settings, sample=replace(settings.sample, takes=takes))

    def naive() -> None:
        for seed in take_seeds(batched.sample):
            generator.generate(audio, replace(one, sample=replace(one.sample, seed=seed)))

    cases = [
        ("1 take", 1, lambda: generator.generate(audio, one)),
        (f"{takes} takes batched", takes, lambda: generator.generate(audio, batched)),
        (f"{takes} takes one by one", takes, naive),
        ("1 take, 1 thread", 1, lambda: one_thread(lambda: generator.generate(audio, one))),
        ("1 take, frame by frame", 1, lambda: frame_by_frame(lambda: generator.generate(audio, one))),
    ]
    rows = []
    for name, count, run in cases:
        wall = best_of(run, repeats)
        rows.append({"device": str(generator.device), "case": name, "takes": count,
                     "wall_s": wall, "rtf": seconds / wall})
    return rows


def one_thread(run: Callable[[], object]) -> None:
    """``run()`` with one intra-op thread (the flows then step one after the other), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run()
    finally:
        torch.set_num_threads(before)


def frame_by_frame(run: Callable[[], object]) -> None:
    """``run()`` with the sampler's chunks of one frame (one call from Python per frame), restored after."""
    before = sampler.MAX_CHUNK_FRAMES
    sampler.MAX_CHUNK_FRAMES = 1
    try:
        run()
    finally:
        sampler.MAX_CHUNK_FRAMES = before


def time_alignment(repeats: int) -> dict:
    """Wall time of aligning the real reader's line to its recording, and its real-time factor."""
    wave = load_audio(ALIGN_CLIP)
    wall = best_of(lambda: align_text(wave, ALIGN_TEXT), repeats)
    seconds = len(wave) / SAMPLE_RATE
    return {"clip_s": seconds, "wall_s": wall, "rtf": seconds / wall}


def time_hearing(repeats: int) -> list[dict]:
    """Wall time of each recogniser `GenerateSettings.closures` can name on the real speaker's clip,
    and its real-time factor."""
    wave = load_audio(HEAR_CLIP)
    seconds = len(wave) / SAMPLE_RATE
    rows = []
    for hearing in ("phones", "words"):
        wall = best_of(lambda: heard_phones(wave, hearing), repeats)
        rows.append({"closures": hearing, "clip_s": seconds, "wall_s": wall, "rtf": seconds / wall})
    return rows


def summary(rows: list[dict]) -> dict:
    """Ratios against the goals and the baselines for one device's rows (in `time_cases` order)."""
    one, batched, naive, single, by_frame = rows
    return {
        "device": one["device"],
        "batched_over_one": batched["wall_s"] / one["wall_s"],
        "batched_over_one_goal": BATCH_RATIO_GOAL,
        "one_take_rtf": one["rtf"],
        "one_take_rtf_goal": RTF_GOAL,
        "batched_speedup_over_naive": naive["wall_s"] / batched["wall_s"],
        "speedup_over_one_thread": single["wall_s"] / one["wall_s"],
        "speedup_over_frame_by_frame": by_frame["wall_s"] / one["wall_s"],
    }


def print_table(rows: list[dict], summaries: list[dict], alignment: dict, hearing: list[dict], header: str) -> None:
    print(header)
    print(f"{'device':<8} {'case':<24} {'wall s':>8} {'RTF':>9}")
    for row in rows:
        print(f"{row['device']:<8} {row['case']:<24} {row['wall_s']:8.3f} {row['rtf']:8.1f}x")
    for s in summaries:
        print(f"{s['device']}: batched / 1 take = {s['batched_over_one']:.2f}x (goal <= {BATCH_RATIO_GOAL:g}x); "
              f"1-take RTF = {s['one_take_rtf']:.1f}x (goal >= {RTF_GOAL:g}x); "
              f"batched vs one by one: {s['batched_speedup_over_naive']:.2f}x faster; "
              f"1 take vs 1 thread: {s['speedup_over_one_thread']:.2f}x faster; "
              f"vs frame by frame: {s['speedup_over_frame_by_frame']:.2f}x faster")
    print(f"text alignment (--text, before sampling): {alignment['wall_s']:.3f} s for {alignment['clip_s']:.2f} s "
          f"of speech ({alignment['rtf']:.1f}x real time)")
    for row in hearing:
        print(f"closures heard (--closures {row['closures']}, before sampling): {row['wall_s']:.3f} s for "
              f"{row['clip_s']:.2f} s of speech ({row['rtf']:.1f}x real time)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights directory (default: random-init default preset)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate")
    parser.add_argument("--takes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), action="append",
                        help="repeatable (default: cpu, and cuda when available)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

    with tempfile.TemporaryDirectory() as scratch:
        audio = Path(scratch) / "speech.wav"
        sf.write(audio, noise_clip(args.seconds), SAMPLE_RATE)
        weights = args.weights
        if weights is None:
            face = builtin()
            model = CoeffModel(PRESETS["default"], face.names, face.id, face.lower, face.upper, seed=0)
            weights = save_weights(Path(scratch) / "weights", model)
        rows, summaries = [], []
        for device in devices:
            generator = CoeffGenerator.load(weights, device=device)
            blend = SampleSettings().manifold_blend if len(generator.model.bank) else 0.0
            settings = GenerateSettings(sample=SampleSettings(manifold_blend=blend), fps=args.fps, closures="off")
            device_rows = time_cases(generator, audio, args.seconds, settings, args.takes, args.repeats)
            rows += device_rows
            summaries.append(summary(device_rows))

    alignment = time_alignment(args.repeats)
    hearing = time_hearing(args.repeats)
    source = str(args.weights) if args.weights else "PRESETS['default'], random init (speed only)"
    if args.json:
        print(json.dumps({"weights": source, "seconds": args.seconds, "fps": args.fps,
                          "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
                          "results": rows, "summary": summaries, "alignment": alignment,
                          "hearing": hearing}, indent=1))
    else:
        print_table(rows, summaries, alignment, hearing, f"{args.seconds:g} s of audio at {args.fps:g} fps; weights: {source}; "
                                     f"torch threads: {torch.get_num_threads()}; best of {args.repeats} after a warm-up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
