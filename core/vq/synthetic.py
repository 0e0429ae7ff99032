"""A synthetic talking-face frame set that needs no data: the built-in face model rendered by a small
numpy rasteriser for random smooth coefficient sequences, in the layout of `core.vq.data`.

Each sequence has its own "identity" (skin, lip, eye, brow and background colours) so that the VQIG
must take identity from the source image and motion from the coefficients. Rendering is
flat-shaded (one Lambert shade per triangle, painter's algorithm, back faces culled, OpenCV polygon
fill) with a fixed orthographic camera looking along -Z at the model's face. Everything is seeded::

    python -m core.vq.synthetic OUT [--sequences 8] [--frames 32] [--resolution 64] [--seed 0]
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.audio import DEFAULT_FPS
from core.face import builtin
from core.face.model import FaceModel
from core.formats.takes import Take, save_takes
from core.vq.data import FRAMES_DIR, TAKE_FILE

__all__ = ["Palette", "random_palette", "random_sequence", "render_face", "write_synthetic_set", "main"]

FPS = DEFAULT_FPS
_LIGHT = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
_AMBIENT = 0.35
_SUBPIXEL_BITS = 4
_SUBPIXEL = 1 << _SUBPIXEL_BITS
_FACE_FILL = 0.85  # fraction of the image side the neutral face's height covers
_REGION_PARTS = {"lips": ("lips",), "eyes": ("eye_left", "eye_right"), "brows": ("brow_left", "brow_right")}


@dataclass(frozen=True)
class Palette:
    """RGB colours in [0, 1] of one synthetic identity. Shapes: each (3,)."""

    skin: np.ndarray
    lips: np.ndarray
    eyes: np.ndarray
    brows: np.ndarray
    background: np.ndarray


def random_palette(rng: np.random.Generator) -> Palette:
    """A random identity: a warm skin tone, redder lips, dark eyes and brows, a muted background."""
    skin = np.array([0.95, 0.75, 0.62]) * rng.uniform(0.45, 1.0) + rng.uniform(-0.05, 0.05, 3)
    return Palette(
        skin=np.clip(skin, 0, 1),
        lips=np.clip(skin * [1.0, 0.55, 0.55] + rng.uniform(-0.05, 0.05, 3), 0, 1),
        eyes=rng.uniform(0.05, 0.3, 3),
        brows=rng.uniform(0.05, 0.35, 3),
        background=rng.uniform(0.2, 0.8, 3),
    )


def random_sequence(face: FaceModel, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random coefficients: a random quarter of the expressions oscillate between their lower
    bound and a random amplitude, the head turns and shifts slowly.
    Shapes: -> exp (frames, D) float32 within [lower, upper], pose (frames, 6) float32."""
    dims = face.n_expressions
    t = np.arange(frames)[:, None]
    active = rng.random(dims) < 0.25
    amplitude = active * rng.uniform(0.3, 1.0, dims)
    wave = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(0.02, 0.12, dims) * t + rng.uniform(0, 2 * np.pi, dims))
    exp = face.lower + (face.upper - face.lower) * amplitude * wave  # (frames, D)
    scale = np.array([0.1, 0.25, 0.06, 0.006, 0.006, 0.0])  # pitch, yaw, roll (rad), tx, ty, tz (m)
    phase = rng.uniform(0, 2 * np.pi, 6)
    pose = scale * np.sin(2 * np.pi * rng.uniform(0.01, 0.05, 6) * t + phase)  # (frames, 6)
    return exp.astype(np.float32), pose.astype(np.float32)


def _vertex_colours(face: FaceModel, palette: Palette) -> np.ndarray:
    """Skin everywhere, then the lip, eye and brow regions. Shapes: -> (V, 3)."""
    colours = np.tile(palette.skin, (face.n_vertices, 1))
    for part, regions in _REGION_PARTS.items():
        for region in regions:
            colours[face.regions[region]] = getattr(palette, part)
    return colours


def _project(vertices: np.ndarray, face: FaceModel, resolution: int) -> np.ndarray:
    """Orthographic pixel coordinates (x right, y down) of model-space vertices. Shapes: (V, 3) -> (V, 2)."""
    low, high = face.neutral.min(0), face.neutral.max(0)
    centre = (low + high) / 2
    scale = _FACE_FILL * resolution / (high[1] - low[1])
    x = (vertices[:, 0] - centre[0]) * scale + resolution / 2
    y = resolution / 2 - (vertices[:, 1] - centre[1]) * scale
    return np.stack([x, y], -1)


def _fill_triangle(image: np.ndarray, corners: np.ndarray, colour: np.ndarray) -> None:
    """Paint a 2-D triangle (corners in pixel units, pixel i spanning [i, i + 1)) with OpenCV's
    sub-pixel polygon fill. Shapes: image (S, S, 3) float32, corners (3, 2), colour (3,)."""
    points = np.round((corners - 0.5) * _SUBPIXEL).astype(np.int32)  # cv2 puts pixel centres at integers
    cv2.fillConvexPoly(image, points, colour.tolist(), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


def render_face(face: FaceModel, exp: np.ndarray, pose: np.ndarray, resolution: int, palette: Palette) -> np.ndarray:
    """One flat-shaded frame. Shapes: exp (D,), pose (6,) -> (resolution, resolution, 3) uint8 RGB."""
    vertices = face.posed_mesh(exp, pose)  # (V, 3)
    triangles = vertices[face.faces]  # (F, 3, 3)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    shade = _AMBIENT + (1 - _AMBIENT) * np.clip(normals @ _LIGHT, 0, 1)  # (F,)
    colours = _vertex_colours(face, palette)[face.faces].mean(1) * shade[:, None]  # (F, 3)
    pixels = _project(vertices, face, resolution)[face.faces]  # (F, 3, 2)
    image = np.tile(palette.background.astype(np.float32), (resolution, resolution, 1))
    for index in np.argsort(triangles[:, :, 2].mean(1)):  # far to near
        if normals[index, 2] > 0:  # facing the camera
            _fill_triangle(image, pixels[index], colours[index])
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def write_synthetic_set(
    root: str | Path, sequences: int, frames: int, resolution: int, seed: int = 0, face: FaceModel | None = None,
) -> list[Path]:
    """Write ``sequences`` folders ``root/seqNNN`` of ``frames`` rendered frames with their take.json;
    returns the sequence folders. ``face`` defaults to the built-in model."""
    face = face if face is not None else builtin()
    folders = []
    for number in range(sequences):
        rng = np.random.default_rng([seed, number])
        palette = random_palette(rng)
        exp, pose = random_sequence(face, frames, rng)
        folder = Path(root) / f"seq{number:03d}"
        (folder / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
        for index in range(frames):
            rgb = render_face(face, exp[index], pose[index], resolution, palette)
            cv2.imwrite(str(folder / FRAMES_DIR / f"{index:05d}.png"), rgb[:, :, ::-1])
        take = Take(take=0, seed=seed, emotion="neutral", fps=FPS, names=face.names, exp=exp, pose=pose,
                    face_model=face.id)
        save_takes(folder / TAKE_FILE, [take])
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    """``python -m core.vq.synthetic OUT ...``: write a synthetic set; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m core.vq.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the sequences into")
    parser.add_argument("--sequences", type=int, default=8, help="(default %(default)s)")
    parser.add_argument("--frames", type=int, default=32, help="frames per sequence (default %(default)s)")
    parser.add_argument("--resolution", type=int, default=64, help="image side in pixels (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    args = parser.parse_args(argv)
    write_synthetic_set(args.out, args.sequences, args.frames, args.resolution, args.seed)
    print(f"wrote {args.sequences} synthetic sequences of {args.frames} frames at {args.resolution} px to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
