"""Writing rendered frames: numbered PNGs, and an H.264 + AAC video through PyAV (FFmpeg).

Frames are streamed: each one is written (and encoded) as it arrives, so a long take never sits in
memory. The audio track, when given, is the mono 16 kHz clip `core.audio.load_audio` returns.
"""

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from core.audio import SAMPLE_RATE
from core.formats.render_inputs import RenderInputError

__all__ = ["VIDEO_SUFFIXES", "frame_path", "write_png", "VideoWriter"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
_CRF = "18"  # x264 constant quality: visually lossless for a preview
_AUDIO_CHUNK = 1024  # samples per AAC frame


def frame_path(directory: Path, index: int) -> Path:
    """The path of frame ``index`` (0-based): ``frame_00000.png``, ``frame_00001.png``, ..."""
    return directory / f"frame_{index:05d}.png"


def write_png(path: Path, frame: np.ndarray) -> None:
    """Write an RGB frame as a PNG. Shapes: frame (H, W, 3) uint8."""
    if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise RenderInputError(f"cannot write {path}")


class VideoWriter:
    """An H.264 video (yuv420p) at ``fps`` of square ``size`` frames, with an AAC track of ``audio``.

    Use as a context manager; `write` one frame at a time. Shapes: audio (N,) float32 at
    `core.audio.SAMPLE_RATE`, or None for a silent video.
    """

    def __init__(self, path: Path, fps: float, size: int, audio: np.ndarray | None = None) -> None:
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise RenderInputError(f"cannot write a video to {path.name}: use one of {', '.join(VIDEO_SUFFIXES)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w")
        self._video = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                                 options={"crf": _CRF})
        self._video.width = self._video.height = size + size % 2  # yuv420p needs even sides
        self._video.pix_fmt = "yuv420p"
        self._audio = audio
        self._audio_stream = (self._container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
                              if audio is not None else None)

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB frame. Shapes: frame (size, size, 3) uint8."""
        if frame.shape[0] != self._video.height:
            frame = cv2.copyMakeBorder(frame, 0, 1, 0, 1, cv2.BORDER_REPLICATE)
        self._mux(self._video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))

    def close(self) -> None:
        """Flush the video encoder, encode the audio track and finish the file."""
        self._mux(self._video.encode(None))
        if self._audio_stream is not None:
            for start in range(0, len(self._audio), _AUDIO_CHUNK):
                self._mux(self._audio_stream.encode(_audio_frame(self._audio[start:start + _AUDIO_CHUNK], start)))
            self._mux(self._audio_stream.encode(None))
        self._container.close()

    def _mux(self, packets: list) -> None:
        """Write encoded packets into the container."""
        for packet in packets:
            self._container.mux(packet)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if error is None:
            self.close()
        else:
            self._container.close()


def _audio_frame(samples: np.ndarray, start: int) -> av.AudioFrame:
    """One mono float frame of audio starting at sample ``start``. Shapes: samples (n,)."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], format="fltp",
                                       layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = start
    frame.time_base = Fraction(1, SAMPLE_RATE)
    return frame
