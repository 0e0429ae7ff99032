"""Tests for `core.corpus.readers` and the ``corpus import-coeffs`` command.

The coefficient files are synthetic but written as Deep3DFaceRecon and SadTalker write them
(scipy ``savemat`` with the real keys ``coeff`` / ``coeff_3dmm``, or ``.npy``), in MEAD's and HDTF's
folder layouts; the audio is real audio files (WAV through soundfile, M4A/AAC through PyAV).
"""

import argparse
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from scipy.io import savemat

from core.audio import FRAME_FEATURES, load_audio, wave_features
from core.corpus.cli import add_corpus_parsers
from core.corpus.readers import (
    assign_splits, emotion_for, import_coeffs, mead_emotion, sequence_name,
)
from core.face.bfm import BFM_EXP_DIM, D3D_DIM, D3D_SLICES, SADTALKER_DIM
from core.formats.dataset import DatasetError, load_split, read_meta, wave_file
from tests.core.test_bfm import bfm_arrays

FPS = 25.0
RATE = 16000


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    """A 4 Hz amplitude-modulated buzz with a little noise. Shapes: -> (seconds * 16000,) float32."""
    t = np.arange(round(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    wave = np.sin(2 * np.pi * 150 * t) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) \
        + 0.01 * rng.standard_normal(len(t))
    return (0.5 * wave).astype(np.float32)


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, seed), RATE)
    return path


def write_m4a(path: Path, seconds: float, silent: bool = False) -> Path:
    """AAC in an MPEG-4 audio file, as MEAD ships its audio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.zeros(round(seconds * RATE), np.float32) if silent else tone(seconds)
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=RATE, layout="mono")
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def d3d_coeffs(frames: int, seed: int) -> np.ndarray:
    """Deep3DFaceRecon-shaped coefficients with distinct values per part. Shapes: -> (T, 257)."""
    rng = np.random.default_rng(seed)
    coeffs = rng.normal(0.0, 1.0, (frames, D3D_DIM)).astype(np.float32)
    coeffs[:, D3D_SLICES["angle"]] *= 0.1
    coeffs[:, D3D_SLICES["trans"]] *= 0.5
    return coeffs


def write_mat(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, arrays)
    return path


@pytest.fixture
def mead_d3d(tmp_path: Path) -> dict:
    """MEAD video coefficients with MEAD's audio folder beside them, plus one HDTF clip (.npy + wav)."""
    coeffs = tmp_path / "coeffs"
    audio = tmp_path / "MEAD"
    files = {
        "angry": (coeffs / "M003/video/front/angry/level_2/001.mat", d3d_coeffs(50, 1)),
        "sad": (coeffs / "M003/video/front/sad/level_1/002.mat", d3d_coeffs(40, 2)),
    }
    for path, array in files.values():
        write_mat(path, coeff=array)
    write_m4a(audio / "M003/audio/angry/level_2/001.m4a", 2.0)
    write_wav(audio / "M003/audio/sad/level_1/002.wav", 1.6)
    hdtf = d3d_coeffs(30, 3)
    np.save(coeffs / "WDA_Speaker_000.npy", hdtf)
    write_wav(coeffs / "WDA_Speaker_000.wav", 1.2)  # beside it, same stem
    return {"coeffs": coeffs, "audio": audio, "files": files, "hdtf": hdtf, "out": tmp_path / "dataset"}


def sequences(out: Path) -> dict:
    return {s.name: s for split in ("train", "val", "test") for s in load_split(out, split, required=False)}


def test_d3d_import_shapes_pose_labels_and_audio(mead_d3d) -> None:
    lines: list[str] = []
    summary = import_coeffs(mead_d3d["coeffs"], mead_d3d["out"], format="d3d", audio_dir=mead_d3d["audio"],
                            val_fraction=0.0, test_fraction=0.0, progress=lines.append)
    meta = read_meta(mead_d3d["out"])
    assert meta.face_model == "bfm-front@1" and meta.fps == FPS
    assert meta.names == tuple(f"exp{k:02d}" for k in range(BFM_EXP_DIM))
    assert summary.sequences == {"train": 3, "val": 0, "test": 0} and summary.failures == []
    assert summary.hours["train"] == pytest.approx(120 / FPS / 3600)
    assert len(lines) == 3
    seqs = sequences(mead_d3d["out"])
    angry = seqs["M003_video_front_angry_level_2_001"]
    source = mead_d3d["files"]["angry"][1]
    np.testing.assert_array_equal(angry.exp, source[:, D3D_SLICES["exp"]])
    np.testing.assert_array_equal(angry.pose[:, :3], source[:, D3D_SLICES["angle"]])
    np.testing.assert_array_equal(angry.pose[:, 3:], source[:, D3D_SLICES["trans"]])
    np.testing.assert_array_equal(angry.beta0, source[0, D3D_SLICES["exp"]])
    assert angry.audio.shape == (50, FRAME_FEATURES) and angry.audio.std() > 0.3
    assert {n: s.emotion for n, s in seqs.items()} == {
        "M003_video_front_angry_level_2_001": "angry", "M003_video_front_sad_level_1_002": "sad",
        "WDA_Speaker_000": "talk",
    }
    assert seqs["WDA_Speaker_000"].frames == 30 and seqs["WDA_Speaker_000"].audio.shape == (30, FRAME_FEATURES)
    np.testing.assert_array_equal(seqs["WDA_Speaker_000"].exp, mead_d3d["hdtf"][:, D3D_SLICES["exp"]])
    for name, seq in seqs.items():  # each sequence's speech beside it, what `flowvq eval` listens to
        difference = np.abs(wave_features(load_audio(wave_file(mead_d3d["out"], name)), FPS, seq.frames) - seq.audio)
        assert difference.mean() < 0.005 and difference.max() < 0.1, (name, difference.max())


def test_audio_features_follow_the_audio_in_time(tmp_path: Path) -> None:
    """Silence for the first second, then sound: the feature rows change at frame 25."""
    write_mat(tmp_path / "in" / "clip.mat", coeff=d3d_coeffs(50, 0))
    wave = tone(2.0)
    wave[:RATE] = 0.0
    sf.write(tmp_path / "in" / "clip.wav", wave, RATE)
    import_coeffs(tmp_path / "in", tmp_path / "out", format="d3d", val_fraction=0.0, test_fraction=0.0,
                  emotion="happy")
    seq = sequences(tmp_path / "out")["clip"]
    energy = seq.audio.mean(axis=1)
    assert energy[:24].max() < energy[26:].min()
    assert seq.emotion == "happy"


def test_sadtalker_mat_and_npy_with_crop_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(25, SADTALKER_DIM)).astype(np.float32)
    npy = rng.normal(size=(20, SADTALKER_DIM + 3)).astype(np.float32)  # preprocess file: + crop
    write_mat(tmp_path / "in" / "M005_front_surprised_level_3_010.mat", coeff_3dmm=mat)
    np.save(tmp_path / "in" / "talk_020.npy", npy)
    write_wav(tmp_path / "audio" / "M005_front_surprised_level_3_010.wav", 1.0)
    write_wav(tmp_path / "audio" / "talk_020.wav", 0.8)
    import_coeffs(tmp_path / "in", tmp_path / "out", format="sadtalker", audio_dir=tmp_path / "audio",
                  val_fraction=0.0, test_fraction=0.0)
    seqs = sequences(tmp_path / "out")
    surprised = seqs["M005_front_surprised_level_3_010"]
    assert surprised.emotion == "surprised"
    np.testing.assert_array_equal(surprised.exp, mat[:, :BFM_EXP_DIM])
    np.testing.assert_array_equal(surprised.pose, mat[:, BFM_EXP_DIM:])
    talk = seqs["talk_020"]
    assert talk.emotion == "talk" and talk.exp.shape == (20, BFM_EXP_DIM)
    np.testing.assert_array_equal(talk.pose, npy[:, BFM_EXP_DIM:SADTALKER_DIM])


def test_bad_files_are_skipped_and_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    write_mat(tmp_path / "in" / "good.mat", coeff_3dmm=rng.normal(size=(25, SADTALKER_DIM)))
    write_wav(tmp_path / "in" / "good.wav", 1.0)
    write_mat(tmp_path / "in" / "narrow.mat", coeff_3dmm=rng.normal(size=(25, 60)))
    write_wav(tmp_path / "in" / "narrow.wav", 1.0)
    write_mat(tmp_path / "in" / "mute.mat", coeff_3dmm=rng.normal(size=(25, SADTALKER_DIM)))
    write_mat(tmp_path / "in" / "long_audio.mat", coeff_3dmm=rng.normal(size=(25, SADTALKER_DIM)))
    write_wav(tmp_path / "in" / "long_audio.wav", 3.0)
    write_mat(tmp_path / "in" / "hush.mat", coeff_3dmm=rng.normal(size=(25, SADTALKER_DIM)))
    write_m4a(tmp_path / "in" / "hush.m4a", 1.0, silent=True)  # decoded by FFmpeg, then checked
    summary = import_coeffs(tmp_path / "in", tmp_path / "out", format="sadtalker", val_fraction=0.0,
                            test_fraction=0.0)
    assert summary.sequences["train"] == 1
    reasons = {Path(f).stem: r for f, r in summary.failures}
    assert set(reasons) == {"narrow", "mute", "long_audio", "hush"}
    assert "hush.m4a" in reasons["hush"] and "silent" in reasons["hush"]
    assert "width 60" in reasons["narrow"] and "narrow.mat" in reasons["narrow"]
    assert "no audio found" in reasons["mute"] and "mute.mat" in reasons["mute"]
    assert "25 frames (1.00 s at 25 fps)" in reasons["long_audio"] and "3.00 s" in reasons["long_audio"]


def test_nothing_importable_raises(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no d3d coefficient files"):
        import_coeffs(tmp_path / "empty", tmp_path / "out", format="d3d")
    write_mat(tmp_path / "in" / "wide.mat", coeff=np.zeros((10, 300)))
    with pytest.raises(DatasetError, match=r"no sequence could be imported.*wide\.mat"):
        import_coeffs(tmp_path / "in", tmp_path / "out", format="d3d")
    assert not (tmp_path / "out" / "meta.json").exists()
    with pytest.raises(DatasetError, match="unknown coefficient format"):
        import_coeffs(tmp_path / "in", tmp_path / "out2", format="flame")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "meta.json").write_text("{}")
    with pytest.raises(DatasetError, match="not empty"):
        import_coeffs(tmp_path / "in", tmp_path / "used", format="d3d")


@pytest.mark.parametrize("path, label", [
    ("M003/video/front/angry/level_2/001.mp4", "angry"),
    ("M030_front_disgusted_level_3_011", "disgusted"),
    ("W011/video/left_30/Contempt/level_1/003.mat", "contempt"),
    ("M003/audio/neutral/level_1/001.m4a", "neutral"),
    ("HDTF/WRA_KellyAyotte_000.mp4", None),
    ("fearless/clip.mp4", None),  # a word containing an emotion is not a label
])
def test_mead_emotion_from_names(path: str, label: str | None) -> None:
    assert mead_emotion(path) == label
    assert emotion_for(path, None) == (label or "talk")
    assert emotion_for(path, "Fear") == "fear"


def test_mead_emotion_refuses_two_labels() -> None:
    with pytest.raises(DatasetError, match="several emotions"):
        mead_emotion("happy/sad_001.mp4")


def test_names_and_splits() -> None:
    mead = Path("M003/video/front/angry/level_2/001.mp4")
    assert sequence_name(mead) == "M003_video_front_angry_level_2_001"
    assert sequence_name(Path("my clips/take (1).mov")) == "my-clips_take-1-"
    names = [f"s{i:02d}" for i in range(20)]
    split = assign_splits(names, 0.1, 0.2, seed=7)
    assert split == assign_splits(names[::-1], 0.1, 0.2, seed=7)
    assert sorted(split.values()).count("val") == 2 and sorted(split.values()).count("test") == 4
    assert split != assign_splits(names, 0.1, 0.2, seed=8)
    assert assign_splits(["only"], 0.5, 0.4, seed=0) == {"only": "train"}
    with pytest.raises(DatasetError, match="below 1"):
        assign_splits(names, 0.5, 0.5, seed=0)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flowvq corpus")
    add_corpus_parsers(parser.add_subparsers(dest="corpus_command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_import_coeffs_prints_a_json_summary(mead_d3d, tmp_path: Path, capsys) -> None:
    bfm = tmp_path / "BFM_model_front.mat"
    savemat(bfm, bfm_arrays())
    status = run_cli(["import-coeffs", str(mead_d3d["coeffs"]), "--format", "d3d", "--audio-dir",
                      str(mead_d3d["audio"]), "--out", str(mead_d3d["out"]), "--bfm", str(bfm),
                      "--val-fraction", "0.34", "--test-fraction", "0", "--seed", "1"])
    assert status == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip())
    assert summary["sequences"] == {"train": 2, "val": 1, "test": 0}
    assert summary["failures"] == [] and summary["fps"] == FPS
    assert summary["hours"]["train"] > 0 and len(err.strip().splitlines()) == 3
    assert read_meta(mead_d3d["out"]).face_model == "bfm-front@1"


def test_cli_parses_from_videos_options() -> None:
    parser = argparse.ArgumentParser(prog="flowvq corpus")
    add_corpus_parsers(parser.add_subparsers(dest="corpus_command", required=True))
    args = parser.parse_args(["from-videos", "clips", "--out", "ds", "--fps", "30", "--emotion", "happy",
                              "--val-fraction", "0.2", "--test-fraction", "0.1", "--seed", "4"])
    assert (args.dir, args.out, args.fps, args.emotion) == (Path("clips"), Path("ds"), 30.0, "happy")
    assert (args.val_fraction, args.test_fraction, args.seed) == (0.2, 0.1, 4)
    assert args.func.__name__ == "run_from_videos"
    with pytest.raises(SystemExit):
        parser.parse_args(["from-videos", "clips", "--out", "ds", "--emotion", "bored"])
