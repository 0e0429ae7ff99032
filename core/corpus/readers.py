"""Real coefficient corpora into the training layout: MEAD/HDTF as Deep3DFaceRecon or SadTalker files.

Input, one coefficient file per video anywhere under a folder (searched recursively):

- ``format="d3d"``: Deep3DFaceRecon's 257 coefficients per frame, (T, 257), in a ``.mat`` (key
  ``coeff``, or ``full_3dmm`` / the six part keys, see `core.face.bfm.read_d3d`), ``.npy`` or ``.txt``;
- ``format="sadtalker"``: SadTalker's (T, 70) = 64 exp | 3 angle | 3 trans (or its (T, 73)
  preprocess file with 3 crop columns), in a ``.mat`` (key ``coeff_3dmm``) or ``.npy``.

Each needs the audio of the same video: a file with the same stem and one of `AUDIO_SUFFIXES`
beside it, or under ``audio_dir`` (the same relative folder, MEAD's ``audio/`` twin of
``video/<view>/``, or flat; see `find_audio`). Coefficient rows are video frames at ``fps``; the
audio features are the per-utterance normalised log-mel of `core.audio`, averaged onto exactly
those T frames (`core.audio.wave_features`), after checking that the audio and the coefficients last equally
long (within `ALIGN_TOLERANCE_S`).

Output is the dataset of `core.formats.dataset` on the BFM face model: D = 64 expressions named
``exp00`` .. ``exp63``, face model id ``bfm-front@1`` (`core.face.bfm`), pose = angle | trans in the
Deep3DFaceRecon units (radians, BFM decimetres). The helpers shared with `core.corpus.videos` live
here too: sequence names from relative paths (`sequence_name`), emotion labels from MEAD's naming
(`mead_emotion`, `emotion_for`), the seeded split (`assign_splits`) and `CorpusWriter`, which writes
meta.json, the sequences and their speech (audio/NAME.wav, 16 kHz; skipping a file that fails,
`CorpusWriter.write_all`), splits what was
imported and counts it and the failures (`CorpusSummary`).
"""

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio import (
    DEFAULT_FPS, FRAME_FEATURES, SAMPLE_RATE, AudioError, FpsError, check_decoded, check_fps, duration_seconds, load_audio,
    wave_features,
)
from core.emotions import EMOTIONS, TALK, UnknownEmotionError, emotion_index
from core.face.bfm import (
    BFM_EXP_DIM, BFM_NAME, BFM_VERSION, BFMError, d3d_to_exp_pose, load_bfm, read_d3d,
    read_sadtalker, split_sadtalker,
)
from core.formats.dataset import (
    SPLITS, CoeffSequence, DatasetError, DatasetMeta, write_meta, write_sequence, write_wave,
)

__all__ = [
    "COEFF_FORMATS", "COEFF_SUFFIXES", "AUDIO_SUFFIXES", "MEAD_EMOTIONS", "FALLBACK_EMOTION",
    "ALIGN_TOLERANCE_S", "Progress", "CorpusSummary", "CorpusWriter", "check_dataset_fps",
    "sequence_name", "files_under",
    "unique_names", "mead_emotion", "emotion_for", "assign_splits", "checked_wave",
    "decode_audio_av", "read_audio", "find_audio", "read_coeffs", "bfm_meta", "import_coeffs",
]

COEFF_FORMATS: tuple[str, ...] = ("d3d", "sadtalker")
COEFF_SUFFIXES: dict[str, tuple[str, ...]] = {"d3d": (".mat", ".npy", ".txt"), "sadtalker": (".mat", ".npy")}
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a")  # in order of preference
_SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg"})
# MEAD's folder names for its eight emotions are this project's labels (core.emotions).
MEAD_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != TALK)
FALLBACK_EMOTION = TALK  # a path without a MEAD emotion (e.g. HDTF) is plain speech
ALIGN_TOLERANCE_S = 0.5  # audio and coefficients may differ this much in length (encoder padding)

_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Names, labels, splits
# ---------------------------------------------------------------------------------------------

def check_dataset_fps(fps: float) -> None:
    """`core.audio`'s frame-rate rule (a number in (0, `MAX_FPS`]), its error as a `DatasetError`."""
    try:
        check_fps(fps)
    except FpsError as err:
        raise DatasetError(str(err)) from err


def sequence_name(relative: Path) -> str:
    """A dataset NAME from a path relative to the corpus folder: its parts without the suffix,
    joined by ``_``, other characters than letters, digits, ``.``, ``_``, ``-`` replaced by ``-``.
    ``M003/video/front/angry/level_2/001.mp4`` -> ``M003_video_front_angry_level_2_001``."""
    parts = [*relative.parent.parts, relative.stem]
    return _UNSAFE.sub("-", "_".join(parts)).lstrip(".") or "sequence"


def mead_emotion(path: str | Path) -> str | None:
    """The MEAD emotion named by a path (folder ``.../angry/level_2/001.mp4`` or file
    ``M003_front_angry_level_2_001``), or None when no part names one. Case-insensitive; a path
    naming two different emotions raises `DatasetError`."""
    tokens = {t.lower() for t in _TOKEN_SPLIT.split(str(path)) if t}
    found = sorted(tokens & set(MEAD_EMOTIONS))
    if len(found) > 1:
        raise DatasetError(
            f"{path} names several emotions ({', '.join(found)}); rename it or pass one emotion "
            "for the whole folder"
        )
    return found[0] if found else None


def emotion_for(path: str | Path, emotion: str | None) -> str:
    """The label of one sequence: ``emotion`` when given (one label for the whole folder), else
    the MEAD emotion in ``path``, else `FALLBACK_EMOTION` ("talk", as for HDTF)."""
    if emotion is not None:
        return EMOTIONS[_label_index(emotion)]
    return mead_emotion(path) or FALLBACK_EMOTION


def _label_index(emotion: str) -> int:
    """`emotion_index` with its error as a `DatasetError`."""
    try:
        return emotion_index(emotion)
    except UnknownEmotionError as err:
        raise DatasetError(str(err)) from err


def assign_splits(
    names: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """A reproducible split: the sorted names shuffled by ``np.random.default_rng(seed)``; the first
    round(test_fraction * n) go to test, the next round(val_fraction * n) to val, the rest to train
    (at least one; val and test shrink to leave it). The same names and seed give the same split."""
    for label, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
            raise DatasetError(f"{label} must be a number in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"val_fraction + test_fraction is {val_fraction + test_fraction:g}; it must be below 1 "
            "so that some sequences are left to train on"
        )
    ordered = sorted(names)
    n = len(ordered)
    n_test = min(round(test_fraction * n), max(n - 1, 0))
    n_val = min(round(val_fraction * n), max(n - 1 - n_test, 0))
    order = np.random.default_rng(seed).permutation(n)
    splits = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    return {ordered[i]: split for i, split in zip(order, splits)}


# ---------------------------------------------------------------------------------------------
# Writing and counting
# ---------------------------------------------------------------------------------------------

@dataclass
class CorpusSummary:
    """What an import wrote: sequences and hours per split, the fps, and (file, reason) failures."""

    fps: float
    sequences: dict[str, int] = field(default_factory=lambda: {split: 0 for split in SPLITS})
    frames: dict[str, int] = field(default_factory=lambda: {split: 0 for split in SPLITS})
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def hours(self) -> dict[str, float]:
        """Hours of video per split."""
        return {split: count / self.fps / 3600.0 for split, count in self.frames.items()}

    def to_json(self) -> str:
        """One line: {"sequences": {split: n}, "hours": {split: h}, "fps", "failures": [{file, reason}]}."""
        return json.dumps({
            "sequences": self.sequences,
            "hours": {split: round(h, 4) for split, h in self.hours.items()},
            "fps": self.fps,
            "failures": [{"file": f, "reason": r} for f, r in self.failures],
        })


class CorpusWriter:
    """Writes one dataset: meta.json before the first sequence, then each sequence to train/ and
    its speech to audio/ (`core.formats.dataset.write_wave`);
    `finish` moves the sequences `assign_splits` gives to val and test there, so the fractions
    apply to the sequences that were imported, not to files that failed.

    ``out_dir`` must not exist yet or be empty, so sequences of two imports never mix.
    """

    def __init__(self, out_dir: str | Path, meta: DatasetMeta, *, val_fraction: float, test_fraction: float,
                 seed: int, progress: Progress | None = None) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and (not self.out_dir.is_dir() or any(self.out_dir.iterdir())):
            raise DatasetError(
                f"output folder {self.out_dir} already exists and is not empty; choose a new folder"
            )
        assign_splits([], val_fraction, test_fraction, seed)  # refuse bad fractions before any work
        self.meta = meta
        self.fractions = (val_fraction, test_fraction, seed)
        self.progress = progress
        self.summary = CorpusSummary(fps=meta.fps)
        self._frames: dict[str, int] = {}

    def write_all(self, root: Path, files: Sequence[Path], emotion: str | None,
                  clip: Callable[[Path, str, str], tuple[CoeffSequence, np.ndarray]]) -> CorpusSummary:
        """Add the sequence and 16 kHz wave ``clip(path, name, label)`` gives for each of ``files``
        under ``root`` (name from `unique_names`, label from `emotion_for`), record those raising
        `DatasetError` as failures, and `finish`."""
        names = unique_names(root, files)
        for path in files:
            try:
                self.add(*clip(path, names[path], emotion_for(path.relative_to(root), emotion)))
            except DatasetError as err:
                self.fail(path, err)
        return self.finish()

    def add(self, seq: CoeffSequence, wave: np.ndarray) -> None:
        """Write ``seq`` to train/ and its speech to audio/, and count it. Shapes: wave (N,) at 16 kHz."""
        if not self._frames:
            write_meta(self.out_dir, self.meta)
        write_sequence(self.out_dir, "train", seq)
        write_wave(self.out_dir, seq.name, wave)
        self._frames[seq.name] = seq.frames
        self._say(f"{seq.name}: {seq.frames} frames, {seq.emotion}")

    def fail(self, path: Path, err: Exception) -> None:
        """Record a file that could not be imported."""
        self.summary.failures.append((str(path), str(err)))
        self._say(f"skipped {path}: {err}")

    def finish(self) -> CorpusSummary:
        """Split the written sequences and return the summary; raises `DatasetError` listing every
        failure when nothing was written."""
        if not self._frames:
            reasons = "; ".join(reason for _, reason in self.summary.failures)
            raise DatasetError(f"no sequence could be imported into {self.out_dir}: {reasons}")
        for name, split in assign_splits(list(self._frames), *self.fractions).items():
            if split != "train":
                (self.out_dir / split).mkdir(exist_ok=True)
                os.replace(self.out_dir / "train" / f"{name}.npz", self.out_dir / split / f"{name}.npz")
            self.summary.sequences[split] += 1
            self.summary.frames[split] += self._frames[name]
        return self.summary

    def _say(self, line: str) -> None:
        if self.progress:
            self.progress(line)


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------

def checked_wave(samples: np.ndarray, path: Path) -> np.ndarray:
    """Audio decoded by FFmpeg through `core.audio`'s checks for decoded samples (empty, NaN,
    silent), its error as a `DatasetError` naming ``path``.
    Shapes: (N,) -> (N,) float32 clipped to [-1, 1]."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    try:
        check_decoded(samples, f"the audio track of {path}")
    except AudioError as err:
        raise DatasetError(str(err)) from err
    return np.clip(samples, -1.0, 1.0)


def decode_audio_av(path: Path) -> np.ndarray:
    """The first audio stream of any file FFmpeg reads (e.g. MEAD's ``.m4a``), as 16 kHz mono.
    Shapes: -> (N,) float32."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DatasetError(f"{path} has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as err:
        raise DatasetError(f"{path} is not a readable audio file ({err})") from err
    return checked_wave(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), path)


def read_audio(path: Path) -> np.ndarray:
    """A 16 kHz mono wave from an audio file: soundfile's formats via `core.audio.load_audio`,
    others (``.m4a``) via FFmpeg. Shapes: -> (N,) float32."""
    if path.suffix.lower() not in _SOUNDFILE_SUFFIXES:
        return decode_audio_av(path)
    try:
        return load_audio(path, max_seconds=math.inf)
    except AudioError as err:
        raise DatasetError(str(err)) from err


def find_audio(coeff_path: Path, coeff_root: Path, audio_dir: Path | None) -> Path:
    """The audio file of a coefficient file, trying in order (each with `AUDIO_SUFFIXES`):
    the same stem beside it; under ``audio_dir`` the same relative path; MEAD's layout, where
    ``M003/video/front/angry/level_2/001`` has its audio at ``M003/audio/angry/level_2/001``;
    ``audio_dir/STEM``. Raises `DatasetError` naming the places looked in."""
    relative = coeff_path.relative_to(coeff_root).with_suffix("")
    stems = [coeff_path.with_suffix("")]
    if audio_dir is not None:
        stems.append(audio_dir / relative)
        parts = relative.parts
        if "video" in parts[:-2]:
            i = parts.index("video")
            stems.append(audio_dir.joinpath(*parts[:i], "audio", *parts[i + 2:]))
        stems.append(audio_dir / relative.name)
    for stem in stems:
        for suffix in AUDIO_SUFFIXES:
            candidate = stem.with_name(stem.name + suffix)
            if candidate.is_file():
                return candidate
    tried = ", ".join(str(s) + ".*" for s in stems)
    raise DatasetError(
        f"no audio found for {coeff_path} (looked for {'/'.join(AUDIO_SUFFIXES)} at {tried}); "
        "put the audio beside it with the same name or pass its folder as the audio dir"
    )


# ---------------------------------------------------------------------------------------------
# Coefficient files
# ---------------------------------------------------------------------------------------------

def read_coeffs(path: Path, format: str) -> tuple[np.ndarray, np.ndarray]:
    """Expression and pose of one coefficient file in ``format`` (`COEFF_FORMATS`).
    Shapes: -> exp (T, 64) float32, pose (T, 6) float32 (pitch, yaw, roll rad, tx, ty, tz dm)."""
    try:
        if format == "d3d":
            exp, pose = d3d_to_exp_pose(read_d3d(path))
        elif path.suffix.lower() == ".mat":
            exp, pose = read_sadtalker(path)
        else:
            exp, pose = split_sadtalker(_load_npy(path))
    except BFMError as err:
        message = str(err)
        raise DatasetError(message if str(path) in message else f"{path}: {message}") from err
    return np.asarray(exp, np.float32), np.asarray(pose, np.float32)


def _load_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` array (SadTalker coefficients). Shapes: -> (T, 70) or (T, 73) as stored."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DatasetError(f"{path} is not a readable .npy array ({err})") from err
    if array.ndim != 2:
        raise DatasetError(f"{path} holds an array of shape {array.shape}; expected (T, 70)")
    return array


def bfm_meta(fps: float, bfm_path: str | Path | None = None) -> DatasetMeta:
    """The meta of a BFM dataset: id ``bfm-front@1`` and names exp00..exp63 from `core.face.bfm`,
    or from the user's ``BFM_model_front.mat`` when given (which checks the file is usable)."""
    check_dataset_fps(fps)
    if bfm_path is None:
        names = tuple(f"exp{k:02d}" for k in range(BFM_EXP_DIM))
        return DatasetMeta(fps=fps, face_model=f"{BFM_NAME}@{BFM_VERSION}", names=names, audio_width=FRAME_FEATURES)
    try:
        model = load_bfm(bfm_path)
    except BFMError as err:
        raise DatasetError(str(err)) from err
    return DatasetMeta(fps=fps, face_model=model.id, names=model.names, audio_width=FRAME_FEATURES)


def files_under(folder: Path, suffixes: Sequence[str], kind: str) -> list[Path]:
    """Every file under ``folder`` (recursively) with one of ``suffixes`` (any case), not hidden,
    sorted; `DatasetError` naming ``kind`` when the folder is missing or holds none."""
    if not folder.is_dir():
        raise DatasetError(f"{kind} folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"{folder} holds no {kind} files ({', '.join(suffixes)}, searched recursively)")
    return files


def _coeff_files(coeff_dir: Path, format: str) -> list[Path]:
    """Every coefficient file under ``coeff_dir``, sorted; `DatasetError` when there is none."""
    if format not in COEFF_FORMATS:
        raise DatasetError(f"unknown coefficient format {format!r}; choose one of {', '.join(COEFF_FORMATS)}")
    return files_under(coeff_dir, COEFF_SUFFIXES[format], f"{format} coefficient")


def unique_names(root: Path, files: Iterable[Path]) -> dict[Path, str]:
    """`sequence_name` of each file; two files that map to one name raise `DatasetError`."""
    names: dict[Path, str] = {}
    seen: dict[str, Path] = {}
    for path in files:
        name = sequence_name(path.relative_to(root))
        if name in seen:
            raise DatasetError(f"{seen[name]} and {path} both become sequence {name!r}; rename one")
        names[path], seen[name] = name, path
    return names


def _coeff_sequence(path: Path, name: str, format: str, audio: Path, fps: float,
                    emotion: str) -> tuple[CoeffSequence, np.ndarray]:
    """One sequence from a coefficient file and its audio, with the 16 kHz wave (N,).

    beta0 is the first frame's expression: at inference β₀ is the expression fitted on one image of
    the speaker (the source portrait), and the first frame of a MEAD or HDTF clip is such an image,
    taken before speech starts. Zeros would be the BFM mean expression for every clip, a constant
    context carrying nothing about the speaker; a per-clip percentile of signed PCA weights is not
    a resting face.
    """
    exp, pose = read_coeffs(path, format)
    wave = read_audio(audio)
    frames = len(exp)
    seconds = duration_seconds(wave)
    if abs(seconds - frames / fps) > ALIGN_TOLERANCE_S:
        raise DatasetError(
            f"{path} has {frames} frames ({frames / fps:.2f} s at {fps:g} fps) but its audio {audio} "
            f"lasts {seconds:.2f} s; check --fps or the audio file"
        )
    return CoeffSequence(name=name, exp=exp, pose=pose, audio=wave_features(wave, fps, frames),
                         emotion=emotion, beta0=exp[0]), wave


def import_coeffs(
    coeff_dir: str | Path,
    out_dir: str | Path,
    *,
    format: str,
    audio_dir: str | Path | None = None,
    fps: float = DEFAULT_FPS,
    emotion: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    bfm_path: str | Path | None = None,
    progress: Progress | None = None,
) -> CorpusSummary:
    """Import every coefficient file under ``coeff_dir`` (see the module docstring) into a new
    dataset at ``out_dir`` on the BFM face model.

    ``emotion`` labels every sequence; None reads MEAD's naming and falls back to "talk". A file
    that cannot be imported (bad width, no audio, lengths that disagree) is skipped and listed in
    the summary's failures; when none can be imported, `DatasetError` lists why.
    """
    coeff_dir = Path(coeff_dir)
    audio_root = Path(audio_dir) if audio_dir is not None else None
    files = _coeff_files(coeff_dir, format)
    if emotion is not None:
        emotion = emotion_for(coeff_dir, emotion)  # checked and normalised before any work
    writer = CorpusWriter(out_dir, bfm_meta(fps, bfm_path), val_fraction=val_fraction,
                          test_fraction=test_fraction, seed=seed, progress=progress)
    return writer.write_all(coeff_dir, files, emotion, lambda path, name, label: _coeff_sequence(
        path, name, format, find_audio(path, coeff_dir, audio_root), fps, label))
