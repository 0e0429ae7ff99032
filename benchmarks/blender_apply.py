"""Applying takes in Blender: the add-on's `foreach_set` writer against one `keyframe_insert` per key.

Builds the FlowVQ head (the built-in face model, 52 shape keys) in the headless `bpy` module, then
keys seeded synthetic takes of ``--seconds`` at 25 fps (every shape key + the 6 pose channels):
``--takes`` of them through `addon.takes.write_take` (the code path of the Generate button), and
one through the in-run baseline, which sets each value and calls `keyframe_insert` per key.
Goal (issue 7): under 1 s per take of 60 s. Run: ``.venv/bin/python benchmarks/blender_apply.py``.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `addon` is a folder of the repository, not an installed package

from buildtools.demo import import_bpy  # noqa: E402  (after the path is set)

FPS = 25.0
GOAL_SECONDS = 1.0


def face_model_bytes() -> bytes:
    """The built-in face model as the server sends it (`GET /v1/face-model`)."""
    from core.face import builtin

    buffer = io.BytesIO()
    builtin().save(buffer)
    return buffer.getvalue()


def synthetic_take(names: list[str], frames: int, seed: int) -> dict:
    """A take in the wire format with smooth random curves. Shapes: exp (T, D), pose (T, 6)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / FPS
    freq, phase = rng.uniform(0.2, 3.0, (2, len(names))), rng.uniform(0, 2 * np.pi, len(names))
    exp = 0.5 + 0.5 * np.sin(2 * np.pi * freq[0] * t + phase)
    pose = 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5, 6) * t)
    return {"take": seed, "seed": seed, "emotion": "happy", "fps": FPS, "frames": frames,
            "names": names, "exp": exp.tolist(), "pose": pose.tolist(), "face_model": "builtin-arkit52@1"}


def insert_per_key(head, take: dict) -> None:
    """The baseline: set every value and call `keyframe_insert` once per key and frame (the pose
    on the head's delta transforms, converted by the add-on's `posemath`, as Generate keys it)."""
    from addon import posemath

    blocks = head.data.shape_keys.key_blocks
    exp, pose = np.asarray(take["exp"]), np.asarray(take["pose"])
    euler = posemath.to_rotation_values(posemath.relative_rotations(pose, np.eye(3)), head.rotation_mode)
    location = posemath.local_translations(pose, np.eye(3))
    for frame in range(len(exp)):
        for d, name in enumerate(take["names"]):
            blocks[name].value = exp[frame, d]
            blocks[name].keyframe_insert("value", frame=frame + 1)
        head.delta_rotation_euler, head.delta_location = euler[frame], location[frame]
        head.keyframe_insert("delta_rotation_euler", frame=frame + 1)
        head.keyframe_insert("delta_location", frame=frame + 1)


def timed(run) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tolerance", type=float, default=0.01, help="keyframe reduction (the add-on's setting)")
    args = parser.parse_args()
    bpy = import_bpy(Path(tempfile.mkdtemp(prefix="flowvq-bench-")))  # Blender's user folders thrown away

    from addon.character import pose_owner
    from addon.face import build_head, load_face_model
    from addon.mapping import identity_mapping
    from addon.takes import TakeTarget, write_take

    model = load_face_model(face_model_bytes())
    head = build_head(model, "FlowVQ Head", bpy.context.scene.collection)
    target = TakeTarget((head,), identity_mapping(model.names), pose_owner(head), translate=True)
    frames = round(args.seconds * FPS)
    takes = [synthetic_take(model.names, frames, seed) for seed in range(args.takes)]
    keys_per_take = frames * (len(model.names) + 6)

    rows = []
    for tolerance in (0.0, args.tolerance):
        times = [timed(lambda take=take: write_take(take, f"bench {take['take']}", target, 1, FPS, tolerance))
                 for take in takes]
        rows.append((f"foreach_set, tolerance {tolerance:g}", float(np.mean(times)), float(np.max(times))))
    baseline = timed(lambda: insert_per_key(head, takes[0]))
    rows.append(("keyframe_insert per key (baseline, 1 take)", baseline, baseline))

    print(f"blender apply: {args.takes} takes of {args.seconds:g} s at {FPS:g} fps, "
          f"{len(model.names)} shape keys + 6 pose channels = {keys_per_take} keys per take, bpy {bpy.app.version_string}")
    print("| writer | mean s/take | worst s/take | vs baseline |")
    print("|---|---|---|---|")
    for name, mean, worst in rows:
        print(f"| {name} | {mean:.3f} | {worst:.3f} | {baseline / mean:.1f}x |")
    fast = rows[0][1]
    print(f"goal: under {GOAL_SECONDS:g} s per take of 60 s -> {fast:.3f} s ({'met' if fast < GOAL_SECONDS else 'NOT met'})")


if __name__ == "__main__":
    main()
