"""Fitting speed of talking-face videos (`flowvq corpus from-videos`, `flowvq eval --real`).

Run as ``python benchmarks/fit_speed.py [--video PATH] [--frames 25] [--repeats 3] [--json]``.

Each video frame costs a FaceMesh detection (`core.face.landmarks`) and a fit of the face model
(`core.face.fit.fit`: six alternations of a similarity alignment and a bounded least-squares
solve for the expression weights). Timed per frame on the first ``--frames`` frames of the video
(default: the committed GRID clip, tests/data/real/grid_lbax4n.mpg), best of ``--repeats``; the
baseline (before session 22) on the process's BLAS threads, the current code on one BLAS thread,
as `video_clip` runs it (its solves are tiny: with the default threads on a busy CPU they wait on
each other). The BLAS thread count of the baseline is printed.

- **detection**: a FaceMesh graph built for every frame (`detect_landmarks`, the baseline) against
  one graph for all the frames (`LandmarkDetector`, what `video_clip` uses);
- **expression solve**: the six solves of a fit on the stacked (V*3 + D, D) design with its ridge
  rows (the baseline) against the same problems reduced to (D, D) once per model
  (`core.face.fit._expression_solve`), with the largest difference in the weights they find;
- **whole frame** as `video_clip` now runs it (detection and `fit`), and the baseline's (its
  detection and solves in place of the new ones, the rest of the fit as measured);
- **video**: `video_clip` on the whole video, in frames per second and times real time.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import lsq_linear
from threadpoolctl import threadpool_info, threadpool_limits

from timing import best_of
from core.audio import SAMPLE_RATE
from core.corpus.videos import video_clip
from core.face import builtin
from core.face.fit import RIDGE, _expression_solve, _stable_vertices, fit, similarity_fit
from core.face.landmarks import LandmarkDetector, detect_landmarks

__all__ = ["main", "read_frames", "step_problems"]

GRID_CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "grid_lbax4n.mpg"
FIT_STEPS = 6  # `fit`'s default alternations


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a video as RGB. Shapes: -> [(H, W, 3) uint8]."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame, _ in zip(container.decode(video=0), range(count))]


def step_problems(landmarks: list[np.ndarray]) -> list[np.ndarray]:
    """The expression solve's right-hand side for each frame: its landmarks aligned to the neutral
    face, minus the neutral face. Shapes: [(V, 3)] -> [(V*3,)]."""
    face = builtin()
    stable = _stable_vertices(face)
    problems = []
    for points in landmarks:
        scale, rot, trans = similarity_fit(face.neutral[stable], points[stable])
        problems.append((((points - trans) @ rot) / scale - face.neutral).reshape(-1))
    return problems


def solve_rows(problems: list[np.ndarray], repeats: int) -> tuple[float, float, float]:
    """Seconds per frame of `FIT_STEPS` stacked solves (default BLAS threads) and reduced solves
    (one BLAS thread), and their largest weight difference."""
    face = builtin()
    d = face.n_expressions
    stacked = np.vstack([face.basis.reshape(d, -1).T, np.sqrt(RIDGE) * 1e-3 * np.eye(d)])
    q_data, r = _expression_solve(face)
    bounds = (face.lower, face.upper)

    def full(residual: np.ndarray) -> np.ndarray:
        return lsq_linear(stacked, np.concatenate([residual, np.zeros(d)]), bounds=bounds).x

    def reduced(residual: np.ndarray) -> np.ndarray:
        return lsq_linear(r, q_data.T @ residual, bounds=bounds).x

    def timed(solve) -> float:
        return best_of(lambda: [solve(p) for p in problems for _ in range(FIT_STEPS)], repeats) / len(problems)

    difference = max(float(np.abs(full(p) - reduced(p)).max()) for p in problems)
    baseline = timed(full)
    with threadpool_limits(1, user_api="blas"):
        return baseline, timed(reduced), difference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=GRID_CLIP)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    face = builtin()
    frames = read_frames(args.video, args.frames)
    with LandmarkDetector() as detector:
        landmarks = [detector.detect(frame) for frame in frames]
        shared = best_of(lambda: [detector.detect(frame) for frame in frames], args.repeats) / len(frames)
    per_frame = best_of(lambda: [detect_landmarks(frame) for frame in frames], args.repeats) / len(frames)
    full, reduced, difference = solve_rows(step_problems(landmarks), args.repeats)
    with threadpool_limits(1, user_api="blas"):
        fitting = best_of(lambda: [fit(face, points) for points in landmarks], args.repeats) / len(frames)
    blas_threads = max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)
    start = time.perf_counter()
    clip, wave = video_clip(args.video, "clip", model=face)
    video_seconds = time.perf_counter() - start
    rows = [
        ("detection", per_frame, shared),
        (f"expression solve ({FIT_STEPS} steps)", full, reduced),
        ("whole frame", per_frame + fitting - reduced + full, shared + fitting),
    ]
    clip_seconds = len(wave) / SAMPLE_RATE
    report = {
        "video": str(args.video), "frames_timed": len(frames), "baseline_blas_threads": blas_threads,
        "rows": [{"stage": stage, "baseline_ms": 1000 * before, "now_ms": 1000 * now, "ratio": before / now}
                 for stage, before, now in rows],
        "solve_max_weight_difference": difference,
        "video_clip": {"frames": clip.frames, "seconds": video_seconds, "fps": clip.frames / video_seconds,
                       "x_real_time": clip_seconds / video_seconds},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.video.name}: {len(frames)} frames timed, best of {args.repeats}; "
          f"baseline on {blas_threads} BLAS threads, now on 1")
    print("| stage | baseline ms/frame | now ms/frame | ratio |\n|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['stage']} | {row['baseline_ms']:.1f} | {row['now_ms']:.1f} | {row['ratio']:.1f}x |")
    print(f"largest weight difference between the two solves: {difference:.1e}")
    video = report["video_clip"]
    print(f"video_clip on the whole video: {video['frames']} frames in {video['seconds']:.1f} s "
          f"({video['fps']:.1f} fps, {video['x_real_time']:.2f}x real time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
