"""The bridge to `core.render` (imported lazily: a server without it still generates takes) and
the portrait and frame files around it.

`core.render` offers ``available_renderers(weights_dir=None) -> list[str]`` and
``load_renderer(kind, weights_dir=None, device="auto") -> Renderer`` whose
``render(source_image (H, W, 3) uint8, exp (T, D) float32, pose (T, 6) float32, *, size, cancel)``
yields (size, size, 3) uint8 RGB frames and raises `GenerationCancelled` when ``cancel()`` is true.
"""

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import FlowVQError
from core.fileio import write_atomic
from core.formats.takes import Take

__all__ = [
    "PortraitError",
    "MAX_PORTRAIT_SIDE",
    "available_renderers",
    "RendererCache",
    "decode_portrait",
    "default_portrait",
    "encode_png",
    "render_take",
    "zip_frames",
]

LOG = logging.getLogger("flowvq.server")
MAX_PORTRAIT_SIDE = 8192


class PortraitError(FlowVQError):
    """An uploaded portrait that is not a readable image of a sensible size."""
    code = "invalid_portrait"


def available_renderers() -> list[str]:
    """The renderers `core.render` can load here; empty (logged) when it is not installed."""
    try:
        from core.render import available_renderers as core_available
    except ImportError as exc:
        LOG.warning("rendering is unavailable: %s", exc)
        return []
    return list(core_available())


class RendererCache:
    """Loads each renderer kind once, on first use, onto ``device`` (used by the worker thread only)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._loaded: dict[str, object] = {}

    def get(self, kind: str):
        """The loaded renderer for ``kind`` ("auto", "warp" or "vqig")."""
        if kind not in self._loaded:
            from core.render import load_renderer

            self._loaded[kind] = load_renderer(kind, device=self.device)
        return self._loaded[kind]


def decode_portrait(data: bytes) -> np.ndarray:
    """A PNG/JPEG (anything OpenCV reads) as RGB uint8. Shapes: -> (H, W, 3).
    Raises `PortraitError` for an unreadable, empty or oversized image."""
    import cv2

    if not data:
        raise PortraitError("the portrait is empty (0 bytes); upload a PNG or JPEG photo of one face")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PortraitError("the portrait is not an image OpenCV can read; upload a PNG or JPEG photo")
    if max(bgr.shape[:2]) > MAX_PORTRAIT_SIDE:
        raise PortraitError(f"the portrait is {bgr.shape[1]}x{bgr.shape[0]} pixels; "
                            f"scale it to at most {MAX_PORTRAIT_SIDE} pixels a side")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def default_portrait() -> np.ndarray:
    """The built-in portrait used when none is uploaded. Shapes: -> (H, W, 3) uint8."""
    from core.face.build import bundled_photos

    return bundled_photos()["astronaut"]


def encode_png(frame: np.ndarray) -> bytes:
    """An RGB frame as PNG bytes. Shapes: (H, W, 3) uint8 -> bytes."""
    import cv2

    ok, buffer = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def render_take(
    renderer,
    image: np.ndarray,
    take: Take,
    size: int,
    frame_path: Callable[[int], Path],
    on_frame: Callable[[], None],
    cancel: Callable[[], bool],
) -> None:
    """Render one take frame by frame, writing each PNG atomically to ``frame_path(n)`` (all in
    one directory) and calling ``on_frame()`` after it. Shapes: image (H, W, 3) uint8; take.exp (T, D), take.pose (T, 6)."""
    frame_path(0).parent.mkdir(parents=True, exist_ok=True)
    frames = renderer.render(image, take.exp, take.pose, size=size, cancel=cancel)
    for index, frame in enumerate(frames):
        path = frame_path(index)
        data = encode_png(frame)
        write_atomic(path, lambda temporary: temporary.write_bytes(data))
        on_frame()


def zip_frames(paths: list[Path], target: Path) -> None:
    """Write the frames (already PNG-compressed, so stored) into ``target`` as 00000.png, ...,
    atomically."""
    def write(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
            for index, path in enumerate(paths):
                archive.write(path, f"{index:05d}.png")

    write_atomic(target, write)
