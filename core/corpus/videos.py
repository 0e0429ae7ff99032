"""Real talking-head videos into the training layout, on the built-in face model.

For every video (`VIDEO_SUFFIXES`) anywhere under a folder, `video_clip`:

1. decodes the frames and the first audio track with PyAV (FFmpeg), in one pass;
2. detects the 468 FaceMesh landmarks on each frame (`core.face.landmarks.LandmarkDetector`) and
   fits the built-in model to them (`core.face.fit.fit`, on one BLAS thread): exp (D,) in [0, 1]
   and pose (6,);
3. handles frames where no face is found explicitly: runs of such frames up to `MAX_GAP_SECONDS`
   are linearly interpolated from the frames around them (held at the ends of the video); a video
   with a longer run, or with more than `MAX_MISSING_FRACTION` of its frames missing, is refused
   with the file and the frame named; a frame with two or more faces refuses the video (which face
   speaks is unknown). Nothing else is smoothed;
4. resamples the per-frame coefficients (linear in time, angles unwrapped) onto the dataset's
   frame grid ``t_k = t_0 + k / fps``, k = 0 .. round(duration * fps) - 1, where t_0 is the first
   frame's time and duration = (last frame time - t_0) + 1 / native fps; at the native rate this is
   the identity;
5. computes the audio features of `core.audio` on exactly those frames (`wave_features`), the
   audio first shifted by its start time relative to the first video frame;
6. takes beta0 = the per-channel `REST_PERCENTILE`th percentile of the detected frames' exp: the
   ARKit weights are activations in [0, 1] that a resting face keeps low, so a low percentile is
   the speaker's resting value of each channel (the identity's own shape shows up as a channel
   that never relaxes) while a few bad fits cannot set it, as a minimum would.

``channels="mouth"`` (``corpus from-videos --channels mouth``) writes the clips in the convention of
the synthetic corpus, to be trained beside it: step 2 solves only the channels the corpus's visemes
move (`MOUTH_FIT_CHANNELS`: `core.visemes.MOUTH_CHANNELS` but tongueOut, which no landmark sees),
holding the others at 0, so a speaker's lip shapes are explained by those channels alone (fitted on
every channel, a speaker's resting mouth lies in jawForward, mouthPress or mouthRollLower and the
lips move mouthRollUpper, mouthShrugUpper or mouthLowerDown, which the corpus never moves); and the
clip is written as the mouth's movement from the speaker's rest (`movement_from_rest`).

`from_videos` writes the dataset of `core.formats.dataset` (meta.json + train/val/test NAME.npz, and
each video's speech, shifted as in step 5, as audio/NAME.wav), with
the names, emotion labels (MEAD-style paths or one label) and the seeded split of
`core.corpus.readers`. A video that fails is skipped and listed in the summary.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from core.audio import FRAME_FEATURES, SAMPLE_RATE, wave_features
from core.corpus.readers import (
    ALIGN_TOLERANCE_S, CorpusSummary, CorpusWriter, Progress, check_dataset_fps, checked_wave, emotion_for,
    files_under,
)
from core.emotions import TALK
from core.face import builtin
from core.face.fit import fit
from core.face.landmarks import LandmarkDetector, MultipleFacesError, NoFaceError
from core.face.model import FaceModel
from core.formats.dataset import CoeffSequence, DatasetError, DatasetMeta
from core.formats.takes import POSE_DIM
from core.visemes import MOUTH_CHANNELS

__all__ = [
    "VIDEO_SUFFIXES", "MAX_GAP_SECONDS", "MAX_MISSING_FRACTION", "REST_PERCENTILE", "FIT_CHANNELS",
    "MOUTH_FIT_CHANNELS", "find_videos", "native_fps", "fitted_channels", "movement_from_rest", "video_clip",
    "from_videos",
]

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".flv")
MAX_GAP_SECONDS = 0.2  # longer runs of frames without a face refuse the video
MAX_MISSING_FRACTION = 0.1  # at most this share of a video's frames may lack a face
REST_PERCENTILE = 10.0
FIT_CHANNELS: tuple[str, ...] = ("all", "mouth")  # what `video_clip` fits: module docstring
MOUTH_FIT_CHANNELS: tuple[str, ...] = tuple(c for c in MOUTH_CHANNELS if c != "tongueOut")


@dataclass
class _Track:
    """What one decoding pass yields. Shapes: times (N,) seconds; exp (N, D) and pose (N, 6) with
    NaN rows where no face was found; wave (M,) 16 kHz mono from ``audio_start`` seconds on."""

    times: np.ndarray
    exp: np.ndarray
    pose: np.ndarray
    native_fps: float
    wave: np.ndarray
    audio_start: float


def find_videos(video_dir: Path) -> list[Path]:
    """Every video file under ``video_dir`` (recursively), sorted; `DatasetError` when none."""
    return files_under(video_dir, VIDEO_SUFFIXES, "video")


def native_fps(path: Path) -> float:
    """The average frame rate the container states for its first video stream."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path} has no video stream")
            rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    except av.FFmpegError as err:
        raise DatasetError(f"{path} is not a readable video file ({err})") from err
    if not rate:
        raise DatasetError(f"{path} does not state its frame rate; pass the output fps explicitly")
    return float(rate)


def fitted_channels(model: FaceModel, channels: str) -> np.ndarray | None:
    """The expression channels ``channels`` (`FIT_CHANNELS`) names on ``model``: None for all.
    Raises `DatasetError` for an unknown choice or a model without the mouth channels. Shapes: -> (D,) bool."""
    if channels not in FIT_CHANNELS:
        raise DatasetError(f"unknown channels {channels!r}; choose one of {', '.join(FIT_CHANNELS)}")
    if channels == "all":
        return None
    missing = [name for name in MOUTH_FIT_CHANNELS if name not in model.names]
    if missing:
        raise DatasetError(f"the face model {model.id!r} lacks the mouth channels {', '.join(missing)}")
    return np.isin(model.names, MOUTH_FIT_CHANNELS)


def movement_from_rest(seq: CoeffSequence) -> CoeffSequence:
    """A fitted clip as its movement from the speaker's rest, the synthetic corpus's convention:
    exp - beta0 clipped at 0 (beta0, a low percentile, is where each channel rests), beta0 = 0, and
    the head pose less its median over the clip (the corpus's heads turn about the front).
    Shapes: exp (T, D), pose (T, 6) in and out."""
    return CoeffSequence(
        name=seq.name, exp=np.clip(seq.exp - seq.beta0, 0.0, None).astype(np.float32),
        pose=(seq.pose - np.median(seq.pose, axis=0)).astype(np.float32), audio=seq.audio, emotion=seq.emotion,
        beta0=np.zeros_like(seq.beta0),
    )


def _frame_fit(model: FaceModel, detector: LandmarkDetector, rgb: np.ndarray, path: Path, index: int,
               time: float, channels: np.ndarray | None) -> np.ndarray | None:
    """exp | pose of one frame fitted on ``channels`` (None: all), or None when no face is found.
    Shapes: (H, W, 3), channels (D,) bool -> (D + 6,)."""
    try:
        landmarks = detector.detect(rgb)
    except NoFaceError:
        return None
    except MultipleFacesError as err:
        raise DatasetError(
            f"{path}, frame {index} ({time:.2f} s): {err}; use videos of one speaker"
        ) from err
    result = fit(model, landmarks, channels=channels)
    return np.concatenate([result.exp, result.pose])


def _decode(path: Path, model: FaceModel, channels: np.ndarray | None) -> _Track:
    """Decode ``path`` once: fit every video frame on ``channels`` (None: all), resample the audio to
    16 kHz mono. Shapes: channels (D,) bool."""
    import av

    fits: list[np.ndarray | None] = []
    times: list[float] = []
    chunks: list[np.ndarray] = []
    audio_start: float | None = None
    try:
        # One BLAS thread: a frame's solves are tiny, and with two threads on a busy 2-core CPU each
        # frame took 5x as long (benchmarks/fit_speed.py).
        with av.open(str(path)) as container, LandmarkDetector() as detector, threadpool_limits(1, user_api="blas"):
            if not container.streams.video:
                raise DatasetError(f"{path} has no video stream")
            if not container.streams.audio:
                raise DatasetError(f"{path} has no audio track; a training video needs its speech")
            video, audio = container.streams.video[0], container.streams.audio[0]
            rate = float(video.average_rate or video.guessed_rate or 0.0)
            if rate <= 0:
                raise DatasetError(f"{path} does not state its frame rate; re-encode it at a constant rate")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for packet in container.demux(video, audio):
                for frame in packet.decode():
                    if packet.stream.type == "video":
                        time = frame.time if frame.time is not None else len(times) / rate
                        times.append(float(time))
                        rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                        fits.append(_frame_fit(model, detector, rgb, path, len(fits), time, channels))
                    else:
                        if audio_start is None and frame.time is not None:
                            audio_start = float(frame.time)
                        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as err:
        raise DatasetError(f"{path} is not a readable video file ({err})") from err
    if not fits:
        raise DatasetError(f"{path} holds no decodable video frames")
    times_arr = np.asarray(times)
    width = model.n_expressions + POSE_DIM
    rows = np.stack([f if f is not None else np.full(width, np.nan) for f in fits])
    wave = checked_wave(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), path)
    return _Track(
        times=times_arr, exp=rows[:, :model.n_expressions], pose=rows[:, model.n_expressions:],
        native_fps=rate, wave=wave, audio_start=times[0] if audio_start is None else audio_start,
    )


def _check_gaps(found: np.ndarray, track: _Track, path: Path) -> None:
    """Refuse a video whose frames without a face are too many or form too long a run."""
    n = len(found)
    if not found.any():
        raise DatasetError(f"{path}: no face found in any of its {n} frames; use videos of one visible face")
    missing = ~found
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    starts, stops = edges[0::2], edges[1::2]  # runs of missing frames [start, stop)
    if len(starts) == 0:
        return
    longest = int(np.argmax(stops - starts))
    first, length = int(starts[longest]), int(stops[longest] - starts[longest])
    where = f"the longest run is frames {first}..{first + length - 1} from {track.times[first]:.2f} s"
    if missing.mean() > MAX_MISSING_FRACTION or length / track.native_fps > MAX_GAP_SECONDS:
        raise DatasetError(
            f"{path}: no face found in {int(missing.sum())} of {n} frames ({missing.mean():.0%}); "
            f"{where}. Runs up to {MAX_GAP_SECONDS:g} s and up to {MAX_MISSING_FRACTION:.0%} of the "
            "frames are interpolated; trim the video to where the face is visible"
        )


def resample_to_16k(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each column linearly interpolated in time, held past the ends.
    Shapes: times (N,), values (N, C), grid (T,) -> (T, C) float32."""
    return np.stack([np.interp(grid, times, column) for column in values.T], axis=1).astype(np.float32)


def video_clip(path: str | Path, name: str, *, fps: float | None = None, emotion: str = TALK,
               model: FaceModel | None = None, channels: str = "all") -> tuple[CoeffSequence, np.ndarray]:
    """One training sequence from one video (steps 1-6 of the module docstring), and its speech
    from the first frame on.

    ``fps`` is the output frame rate (None: the video's own); ``model`` the FaceMesh-topology face
    model (default the built-in one); ``channels`` one of `FIT_CHANNELS` (module docstring). Raises
    `DatasetError` naming the file for a video that cannot be read, has no audio track, no face or
    two faces.
    Shapes: -> exp (T, D), pose (T, 6), audio (T, 80), beta0 (D,), T = round(duration * fps);
    wave (N,) at 16 kHz.
    """
    path = Path(path)
    model = model or builtin()
    solved = fitted_channels(model, channels)  # checked, like fps, before the costly decode and fit
    if fps is not None:
        check_dataset_fps(fps)
    track = _decode(path, model, solved)
    if fps is None:
        fps = track.native_fps
        check_dataset_fps(fps)
    found = np.isfinite(track.exp).all(axis=1)
    _check_gaps(found, track, path)
    start = float(track.times[0])
    duration = float(track.times[-1]) - start + 1.0 / track.native_fps
    grid = start + np.arange(max(1, round(duration * fps))) / fps  # (T,)
    pose = track.pose[found]  # a copy: boolean indexing
    pose[:, :3] = np.unwrap(pose[:, :3], axis=0)
    exp = resample_to_16k(track.times[found], track.exp[found], grid)
    shift = round((track.audio_start - start) * SAMPLE_RATE)  # audio samples before the first frame
    wave = np.concatenate([np.zeros(shift, np.float32), track.wave]) if shift > 0 else track.wave[-shift:]
    short = duration - len(wave) / SAMPLE_RATE
    if short > ALIGN_TOLERANCE_S:
        raise DatasetError(
            f"{path}: the audio track ends {short:.2f} s before the video; trim the video to its audio"
        )
    seq = CoeffSequence(
        name=name, exp=exp, pose=resample_to_16k(track.times[found], pose, grid),
        audio=wave_features(wave, fps, len(grid)), emotion=emotion,
        beta0=np.percentile(track.exp[found], REST_PERCENTILE, axis=0).astype(np.float32),
    )
    return (seq if solved is None else movement_from_rest(seq)), wave


def _dataset_fps(files: list[Path], fps: float | None) -> float:
    """``fps`` when given, else the frame rate of the first readable video."""
    if fps is not None:
        check_dataset_fps(fps)
        return float(fps)
    errors = []
    for path in files:
        try:
            return native_fps(path)
        except DatasetError as err:
            errors.append(str(err))
    raise DatasetError("no video could be read: " + "; ".join(errors))


def from_videos(
    video_dir: str | Path,
    out_dir: str | Path,
    *,
    fps: float | None = None,
    emotion: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    channels: str = "all",
    progress: Progress | None = None,
) -> CorpusSummary:
    """Fit every video under ``video_dir`` and write a new dataset at ``out_dir`` on the built-in
    face model.

    ``fps``: the dataset's frame rate; None takes the first video's (sorted by path) and resamples
    the others to it. ``emotion``: one label for every video; None reads MEAD-style paths
    (``M003/video/front/angry/level_2/001.mp4``) and falls back to "talk". The split is
    `assign_splits` over the path-derived names of the imported videos with ``seed``. ``channels``:
    one of `FIT_CHANNELS` (module docstring). A video that fails is skipped and listed in the
    summary's failures; when none succeeds, `DatasetError` lists why.
    """
    video_dir = Path(video_dir)
    files = find_videos(video_dir)
    if emotion is not None:
        emotion = emotion_for(video_dir, emotion)  # checked and normalised before any work
    model = builtin()
    fitted_channels(model, channels)
    meta = DatasetMeta(fps=_dataset_fps(files, fps), face_model=model.id, names=model.names, audio_width=FRAME_FEATURES)
    writer = CorpusWriter(out_dir, meta, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                          progress=progress)
    return writer.write_all(video_dir, files, emotion, lambda path, name, label: video_clip(
        path, name, fps=meta.fps, emotion=label, model=model, channels=channels))
