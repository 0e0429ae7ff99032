"""Tests for core.audio: real files written with soundfile to tmp_path, seeded noise, no mocks."""

import io
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio import (
    FEATURE_RATE, FRAME_FEATURES, HOP_LENGTH, MAX_FPS, MAX_INPUT_RATE, MAX_SECONDS, MIN_INPUT_RATE, N_MELS,
    SAMPLE_RATE, SILENCE_DBFS, SUBFRAMES,
    AudioError, AudioNotFoundError, AudioTooLargeError, AudioTooLongError, CorruptAudioError, EmptyAudioError,
    FeatureError, FpsError, NotAudioError, SampleRateError, SilentAudioError, StreamResampler, align_to_frames,
    audio_features, frame_features, duration_seconds, frame_windows, load_audio, log_mel, mel_band_edges_hz,
    n_video_frames, normalize_features, resample_to_16k,
)
from core.errors import FlowVQError

VIDEO_FPS = [25.0, 30.0, 29.97, 60.0]


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine wave. Shapes: -> (round(seconds * rate),) float64."""
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)


def dominant_hz(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Frequency of the largest peak of the Hann-windowed spectrum."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


def write(path: Path, data: np.ndarray, rate: int, **kwargs) -> Path:
    sf.write(path, data, rate, **kwargs)
    return path


def wav_bytes(data: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def assert_refused(error: type[AudioError], source, *words: str, **kwargs) -> str:
    """load_audio(source) raises `error`, a FlowVQError whose message names the input and the problem."""
    with pytest.raises(error) as caught:
        load_audio(source, **kwargs)
    message = str(caught.value)
    assert isinstance(caught.value, FlowVQError)
    expected_name = source.name if isinstance(source, Path) else "uploaded audio"
    assert expected_name in message
    for word in words:
        assert word in message.lower()
    return message


# ------------------------------------------------------------------------------------------ loading

@pytest.mark.parametrize(
    ("fmt", "subtype", "freq_tolerance", "length_tolerance"),
    [
        ("WAV", "PCM_16", 1.0, 0.0),
        ("FLAC", "PCM_16", 1.0, 0.0),
        ("OGG", "VORBIS", 3.0, 0.01),
        ("MP3", "MPEG_LAYER_III", 3.0, 0.01),
    ],
)
def test_each_format_loads_as_16k_mono_float_with_tone_and_duration_kept(
    tmp_path, fmt, subtype, freq_tolerance, length_tolerance
):
    rate, seconds = 44100, 2.0
    path = write(tmp_path / f"tone.{fmt.lower()}", tone(440.0, seconds, rate), rate, format=fmt, subtype=subtype)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert np.abs(wave).max() <= 1.0
    assert abs(duration_seconds(wave) - seconds) <= seconds * length_tolerance + 1 / SAMPLE_RATE
    assert abs(dominant_hz(wave) - 440.0) <= freq_tolerance


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_keeps_length_and_tone_frequency(tmp_path, rate):
    path = write(tmp_path / "tone.wav", tone(1000.0, 1.5, rate), rate, subtype="FLOAT")
    wave = load_audio(path)
    assert abs(len(wave) - 1.5 * SAMPLE_RATE) <= 1
    assert abs(dominant_hz(wave) - 1000.0) <= 1.0


@pytest.mark.parametrize("rate", [MIN_INPUT_RATE, MAX_INPUT_RATE])
def test_sample_rates_at_the_limits_are_accepted(tmp_path, rate):
    path = write(tmp_path / "edge.wav", tone(300.0, 0.5, rate), rate, subtype="FLOAT")
    assert abs(len(load_audio(path)) - 0.5 * SAMPLE_RATE) <= 1


def test_stereo_is_mixed_to_the_mean_of_its_channels(tmp_path):
    left, right = tone(440.0, 1.0, SAMPLE_RATE, 0.4), tone(660.0, 1.0, SAMPLE_RATE, 0.2)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("MP3", "MPEG_LAYER_III")])
def test_loading_bytes_equals_loading_the_path(tmp_path, fmt, subtype):
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, 22050)
    path = write(tmp_path / f"noise.{fmt.lower()}", noise, 22050, format=fmt, subtype=subtype)
    np.testing.assert_array_equal(load_audio(path.read_bytes()), load_audio(path))


def test_loudness_just_above_the_silence_threshold_is_accepted(tmp_path):
    amplitude = 10 ** ((SILENCE_DBFS + 6) / 20)
    path = write(tmp_path / "quiet.wav", tone(440.0, 0.5, SAMPLE_RATE, amplitude), SAMPLE_RATE, subtype="FLOAT")
    assert np.abs(load_audio(path)).max() == pytest.approx(amplitude, rel=0.05)


def test_duration_exactly_at_the_limit_is_accepted(tmp_path):
    path = write(tmp_path / "two.wav", tone(440.0, 2.0, SAMPLE_RATE), SAMPLE_RATE)
    assert duration_seconds(load_audio(path, max_seconds=2.0)) == pytest.approx(2.0)


def test_samples_exactly_at_the_limit_are_accepted(tmp_path):
    rate, channels = 48000, 4
    path = write(tmp_path / "four.wav", np.repeat(tone(440.0, 0.5, rate)[:, None], channels, 1), rate)
    assert duration_seconds(load_audio(path, max_samples=rate // 2 * channels)) == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [MIN_INPUT_RATE, 8000, 11025, SAMPLE_RATE, 44100, 48000, MAX_INPUT_RATE, 16001])
def test_resampling_block_by_block_gives_exactly_the_whole_signals_result(rate):
    rng = np.random.default_rng(rate)
    signal = rng.uniform(-1.0, 1.0, rate // 2 + 77).astype(np.float32)  # (N,)
    resampler, start = StreamResampler(rate), 0
    while start < len(signal):
        size = int(rng.integers(1, 5000))
        resampler.push(signal[start:start + size])
        start += size
    np.testing.assert_array_equal(resampler.finish(), resample_to_16k(signal, rate))


def test_ten_minutes_of_48_khz_stereo_decode_within_about_twice_the_16_khz_result(tmp_path):
    rate, seconds = 48000, 600
    path = tmp_path / "ten_minutes.wav"
    minute = np.repeat(tone(440.0, 60.0, rate, 0.3)[:, None], 2, 1)  # (60 * rate, 2)
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as sound:
        for _ in range(seconds // 60):
            sound.write(minute)
    result_bytes = SAMPLE_RATE * seconds * 4  # float32
    tracemalloc.start()
    try:
        wave = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(wave) == SAMPLE_RATE * seconds
    assert peak < 2.5 * result_bytes  # the whole clip as float32 mono at 48 kHz alone is 3 x


# ------------------------------------------------------------------------------------------- errors

def test_missing_path_is_not_found(tmp_path):
    assert_refused(AudioNotFoundError, tmp_path / "nowhere.wav", "does not exist")


def test_folder_path_is_not_found(tmp_path):
    folder = tmp_path / "clips.wav"
    folder.mkdir()
    assert_refused(AudioNotFoundError, folder, "folder")


def test_zero_byte_file_is_empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert_refused(EmptyAudioError, path, "empty")


def test_zero_bytes_upload_is_empty():
    assert_refused(EmptyAudioError, b"", "empty")


def test_valid_wav_with_zero_frames_is_empty(tmp_path):
    path = write(tmp_path / "noframes.wav", np.zeros(0), SAMPLE_RATE)
    assert path.stat().st_size > 0
    assert_refused(EmptyAudioError, path, "no audio samples")


def test_all_zero_wav_is_silent(tmp_path):
    path = write(tmp_path / "zeros.wav", np.zeros(SAMPLE_RATE), SAMPLE_RATE)
    assert_refused(SilentAudioError, path, "silent")


def test_peak_below_the_silence_threshold_is_silent(tmp_path):
    amplitude = 10 ** ((SILENCE_DBFS - 10) / 20)
    path = write(tmp_path / "hiss.wav", tone(440.0, 0.5, SAMPLE_RATE, amplitude), SAMPLE_RATE, subtype="FLOAT")
    assert_refused(SilentAudioError, path, "silent", "dbfs")


def test_wav_truncated_mid_header_is_corrupt(tmp_path):
    whole = wav_bytes(tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[:20])
    assert_refused(CorruptAudioError, path, "wav", "cannot be decoded")


def test_riff_header_followed_by_garbage_is_corrupt(tmp_path):
    whole = wav_bytes(tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    path = tmp_path / "garbage.wav"
    path.write_bytes(whole[:12] + np.random.default_rng(5).bytes(4000))
    assert_refused(CorruptAudioError, path, "wav", "cannot be decoded")


def test_flac_with_corrupted_body_is_corrupt(tmp_path):
    path = write(tmp_path / "tone.flac", tone(440.0, 2.0, SAMPLE_RATE), SAMPLE_RATE, format="FLAC")
    whole = path.read_bytes()
    middle = len(whole) // 2
    damaged = tmp_path / "damaged.flac"
    damaged.write_bytes(whole[:middle] + np.random.default_rng(6).bytes(len(whole) - middle))
    assert_refused(CorruptAudioError, damaged, "flac", "cannot be decoded")


def test_float_wav_with_nan_samples_is_corrupt(tmp_path):
    data = tone(440.0, 0.5, SAMPLE_RATE)
    data[100] = np.nan
    path = write(tmp_path / "nan.wav", data, SAMPLE_RATE, subtype="FLOAT")
    assert_refused(CorruptAudioError, path, "nan")


NOT_AUDIO = {
    "text": b"This is a transcript, not a recording.\n" * 20,
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200),
    "random": b"\x00" + np.random.default_rng(7).bytes(4000),
}


@pytest.mark.parametrize("kind", sorted(NOT_AUDIO))
def test_file_that_is_not_audio_is_not_audio(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    path.write_bytes(NOT_AUDIO[kind])
    assert_refused(NotAudioError, path, "not audio")


@pytest.mark.parametrize("kind", sorted(NOT_AUDIO))
def test_upload_that_is_not_audio_is_not_audio(kind):
    assert_refused(NotAudioError, NOT_AUDIO[kind], "not audio")


def test_clip_longer_than_max_seconds_is_too_long(tmp_path):
    path = write(tmp_path / "two.wav", tone(440.0, 2.0, SAMPLE_RATE), SAMPLE_RATE)
    assert_refused(AudioTooLongError, path, "limit", max_seconds=1.0)
    assert_refused(AudioTooLongError, path.read_bytes(), "limit", max_seconds=1.0)


def test_two_hour_file_is_refused_from_its_header_without_decoding(tmp_path):
    rate, minutes = MIN_INPUT_RATE, 120
    path = tmp_path / "two_hours.wav"
    with sf.SoundFile(path, "w", rate, 1, "PCM_U8") as sound:
        for _ in range(minutes):
            sound.write(np.zeros(rate * 60, np.float32))
    decoded_bytes = rate * 60 * minutes * 4  # float32, had it been read
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = assert_refused(AudioTooLongError, path, "limit")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{MAX_SECONDS:g}" in message
    assert elapsed < 1.0
    assert peak < decoded_bytes / 20


def test_more_samples_than_the_limit_are_refused_from_the_header_without_decoding(tmp_path):
    rate, channels, seconds = MAX_INPUT_RATE, 8, 10
    path = tmp_path / "loud_and_wide.flac"
    with sf.SoundFile(path, "w", rate, channels, "PCM_16", format="FLAC") as sound:
        sound.write(np.zeros((rate * seconds, channels), np.int16))
    samples = rate * channels * seconds
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = assert_refused(AudioTooLargeError, path, "mono", "16 khz", max_samples=samples - 1)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{samples:,} samples" in message and f"{samples - 1:,}" in message
    assert f"{rate} Hz x {channels} channels" in message
    assert elapsed < 1.0
    assert peak < samples * 4 / 100
    assert_refused(AudioTooLargeError, path.read_bytes(), "limit", max_samples=samples - 1)


@pytest.mark.parametrize("rate", [1000, 500000])
def test_sample_rate_outside_supported_range_is_refused(tmp_path, rate):
    path = write(tmp_path / f"rate{rate}.wav", tone(100.0, 0.1, rate), rate)
    assert_refused(SampleRateError, path, "sample rate", str(rate))


# ------------------------------------------------------------------------------------------ log-mel

@pytest.mark.parametrize("n_samples", [1, 159, 160, 161, 16000, 16037])
def test_log_mel_has_one_finite_row_per_hop(n_samples):
    wave = np.random.default_rng(n_samples).uniform(-0.5, 0.5, n_samples).astype(np.float32)
    feats = log_mel(wave)
    assert feats.shape == (math.ceil(n_samples / HOP_LENGTH), N_MELS)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_tone_energy_lands_in_the_mel_band_that_contains_its_frequency(freq):
    band = int(np.argmax(np.median(log_mel(tone(freq, 0.5, SAMPLE_RATE).astype(np.float32)), axis=0)))
    edges = mel_band_edges_hz()
    assert edges[band] <= freq <= edges[band + 2]


def test_higher_tone_has_higher_peak_band():
    peaks = [
        int(np.argmax(np.median(log_mel(tone(freq, 0.5, SAMPLE_RATE).astype(np.float32)), axis=0)))
        for freq in (200.0, 500.0, 1200.0, 2500.0, 5000.0, 7500.0)
    ]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)


def test_white_noise_reaches_every_mel_band():
    noise = np.random.default_rng(11).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    band_means = log_mel(noise).mean(axis=0)
    assert (band_means > math.log(1e-6) + 5).all()


def test_log_mel_frame_k_is_centred_on_sample_k_times_hop():
    for k in (3, 10, 41):
        wave = np.zeros(HOP_LENGTH * 50, np.float32)
        wave[k * HOP_LENGTH] = 1.0
        assert int(np.argmax(log_mel(wave).sum(axis=1))) == k


def test_log_mel_is_deterministic_and_leaves_its_input_alone():
    wave = np.random.default_rng(12).uniform(-1, 1, 8000).astype(np.float32)
    before = wave.copy()
    np.testing.assert_array_equal(log_mel(wave), log_mel(wave))
    np.testing.assert_array_equal(wave, before)


def test_log_mel_of_ten_minutes_is_fast():
    wave = np.random.default_rng(13).uniform(-0.5, 0.5, int(MAX_SECONDS * SAMPLE_RATE)).astype(np.float32)
    started = time.perf_counter()
    feats = log_mel(wave)
    assert time.perf_counter() - started < 5.0
    assert len(feats) == MAX_SECONDS * FEATURE_RATE


def test_log_mel_refuses_multichannel_input():
    with pytest.raises(FeatureError):
        log_mel(np.zeros((100, 2), np.float32))


# ------------------------------------------------------------------------------------ normalisation

def test_normalize_features_gives_each_band_zero_mean_and_unit_std():
    rng = np.random.default_rng(14)
    feats = rng.standard_normal((500, N_MELS)) * rng.uniform(0.1, 10, N_MELS) + rng.uniform(-20, 5, N_MELS)
    normed = normalize_features(feats)
    assert normed.shape == feats.shape and normed.dtype == np.float32
    np.testing.assert_allclose(normed.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=0), 1.0, atol=1e-4)


def test_normalize_features_keeps_a_constant_band_finite():
    feats = np.random.default_rng(15).standard_normal((50, 4))
    feats[:, 2] = -13.8
    normed = normalize_features(feats)
    assert np.isfinite(normed).all()
    np.testing.assert_allclose(normed[:, 2], 0.0, atol=1e-6)


def test_normalised_log_mel_hardly_depends_on_loudness():
    """20 dB quieter gives the same normalised features, except in the odd bin that sinks to the floor."""
    envelope = 0.2 + 0.8 * np.abs(np.sin(2 * np.pi * 3 * np.arange(SAMPLE_RATE) / SAMPLE_RATE))
    speechy = np.random.default_rng(16).standard_normal(SAMPLE_RATE) * envelope * 0.3
    loud = normalize_features(log_mel(speechy.astype(np.float32)))
    quiet = normalize_features(log_mel((speechy * 0.1).astype(np.float32)))
    difference = np.abs(quiet - loud)
    assert np.median(difference) < 0.01
    assert np.mean(difference < 0.05) > 0.99


# ---------------------------------------------------------------------------------------- alignment

def test_n_video_frames_counts_frames_of_the_clip():
    assert n_video_frames(2 * SAMPLE_RATE, 25.0) == 50
    assert n_video_frames(SAMPLE_RATE, 29.97) == 30
    assert n_video_frames(0, 30.0) == 1


@pytest.mark.parametrize("fps", [0.0, -25.0, 241.0, math.nan, math.inf])
def test_unusable_fps_is_refused_everywhere(fps):
    wav = wav_bytes(tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE)
    for call in (
        lambda: n_video_frames(SAMPLE_RATE, fps),
        lambda: align_to_frames(np.zeros((100, 3)), fps),
        lambda: audio_features(wav, fps),
    ):
        with pytest.raises(FpsError, match="frame rate") as caught:
            call()
        assert isinstance(caught.value, FlowVQError)


@pytest.mark.parametrize("fps", VIDEO_FPS)
@pytest.mark.parametrize("seconds", [0.37, 1.0, 2.513, 7.123])
def test_audio_features_give_one_row_per_video_frame(fps, seconds):
    wave_in = np.random.default_rng(17).uniform(-0.5, 0.5, round(seconds * 22050))
    wave, feats = audio_features(wav_bytes(wave_in, 22050), fps)
    assert feats.shape == (n_video_frames(len(wave), fps), FRAME_FEATURES)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()
    np.testing.assert_array_equal(wave, load_audio(wav_bytes(wave_in, 22050)))


@pytest.mark.parametrize("fps", VIDEO_FPS + [120.0])
@pytest.mark.parametrize("n_rows", [1, 37, 300, 1234])
def test_default_frame_count_follows_the_feature_duration(fps, n_rows):
    aligned = align_to_frames(np.zeros((n_rows, 3)), fps)
    assert aligned.shape == (max(1, round(n_rows / FEATURE_RATE * fps)), 3)


@pytest.mark.parametrize("fps", VIDEO_FPS + [120.0, 240.0])
def test_a_step_at_one_second_appears_at_the_matching_video_frame(fps):
    feats = np.zeros((3 * FEATURE_RATE, 2))
    feats[FEATURE_RATE:] = 1.0
    aligned = align_to_frames(feats, fps)
    first_high = int(np.argmax(aligned[:, 0] > 0.5))
    assert abs(first_high - round(1.0 * fps)) <= 1
    assert (aligned[:first_high - 1] == 0).all() and (aligned[first_high + 1:] == 1).all()


@pytest.mark.parametrize("fps", VIDEO_FPS)
def test_frames_average_the_feature_rows_whose_time_falls_inside_them(fps):
    feats = np.random.default_rng(18).standard_normal((350, 5))
    aligned = align_to_frames(feats, fps)
    row_times = np.arange(len(feats)) / FEATURE_RATE
    for t in range(len(aligned) - 1):
        inside = (row_times >= t / fps - 1e-9) & (row_times < (t + 1) / fps - 1e-9)
        np.testing.assert_allclose(aligned[t], feats[inside].mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("fps", [20.0, 25.0, 50.0, 100.0, 200.0, 240.0])
def test_a_ramp_maps_to_its_value_at_each_frames_centre_both_below_and_above_100_fps(fps):
    ramp = np.arange(500, dtype=np.float64)[:, None]
    aligned = align_to_frames(ramp, fps)[:, 0]
    interior = slice(2, len(aligned) - 2)
    centres = FEATURE_RATE * (np.arange(len(aligned)) + 0.5) / fps - 0.5
    np.testing.assert_allclose(aligned[interior], centres[interior], atol=1e-4)
    assert (np.diff(aligned) > 0).all()


def test_frames_past_the_features_repeat_the_last_row():
    feats = np.random.default_rng(19).standard_normal((100, 4))
    aligned = align_to_frames(feats, 25.0, n_frames=40)
    assert aligned.shape == (40, 4)
    np.testing.assert_allclose(aligned[25:], np.repeat(feats[-1:], 15, axis=0), atol=1e-6)


def test_frame_features_keep_every_10ms_row_of_a_25_fps_frame_in_time_order():
    """At 25 fps a frame's SUBFRAMES sub-rows are exactly its four 10 ms log-mel rows, so the
    closure and release of a /p/ are not averaged into the vowels around it."""
    feats = np.random.default_rng(20).standard_normal((200, N_MELS)).astype(np.float32)
    rows = frame_features(feats, 25.0, 50)
    assert rows.shape == (50, FRAME_FEATURES) and FRAME_FEATURES == SUBFRAMES * N_MELS == 4 * N_MELS
    np.testing.assert_array_equal(rows.reshape(50 * SUBFRAMES, N_MELS), feats)


@pytest.mark.parametrize("fps", VIDEO_FPS + [60.0, 120.0])
def test_frame_features_summarise_sub_intervals_as_align_does_at_subframes_times_the_fps(fps):
    feats = np.random.default_rng(21).standard_normal((300, N_MELS)).astype(np.float32)
    frames = n_video_frames(300 * HOP_LENGTH, fps)
    rows = frame_features(feats, fps, frames).reshape(frames, SUBFRAMES, N_MELS)
    if fps * SUBFRAMES <= MAX_FPS:
        expected = align_to_frames(feats, fps * SUBFRAMES, frames * SUBFRAMES)
        np.testing.assert_allclose(rows.reshape(-1, N_MELS), expected, atol=1e-6)
    ramp = frame_features(np.repeat(np.arange(300.0)[:, None], N_MELS, axis=1), fps, frames)
    steps = np.diff(ramp.reshape(frames, SUBFRAMES, N_MELS)[2:-2, :, 0], axis=1)
    assert (steps > 0).all()  # each sub-row sits at its own, later instant: a ramp rises through them


def test_frame_features_refuse_rows_that_are_not_log_mel():
    with pytest.raises(FeatureError, match=str(N_MELS)):
        frame_features(np.zeros((10, 3)), 25.0, 2)


def test_align_refuses_features_without_rows():
    with pytest.raises(FeatureError):
        align_to_frames(np.zeros((0, N_MELS)), 25.0)


# ------------------------------------------------------------------------------------------ windows

def test_frame_windows_hold_past_current_and_future_frames():
    frames = np.random.default_rng(20).standard_normal((30, 6))
    before, after = 3, 5
    windows = frame_windows(frames, before, after)
    assert windows.shape == (30, before + 1 + after, 6)
    np.testing.assert_array_equal(windows[:, before], frames)
    for offset in range(1, after + 1):
        np.testing.assert_array_equal(windows[:-offset, before + offset], frames[offset:])
    for offset in range(1, before + 1):
        np.testing.assert_array_equal(windows[offset:, before - offset], frames[:-offset])


def test_frame_windows_repeat_the_edge_rows():
    frames = np.random.default_rng(21).standard_normal((10, 2))
    windows = frame_windows(frames, 4, 4)
    np.testing.assert_array_equal(windows[0, :4], np.repeat(frames[:1], 4, axis=0))
    np.testing.assert_array_equal(windows[-1, 5:], np.repeat(frames[-1:], 4, axis=0))
    np.testing.assert_array_equal(windows[1, :3], np.repeat(frames[:1], 3, axis=0))


def test_frame_windows_refuse_negative_sizes():
    with pytest.raises(FeatureError, match="window"):
        frame_windows(np.zeros((5, 2)), -1, 2)
