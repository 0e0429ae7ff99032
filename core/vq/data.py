"""Readers of the image generator's training data.

Talking-face frames (the VQIG; also usable as codebook images) — one folder per sequence::

    ROOT/
      SEQ/                 any folder name; ROOT is searched recursively for take.json files
        take.json          a takes file (`core.formats.takes.save_takes`) holding exactly one take whose
                           face_model and names are the face model's and whose frame count equals
                           the number of PNGs
        frames/00000.png   frame t of the take, numbered from 00000 without gaps; RGB, square
        frames/00001.png   (other sizes are centre-cropped to a square and resized)

Still images (the codebook, FFHQ-style): any folder, searched recursively for .png/.jpg/.jpeg.

Images become float32 tensors in [-1, 1], shape (3, S, S). Samplers draw batches from a numpy
generator, so a batch is fixed by the generator's seed (see `core.train.vq`).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from core.errors import FlowVQError
from core.face.model import FaceModel
from core.formats.takes import TakeError, load_takes
from core.vq.vqig import coefficient_windows

__all__ = [
    "FRAMES_DIR", "TAKE_FILE", "IMAGE_SUFFIXES", "DataError", "read_image", "image_tensor", "list_images",
    "ImageSampler",
    "FrameSequence", "read_frame_sequence", "load_frame_sequences", "FrameSampler",
]

FRAMES_DIR = "frames"
TAKE_FILE = "take.json"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
_FRAME_NAME = re.compile(r"\d{5}\.png")


class DataError(FlowVQError):
    """An image folder or frame sequence that cannot be used; the message names the file."""
    code = "data"


def read_image(path: Path, resolution: int) -> Tensor:
    """An RGB image, centre-cropped to a square and resized. Shapes: -> (3, S, S) float32 in [-1, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path} is not a readable image")
    return image_tensor(bgr[:, :, ::-1], resolution)


def image_tensor(rgb: np.ndarray, resolution: int) -> Tensor:
    """An RGB uint8 array as the model's input. Shapes: (H, W, 3) uint8 -> (3, S, S) float32 in [-1, 1]."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(rgb[top:top + side, left:left + side])
    if side != resolution:
        interpolation = cv2.INTER_AREA if side > resolution else cv2.INTER_LINEAR
        square = cv2.resize(square, (resolution, resolution), interpolation=interpolation)
    return torch.from_numpy(square).permute(2, 0, 1).float() / 127.5 - 1


def list_images(folders: Sequence[Path]) -> list[Path]:
    """Every PNG/JPEG under the folders (recursively), sorted; `DataError` when there is none."""
    paths = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise DataError(f"image folder {folder} does not exist")
        paths += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"no .png/.jpg/.jpeg images under {', '.join(map(str, folders))}")
    return paths


class ImageSampler:
    """Random batches of still images (the codebook's training data)."""

    def __init__(self, paths: Sequence[Path], resolution: int) -> None:
        self.paths, self.resolution = list(paths), resolution

    def sample(self, rng: np.random.Generator, batch: int) -> Tensor:
        """Shapes: -> (batch, 3, S, S)."""
        chosen = rng.integers(len(self.paths), size=batch)
        return torch.stack([read_image(self.paths[i], self.resolution) for i in chosen])


@dataclass(frozen=True)
class FrameSequence:
    """One talking-face sequence. Shapes: frames T paths; exp (T, D), pose (T, 6) float32."""

    folder: Path
    frames: tuple[Path, ...]
    exp: np.ndarray
    pose: np.ndarray


def read_frame_sequence(folder: Path, face: FaceModel) -> FrameSequence:
    """Read and check one sequence folder (module docstring) against ``face``."""
    try:
        takes = load_takes(folder / TAKE_FILE)
    except TakeError as exc:
        raise DataError(f"sequence {folder}: {exc}") from exc
    if len(takes) != 1:
        raise DataError(f"{folder / TAKE_FILE} must hold exactly one take, it holds {len(takes)}")
    take = takes[0]
    if take.face_model != face.id or take.names != tuple(face.names):
        raise DataError(
            f"{folder / TAKE_FILE} was made for face model {take.face_model!r} ({len(take.names)} expressions), "
            f"training uses {face.id!r} ({face.n_expressions}); refit the sequence on this face model"
        )
    frames = sorted((folder / FRAMES_DIR).glob("*.png"))
    expected = [f"{index:05d}.png" for index in range(take.frames)]
    if [path.name for path in frames] != expected:
        raise DataError(
            f"{folder / FRAMES_DIR} must hold exactly {expected[0]} .. {expected[-1]} for the {take.frames} "
            f"frames of {TAKE_FILE}, found {len(frames)} PNG files"
            + ("" if all(_FRAME_NAME.fullmatch(p.name) for p in frames) else " (some not named NNNNN.png)")
        )
    return FrameSequence(folder, tuple(frames), take.exp, take.pose)


def load_frame_sequences(root: Path, face: FaceModel) -> list[FrameSequence]:
    """Every sequence folder under ``root`` (each folder holding a take.json), sorted by path."""
    if not Path(root).is_dir():
        raise DataError(f"frame dataset {root} does not exist")
    folders = sorted(path.parent for path in Path(root).rglob(TAKE_FILE))
    if not folders:
        raise DataError(f"no sequence folders (with {TAKE_FILE} and {FRAMES_DIR}/) under {root}; see core.vq.data")
    return [read_frame_sequence(folder, face) for folder in folders]


class FrameSampler:
    """Random VQIG training examples: a target frame, a source frame of the same sequence, and the
    coefficient window around the target."""

    def __init__(self, sequences: Sequence[FrameSequence], window: int, resolution: int) -> None:
        self.sequences, self.resolution = list(sequences), resolution
        self.exp = [coefficient_windows(seq.exp, window) for seq in self.sequences]  # (T, W, D) each
        self.pose = [coefficient_windows(seq.pose, window) for seq in self.sequences]  # (T, W, 6) each

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, Tensor]:
        """Shapes: -> source, target (batch, 3, S, S); exp (batch, W, D); pose (batch, W, 6)."""
        items = [self._example(rng) for _ in range(batch)]
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def _example(self, rng: np.random.Generator) -> dict[str, Tensor]:
        number = int(rng.integers(len(self.sequences)))
        seq = self.sequences[number]
        target, source = (int(i) for i in rng.integers(len(seq.frames), size=2))
        return {
            "source": read_image(seq.frames[source], self.resolution),
            "target": read_image(seq.frames[target], self.resolution),
            "exp": torch.from_numpy(self.exp[number][target]),
            "pose": torch.from_numpy(self.pose[number][target]),
        }
