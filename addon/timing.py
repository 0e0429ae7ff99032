"""Frames and frame ranges: takes resampled to the scene's rate, and the scene range a take needs.
No bpy.

The scene's frame range belongs to the artist once they change it: `frame_range_for` only ever
shortens a range that the add-on itself set last (or Blender's untouched default), and otherwise
only extends it to fit the take.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["resample", "FrameRange", "frame_range_for", "BLENDER_DEFAULT_RANGE"]

# The range of a new Blender scene: a file never played with has not been set by anyone.
BLENDER_DEFAULT_RANGE = (1, 250)


def resample(rows: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linearly resample per-frame rows to another frame rate over the same duration.

    Shapes: rows (T, C) -> (T', C), T' = floor((T - 1) * dst_fps / src_fps) + 1.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if abs(src_fps - dst_fps) < 1e-9:
        return rows
    count = int(np.floor((len(rows) - 1) * dst_fps / src_fps + 1e-9)) + 1
    src_t = np.arange(len(rows)) / src_fps
    dst_t = np.arange(count) / dst_fps
    return np.stack([np.interp(dst_t, src_t, column) for column in rows.T], axis=1)


@dataclass(frozen=True)
class FrameRange:
    """The scene range to set (first and last frame, inclusive) and a note for the status line
    (empty when there is nothing to say)."""

    start: int
    end: int
    note: str = ""


def frame_range_for(current: tuple[int, int], last_set: tuple[int, int] | None, take_start: int,
                    take_frames: int) -> FrameRange:
    """The scene range after keying a take of ``take_frames`` frames from ``take_start``.

    ``current`` is the scene's range now, ``last_set`` the range the add-on set last (None when it
    never did). A range that is still the add-on's (or Blender's default, before the add-on ever
    set one) becomes exactly the take's; an artist's range is kept, and extended (with a note) only
    when the take does not fit in it.
    """
    take_end = take_start + take_frames - 1
    owned = current == last_set or (last_set is None and current == BLENDER_DEFAULT_RANGE)
    if owned:
        return FrameRange(take_start, take_end)
    start, end = min(current[0], take_start), max(current[1], take_end)
    if (start, end) == current:
        return FrameRange(start, end)
    return FrameRange(start, end, f"frame range extended to {start}-{end} to fit the take")
