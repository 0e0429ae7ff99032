"""Audio input and features: any clip soundfile reads -> 16 kHz mono -> log-mel -> one row per video frame.

The pipeline the coefficient generator sees is

    load_audio            file or bytes -> float32 wave (N,) at SAMPLE_RATE, mono, in [-1, 1]
    log_mel               wave (N,) -> (T100, N_MELS), one row every 10 ms (FEATURE_RATE)
    normalize_features    per-utterance mean/variance per mel band (DESIGN.md section 5)
    frame_features        (T100, N_MELS) -> (T_video, FRAME_FEATURES): each video frame's SUBFRAMES
                          sub-intervals, summarised by the rule of `align_to_frames` (the mean of
                          one row per video frame, (T100, F) -> (T_video, F)), side by side in time order
    frame_windows         (T_video, F) -> (T_video, before + 1 + after, F), the audio window with look-ahead

`audio_features` runs load_audio, log_mel, normalize_features and frame_features in one call. The
models read FRAME_FEATURES numbers per video frame: a bilabial's closure lasts two or three frames, and
a frame's mean log-mel blurs its onset and release into the vowels around it; four 10 ms rows per
25 fps frame keep them. Bad input raises a subclass of `AudioError` (itself
a `FlowVQError`) whose message names the file, says what is wrong and what to do about it; the
duration and sample limits are checked from the file's header, before any sample is decoded, and
decoding streams: one block of the file at its own rate and channel count is held at a time, then
mixed down and resampled, so memory grows with the 16 kHz mono result only.
"""

import io
import math
from functools import lru_cache
from numbers import Real
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.fft import rfft
from scipy.signal import firwin, get_window, resample_poly

from core.errors import FlowVQError

__all__ = [
    "SAMPLE_RATE", "FEATURE_RATE", "HOP_LENGTH", "N_MELS", "SUBFRAMES", "FRAME_FEATURES", "N_FFT", "MAX_SECONDS",
    "MIN_INPUT_RATE", "MAX_INPUT_RATE", "SILENCE_DBFS", "MAX_FPS", "DEFAULT_FPS",
    "AudioError", "AudioNotFoundError", "EmptyAudioError", "SilentAudioError", "CorruptAudioError",
    "NotAudioError", "AudioTooLongError", "AudioTooLargeError", "SampleRateError", "FpsError", "FeatureError",
    "load_audio", "duration_seconds", "mel_band_edges_hz", "mel_filterbank", "log_mel",
    "normalize_features", "n_video_frames", "align_to_frames", "frame_features", "frame_windows", "audio_features",
    "wave_features", "check_decoded", "check_fps", "resample_to_16k", "StreamResampler",
]

SAMPLE_RATE = 16000
FEATURE_RATE = 100
HOP_LENGTH = SAMPLE_RATE // FEATURE_RATE  # 160 samples
N_MELS = 80
SUBFRAMES = 4  # log-mel rows kept per video frame (at 25 fps: every 10 ms row)
FRAME_FEATURES = SUBFRAMES * N_MELS
# The frame rate whose video frame holds exactly SUBFRAMES feature rows: the models', the corpora's
# and MEAD/HDTF's (25 fps); every default frame rate in core is this one.
DEFAULT_FPS = FEATURE_RATE / SUBFRAMES
N_FFT = 400  # 25 ms Hann window
MAX_SECONDS = 600.0  # the stated upload limit: 10 minutes
MIN_INPUT_RATE = 4000
MAX_INPUT_RATE = 384000
SILENCE_DBFS = -60.0  # a clip whose peak is below this is treated as silent
MAX_FPS = 240.0

_MEL_FLOOR = 1e-6
_STD_FLOOR = 1e-5
_READ_BLOCK_FRAMES = 1 << 16
# The resampling low-pass (scipy's resample_poly default, made explicit so its support is known):
# a Kaiser-windowed (beta 5) sinc with _RESAMPLE_HALF_TAPS * max(up, down) taps each side.
_RESAMPLE_HALF_TAPS = 10
_RESAMPLE_BETA = 5.0
_SUPPORTED = "WAV, FLAC, OGG/Vorbis or MP3"


class AudioError(FlowVQError):
    """An audio input that cannot be used; the subclass says why."""
    code = "audio"


class AudioNotFoundError(AudioError):
    """The path does not name an existing file."""
    code = "audio_not_found"


class EmptyAudioError(AudioError):
    """A zero-byte file, or an audio file with zero samples."""
    code = "empty_audio"


class SilentAudioError(AudioError):
    """Only digital silence, or a peak level below `SILENCE_DBFS`."""
    code = "silent_audio"


class CorruptAudioError(AudioError):
    """An audio container (by its magic bytes or by soundfile) whose data cannot be decoded."""
    code = "corrupt_audio"


class NotAudioError(AudioError):
    """A file that is not audio at all (text, an image, random bytes)."""
    code = "not_audio"


class AudioTooLongError(AudioError):
    """A clip whose header says it lasts longer than the limit."""
    code = "audio_too_long"


class AudioTooLargeError(AudioError):
    """A clip whose header announces more samples (frames x channels) than the limit: decoding it
    would cost time out of proportion to its size on disk (a compressed high-rate multichannel file)."""
    code = "audio_too_large"


class SampleRateError(AudioError):
    """A sample rate outside [`MIN_INPUT_RATE`, `MAX_INPUT_RATE`]."""
    code = "sample_rate"


class FpsError(FlowVQError):
    """An output frame rate that is not a finite number in (0, `MAX_FPS`]."""
    code = "fps"


class FeatureError(FlowVQError):
    """Feature arrays or window sizes of the wrong shape (usually a model config that does not fit)."""
    code = "feature"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def load_audio(
    source: str | Path | bytes, *, max_seconds: float = MAX_SECONDS, max_samples: int | None = None
) -> np.ndarray:
    """Decode a clip from a path or raw bytes into a mono float32 wave at `SAMPLE_RATE`.

    Reads whatever soundfile reads (WAV, FLAC, OGG/Vorbis, MP3, ...); channels are averaged and the
    signal is resampled with a polyphase filter, block by block as it is decoded (`StreamResampler`).
    The header is checked (rate, duration, and frames x channels against ``max_samples``; None: no
    bound) before any sample is decoded, so an over-long or over-large file is refused without being
    read. Memory: the 16 kHz result plus one block of `_READ_BLOCK_FRAMES` frames.
    Shapes: file of C channels, M frames at rate r -> (ceil(M * 16000 / r),) float32 in [-1, 1].
    Raises a subclass of `AudioError` for every kind of bad input.
    """
    label, data = _resolve_source(source)
    head = _read_head(source, data, label)
    with _open_sound_file(source, data, label, head) as sound:
        _check_header(sound.frames, sound.channels, sound.samplerate, label, max_seconds, max_samples)
        wave = _decode_16k(sound, label, head)
    check_decoded(wave, label)
    return np.clip(wave, -1.0, 1.0, out=wave)


def duration_seconds(wave: np.ndarray) -> float:
    """Length in seconds of a wave at `SAMPLE_RATE`. Shapes: (N,) -> float."""
    return len(wave) / SAMPLE_RATE


def _resolve_source(source: str | Path | bytes) -> tuple[str, bytes | None]:
    """(name for messages, the bytes when `source` is in memory, else None)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return f"the uploaded audio ({len(data)} bytes)", data
    if isinstance(source, (str, Path)):
        return f"audio file '{source}'", None
    raise TypeError(f"audio source must be a path or bytes, not {type(source).__name__}")


def _read_head(source: str | Path | bytes, data: bytes | None, label: str) -> bytes:
    """The first 16 bytes (for format sniffing); refuses missing, unreadable and zero-byte inputs."""
    if data is None:
        path = Path(source)
        if not path.exists():
            raise AudioNotFoundError(f"{label} does not exist; check the path and try again")
        if not path.is_file():
            raise AudioNotFoundError(f"{label} is a folder, not a file; choose an audio file")
        try:
            with path.open("rb") as handle:
                data = handle.read(16)
        except OSError as err:
            raise AudioError(f"{label} cannot be read ({err.strerror}); check its permissions") from err
    if not data:
        raise EmptyAudioError(f"{label} is empty (0 bytes); choose a recording that contains speech")
    return data[:16]


def _sniff_audio_format(head: bytes) -> str | None:
    """The audio format that the magic bytes announce, or None when they are not audio's."""
    form = head[8:12]
    if head[:4] in (b"RIFF", b"RF64") and b"WAVE".startswith(form):
        return "WAV"
    if head[:4] == b"FORM" and (b"AIFF".startswith(form) or b"AIFC".startswith(form)):
        return "AIFF"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "OGG"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


def _undecodable(label: str, head: bytes, err: sf.SoundFileError) -> AudioError:
    """The error for input soundfile refused: corrupt if it looks like audio, otherwise not audio."""
    detail = getattr(err, "error_string", str(err)).strip().rstrip(".")
    kind = _sniff_audio_format(head)
    if kind is None:
        return NotAudioError(
            f"{label} is not audio in a format we can read ({detail}); "
            f"export or convert it to {_SUPPORTED}"
        )
    return CorruptAudioError(
        f"{label} looks like a {kind} file but cannot be decoded ({detail}); it is probably "
        f"truncated or damaged: export it again, or convert it to {_SUPPORTED}"
    )


def _open_sound_file(source: str | Path | bytes, data: bytes | None, label: str, head: bytes) -> sf.SoundFile:
    """Open `source` for reading with soundfile (this parses the header only)."""
    try:
        return sf.SoundFile(io.BytesIO(data) if data is not None else str(source))
    except sf.SoundFileError as err:
        raise _undecodable(label, head, err) from err


def _check_header(
    frames: int, channels: int, rate: int, label: str, max_seconds: float, max_samples: int | None
) -> None:
    """Refuse a bad sample rate, zero frames, an over-long duration or more than ``max_samples``
    samples (frames x channels; None: no bound), from the header alone."""
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise SampleRateError(
            f"{label} has a sample rate of {rate} Hz; supported rates are {MIN_INPUT_RATE} to "
            f"{MAX_INPUT_RATE} Hz: resample it (16000 Hz or higher is best for speech)"
        )
    if frames <= 0:
        raise EmptyAudioError(
            f"{label} contains no audio samples (0 frames); choose a recording that contains speech"
        )
    seconds = frames / rate
    if seconds > max_seconds:
        raise AudioTooLongError(
            f"{label} is {seconds:.1f} s long, over the limit of {max_seconds:g} s "
            f"({max_seconds / 60:g} min); trim it or split it into shorter clips"
        )
    samples = frames * channels
    if max_samples is not None and samples > max_samples:
        raise AudioTooLargeError(
            f"{label} holds {samples:,} samples ({seconds:.1f} s at {rate} Hz x {channels} channels), "
            f"over the limit of {max_samples:,}; mix it down to mono and resample it to 16 kHz (all "
            "the model hears) or 48 kHz, or trim it"
        )


def _decode_16k(sound: sf.SoundFile, label: str, head: bytes) -> np.ndarray:
    """Decode every frame block by block, averaging each block's channels and resampling it as it
    comes, so neither the whole clip nor its mono mix at the file's rate is ever held.
    Shapes: (M, C) file at rate r -> (ceil(M * 16000 / r),) float32.
    """
    resampler = StreamResampler(sound.samplerate)
    try:
        for block in sound.blocks(blocksize=_READ_BLOCK_FRAMES, dtype="float32", always_2d=True):
            resampler.push(block.mean(axis=1, dtype=np.float32))
    except sf.SoundFileError as err:
        raise _undecodable(label, head, err) from err
    return resampler.finish()


def check_decoded(mono: np.ndarray, label: str) -> None:
    """Refuse decoded audio that is empty, not finite, or silent. Shapes: (M,) -> None."""
    if mono.size == 0:
        raise EmptyAudioError(
            f"{label} contains no audio samples (0 frames); choose a recording that contains speech"
        )
    if not np.isfinite(mono).all():
        raise CorruptAudioError(
            f"{label} contains NaN or infinite samples; export it again as {_SUPPORTED}"
        )
    peak = float(np.max(np.abs(mono)))
    if peak == 0.0:
        raise SilentAudioError(
            f"{label} is silent (every sample is zero); choose a recording with audible speech"
        )
    peak_dbfs = 20.0 * math.log10(peak)
    if peak_dbfs < SILENCE_DBFS:
        raise SilentAudioError(
            f"{label} is silent: its peak level is {peak_dbfs:.0f} dBFS, below {SILENCE_DBFS:g} dBFS; "
            "choose a recording with audible speech or raise its volume"
        )


def _resample_ratio(rate: int) -> tuple[int, int]:
    """(up, down), coprime, with rate * up / down = `SAMPLE_RATE`."""
    common = math.gcd(rate, SAMPLE_RATE)
    return SAMPLE_RATE // common, rate // common


@lru_cache(maxsize=8)
def _resample_filter(up: int, down: int) -> np.ndarray:
    """The polyphase low-pass at the upsampled rate, cut off at the lower Nyquist, read-only.
    Shapes: -> (2 * _RESAMPLE_HALF_TAPS * max(up, down) + 1,) float32.
    """
    widest = max(up, down)
    taps = firwin(2 * _RESAMPLE_HALF_TAPS * widest + 1, 1.0 / widest, window=("kaiser", _RESAMPLE_BETA))
    taps = taps.astype(np.float32)
    taps.setflags(write=False)
    return taps


def resample_to_16k(mono: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling from `rate` to `SAMPLE_RATE`. Shapes: (M,) -> (ceil(M * 16000 / rate),)."""
    if rate == SAMPLE_RATE:
        return mono
    up, down = _resample_ratio(rate)
    return resample_poly(mono, up, down, window=_resample_filter(up, down)).astype(np.float32, copy=False)


class StreamResampler:
    """`resample_to_16k` of a signal that arrives in blocks, with the same output, holding only the
    samples that outputs still to come depend on.

    Output n sits at input position n * down / up and reads the inputs within
    `_RESAMPLE_HALF_TAPS` * max(up, down) / up of it (`margin`); the zero padding past both ends is
    the whole signal's. Each `push` resamples the held samples, which start at a multiple of
    ``down`` frames (so their output grid is the whole signal's), keeps the outputs whose inputs
    are all held, and drops the samples no later output reads.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        up, down = _resample_ratio(rate)
        self.up, self.down = up, down
        self.margin = -(-_RESAMPLE_HALF_TAPS * max(up, down) // up)  # input samples, each side
        self.held = np.zeros(0, np.float32)  # inputs from `start` on
        self.start = 0  # index of held[0] in the whole signal, a multiple of `down`
        self.done = 0  # outputs emitted so far
        self.outputs: list[np.ndarray] = []

    def push(self, block: np.ndarray) -> None:
        """Take the next input samples. Shapes: (B,) float32."""
        self.held = np.concatenate([self.held, block])
        end = self.start + len(self.held)
        ready = max(self.done, (end - self.margin) * self.up // self.down)  # outputs reading inputs < end only
        if ready > self.done:
            self._emit(ready)
            first_needed = max(self.start, (self.done * self.down // self.up - self.margin) // self.down * self.down)
            self.held = self.held[first_needed - self.start:]
            self.start = first_needed

    def finish(self) -> np.ndarray:
        """Every output, the last ones read against the zero padding past the end.
        Shapes: M inputs pushed -> (ceil(M * 16000 / rate),) float32.
        """
        if len(self.held):
            self._emit(None)
        return np.concatenate(self.outputs) if self.outputs else np.zeros(0, np.float32)

    def _emit(self, stop: int | None) -> None:
        """Resample the held samples and keep outputs ``done`` .. ``stop`` (None: to the end)."""
        offset = self.start * self.up // self.down  # the output index of the held samples' first output
        wave = resample_to_16k(self.held, self.rate)
        self.outputs.append(wave[self.done - offset:None if stop is None else stop - offset])
        self.done = offset + len(wave) if stop is None else stop


# ---------------------------------------------------------------------------------------------
# Log-mel features
# ---------------------------------------------------------------------------------------------

def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `_hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_band_edges_hz() -> np.ndarray:
    """The N_MELS + 2 corner frequencies of the triangular filters, equally spaced in HTK mel over
    0 .. SAMPLE_RATE / 2; band k rises from edge k, peaks at edge k + 1 and falls to edge k + 2.
    Shapes: () -> (N_MELS + 2,) float64.
    """
    mels = np.linspace(0.0, _hz_to_mel(np.float64(SAMPLE_RATE / 2)), N_MELS + 2)
    return _mel_to_hz(mels)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation, read-only.
    Shapes: () -> (N_MELS, N_FFT // 2 + 1) float32.
    """
    edges = mel_band_edges_hz()
    bins_hz = np.arange(N_FFT // 2 + 1) * (SAMPLE_RATE / N_FFT)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz - lower) / (centre - lower)
    falling = (upper - bins_hz) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    bank = weights.astype(np.float32)
    bank.setflags(write=False)
    return bank


def _centred_frames(wave: np.ndarray) -> np.ndarray:
    """Hann-windowed frames, frame k centred on sample k * HOP_LENGTH (a strided view, then one product).
    Shapes: (N,) -> (ceil(N / HOP_LENGTH), N_FFT) float32.
    """
    n_frames = -(-len(wave) // HOP_LENGTH)
    half = N_FFT // 2
    padded = np.pad(wave.astype(np.float32, copy=False), half, mode="reflect" if len(wave) > 1 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    return frames * get_window("hann", N_FFT).astype(np.float32)


def log_mel(wave: np.ndarray) -> np.ndarray:
    """Log mel power spectrogram at FEATURE_RATE: log(mel filterbank @ |rfft(hann frame)|^2 + 1e-6).
    Shapes: (N,) -> (ceil(N / 160), N_MELS) float32.
    """
    if wave.ndim != 1:
        raise FeatureError(f"log_mel needs a mono wave of shape (N,), got shape {wave.shape}")
    spectrum = rfft(_centred_frames(wave), axis=1, workers=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return np.log(power @ mel_filterbank().T + np.float32(_MEL_FLOOR)).astype(np.float32, copy=False)


def normalize_features(feats: np.ndarray) -> np.ndarray:
    """Per-utterance normalisation: each band (column) to zero mean and unit variance; a constant
    band becomes zeros. Shapes: (T, F) -> (T, F) float32.
    """
    if feats.ndim != 2:
        raise FeatureError(f"features must have shape (T, F), got shape {feats.shape}")
    if len(feats) == 0:
        return feats.astype(np.float32)
    mean = feats.mean(axis=0, dtype=np.float64)
    std = feats.std(axis=0, dtype=np.float64)
    scale = np.where(std > _STD_FLOOR, std, 1.0)
    return ((feats - mean) / scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Video-frame alignment
# ---------------------------------------------------------------------------------------------

def check_fps(fps: float) -> None:
    """Refuse an fps that is not a finite number in (0, MAX_FPS]."""
    if isinstance(fps, bool) or not isinstance(fps, Real) or not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise FpsError(f"frame rate {fps!r} is not usable; choose a frame rate above 0 and up to {MAX_FPS:g} fps")


def n_video_frames(n_samples: int, fps: float) -> int:
    """Number of video frames for `n_samples` at SAMPLE_RATE: max(1, round(seconds * fps))."""
    check_fps(fps)
    return max(1, round(n_samples / SAMPLE_RATE * fps))


def align_to_frames(feats: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Resample FEATURE_RATE rows (row j at time j / 100 s) to one row per video frame.

    Frame t covers [t / fps, (t + 1) / fps): at fps <= FEATURE_RATE it is the mean of the rows whose
    time falls in it; above, rows are linearly interpolated at the time those rows would average to,
    (t + 0.5) / fps - 0.005 s, so both rules agree on a ramp. Frames past the last row repeat it.
    `n_frames` defaults to max(1, round(T100 / 100 * fps)).
    Shapes: (T100, F) -> (n_frames, F) float32.
    """
    check_fps(fps)
    if feats.ndim != 2 or len(feats) == 0:
        raise FeatureError(f"features to align must have shape (T, F) with T >= 1, got shape {feats.shape}")
    if n_frames is None:
        n_frames = max(1, round(len(feats) / FEATURE_RATE * fps))
    return _align_rows(feats, fps, n_frames)


def frame_features(feats: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Each video frame's SUBFRAMES equal sub-intervals, each summarised as `align_to_frames` summarises
    a frame (at SUBFRAMES x fps), side by side in time order: row t is [sub 0 | sub 1 | ... ] of N_MELS each.
    Shapes: (T100, N_MELS) -> (n_frames, FRAME_FEATURES) float32.
    """
    check_fps(fps)
    if feats.ndim != 2 or len(feats) == 0 or feats.shape[1] != N_MELS:
        raise FeatureError(f"frame features need log-mel rows of shape (T, {N_MELS}) with T >= 1, got shape {feats.shape}")
    return _align_rows(feats, fps * SUBFRAMES, n_frames * SUBFRAMES).reshape(n_frames, FRAME_FEATURES)


def _align_rows(feats: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """`align_to_frames` without its checks, for any positive rate. Shapes: (T100, F) -> (n_frames, F)."""
    frame = np.arange(n_frames, dtype=np.float64)
    if fps > FEATURE_RATE:
        return _interpolate_rows(feats, FEATURE_RATE * (frame + 0.5) / fps - 0.5)
    return _average_rows(feats, FEATURE_RATE * frame / fps, FEATURE_RATE * (frame + 1) / fps)


def _average_rows(feats: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of rows j with start <= j < stop for each (start, stop), via a cumulative sum; an empty
    range (past the end) takes the last row. Shapes: (T, F), (n,), (n,) -> (n, F) float32.
    """
    n_rows = len(feats)
    first = np.clip(np.ceil(start - 1e-9).astype(np.int64), 0, n_rows)
    last = np.clip(np.ceil(stop - 1e-9).astype(np.int64), 0, n_rows)
    totals = np.concatenate([np.zeros((1, feats.shape[1])), np.cumsum(feats, axis=0, dtype=np.float64)])
    counts = (last - first)[:, None]
    means = (totals[last] - totals[first]) / np.maximum(counts, 1)
    return np.where(counts > 0, means, feats[-1]).astype(np.float32)


def _interpolate_rows(feats: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Rows linearly interpolated at fractional row positions, clamped to the ends.
    Shapes: (T, F), (n,) -> (n, F) float32.
    """
    position = np.clip(position, 0.0, len(feats) - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, len(feats) - 1)
    weight = (position - below)[:, None]
    return ((1.0 - weight) * feats[below] + weight * feats[above]).astype(np.float32)


def frame_windows(frames: np.ndarray, before: int, after: int) -> np.ndarray:
    """For each frame t, rows t - before .. t + after (the look-ahead), repeating the first and last
    rows past the edges. Shapes: (T, F) -> (T, before + 1 + after, F).
    """
    if frames.ndim != 2:
        raise FeatureError(f"frames must have shape (T, F), got shape {frames.shape}")
    if before < 0 or after < 0:
        raise FeatureError(
            f"audio window sizes must be >= 0, got before={before}, after={after}; fix the model config"
        )
    width = before + 1 + after
    if len(frames) == 0:
        return np.zeros((0, width, frames.shape[1]), frames.dtype)
    rows = np.arange(len(frames))[:, None] + np.arange(-before, after + 1)[None, :]
    return frames[np.clip(rows, 0, len(frames) - 1)]


def audio_features(
    source: str | Path | bytes, fps: float, *, max_seconds: float = MAX_SECONDS
) -> tuple[np.ndarray, np.ndarray]:
    """load_audio -> log_mel -> normalize_features -> frame_features, with one row per video frame.
    Shapes: source -> (wave (N,) float32, feats (n_video_frames(N, fps), FRAME_FEATURES) float32).
    """
    check_fps(fps)
    wave = load_audio(source, max_seconds=max_seconds)
    return wave, wave_features(wave, fps)


def wave_features(wave: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """log_mel -> normalize_features -> frame_features of a wave already at `SAMPLE_RATE`, with
    ``n_frames`` rows (default: `n_video_frames` of the wave).
    Shapes: wave (N,) float32 -> (n_frames, FRAME_FEATURES) float32.
    """
    check_fps(fps)
    frames = n_video_frames(len(wave), fps) if n_frames is None else n_frames
    return frame_features(normalize_features(log_mel(wave)), fps, frames)
