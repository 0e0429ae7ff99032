"""A portrait made ready for rendering: its FaceMesh fit and the square frame cropped around the face.

Frames show a square crop of the portrait centred on the face (the middle of the face oval's
bounding box), `CROP_FACTOR` times the larger side of that box, resized to ``size`` pixels; parts
of the crop outside the photo repeat its edge pixels. The whole photo is not shown: a preview plane
beside the head in Blender wants the face large.

Pixel coordinates here are ``(col, row)`` of pixel centres in the cropped frame, rows downward;
``depth`` is the landmarks' z (toward the camera) in the same pixel units. The landmarks of
`core.face.landmarks` (x right, y up, pixels from the image's lower-left corner) map to source
pixels by ``col = x - 0.5`` and ``row = height - y - 0.5``.

Detection and fitting run once per image content (`fit_portrait`, cached by a hash of the pixels),
the crop once per image and size (`prepare_portrait`): a server calls the renderer once per job.
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from core.face import builtin
from core.face.fit import FitResult, fit
from core.face.landmarks import FaceDetectionError, detect_landmarks
from core.face.model import FaceModel
from core.face.pose import rotation_matrix
from core.formats.render_inputs import MIN_SIZE, check_image, check_size

__all__ = [
    "CROP_FACTOR",
    "PortraitFit",
    "PreparedPortrait",
    "image_key",
    "fit_portrait",
    "prepare_portrait",
]

CROP_FACTOR = 2.0  # crop side / larger side of the face oval's bounding box
_CACHE_ENTRIES = 8

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class PortraitFit:
    """The face on a portrait: landmarks (V, 3) in `core.face.landmarks` axes and pixels, their fit
    (`core.face.fit.FitResult`), the face model it was fitted with and the image's height in pixels."""

    landmarks: np.ndarray
    fit: FitResult
    face: FaceModel
    height: int

    def model_shape(self) -> np.ndarray:
        """The landmarks taken back into model space by the inverse of the fitted similarity:
        the fitted expression plus this person's shape. Shapes: -> (V, 3) metres."""
        rot = rotation_matrix(self.fit.pose[:3])
        return (self.landmarks / self.fit.scale - self.fit.pose[3:]) @ rot


@dataclass(frozen=True, eq=False)
class PreparedPortrait:
    """A portrait cropped and resized for frames of one size.

    image (size, size, 3) uint8 RGB: the crop, which every frame shows outside the face;
    origin (2,) source pixel (col, row) of the crop's top-left corner; zoom: frame pixels per
    source pixel. ``points`` (V, 3): the landmarks as frame (col, row, depth).
    """

    portrait: PortraitFit
    size: int
    image: np.ndarray
    origin: np.ndarray
    zoom: float
    points: np.ndarray

    def to_frame(self, landmarks: np.ndarray) -> np.ndarray:
        """Landmark-axes pixels of the source photo to frame (col, row, depth). Shapes: (..., 3) -> (..., 3)."""
        return _to_frame(landmarks, self.portrait.height, self.origin, self.zoom)


def _source_pixels(landmarks: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmark-axes pixels of a photo ``height`` pixels high as source pixel (col, row).
    Shapes: (..., 3) -> (...,), (...,)."""
    return landmarks[..., 0] - 0.5, height - landmarks[..., 1] - 0.5


def _to_frame(landmarks: np.ndarray, height: int, origin: np.ndarray, zoom: float) -> np.ndarray:
    """Landmark-axes pixels of a photo ``height`` pixels high to (col, row, depth) in the crop at
    ``origin`` (source col, row) scaled by ``zoom``. Shapes: (..., 3) -> (..., 3)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    col, row = _source_pixels(landmarks, height)
    return np.stack([(col - origin[0] + 0.5) * zoom - 0.5, (row - origin[1] + 0.5) * zoom - 0.5,
                     landmarks[..., 2] * zoom], axis=-1)


class _LRU:
    """A small thread-safe least-recently-used cache of computed values."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object, compute: Callable[[], T]) -> T:
        """The cached value for ``key``, computing and storing it on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._entries:
                self._items.popitem(last=False)
        return value


_FITS = _LRU(_CACHE_ENTRIES)
_PREPARED = _LRU(_CACHE_ENTRIES)


def image_key(image: np.ndarray) -> str:
    """A digest of an image's shape and pixels, the cache key of its fit."""
    digest = hashlib.sha1(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def fit_portrait(image: np.ndarray) -> PortraitFit:
    """FaceMesh landmarks of the one face on the portrait, fitted with the built-in face model.

    Cached by image content. Raises `core.face.landmarks.NoFaceError` or `MultipleFacesError`
    (subclasses of `FaceDetectionError`) unless exactly one face is found.
    Shapes: image (H, W, 3) uint8 RGB.
    """
    image = check_image(image)
    return _fit(image, image_key(image))


def _fit(image: np.ndarray, key: str) -> PortraitFit:
    """`fit_portrait` of a checked image whose `image_key` is ``key``."""

    def compute() -> PortraitFit:
        face = builtin()
        landmarks = detect_landmarks(image)
        return PortraitFit(landmarks=landmarks, fit=fit(face, landmarks), face=face, height=image.shape[0])

    return _FITS.get(key, compute)


def prepare_portrait(image: np.ndarray, size: int) -> PreparedPortrait:
    """The portrait's fit and its face crop at ``size`` pixels (cached by image content and size).

    Shapes: image (H, W, 3) uint8 RGB -> PreparedPortrait with image (size, size, 3).
    """
    image = check_image(image)
    size = check_size(size)
    key = image_key(image)

    def compute() -> PreparedPortrait:
        portrait = _fit(image, key)
        origin, side = _crop_box(portrait)
        zoom = size / side
        return PreparedPortrait(portrait=portrait, size=size, image=_crop(image, origin, side, size), origin=origin,
                                zoom=zoom, points=_to_frame(portrait.landmarks, portrait.height, origin, zoom))

    return _PREPARED.get((key, size), compute)


def _crop_box(portrait: PortraitFit) -> tuple[np.ndarray, int]:
    """Top-left source pixel (col, row) and side in pixels of the square crop around the face oval."""
    col, row = _source_pixels(portrait.landmarks[portrait.face.regions["face_oval"]], portrait.height)
    side = int(np.ceil(CROP_FACTOR * max(np.ptp(col), np.ptp(row))))
    if side < MIN_SIZE:
        raise FaceDetectionError(f"the face is only {side / CROP_FACTOR:.0f} pixels across; use a portrait "
                                 "where the face is larger")
    centre = np.array([col.min() + col.max(), row.min() + row.max()]) / 2.0
    return np.round(centre - side / 2.0), side


def _crop(image: np.ndarray, origin: np.ndarray, side: int, size: int) -> np.ndarray:
    """The square ``side``-pixel crop at ``origin`` (edges repeated outside the photo), resized.

    Shapes: image (H, W, 3) -> (size, size, 3).
    """
    height, width = image.shape[:2]
    left, top = int(origin[0]), int(origin[1])
    pad = (max(0, -top), max(0, top + side - height), max(0, -left), max(0, left + side - width))
    padded = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE) if any(pad) else image
    square = padded[top + pad[0]:top + pad[0] + side, left + pad[2]:left + pad[2] + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = np.ascontiguousarray(cv2.resize(square, (size, size), interpolation=interpolation))
    crop.setflags(write=False)  # shared by every frame and cached: nobody may paint on it
    return crop
