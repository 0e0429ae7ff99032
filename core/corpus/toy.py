"""A small synthetic conditioning task with a known ground truth, for tests and a tiny training config.

Every toy sequence is built from a smooth "syllable" envelope s(t) in [0, 1]:

    audio   bins 0..39 (`DRIVE_BINS`) = DRIVE_SCALE * s(t) + DRIVE_OFFSET + a fixed zero-mean pattern
            across the bins; bins 40.. hold small Gaussian noise only. `drive_signal` inverts it:
            s(t) = clip((mean(audio[t, 0:40]) - DRIVE_OFFSET) / DRIVE_SCALE, 0, 1).
    exp     jawOpen = 0.6 s(t), mouthFunnel = 0.2 s(t) (`MOUTH_GAINS`), plus the constant per-emotion
            offsets `EMOTION_OFFSETS` on non-mouth channels, plus N(0, 0.01) noise, clipped to [0, 1].
            Channels are looked up by name; a name missing from the face model is skipped.
    pose    slow, smooth noise (two cascaded AR(1) filters): about 3 degrees std in pitch/yaw/roll and
            3 mm (in metres) in tx/ty/tz, with pitch nodding by `PITCH_GAIN` * s(t) radians.
    beta0   zeros.

So a flow that learnt the task must move the mouth with the audio and the brows, smile, etc. with the
emotion label. Everything comes from ``np.random.default_rng(seed)``.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from core.audio import DEFAULT_FPS, FRAME_FEATURES
from core.emotions import EMOTIONS, emotion_index
from core.formats.dataset import CoeffSequence, DatasetError, DatasetMeta, write_meta, write_sequence

__all__ = [
    "DRIVE_BINS", "DRIVE_SCALE", "DRIVE_OFFSET", "MOUTH_GAINS", "EMOTION_OFFSETS", "PITCH_GAIN",
    "EXP_NOISE", "TOY_FPS", "drive_signal", "syllable_envelope", "toy_sequence", "write_toy_dataset",
]

DRIVE_BINS = 40  # mel bins 0..39 carry the drive signal
DRIVE_SCALE = 4.0  # s = 0 -> mean -2, s = 1 -> mean +2 (normalised log-mel units)
DRIVE_OFFSET = -2.0
MOUTH_GAINS: dict[str, float] = {"jawOpen": 0.6, "mouthFunnel": 0.2}
EMOTION_OFFSETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "angry": {"browDownLeft": 0.5, "browDownRight": 0.5},
    "contempt": {"mouthDimpleLeft": 0.4, "cheekSquintLeft": 0.3},
    "disgusted": {"noseSneerLeft": 0.5, "noseSneerRight": 0.5, "mouthUpperUpLeft": 0.3,
                  "mouthUpperUpRight": 0.3},
    "fear": {"eyeWideLeft": 0.3, "eyeWideRight": 0.3, "browInnerUp": 0.3, "mouthStretchLeft": 0.3,
             "mouthStretchRight": 0.3},
    "happy": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "sad": {"browInnerUp": 0.5, "mouthFrownLeft": 0.3, "mouthFrownRight": 0.3},
    "surprised": {"browOuterUpLeft": 0.4, "browOuterUpRight": 0.4, "eyeWideLeft": 0.4,
                  "eyeWideRight": 0.4},
    "talk": {},
}
PITCH_GAIN = 0.05  # radians of nod at s = 1 (about 3 degrees)
EXP_NOISE = 0.01
TOY_FPS = DEFAULT_FPS

_SYLLABLES_PER_SECOND = (3.0, 5.0)
_BUMP_SECONDS = (0.04, 0.12)  # Gaussian bump standard deviation
_BUMP_HEIGHT = (0.5, 1.0)
_POSE_AR = 0.92  # per-frame coefficient of the two cascaded AR(1) filters: about a second of memory
_POSE_STD = np.array([np.radians(3.0)] * 3 + [0.003] * 3)  # 3 degrees, 3 mm
_HIGH_BIN_NOISE = 0.1
_POSE_BURN_IN = 100


def drive_signal(audio: np.ndarray) -> np.ndarray:
    """The known drive of the toy task: clip((mean of bins 0..39 - DRIVE_OFFSET) / DRIVE_SCALE, 0, 1).
    Shapes: (T, audio_width >= 40) -> (T,) float64 in [0, 1].
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[1] < DRIVE_BINS:
        raise DatasetError(f"toy audio must have shape (T, audio_width >= {DRIVE_BINS}), got {audio.shape}")
    mean = audio[:, :DRIVE_BINS].astype(np.float64).mean(axis=1)
    return np.clip((mean - DRIVE_OFFSET) / DRIVE_SCALE, 0.0, 1.0)


def syllable_envelope(rng: np.random.Generator, frames: int, fps: float = TOY_FPS) -> np.ndarray:
    """A smooth random envelope: about 3-5 Gaussian bumps per second of random width and height,
    summed and clipped. Shapes: -> (frames,) float64 in [0, 1].
    """
    rate = rng.uniform(*_SYLLABLES_PER_SECOND)
    count = max(1, int(round(rate * frames / fps)))
    centres = rng.uniform(0.0, frames, size=count)  # (K,) frames
    widths = rng.uniform(*_BUMP_SECONDS, size=count) * fps  # (K,) frames
    heights = rng.uniform(*_BUMP_HEIGHT, size=count)  # (K,)
    t = np.arange(frames, dtype=np.float64)[:, None]  # (T, 1)
    bumps = heights * np.exp(-0.5 * ((t - centres) / widths) ** 2)  # (T, K)
    return np.clip(bumps.sum(axis=1), 0.0, 1.0)


def toy_sequence(
    names: Sequence[str],
    emotion: str,
    frames: int,
    seed: int,
    audio_width: int = FRAME_FEATURES,
    fps: float = TOY_FPS,
    name: str | None = None,
) -> CoeffSequence:
    """One toy sequence (see the module docstring) on the expression basis ``names``.
    Shapes: exp (frames, len(names)), pose (frames, 6), audio (frames, audio_width), beta0 (len(names),).
    """
    label = emotion_index(emotion)
    if frames < 1:
        raise DatasetError(f"a toy sequence needs frames >= 1, got {frames}")
    if audio_width < DRIVE_BINS:
        raise DatasetError(f"the toy task needs audio_width >= {DRIVE_BINS}, got {audio_width}")
    names = tuple(names)
    column = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(seed)
    s = syllable_envelope(rng, frames, fps)  # (T,)

    # Audio: bins 0..39 encode s exactly (a zero-mean pattern does not move their mean).
    pattern = np.linspace(-0.5, 0.5, DRIVE_BINS)  # (40,), sums to 0
    audio = np.empty((frames, audio_width), np.float64)
    audio[:, :DRIVE_BINS] = (DRIVE_SCALE * s + DRIVE_OFFSET)[:, None] + pattern[None, :]
    audio[:, DRIVE_BINS:] = rng.normal(0.0, _HIGH_BIN_NOISE, size=(frames, audio_width - DRIVE_BINS))

    # Expression: mouth driven by s, emotion offsets on other channels, noise, clipped.
    exp = np.zeros((frames, len(names)), np.float64)
    for channel, gain in MOUTH_GAINS.items():
        if channel in column:
            exp[:, column[channel]] += gain * s
    for channel, offset in EMOTION_OFFSETS[EMOTIONS[label]].items():
        if channel in column:
            exp[:, column[channel]] += offset
    exp = np.clip(exp + rng.normal(0.0, EXP_NOISE, size=exp.shape), 0.0, 1.0)

    # Pose: white noise through two cascaded AR(1) filters (smooth, unit stationary variance, burn-in
    # dropped), scaled per channel; pitch nods with s.
    a = _POSE_AR
    gain = np.sqrt((1.0 - a**2) ** 3 / (1.0 + a**2))  # 1 / std of the cascade's output
    noise = rng.normal(0.0, 1.0, size=(frames + _POSE_BURN_IN, 6))
    smooth = lfilter([gain], np.convolve([1.0, -a], [1.0, -a]), noise, axis=0)[_POSE_BURN_IN:]
    pose = smooth * _POSE_STD  # (T, 6)
    pose[:, 0] += PITCH_GAIN * s

    return CoeffSequence(
        name=name or f"toy_{seed}",
        exp=exp.astype(np.float32),
        pose=pose.astype(np.float32),
        audio=audio.astype(np.float32),
        emotion=EMOTIONS[label],
        beta0=np.zeros(len(names), np.float32),
    )


def write_toy_dataset(
    root: str | Path,
    names: Sequence[str],
    face_model_id: str,
    n_train: int,
    n_val: int,
    frames: int,
    seed: int,
    fps: float = TOY_FPS,
) -> DatasetMeta:
    """Write meta.json plus ``train/toy_NNNN.npz`` and ``val/toy_NNNN.npz`` (none when n_val = 0),
    emotions cycling through all of `EMOTIONS`; each sequence's seed derives from (seed, split, i).
    """
    meta = DatasetMeta(fps=fps, face_model=face_model_id, names=tuple(names), audio_width=FRAME_FEATURES)
    write_meta(root, meta)
    for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
        for i in range(count):
            child = int(np.random.SeedSequence([seed, split_id, i]).generate_state(1)[0])
            seq = toy_sequence(
                names, EMOTIONS[i % len(EMOTIONS)], frames, child, FRAME_FEATURES, fps, name=f"toy_{i:04d}"
            )
            write_sequence(root, split, seq)
    return meta
