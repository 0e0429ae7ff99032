"""The on-disk dataset of the coefficient flows, its validation, and the batches training (and the
baselines' training in `core.eval`) draws from it.

The layout is exactly::

    DATASET/
      meta.json   {"format": "flowvq-coeff-dataset", "version": 2, "fps": 25.0,
                   "face_model": "builtin-arkit52@1", "names": [D expression names], "audio_width": 320}
      train/NAME.npz   one sequence per file; also val/ and test/ (optional splits)
      audio/NAME.wav   optional: the sequence's speech, 16 kHz mono 16-bit (`write_wave`; the corpus
                       builder and the importers write it, `flowvq eval` and `eval --real` listen to it)
    NAME.npz keys: exp (T, D) float32; pose (T, 6) float32 (pitch, yaw, roll rad, tx, ty, tz model units);
                   audio (T, audio_width) float32 = per-video-frame normalised log-mel sub-rows, i.e. the second output of
                   core.audio.audio_features(wav, fps); emotion: 0-d unicode array, one of core.emotions.EMOTIONS;
                   beta0 (D,) float32 the source (identity) expression coefficients;
                   optional intensity: 0-d float32, how strongly the sequence shows its emotion in [0, 1]
                   (absent: 1, a recorded sequence shows its label in full);
                   optional phones (T,) uint8: each frame's viseme class (index in
                   core.visemes.VISEME_CLASSES, `core.visemes.frame_visemes`) from the phones the speech
                   was made from (the corpus's exact timings), 0 where unknown;
                   optional heard (T,) uint8: the same from the phones a recogniser hears in the speech
                   (`core.recognize.recognize_phones`). Absent: every frame unknown.

NAME is a safe file stem (`NAME_PATTERN`: letters, digits, ``.``, ``_``, ``-``, not starting with a
dot); files starting with a dot are ignored when a split is read (they are unfinished writes).

`WindowSampler` draws random training windows and `frame_batches` walks every frame once; both
yield the same dict of tensors, documented on `WindowSampler`. The audio window of target frame t
holds rows t - audio_before .. t + audio_after with the edge rows repeated, i.e. exactly
``core.audio.frame_windows(seq.audio, audio_before, audio_after)[t]``, the window inference sees.
Bad files and settings raise `DatasetError` (a `FlowVQError`) naming the file or sequence and key.
"""

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from core.audio import SAMPLE_RATE

from core.emotions import EMOTIONS, UnknownEmotionError, emotion_index
from core.errors import FlowVQError
from core.fileio import write_atomic
from core.formats.takes import POSE_DIM
from core.visemes import VISEME_CLASSES

__all__ = [
    "DATASET_FORMAT", "DATASET_VERSION", "META_FILE", "SPLITS", "SEQUENCE_KEYS",
    "NAME_PATTERN", "INTENSITY_KEY", "PHONE_KEYS", "AUDIO_DIR", "DatasetError", "CoeffSequence", "DatasetMeta", "write_meta", "read_meta",
    "write_sequence", "read_sequence", "load_split", "wave_file", "write_wave", "WindowSampler", "frame_batches",
]

DATASET_FORMAT = "flowvq-coeff-dataset"
DATASET_VERSION = 2
META_FILE = "meta.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")
SEQUENCE_KEYS: tuple[str, ...] = ("exp", "pose", "audio", "emotion", "beta0")
INTENSITY_KEY = "intensity"  # optional: how strongly the sequence shows its emotion (default 1)
PHONE_KEYS: tuple[str, ...] = ("phones", "heard")  # optional per-frame viseme classes (module docstring)
AUDIO_DIR = "audio"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

_META_KEYS = frozenset({"format", "version", "fps", "face_model", "names", "audio_width"})
_LAYOUT = (
    f"a dataset directory must contain {META_FILE} and a train/ folder of NAME.npz sequences "
    "(optionally val/ and test/); see core.formats.dataset"
)

Batch = dict[str, torch.Tensor]


class DatasetError(FlowVQError):
    """A dataset directory, meta file, sequence file or sampler setting that cannot be used."""
    code = "dataset"


# ---------------------------------------------------------------------------------------------
# Sequences and meta
# ---------------------------------------------------------------------------------------------

@dataclass
class CoeffSequence:
    """One training sequence (one video) on a face model's expression basis.

    Shapes: exp (T, D) float32; pose (T, 6) float32 (pitch, yaw, roll radians, tx, ty, tz model
    units); audio (T, audio_width) float32 normalised log-mel, one row per video frame; beta0 (D,)
    float32 identity coefficients. ``emotion`` is one of `core.emotions.EMOTIONS`; ``intensity``
    in [0, 1] how strongly it shows (the corpus draws one per utterance; 1 for recordings);
    ``phones`` and ``heard`` (T,) uint8: each frame's viseme class from the speech's exact phones
    and from the phones a recogniser hears in it (`PHONE_KEYS`; None: not known).
    """

    name: str
    exp: np.ndarray
    pose: np.ndarray
    audio: np.ndarray
    emotion: str
    beta0: np.ndarray
    intensity: float = 1.0
    phones: np.ndarray | None = None
    heard: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"sequence {self.name!r}"
        for key in PHONE_KEYS:
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, _viseme_classes(value, key, where))
        for key in ("exp", "pose", "audio", "beta0"):
            try:
                value = np.asarray(getattr(self, key), dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise DatasetError(f"{where}: key {key!r} is not a numeric array ({err})") from err
            setattr(self, key, value)
        if not isinstance(self.emotion, str):
            raise DatasetError(
                f"{where}: key 'emotion' must be a string, got {type(self.emotion).__name__}"
            )

    @property
    def offset(self) -> np.ndarray:
        """The sequence's mean expression relative to its source, mean over frames of exp - beta0:
        what its take style is read from (`core.coeff.model.ExpFlow.style_of`). Shapes: -> (D,)."""
        return (self.exp - self.beta0).mean(axis=0)

    @property
    def frames(self) -> int:
        """T, the number of video frames."""
        return int(self.exp.shape[0]) if self.exp.ndim >= 1 else 0

    @property
    def label(self) -> int:
        """The emotion's index in `core.emotions.EMOTIONS` (raises `DatasetError` when unknown)."""
        return _emotion_label(self.emotion, f"sequence {self.name!r}")

    def validate(self, names_count: int, audio_width: int, *, where: str | None = None) -> None:
        """Raise `DatasetError` unless the shapes fit (D = ``names_count``), T >= 1 is shared by
        exp/pose/audio, every value is finite and the emotion is known. ``where`` names the
        sequence in messages (default: ``sequence 'NAME'``; `load_split` passes the file).
        """
        where = where or f"sequence {self.name!r}"
        expected = {
            "exp": (None, names_count), "pose": (None, POSE_DIM), "audio": (None, audio_width),
            "beta0": (names_count,),
        }
        for key, shape in expected.items():
            _check_shape(getattr(self, key), shape, key, where)
        lengths = {key: int(getattr(self, key).shape[0]) for key in ("exp", "pose", "audio")}
        if len(set(lengths.values())) != 1:
            raise DatasetError(
                f"{where}: keys 'exp', 'pose' and 'audio' must have the same number of frames T, "
                f"got {lengths}; re-export the sequence with aligned audio features"
            )
        if lengths["exp"] < 1:
            raise DatasetError(f"{where}: key 'exp' has 0 frames; a sequence needs T >= 1")
        for key in ("exp", "pose", "audio", "beta0"):
            bad = ~np.isfinite(getattr(self, key))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DatasetError(
                    f"{where}: key {key!r} holds {int(bad.sum())} NaN or infinite values "
                    f"(first at index {row}); fix or drop the sequence"
                )
        _emotion_label(self.emotion, where)
        if not 0.0 <= self.intensity <= 1.0:  # also refuses NaN
            raise DatasetError(f"{where}: key 'intensity' must be in [0, 1], got {self.intensity!r}")
        for key in PHONE_KEYS:
            value = getattr(self, key)
            if value is not None:
                _check_shape(value, (lengths["exp"],), key, where)


@dataclass(frozen=True)
class DatasetMeta:
    """The contents of ``meta.json``: frame rate, face model id, its D expression names, audio numbers per frame."""

    fps: float
    face_model: str
    names: tuple[str, ...]
    audio_width: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) \
                or not math.isfinite(self.fps) or self.fps <= 0:
            raise DatasetError(f"dataset meta 'fps' must be a positive number, got {self.fps!r}")
        object.__setattr__(self, "fps", float(self.fps))
        if not isinstance(self.face_model, str) or not self.face_model:
            raise DatasetError(
                f"dataset meta 'face_model' must be a face-model id such as 'builtin-arkit52@1', "
                f"got {self.face_model!r}"
            )
        if not self.names or not all(isinstance(n, str) and n for n in self.names):
            raise DatasetError("dataset meta 'names' must be a non-empty list of expression names")
        if len(set(self.names)) != len(self.names):
            raise DatasetError("dataset meta 'names' holds duplicate expression names")
        if isinstance(self.audio_width, bool) or not isinstance(self.audio_width, (int, np.integer)) \
                or self.audio_width < 1:
            raise DatasetError(f"dataset meta 'audio_width' must be a positive integer, got {self.audio_width!r}")
        object.__setattr__(self, "audio_width", int(self.audio_width))

    def to_json(self) -> str:
        """The text of ``meta.json``."""
        return json.dumps(
            {
                "format": DATASET_FORMAT, "version": DATASET_VERSION, "fps": self.fps,
                "face_model": self.face_model, "names": list(self.names), "audio_width": self.audio_width,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, source: str | Mapping[str, Any]) -> "DatasetMeta":
        """Parse ``meta.json`` text (or its decoded object) strictly: the format, the version and
        exactly the documented keys, else `DatasetError`."""
        if isinstance(source, str):
            try:
                source = json.loads(source)
            except json.JSONDecodeError as err:
                raise DatasetError(f"dataset meta is not valid JSON ({err})") from err
        if not isinstance(source, Mapping):
            raise DatasetError(f"dataset meta must be a JSON object, got {type(source).__name__}")
        missing = sorted(_META_KEYS - source.keys())
        unknown = sorted(source.keys() - _META_KEYS)
        if missing or unknown:
            raise DatasetError(
                f"dataset meta has missing keys {missing} and unknown keys {unknown}; "
                f"it must have exactly {sorted(_META_KEYS)}"
            )
        if source["format"] != DATASET_FORMAT:
            raise DatasetError(
                f"dataset meta 'format' is {source['format']!r}, expected {DATASET_FORMAT!r}"
            )
        if isinstance(source["version"], bool) or source["version"] != DATASET_VERSION:
            raise DatasetError(
                f"dataset meta 'version' is {source['version']!r}; this code reads version "
                f"{DATASET_VERSION} only: build the dataset again with this version's `flowvq corpus "
                f"build` (or `corpus from-videos` / `import-coeffs`)"
            )
        if not isinstance(source["names"], list):
            raise DatasetError("dataset meta 'names' must be a list of expression names")
        return cls(
            fps=source["fps"], face_model=source["face_model"], names=tuple(source["names"]),
            audio_width=source["audio_width"],
        )


def write_meta(root: str | Path, meta: DatasetMeta) -> Path:
    """Write ``root/meta.json`` atomically (creating ``root``); returns its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / META_FILE
    _write(path, lambda temporary: temporary.write_text(meta.to_json(), encoding="utf-8"))
    return path


def read_meta(root: str | Path) -> DatasetMeta:
    """Read and check ``root/meta.json``; a missing folder or file says what a dataset must hold."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist or is not a folder; {_LAYOUT}")
    path = root / META_FILE
    if not path.is_file():
        raise DatasetError(f"dataset directory {root} has no {META_FILE}; {_LAYOUT}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot read {path} ({err})") from err
    try:
        return DatasetMeta.from_json(text)
    except DatasetError as err:
        raise DatasetError(f"{path}: {err}") from err


def write_sequence(root: str | Path, split: str, seq: CoeffSequence) -> Path:
    """Validate ``seq`` against ``root``'s meta and write ``root/split/NAME.npz`` atomically
    (a temporary file in the same folder, then `os.replace`); returns the path."""
    root = Path(root)
    _check_split(split)
    if not NAME_PATTERN.fullmatch(seq.name):
        raise DatasetError(
            f"sequence name {seq.name!r} is not a safe file stem; use letters, digits, '.', '_' "
            "and '-' only, not starting with '.'"
        )
    meta = read_meta(root)
    seq.validate(len(meta.names), meta.audio_width)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seq.name}.npz"
    arrays = {
        "exp": seq.exp, "pose": seq.pose, "audio": seq.audio,
        "emotion": np.array(EMOTIONS[seq.label]), "beta0": seq.beta0,
        INTENSITY_KEY: np.array(seq.intensity, np.float32),
        **{key: getattr(seq, key) for key in PHONE_KEYS if getattr(seq, key) is not None},
    }
    _write(path, lambda temporary: _savez(temporary, arrays))
    return path


def wave_file(root: str | Path, name: str) -> Path:
    """Where sequence ``name``'s speech lies in the dataset at ``root`` (it may not exist)."""
    return Path(root) / AUDIO_DIR / f"{name}.wav"


def write_wave(root: str | Path, name: str, wave: np.ndarray) -> Path:
    """Write sequence ``name``'s speech to ``root/audio/NAME.wav`` atomically, 16-bit at 16 kHz;
    returns the path. Shapes: wave (N,) float in [-1, 1] at 16 kHz."""
    if not NAME_PATTERN.fullmatch(name):
        raise DatasetError(f"sequence name {name!r} is not a safe file stem")
    path = wave_file(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, lambda temporary: sf.write(temporary, np.clip(wave, -1.0, 1.0), SAMPLE_RATE,
                                            subtype="PCM_16", format="WAV"))
    return path


def read_sequence(path: str | Path, meta: DatasetMeta) -> CoeffSequence:
    """Load one ``NAME.npz`` and validate it against ``meta``; errors name the file and key."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in SEQUENCE_KEYS if key not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing keys {missing}; a sequence file holds {list(SEQUENCE_KEYS)}"
                )
            arrays = {key: archive[key] for key in SEQUENCE_KEYS}
            intensity = _intensity(archive[INTENSITY_KEY], path) if INTENSITY_KEY in archive.files else 1.0
            arrays.update({key: archive[key] for key in PHONE_KEYS if key in archive.files})
    except DatasetError:
        raise
    except Exception as err:  # zipfile/numpy raise many kinds for damaged files
        raise DatasetError(f"{path} is not a readable .npz sequence file ({err})") from err
    emotion = arrays.pop("emotion")
    if emotion.ndim != 0 or emotion.dtype.kind != "U":
        raise DatasetError(
            f"{path}: key 'emotion' must be a 0-d unicode array, got dtype {emotion.dtype} "
            f"shape {emotion.shape}"
        )
    seq = CoeffSequence(name=path.stem, emotion=str(emotion[()]), intensity=intensity, **arrays)
    seq.validate(len(meta.names), meta.audio_width, where=str(path))
    return seq


def _intensity(value: np.ndarray, path: Path) -> float:
    """The optional 0-d ``intensity`` entry of a sequence file as a float (`DatasetError` otherwise)."""
    if value.ndim != 0 or value.dtype.kind != "f":
        raise DatasetError(f"{path}: key 'intensity' must be a 0-d float array, got dtype {value.dtype} "
                           f"shape {value.shape}")
    return float(value)


def load_split(root: str | Path, split: str, *, required: bool = True) -> list[CoeffSequence]:
    """Every sequence of ``root/split``, sorted by name, each validated against the meta.

    A missing or empty split raises `DatasetError` naming the folder; with ``required=False`` a
    missing split gives ``[]`` (an existing but empty one is still an error).
    """
    _check_split(split)
    meta = read_meta(root)
    folder = Path(root) / split
    if not folder.is_dir():
        if not required:
            return []
        raise DatasetError(f"dataset split folder {folder} does not exist; {_LAYOUT}")
    paths = sorted(
        (p for p in folder.glob("*.npz") if not p.name.startswith(".")), key=lambda p: p.stem
    )
    if not paths:
        raise DatasetError(f"dataset split folder {folder} holds no NAME.npz sequences; {_LAYOUT}")
    return [read_sequence(path, meta) for path in paths]


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

class _Bank:
    """All sequences packed into flat arrays so a batch is a handful of fancy-index gathers.

    Shapes: exp/pose (sum_i (tau + T_i), D or 6), with tau zero rows before each sequence (so frame
    t of sequence i is row exp_start[i] + t, and t >= -tau always exists); audio
    (sum_i (before + T_i + after), F), each sequence edge-padded so that rows
    audio_start[i] + t + k, k = 0 .. W-1, are its window for frame t (= `frame_windows`); phones
    and heard (sum_i (before + T_i + after),) uint8 in the same rows (zeros where a sequence lacks them).
    """

    def __init__(self, sequences: Sequence[CoeffSequence], tau: int, before: int, after: int) -> None:
        _check_int(tau, "tau", 0)
        _check_int(before, "audio_before", 0)
        _check_int(after, "audio_after", 0)
        if len(sequences) == 0:
            raise DatasetError("no sequences given; load a split with load_split first")
        first = sequences[0]
        dim = int(first.exp.shape[1]) if first.exp.ndim == 2 else -1
        audio_width = int(first.audio.shape[1]) if first.audio.ndim == 2 else -1
        for seq in sequences:
            seq.validate(dim, audio_width)
        self.tau, self.width = tau, before + 1 + after
        self.lengths = np.array([seq.frames for seq in sequences], dtype=np.int64)
        zeros_exp = np.zeros((tau, dim), np.float32)
        zeros_pose = np.zeros((tau, POSE_DIM), np.float32)
        self.exp = np.concatenate([part for s in sequences for part in (zeros_exp, s.exp)])
        self.pose = np.concatenate([part for s in sequences for part in (zeros_pose, s.pose)])
        self.audio = np.concatenate(
            [np.pad(s.audio, ((before, after), (0, 0)), mode="edge") for s in sequences]
        )
        self.classes = {key: np.concatenate([_padded_classes(s, key, before, after) for s in sequences])
                        for key in PHONE_KEYS}
        self.exp_start = np.cumsum(self.lengths + tau) - self.lengths  # row of frame 0
        self.audio_start = np.cumsum(self.lengths + before + after) - (self.lengths + before + after)
        self.labels = np.array([s.label for s in sequences], dtype=np.int64)
        self.beta0 = np.stack([s.beta0 for s in sequences])
        self.offset = np.stack([s.offset for s in sequences]).astype(np.float32)

    def gather(self, seq: np.ndarray, start: np.ndarray, window: int) -> Batch:
        """The batch of windows starting at target frame ``start`` of sequences ``seq``.
        Shapes: seq, start (B,) int64 -> the dict documented on `WindowSampler`.
        """
        offsets = np.arange(-self.tau, window)  # (tau+window,)
        frames = start[:, None] + offsets[None, :]  # (B, tau+window) frame index within its sequence
        rows = self.exp_start[seq][:, None] + frames  # (B, tau+window)
        targets = self.audio_start[seq][:, None] + start[:, None] + np.arange(window)[None, :]
        audio_rows = targets[:, :, None] + np.arange(self.width)[None, None, :]  # (B, window, W)
        return {
            "exp": torch.from_numpy(self.exp[rows]),  # (B, tau+window, D)
            "pose": torch.from_numpy(self.pose[rows]),  # (B, tau+window, 6)
            "available": torch.from_numpy(frames >= 0),  # (B, tau+window)
            "audio": torch.from_numpy(self.audio[audio_rows]),  # (B, window, W, audio_width)
            **{key: torch.from_numpy(classes[audio_rows].astype(np.int64))  # (B, window, W)
               for key, classes in self.classes.items()},
            "label": torch.from_numpy(self.labels[seq]),  # (B,)
            "beta0": torch.from_numpy(self.beta0[seq]),  # (B, D)
            "style": torch.from_numpy(self.offset[seq]),  # (B, D)
            "sequence": torch.from_numpy(seq.astype(np.int64)),  # (B,)
            "frame": torch.from_numpy(start.astype(np.int64)),  # (B,)
        }


class WindowSampler:
    """Random training windows: `sample` draws one batch with the caller's generator, so the
    caller owns the randomness (training seeds one generator per (seed, rank, step)).

    Each batch is a dict of tensors (B = batch_size, W = audio_before + 1 + audio_after)::

        exp       (B, tau + window, D) float32   frames t0 - tau .. t0 + window - 1 (zeros before frame 0)
        pose      (B, tau + window, 6) float32   same frames
        available (B, tau + window) bool         False exactly for frame indices < 0
        audio     (B, window, W, audio_width) float32 frame_windows(seq.audio, audio_before, audio_after)[t]
                                                 for the window target frames t = t0 .. t0 + window - 1
        phones    (B, window, W) int64           the same windows of seq.phones (0 where it is None)
        heard     (B, window, W) int64           the same windows of seq.heard (0 where it is None)
        label     (B,) int64                     emotion index in core.emotions.EMOTIONS
        beta0     (B, D) float32
        style     (B, D) float32                 the sequence's `CoeffSequence.offset` (its take style)
        sequence  (B,) int64                     index of the sequence in ``sequences``
        frame     (B,) int64                     t0, the first target frame

    t0 is uniform over a sequence's valid starts [0, T - window] and a sequence is drawn with
    probability proportional to its number of valid starts (so every (sequence, start) pair is
    equally likely); sequences with T < window are skipped.
    """

    def __init__(
        self,
        sequences: Sequence[CoeffSequence],
        tau: int,
        window: int,
        audio_before: int,
        audio_after: int,
        batch_size: int,
    ) -> None:
        _check_int(window, "window", 1)
        _check_int(batch_size, "batch_size", 1)
        self.window, self.batch_size = window, batch_size
        self._bank = _Bank(sequences, tau, audio_before, audio_after)
        starts = np.maximum(self._bank.lengths - window + 1, 0)  # valid starts per sequence
        if starts.sum() == 0:
            raise DatasetError(
                f"no sequence is long enough for a window of {window} frames (the longest has "
                f"{int(self._bank.lengths.max())}); lower the window or add longer sequences"
            )
        self._cum = np.cumsum(starts)  # (N,) one past the last global start index of each sequence
        self._first = self._cum - starts  # (N,) global index of each sequence's start 0

    def sample(self, rng: np.random.Generator) -> Batch:
        """One batch drawn with ``rng``."""
        pick = rng.integers(0, self._cum[-1], size=self.batch_size)  # uniform over all starts
        seq = np.searchsorted(self._cum, pick, side="right")  # (B,)
        start = pick - self._first[seq]  # (B,) t0 in [0, T - window]
        return self._bank.gather(seq, start, self.window)


def frame_batches(
    sequences: Sequence[CoeffSequence],
    tau: int,
    audio_before: int,
    audio_after: int,
    batch_size: int,
) -> Iterator[Batch]:
    """Every frame of every sequence exactly once, in order (sequence, then frame), as batches with
    window = 1 (the layout of `WindowSampler`: exp (B, tau + 1, D), audio (B, 1, W, audio_width), ...);
    the last batch may be smaller. Deterministic; for validation and for building a latent bank.
    """
    _check_int(batch_size, "batch_size", 1)
    bank = _Bank(sequences, tau, audio_before, audio_after)
    seq = np.repeat(np.arange(len(bank.lengths)), bank.lengths)  # (sum T,)
    frame = np.arange(len(seq)) - np.repeat(np.cumsum(bank.lengths) - bank.lengths, bank.lengths)
    for lo in range(0, len(seq), batch_size):
        yield bank.gather(seq[lo:lo + batch_size], frame[lo:lo + batch_size], 1)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def _emotion_label(emotion: str, where: str) -> int:
    """`emotion_index`, with the error re-raised as a `DatasetError` naming the sequence."""
    try:
        return emotion_index(emotion)
    except UnknownEmotionError as err:
        raise DatasetError(f"{where}: key 'emotion': {err}") from err


def _padded_classes(seq: CoeffSequence, key: str, before: int, after: int) -> np.ndarray:
    """A sequence's ``key`` classes edge-padded like its audio rows in `_Bank`, zeros when it has
    none. Shapes: -> (before + T + after,) uint8."""
    classes = getattr(seq, key)
    if classes is None:
        return np.zeros(before + seq.frames + after, np.uint8)
    return np.pad(classes, (before, after), mode="edge")


def _viseme_classes(value: Any, key: str, where: str) -> np.ndarray:
    """A per-frame viseme class array as uint8; `DatasetError` unless it holds integers that index
    `core.visemes.VISEME_CLASSES`."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or (array.size and not (0 <= array.min() and array.max() < len(VISEME_CLASSES))):
        raise DatasetError(f"{where}: key {key!r} must hold viseme class indices in [0, {len(VISEME_CLASSES)}), "
                           f"got dtype {array.dtype}")
    return array.astype(np.uint8)


def _check_shape(array: np.ndarray, shape: tuple[int | None, ...], key: str, where: str) -> None:
    """`DatasetError` unless ``array`` has ``shape`` (None matches any length)."""
    if array.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, array.shape)):
        wanted = "(" + ", ".join("T" if n is None else str(n) for n in shape) + ")"
        raise DatasetError(
            f"{where}: key {key!r} has shape {array.shape}, expected {wanted}; check that it was "
            "exported for this dataset's face model and audio features"
        )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown dataset split {split!r}; choose one of: {', '.join(SPLITS)}")


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DatasetError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _write(path: Path, write: Callable[[Path], None]) -> None:
    """`core.fileio.write_atomic`, with a failure to write worded as a `DatasetError`."""
    try:
        write_atomic(path, write)
    except OSError as err:
        raise DatasetError(f"cannot write {path}: {err}") from err


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to exactly ``path`` (given a name, np.savez would append .npz)."""
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)
