"""Gaze: where the eyes look while the character talks, on the eyeLook* channels.

A talker's eyes are never still. They hold the listener's eyes, look away in a quick saccade, hold
there a moment and come back; while they hold, they stay on their target as the head moves (the
vestibulo-ocular reflex turns them against the head). The flows learn the corpus's eyeLook curves,
which carry an emotion's gaze (sad looks down) but no saccades, so a take's eyes stare. This
layer adds them, as `core.blinks` adds blinks:

- a two-state process per take: the gaze holds the listener (a small scatter about the camera,
  re-fixated now and then) for an exponential time, then looks away to a target at an exponential
  angle, mostly sideways, for a shorter exponential time; each emotion has its own rates, sizes and
  downward pull (`GAZE_STYLES`; the shape of these statistics follows the eye-tracking of talking
  people in S. P. Lee, J. B. Badler, N. I. Badler, "Eyes Alive", SIGGRAPH 2002: mostly small,
  mostly horizontal saccades, the talker looking away more than the listener does);
- each saccade lasts the main sequence's 21 ms + 2.2 ms per degree and follows a smooth step;
- the targets turn with the head's slow turns (a talker whose head turns away for a while looks
  that way too) and hold still against its quick ones: the eyes counter-rotate the nods and bobs;
- the result is added, as angles, to the eye turn the take's own eyeLook channels already show.

Angles and channels: ``eyeLook*`` = 1 turns the eye by `LOOK_DEGREES` (sideways, vertically; ARKit
states no angle, so this is the layer's own convention, documented for rigs). Yaw is positive
toward the subject's left (model +X) and pitch positive downward, as in the head pose
(`core.face.pose`). All randomness comes from the numpy Generator passed in.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.emotions import EMOTIONS
from core.errors import FlowVQError
from core.face.pose import rotation_matrix

__all__ = [
    "GazeError",
    "GazeStyle",
    "GAZE_STYLES",
    "GAZE_CHANNELS",
    "LOOK_DEGREES",
    "gaze_targets",
    "gaze_direction",
    "slow_head",
    "eye_angles",
    "look_angles",
    "look_channels",
    "with_gaze",
]

# The eight eyeLook channels: (in, out, up, down) of the left eye, then of the right eye.
GAZE_CHANNELS: tuple[str, ...] = tuple(
    f"eyeLook{direction}{side}" for side in ("Left", "Right") for direction in ("In", "Out", "Up", "Down")
)
# Degrees an eye turns at eyeLook* = 1: (sideways in or out, up or down).
LOOK_DEGREES: tuple[float, float] = (30.0, 25.0)
# The saccadic main sequence: a saccade of A degrees lasts SACCADE_BASE + SACCADE_PER_DEGREE * A s.
SACCADE_BASE = 0.021
SACCADE_PER_DEGREE = 0.0022
# Looking away stays within this many degrees of the listener.
MAX_AVERSION = 20.0
# The gaze follows the head's turns slower than this (the sigma of a Gaussian, in seconds) and holds
# still against quicker ones.
HEAD_FOLLOW_SECONDS = 0.5
# The shortest fixation in seconds: longer than the longest saccade, so each one ends before the next.
MIN_FIXATION = 0.1


class GazeError(FlowVQError):
    """An emotion without a gaze style, a face model without the eyeLook channels, or a head pose
    that does not fit the take."""

    code = "gaze"


@dataclass(frozen=True)
class GazeStyle:
    """One emotion's gaze. hold: mean seconds on the listener; away: mean seconds looking away;
    size: mean aversion angle in degrees; down: the share of aversions pulled downward (0: as often
    up as down); scatter: degrees of the re-fixations about the listener, every `refix` seconds."""

    hold: float
    away: float
    size: float
    down: float = 0.0
    scatter: float = 1.0
    refix: float = 0.7


GAZE_STYLES: dict[str, GazeStyle] = {
    "neutral": GazeStyle(hold=2.5, away=0.8, size=7.0),
    "talk": GazeStyle(hold=2.0, away=0.9, size=8.0),
    "happy": GazeStyle(hold=2.2, away=0.7, size=7.0),
    "sad": GazeStyle(hold=1.5, away=1.4, size=8.0, down=0.7),
    "angry": GazeStyle(hold=3.5, away=0.5, size=5.0, scatter=0.5),  # a hard stare
    "fear": GazeStyle(hold=0.9, away=0.6, size=10.0, refix=0.4),  # scanning
    "surprised": GazeStyle(hold=3.0, away=0.6, size=6.0),
    "disgusted": GazeStyle(hold=1.5, away=1.0, size=8.0, down=0.3),
    "contempt": GazeStyle(hold=2.0, away=1.0, size=7.0),
}


def _columns(names: Sequence[str]) -> list[int]:
    """The indices of `GAZE_CHANNELS` in ``names``; `GazeError` when the face model lacks one."""
    missing = [channel for channel in GAZE_CHANNELS if channel not in names]
    if missing:
        raise GazeError(f"the face model has no blendshape {missing[0]!r}")
    return [list(names).index(channel) for channel in GAZE_CHANNELS]


def _aversion(style: GazeStyle, rng: np.random.Generator) -> np.ndarray:
    """One look-away target (yaw, pitch) in degrees: an exponential angle, capped at
    `MAX_AVERSION`, in a direction that is mostly sideways and pulled down by ``style.down``.
    Shapes: -> (2,)."""
    angle = min(rng.exponential(style.size), MAX_AVERSION)
    heading = rng.uniform(-np.pi, np.pi)
    sideways, vertical = np.cos(heading), 0.5 * np.sin(heading)  # half as much up-down as sideways
    if rng.uniform() < style.down:
        vertical = abs(vertical) + 0.5
    direction = np.array([sideways, vertical])
    return angle * direction / np.linalg.norm(direction)


def _on_listener(style: GazeStyle, rng: np.random.Generator) -> np.ndarray:
    """One fixation on the listener: (yaw, pitch) scattered by ``style.scatter`` degrees about the
    camera. Shapes: -> (2,)."""
    return rng.normal(0.0, style.scatter, 2)


def _dwell(mean: float, rng: np.random.Generator) -> float:
    """Seconds spent on one fixation or state: exponential about ``mean``, at least `MIN_FIXATION`."""
    return max(rng.exponential(mean), MIN_FIXATION)


def _fixations(style: GazeStyle, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The take's fixations: their start times and (yaw, pitch) targets in degrees, the first at
    0 s. Holds on the listener alternate with looks away; a hold re-fixates every ``style.refix``
    s on average (`_on_listener`); no fixation is shorter than `MIN_FIXATION`. Shapes: -> (K,), (K, 2)."""
    holding = rng.uniform() < style.hold / (style.hold + style.away)
    starts, targets = [0.0], [_on_listener(style, rng) if holding else _aversion(style, rng)]
    time = 0.0
    while True:
        if holding:
            end = time + _dwell(style.hold, rng)
            time += _dwell(style.refix, rng)
            while time < min(end, seconds) - MIN_FIXATION:
                starts.append(time)
                targets.append(_on_listener(style, rng))
                time += _dwell(style.refix, rng)
            time = end
        else:
            time += _dwell(style.away, rng)
        if time >= seconds:
            return np.array(starts), np.array(targets)
        holding = not holding
        starts.append(time)
        targets.append(_on_listener(style, rng) if holding else _aversion(style, rng))


def gaze_targets(emotion: str, frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Where the eyes look at each frame centre, relative to the head's slow turns (`eye_angles`):
    (yaw, pitch) in degrees, (0, 0) on the listener. Each fixation is reached by a saccade of the
    main sequence's length along a smooth step. Shapes: -> (frames, 2) float64."""
    if emotion not in GAZE_STYLES:
        raise GazeError(f"no gaze style for emotion {emotion!r}; known: {', '.join(EMOTIONS)}")
    starts, targets = _fixations(GAZE_STYLES[emotion], frames / fps, rng)
    times = (np.arange(frames) + 0.5) / fps
    latest = np.searchsorted(starts, times, side="right") - 1  # the fixation each frame is in
    before, after = targets[np.maximum(latest - 1, 0)], targets[latest]
    duration = SACCADE_BASE + SACCADE_PER_DEGREE * np.linalg.norm(after - before, axis=1)
    step = np.clip((times - starts[latest]) / duration, 0.0, 1.0)
    step = step * step * (3.0 - 2.0 * step)
    return before + step[:, None] * (after - before)


def gaze_direction(angles: np.ndarray) -> np.ndarray:
    """Unit view directions of (yaw, pitch) in degrees, in model axes: (0, 0) looks along +Z (at
    the camera), yaw turns toward +X and pitch toward -Y (down), as the head pose's Ry and Rx turn
    +Z. Shapes: angles (..., 2) -> (..., 3)."""
    yaw, pitch = np.deg2rad(angles[..., 0]), np.deg2rad(angles[..., 1])
    return np.stack([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=-1)


def slow_head(angles: np.ndarray, fps: float) -> np.ndarray:
    """The head's slow turns: its pose angles smoothed by a Gaussian of `HEAD_FOLLOW_SECONDS`
    (edges reflected). Shapes: angles (T, 3) radians -> (T, 3)."""
    sigma = HEAD_FOLLOW_SECONDS * fps
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(angles, ((radius, radius), (0, 0)), mode="reflect" if len(angles) > radius else "edge")
    return np.stack([np.convolve(column, kernel / kernel.sum(), mode="valid") for column in padded.T], axis=-1)


def eye_angles(targets: np.ndarray, pose: np.ndarray, fps: float) -> np.ndarray:
    """The eyes' turn in the head that keeps them on ``targets`` while the head takes ``pose``.
    The targets turn with the head's slow turns (`slow_head`: a talker whose head turns away for
    seconds looks that way too) and hold still against its quick ones (nods, bobs: the
    vestibulo-ocular reflex): each target's `gaze_direction` is turned by the slow head, brought
    into the head by the inverse head rotation, and read back as (yaw, pitch) in degrees.
    Shapes: targets (T, 2) degrees, pose (T, 6) -> (T, 2) degrees."""
    seen = np.einsum("tij,tj->ti", rotation_matrix(slow_head(pose[:, :3], fps)), gaze_direction(targets))
    in_head = np.einsum("tji,tj->ti", rotation_matrix(pose[:, :3]), seen)  # R^T @ d
    head_yaw = np.arctan2(in_head[:, 0], in_head[:, 2])
    head_pitch = np.arctan2(-in_head[:, 1], np.hypot(in_head[:, 0], in_head[:, 2]))
    return np.rad2deg(np.stack([head_yaw, head_pitch], axis=-1))


def look_angles(channels: np.ndarray) -> np.ndarray:
    """The eye turn that eyeLook channels show, per eye: (left yaw, left pitch, right yaw, right
    pitch) in degrees (`LOOK_DEGREES` at 1). Shapes: channels (T, 8) in `GAZE_CHANNELS` order -> (T, 4)."""
    side, vertical = LOOK_DEGREES
    look_in, look_out, up, down = (channels[:, k::4] for k in range(4))  # (T, 2): left, right
    yaw = side * np.stack([look_out[:, 0] - look_in[:, 0], look_in[:, 1] - look_out[:, 1]], axis=-1)
    pitch = vertical * (down - up)
    return np.stack([yaw[:, 0], pitch[:, 0], yaw[:, 1], pitch[:, 1]], axis=-1)


def look_channels(angles: np.ndarray) -> np.ndarray:
    """The eyeLook channels of an eye turn, inverse of `look_angles` (each direction's pair has
    one of the two at 0). Shapes: angles (T, 4) degrees -> (T, 8) in `GAZE_CHANNELS` order."""
    side, vertical = LOOK_DEGREES
    channels = []
    for yaw, pitch, toward_nose in ((angles[:, 0], angles[:, 1], -1.0), (angles[:, 2], angles[:, 3], 1.0)):
        inward = toward_nose * yaw / side  # the left eye turns in toward -yaw, the right toward +yaw
        channels += [np.maximum(inward, 0.0), np.maximum(-inward, 0.0),
                     np.maximum(-pitch, 0.0) / vertical, np.maximum(pitch, 0.0) / vertical]
    return np.stack(channels, axis=-1)


def with_gaze(
    exp: np.ndarray, pose: np.ndarray, names: Sequence[str], emotion: str, fps: float, rng: np.random.Generator
) -> np.ndarray:
    """A take with saccades on its eyeLook channels: the gaze process (`gaze_targets`) held against
    the quick turns of the take's head ``pose`` (`eye_angles`), added to the eye turn its channels
    already show (`look_angles`), written back (`look_channels`); the caller clips to the face model's bounds.
    Shapes: exp (T, D), pose (T, 6) -> (T, D) float32."""
    columns = _columns(names)
    if pose.shape != (len(exp), 6):
        raise GazeError(f"the head pose must have one row of 6 per frame ({len(exp)}), got shape {pose.shape}")
    turn = np.tile(eye_angles(gaze_targets(emotion, len(exp), fps, rng), pose, fps), 2)  # both eyes
    out = np.array(exp, dtype=np.float32)
    out[:, columns] = look_channels(look_angles(out[:, columns]) + turn)
    return out
