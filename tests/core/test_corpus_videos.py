"""Tests for `core.corpus.videos`: real videos, encoded here with PyAV, through FaceMesh and the fit.

The face is scikit-image's ``astronaut`` photo (a real portrait), rotated in-plane by a known,
varying angle per frame; the audio is a synthetic voiced signal (a harmonic buzz, syllable-rate
amplitude modulation) muxed in as AAC, so the features really come from a decoded audio track.
"""

import argparse
import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from core.audio import FRAME_FEATURES, load_audio, wave_features
from core.corpus.readers import assign_splits
from core.corpus.cli import add_corpus_parsers
from core.corpus.videos import MOUTH_FIT_CHANNELS, from_videos, video_clip
from core.face import builtin
from core.face.measure import lip_gap
from core.formats.dataset import DatasetError, load_split, read_meta, wave_file

FPS = 25
SIZE = 256  # frames are the 512 px photo at half size: FaceMesh needs no more
AUDIO_RATE = 16000


def roll_degrees(seconds: float) -> np.ndarray:
    """The known in-plane rotation of each frame, degrees counter-clockwise on screen."""
    t = np.arange(round(seconds * FPS)) / FPS
    return 12.0 * np.sin(2 * np.pi * t / seconds)


def portrait_frames(angles: np.ndarray) -> list[np.ndarray]:
    """The astronaut rotated about her face by each angle. Shapes: -> T x (SIZE, SIZE, 3) uint8."""
    image = cv2.resize(astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    centre = (0.52 * SIZE, 0.3 * SIZE)  # roughly the face
    return [cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, float(a), 1.0), (SIZE, SIZE),
                           borderMode=cv2.BORDER_REFLECT) for a in angles]


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced buzz with a gliding pitch, amplitude-modulated at a syllable rate, plus a little
    noise. Shapes: -> (seconds * 16000,) float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / AUDIO_RATE
    buzz = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    wave = 0.3 * envelope * buzz + 0.005 * rng.standard_normal(len(t))
    return (wave / np.abs(wave).max() * 0.8).astype(np.float32)


def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None) -> Path:
    """Encode RGB frames at FPS as H.264 (and AAC audio when given) with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        sound = None if audio is None else container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for rgb in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            block = 1024
            for start in range(0, len(audio), block):
                chunk = audio[start:start + block]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A MEAD-like folder: a rolling 2 s portrait (angry), two 0.6 s clips (happy, and one HDTF-like
    without a label) and a video without audio; imported once with test_fraction 0.34."""
    root = tmp_path_factory.mktemp("videos")
    angles = roll_degrees(2.0)
    write_video(root / "M003/video/front/angry/level_2/001.mp4", portrait_frames(angles), speech_like(2.0))
    still = portrait_frames(np.zeros(15))
    write_video(root / "M003_front_happy_level_1_002.mp4", still, speech_like(0.6, seed=1))
    write_video(root / "hdtf/WDA_Speaker_000.mkv", still, speech_like(0.6, seed=2))
    write_video(root / "silent_film.mp4", still[:3], None)
    out = root.parent / (root.name + "-dataset")
    lines: list[str] = []
    summary = from_videos(root, out, val_fraction=0.0, test_fraction=0.34, seed=0, progress=lines.append)
    return out, root, {"summary": summary, "angles": angles, "lines": lines}


def all_sequences(out: Path) -> dict:
    return {s.name: s for split in ("train", "val", "test") for s in load_split(out, split, required=False)}


def test_from_videos_writes_every_video_with_a_face_and_audio(corpus) -> None:
    out, root, info = corpus
    summary = info["summary"]
    meta = read_meta(out)
    assert meta.fps == FPS and meta.face_model == builtin().id and meta.names == builtin().names
    assert summary.sequences == {"train": 2, "val": 0, "test": 1}
    assert summary.hours["train"] + summary.hours["test"] == pytest.approx((50 + 15 + 15) / FPS / 3600)
    assert [Path(f).name for f, _ in summary.failures] == ["silent_film.mp4"]
    assert "no audio track" in summary.failures[0][1]
    assert any("skipped" in line and "silent_film.mp4" in line for line in info["lines"])
    sequences = all_sequences(out)
    assert sorted(sequences) == ["M003_front_happy_level_1_002", "M003_video_front_angry_level_2_001",
                                 "hdtf_WDA_Speaker_000"]
    assert {n: s.emotion for n, s in sequences.items()} == {
        "M003_front_happy_level_1_002": "happy", "M003_video_front_angry_level_2_001": "angry",
        "hdtf_WDA_Speaker_000": "talk",
    }


def test_split_is_the_seeded_assignment_of_the_names(corpus) -> None:
    out, _, _ = corpus
    names = ["M003_front_happy_level_1_002", "M003_video_front_angry_level_2_001",
             "hdtf_WDA_Speaker_000"]  # the imported videos; the failed one takes no slot
    expected = assign_splits(names, 0.0, 0.34, 0)
    assert expected == assign_splits(names[::-1], 0.0, 0.34, 0)
    assert expected["hdtf_WDA_Speaker_000"] == "test"
    written = {s.name: split for split in ("train", "test") for s in load_split(out, split)}
    assert written == expected


def test_rolling_portrait_frames_pose_and_audio(corpus) -> None:
    out, _, info = corpus
    seq = all_sequences(out)["M003_video_front_angry_level_2_001"]
    angles = np.radians(info["angles"])
    assert seq.frames == 2 * FPS and seq.exp.shape == (50, len(builtin().names))
    assert seq.pose.shape == (50, 6) and seq.audio.shape == (50, FRAME_FEATURES)
    # A counter-clockwise turn on screen is a positive roll about +Z (toward the viewer).
    roll = seq.pose[:, 2] - seq.pose[0, 2]
    assert np.abs(roll - (angles - angles[0])).max() < np.radians(2.0)
    assert np.corrcoef(roll, angles)[0, 1] > 0.99
    assert np.abs(seq.pose[:, :2] - seq.pose[0, :2]).max() < np.radians(5.0)  # no pitch/yaw added
    assert seq.audio.std(axis=0).mean() > 0.3  # per-utterance normalised, varying over frames
    loudness = seq.audio.mean(axis=1)
    assert np.corrcoef(loudness[:-1], loudness[1:])[0, 1] > 0.0  # a smooth envelope, not noise
    assert np.all((seq.beta0 >= 0) & (seq.beta0 <= 1))
    assert np.all(seq.beta0 <= np.percentile(seq.exp, 50, axis=0) + 1e-6)


def test_each_video_s_speech_is_stored_beside_its_sequence(corpus) -> None:
    out, _, _ = corpus
    for name, seq in all_sequences(out).items():
        wave = load_audio(wave_file(out, name))  # what `flowvq eval --real` listens to
        difference = np.abs(wave_features(wave, FPS, seq.frames) - seq.audio)  # 16-bit samples on disk
        assert difference.mean() < 0.005 and difference.max() < 0.1, (difference.mean(), difference.max())
    assert not wave_file(out, "silent_film").exists()


def test_output_fps_resamples_the_frames(corpus) -> None:
    _, root, _ = corpus
    seq, _ = video_clip(root / "M003_front_happy_level_1_002.mp4", "clip", fps=10.0)
    assert seq.frames == round(0.6 * 10) and seq.audio.shape == (6, FRAME_FEATURES)


def test_video_without_face_is_refused_by_name(tmp_path: Path) -> None:
    blank = [np.full((SIZE, SIZE, 3), 128, np.uint8)] * 5
    write_video(tmp_path / "in" / "blank_wall.mp4", blank, speech_like(0.2))
    with pytest.raises(DatasetError, match=r"blank_wall\.mp4: no face found in any of its 5 frames"):
        from_videos(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out" / "meta.json").exists()


def test_a_flash_video_is_found_and_read_like_the_others(tmp_path: Path) -> None:
    """CREMA-D, an emotional talking-face corpus, ships FLV (H.264 + AAC in Flash Video): such a
    file is found under the folder and gives a sequence and its speech."""
    still = portrait_frames(np.zeros(15))
    write_video(tmp_path / "crema" / "1001_DFA_ANG_XX.flv", still, speech_like(0.6, seed=3))
    summary = from_videos(tmp_path / "crema", tmp_path / "out", val_fraction=0.0, test_fraction=0.0)
    assert summary.sequences["train"] == 1 and not summary.failures
    (seq,) = load_split(tmp_path / "out", "train")
    assert seq.name == "1001_DFA_ANG_XX" and len(seq.exp) == 15 and seq.audio.shape == (15, FRAME_FEATURES)
    wave = load_audio(wave_file(tmp_path / "out", seq.name))
    assert np.abs(wave_features(wave, FPS, seq.frames) - seq.audio).mean() < 0.005  # the track's own speech


def test_video_without_audio_is_refused_by_name(tmp_path: Path) -> None:
    path = write_video(tmp_path / "mute.mov", [np.zeros((SIZE, SIZE, 3), np.uint8)] * 2, None)
    with pytest.raises(DatasetError, match=r"mute\.mov has no audio track"):
        video_clip(path, "mute")


def test_unreadable_and_missing_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no video files"):
        from_videos(tmp_path / "empty", tmp_path / "out")
    broken = tmp_path / "broken" / "clip.mp4"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not a video" * 20)
    with pytest.raises(DatasetError, match=r"clip\.mp4 is not a readable video file"):
        from_videos(tmp_path / "broken", tmp_path / "out", fps=25)
    with pytest.raises(DatasetError, match="frame rate 0 is not usable"):  # refused before decoding
        video_clip(broken, "clip", fps=0)
    with pytest.raises(DatasetError, match="unknown emotion"):
        from_videos(tmp_path / "broken", tmp_path / "out", emotion="bored")


def test_short_face_gaps_are_interpolated_and_long_ones_refused(tmp_path: Path) -> None:
    angles = np.linspace(-8.0, 8.0, 12)
    frames = portrait_frames(angles)
    blank = np.full((SIZE, SIZE, 3), 128, np.uint8)
    short = write_video(tmp_path / "short_gap.mp4", frames[:5] + [blank] + frames[6:], speech_like(12 / FPS))
    seq, _ = video_clip(short, "short_gap")
    roll = seq.pose[:, 2] - seq.pose[0, 2]
    expected = np.radians(angles - angles[0])
    assert abs(roll[5] - (roll[4] + roll[6]) / 2) < 1e-5  # the missing frame: midway between neighbours
    assert np.abs(roll - expected).max() < np.radians(2.0)
    long = write_video(tmp_path / "long_gap.mp4", frames[:4] + [blank] * 6 + frames[10:], speech_like(12 / FPS))
    with pytest.raises(DatasetError, match=r"long_gap\.mp4: no face found in 6 of 12 frames.*frames 4\.\.9"):
        video_clip(long, "long_gap")


def test_two_faces_refuse_the_video(tmp_path: Path) -> None:
    half = SIZE // 2
    face = cv2.resize(astronaut()[0:256, 128:384], (half, half), interpolation=cv2.INTER_AREA)
    pair = np.full((SIZE, SIZE, 3), 128, np.uint8)
    pair[half // 2:half // 2 + half] = np.concatenate([face, face], axis=1)  # two heads side by side
    path = write_video(tmp_path / "duet.mp4", [pair] * 2, speech_like(0.1))
    with pytest.raises(DatasetError, match=r"duet\.mp4, frame 0 \(0\.00 s\): 2 faces found"):
        video_clip(path, "duet")


GRID_CLIP = Path(__file__).parents[1] / "data" / "real" / "grid_lbax4n.mpg"


def test_mouth_channels_write_a_real_speakers_lips_as_their_movement_from_rest(tmp_path: Path) -> None:
    """``corpus from-videos --channels mouth`` on a real GRID speaker: only the corpus's mouth
    channels move, from a zero rest, and the lip gap still follows the full fit's."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / GRID_CLIP.name).write_bytes(GRID_CLIP.read_bytes())
    parser = argparse.ArgumentParser(prog="flowvq corpus")
    add_corpus_parsers(parser.add_subparsers(dest="corpus_command", required=True))
    args = parser.parse_args(["from-videos", str(tmp_path / "clips"), "--out", str(tmp_path / "ds"), "--fps", "25",
                              "--channels", "mouth", "--val-fraction", "0", "--test-fraction", "0"])
    assert args.func(args) == 0
    (mouth,) = load_split(tmp_path / "ds", "train")
    full, _ = video_clip(GRID_CLIP, "full", fps=25)
    face = builtin()
    moving = np.isin(face.names, MOUTH_FIT_CHANNELS)
    assert (mouth.exp[:, ~moving] == 0).all() and (mouth.beta0 == 0).all() and (mouth.exp >= 0).all()
    assert np.ptp(mouth.exp[:, face.names.index("jawOpen")]) > 0.1
    np.testing.assert_allclose(np.median(mouth.pose, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(mouth.pose - mouth.pose[0], full.pose - full.pose[0], atol=0.01)
    gaps = [np.array([lip_gap(face, face.expression_mesh(e)) for e in seq.exp]) for seq in (mouth, full)]
    assert np.corrcoef(*gaps)[0, 1] > 0.9
    np.testing.assert_array_equal(mouth.audio, full.audio)


def test_an_unknown_channel_choice_or_a_model_without_them_is_refused_before_any_video_is_read(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown channels 'lips'; choose one of all, mouth"):
        video_clip(tmp_path / "missing.mp4", "x", channels="lips")
    face = builtin()
    renamed = dataclasses.replace(face, names=tuple(name.replace("jawOpen", "JawOpen") for name in face.names))
    with pytest.raises(DatasetError, match="lacks the mouth channels jawOpen"):
        video_clip(tmp_path / "missing.mp4", "x", model=renamed, channels="mouth")
