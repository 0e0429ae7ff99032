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
    "image_size",
    "default_portrait",
    "encode_png",
    "render_take",
    "zip_frames",
]

LOG = logging.getLogger("flowvq.server")
MAX_PORTRAIT_SIDE = 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic), which
# hold the frame's size; C4, C8 and CC are tables, not frames.
_JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_JPEG_END_MARKERS = frozenset({0xD9, 0xDA})  # EOI, SOS: past the header without a frame
_JPEG_MAX_STEPS = 4096  # markers and fill bytes walked before the frame: a real header has tens


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


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk (always the first), or None when ``data`` does not
    start like a PNG."""
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, found by walking the marker segments
    from SOI by their lengths; None when ``data`` does not start like a JPEG, or ends, breaks the
    marker structure or starts its scan before a frame (or walks `_JPEG_MAX_STEPS` steps)."""
    if not data.startswith(_JPEG_SOI):
        return None
    position = len(_JPEG_SOI)
    for _ in range(_JPEG_MAX_STEPS):
        if position + 4 > len(data) or data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE_MARKERS:  # a fill byte, or no length field
            position += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_END_MARKERS:
            return None
        if marker in _JPEG_FRAME_MARKERS:  # FF Cn, length (2), precision (1), height (2), width (2)
            if position + 9 > len(data):
                return None
            height, width = (int.from_bytes(data[start:start + 2], "big") for start in (position + 5, position + 7))
            return width, height
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG or JPEG header announces, read without decoding a pixel; None for
    anything else (other formats, or a header that cannot be read)."""
    return _png_size(data) or _jpeg_size(data)


def decode_portrait(data: bytes) -> np.ndarray:
    """A PNG/JPEG as RGB uint8. Shapes: -> (H, W, 3).

    The size is read from the header first (`image_size`), so an image over `MAX_PORTRAIT_SIDE`
    (a few hundred kB of PNG can announce gigabytes of pixels) is refused before it is decoded;
    the colours are swapped in place. Memory: 3 bytes a pixel, at most 3 x `MAX_PORTRAIT_SIDE`².
    Raises `PortraitError` for an empty, unreadable, oversized or other-format image."""
    import cv2

    if not data:
        raise PortraitError("the portrait is empty (0 bytes); upload a PNG or JPEG photo of one face")
    size = image_size(data)
    if size is None or 0 in size:
        raise PortraitError("the portrait is not a PNG or JPEG image with a readable header; "
                            "upload a PNG or JPEG photo")
    if max(size) > MAX_PORTRAIT_SIDE:
        raise PortraitError(f"the portrait is {size[0]}x{size[1]} pixels; "
                            f"scale it to at most {MAX_PORTRAIT_SIDE} pixels a side")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PortraitError("the portrait is not an image OpenCV can read; upload a PNG or JPEG photo")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


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
