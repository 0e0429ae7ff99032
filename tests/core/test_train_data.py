"""Tests for `core.formats.dataset` (dataset layout, validation, batches) and `core.corpus.toy`."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from core.audio import frame_windows
from core.emotions import EMOTIONS, emotion_index
from core.formats import dataset as data_module
from core.formats.dataset import (
    DATASET_VERSION,
    CoeffSequence,
    DatasetError,
    DatasetMeta,
    WindowSampler,
    frame_batches,
    load_split,
    read_meta,
    write_meta,
    write_sequence,
)
from core.corpus.toy import (
    EMOTION_OFFSETS,
    MOUTH_GAINS,
    drive_signal,
    syllable_envelope,
    toy_sequence,
    write_toy_dataset,
)

N_MELS = 80


@pytest.fixture
def meta(face) -> DatasetMeta:
    return DatasetMeta(fps=25.0, face_model=face.id, names=face.names, audio_width=N_MELS)


@pytest.fixture
def root(tmp_path, meta):
    write_meta(tmp_path / "ds", meta)
    return tmp_path / "ds"


def random_sequence(name: str, frames: int, dim: int, seed: int = 0, emotion: str = "sad") -> CoeffSequence:
    rng = np.random.default_rng(seed)
    return CoeffSequence(
        name=name,
        exp=rng.normal(size=(frames, dim)).astype(np.float32),
        pose=rng.normal(size=(frames, 6)).astype(np.float32),
        audio=rng.normal(size=(frames, N_MELS)).astype(np.float32),
        emotion=emotion,
        beta0=rng.normal(size=dim).astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------
# meta.json
# ---------------------------------------------------------------------------------------------

def test_meta_round_trips_through_meta_json(root, meta):
    assert read_meta(root) == meta
    obj = json.loads((root / "meta.json").read_text())
    assert obj["format"] == "flowvq-coeff-dataset" and obj["version"] == DATASET_VERSION
    assert obj["names"] == list(meta.names) and obj["audio_width"] == N_MELS


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "something-else"}, "format"),
        ({"version": DATASET_VERSION - 1}, "version"),
        ({"audio_width": 0}, "audio_width"),
        ({"fps": -1.0}, "fps"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_meta_from_json_refuses_wrong_format_version_and_values(meta, change, message):
    obj = {**json.loads(meta.to_json()), **change}
    with pytest.raises(DatasetError, match=message):
        DatasetMeta.from_json(json.dumps(obj))


def test_meta_from_json_names_a_missing_key(meta):
    obj = json.loads(meta.to_json())
    del obj["face_model"]
    with pytest.raises(DatasetError, match="face_model"):
        DatasetMeta.from_json(obj)


def test_missing_dataset_dir_or_meta_says_what_a_dataset_contains(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*meta.json"):
        read_meta(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no meta.json.*train/"):
        load_split(tmp_path / "empty", "train")


# ---------------------------------------------------------------------------------------------
# Sequences on disk
# ---------------------------------------------------------------------------------------------

def test_sequences_round_trip_sorted_by_name(root, face):
    written = [random_sequence(n, 7 + i, len(face.names), seed=i) for i, n in enumerate(["b", "a", "c-1"])]
    for seq in written:
        path = write_sequence(root, "train", seq)
        assert path == root / "train" / f"{seq.name}.npz"
    loaded = load_split(root, "train")
    assert [s.name for s in loaded] == ["a", "b", "c-1"]
    by_name = {s.name: s for s in written}
    for seq in loaded:
        ref = by_name[seq.name]
        for key in ("exp", "pose", "audio", "beta0"):
            np.testing.assert_array_equal(getattr(seq, key), getattr(ref, key))
            assert getattr(seq, key).dtype == np.float32
        assert seq.emotion == ref.emotion and seq.frames == ref.frames
    with np.load(root / "train" / "a.npz") as archive:
        assert archive["emotion"].ndim == 0 and archive["emotion"].dtype.kind == "U"


def test_a_sequences_intensity_round_trips_and_defaults_to_full(root, face):
    written = random_sequence("soft", 5, len(face.names), seed=1)
    written.intensity = 0.25
    write_sequence(root, "train", written)
    plain = random_sequence("plain", 5, len(face.names), seed=2)
    path = write_sequence(root, "train", plain)
    with np.load(path) as archive:  # a sequence file written without the optional key
        arrays = {key: archive[key] for key in archive.files if key != "intensity"}
    np.savez(path, **arrays)
    loaded = {seq.name: seq.intensity for seq in load_split(root, "train")}
    assert loaded == pytest.approx({"soft": 0.25, "plain": 1.0})
    written.intensity = 1.5
    with pytest.raises(DatasetError, match="intensity"):
        write_sequence(root, "train", written)


def test_a_sequences_phone_classes_round_trip_and_are_optional(root, face):
    frames = 6
    written = random_sequence("spoken", frames, len(face.names), seed=1)
    written.phones = np.array([1, 1, 2, 2, 12, 0], np.int64)
    written.heard = np.array([1, 2, 2, 2, 13, 13], np.uint8)
    write_sequence(root, "train", written)
    write_sequence(root, "train", random_sequence("silent", frames, len(face.names), seed=2))
    loaded = {seq.name: seq for seq in load_split(root, "train")}
    assert loaded["spoken"].phones.tolist() == [1, 1, 2, 2, 12, 0] and loaded["spoken"].phones.dtype == np.uint8
    assert loaded["spoken"].heard.tolist() == [1, 2, 2, 2, 13, 13]
    assert loaded["silent"].phones is None and loaded["silent"].heard is None


@pytest.mark.parametrize("key, value, message", [
    ("phones", np.array([1, 2, 99, 1, 1, 1]), "viseme class indices"),
    ("heard", np.array([0.5] * 6), "viseme class indices"),
    ("phones", np.array([1, 2, 3]), r"shape \(3,\), expected \(6\)"),
])
def test_bad_phone_classes_are_refused_naming_the_key(root, face, key, value, message):
    with pytest.raises(DatasetError, match=f"key '{key}'.*{message}"):
        seq = dataclasses.replace(random_sequence("bad", 6, len(face.names)), **{key: value})
        write_sequence(root, "train", seq)
    assert not (root / "train" / "bad.npz").exists()


def test_missing_split_is_an_error_unless_not_required(root, face):
    with pytest.raises(DatasetError, match="val"):
        load_split(root, "val")
    assert load_split(root, "val", required=False) == []
    (root / "test").mkdir()
    with pytest.raises(DatasetError, match="holds no NAME.npz"):
        load_split(root, "test", required=False)


def test_write_sequence_refuses_unknown_split_and_unsafe_names(root, face):
    seq = random_sequence("ok", 5, len(face.names))
    with pytest.raises(DatasetError, match="split"):
        write_sequence(root, "training", seq)
    for bad in ("../escape", "a b", "", ".hidden", "x/y"):
        seq.name = bad
        with pytest.raises(DatasetError, match="safe file stem"):
            write_sequence(root, "train", seq)
    assert not (root / "train").exists() or not any((root / "train").iterdir())
    assert not (root.parent / "escape.npz").exists()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("exp", "nan", "'exp' holds 1 NaN"),
        ("pose", "inf", "'pose' holds 1 NaN or infinite"),
        ("exp", "narrow", r"'exp' has shape \(5, 3\), expected \(T, 52\)"),
        ("audio", "short", "same number of frames"),
        ("beta0", "narrow", "'beta0' has shape"),
        ("emotion", "bored", "'emotion'.*unknown emotion 'bored'"),
    ],
)
def test_validation_names_the_sequence_and_the_bad_key(root, face, key, value, message):
    seq = random_sequence("clip7", 5, len(face.names))
    if value == "nan":
        seq.exp[2, 3] = np.nan
    elif value == "inf":
        seq.pose[1, 0] = np.inf
    elif value == "narrow":
        setattr(seq, key, getattr(seq, key)[..., :3])
    elif value == "short":
        seq.audio = seq.audio[:4]
    else:
        seq.emotion = value
    with pytest.raises(DatasetError, match=f"clip7.*{message}"):
        write_sequence(root, "train", seq)
    assert not (root / "train" / "clip7.npz").exists()


def test_load_split_error_names_the_file_that_is_bad(root, face):
    write_sequence(root, "train", random_sequence("good", 5, len(face.names)))
    seq = random_sequence("bad", 5, len(face.names))
    np.savez(root / "train" / "bad.npz", exp=seq.exp[:, :10], pose=seq.pose, audio=seq.audio,
             emotion=np.array("sad"), beta0=seq.beta0)
    with pytest.raises(DatasetError, match=r"bad\.npz: key 'exp' has shape"):
        load_split(root, "train")
    np.savez(root / "train" / "bad.npz", exp=seq.exp, pose=seq.pose, audio=seq.audio)
    with pytest.raises(DatasetError, match=r"bad\.npz: missing keys \['emotion', 'beta0'\]"):
        load_split(root, "train")


def test_emotion_lookup_is_case_insensitive_like_emotion_index(face):
    seq = random_sequence("x", 3, len(face.names), emotion="Happy")
    seq.validate(len(face.names), N_MELS)
    assert seq.label == emotion_index("happy")


def test_atomic_write_leaves_only_the_final_file(root, face):
    write_sequence(root, "train", random_sequence("one", 6, len(face.names)))
    assert sorted(p.name for p in (root / "train").iterdir()) == ["one.npz"]
    assert sorted(p.name for p in root.iterdir()) == ["meta.json", "train"]


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_file(root, face, monkeypatch):
    old = random_sequence("one", 6, len(face.names), seed=1)
    write_sequence(root, "train", old)

    def broken_savez(stream, **arrays):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(data_module.np, "savez", broken_savez)
    with pytest.raises(DatasetError, match="cannot write .*disk full"):
        write_sequence(root, "train", random_sequence("one", 6, len(face.names), seed=2))
    monkeypatch.undo()
    assert sorted(p.name for p in (root / "train").iterdir()) == ["one.npz"]
    np.testing.assert_array_equal(load_split(root, "train")[0].exp, old.exp)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

TAU, WINDOW, BEFORE, AFTER, BATCH = 3, 8, 2, 4, 16


@pytest.fixture(scope="module")
def sequences():
    dim = 5
    lengths = [20, 8, 31, 5]  # the last is shorter than WINDOW and must never be drawn
    made = [random_sequence(f"s{i}", n, dim, seed=10 + i, emotion=EMOTIONS[i]) for i, n in enumerate(lengths)]
    rng = np.random.default_rng(5)
    made[0].phones, made[0].heard = rng.integers(0, 22, (2, lengths[0]), dtype=np.uint8)
    made[2].phones = rng.integers(0, 22, lengths[2], dtype=np.uint8)  # phones without heard ones
    return made


def sampler(sequences) -> WindowSampler:
    return WindowSampler(sequences, TAU, WINDOW, BEFORE, AFTER, BATCH)


def test_window_sampler_batch_shapes_and_dtypes(sequences):
    batch = sampler(sequences).sample(np.random.default_rng(3))
    width = BEFORE + 1 + AFTER
    expected = {
        "exp": ((BATCH, TAU + WINDOW, 5), torch.float32),
        "pose": ((BATCH, TAU + WINDOW, 6), torch.float32),
        "available": ((BATCH, TAU + WINDOW), torch.bool),
        "audio": ((BATCH, WINDOW, width, N_MELS), torch.float32),
        "label": ((BATCH,), torch.int64),
        "beta0": ((BATCH, 5), torch.float32),
        "style": ((BATCH, 5), torch.float32),
        "phones": ((BATCH, WINDOW, width), torch.int64),
        "heard": ((BATCH, WINDOW, width), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(batch[key].shape) == shape, key
        assert batch[key].dtype == dtype, key


def test_window_sampler_content_matches_the_source_sequences(sequences):
    draw, rng = sampler(sequences), np.random.default_rng(3)
    seen_available_false = False
    for _ in range(10):
        batch = draw.sample(rng)
        for b in range(BATCH):
            i, t0 = int(batch["sequence"][b]), int(batch["frame"][b])
            seq = sequences[i]
            assert seq.frames >= WINDOW and 0 <= t0 <= seq.frames - WINDOW
            frames = np.arange(t0 - TAU, t0 + WINDOW)
            np.testing.assert_array_equal(batch["available"][b].numpy(), frames >= 0)
            seen_available_false |= bool((frames < 0).any())
            valid = frames >= 0
            np.testing.assert_array_equal(batch["exp"][b].numpy()[valid], seq.exp[frames[valid]])
            np.testing.assert_array_equal(batch["pose"][b].numpy()[valid], seq.pose[frames[valid]])
            assert not batch["exp"][b].numpy()[~valid].any() and not batch["pose"][b].numpy()[~valid].any()
            windows = frame_windows(seq.audio, BEFORE, AFTER)[t0:t0 + WINDOW]
            np.testing.assert_array_equal(batch["audio"][b].numpy(), windows)
            for key in ("phones", "heard"):
                classes = getattr(seq, key)
                if classes is None:
                    assert not batch[key][b].any(), key
                else:
                    rows = frame_windows(classes[:, None], BEFORE, AFTER)[t0:t0 + WINDOW, :, 0]
                    np.testing.assert_array_equal(batch[key][b].numpy(), rows)
            assert int(batch["label"][b]) == emotion_index(seq.emotion)
            np.testing.assert_array_equal(batch["beta0"][b].numpy(), seq.beta0)
            offset = (seq.exp - seq.beta0).mean(axis=0)
            np.testing.assert_allclose(batch["style"][b].numpy(), offset, rtol=1e-5)
    assert seen_available_false


def test_window_sampler_draws_sequences_by_number_of_valid_starts(sequences):
    big = WindowSampler(sequences, TAU, WINDOW, BEFORE, AFTER, 4000)
    counts = np.bincount(big.sample(np.random.default_rng(0))["sequence"].numpy(), minlength=4)
    starts = np.array([13, 1, 24, 0])
    assert counts[3] == 0
    np.testing.assert_allclose(counts / counts.sum(), starts / starts.sum(), atol=0.03)


def test_the_same_generator_seed_gives_identical_batches(sequences):
    draw = sampler(sequences)
    first, again = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(3):
        batch, repeat = draw.sample(first), draw.sample(again)
        for key in batch:
            assert torch.equal(batch[key], repeat[key]), key
    other = draw.sample(np.random.default_rng(4))
    assert not torch.equal(batch["exp"], other["exp"])


def test_window_sampler_refuses_when_no_sequence_is_long_enough(sequences):
    with pytest.raises(DatasetError, match="no sequence is long enough.*longest has 31"):
        WindowSampler(sequences, TAU, 32, BEFORE, AFTER, BATCH)


def test_frame_batches_cover_every_frame_exactly_once(sequences):
    seen = []
    for batch in frame_batches(sequences, TAU, BEFORE, AFTER, batch_size=7):
        assert tuple(batch["exp"].shape[1:]) == (TAU + 1, 5)
        assert tuple(batch["audio"].shape[1:]) == (1, BEFORE + 1 + AFTER, N_MELS)
        for b in range(len(batch["frame"])):
            i, t = int(batch["sequence"][b]), int(batch["frame"][b])
            seq = sequences[i]
            np.testing.assert_array_equal(batch["exp"][b, -1].numpy(), seq.exp[t])
            np.testing.assert_array_equal(batch["available"][b].numpy(), np.arange(t - TAU, t + 1) >= 0)
            windows = frame_windows(seq.audio, BEFORE, AFTER)
            np.testing.assert_array_equal(batch["audio"][b, 0].numpy(), windows[t])
            seen.append((i, t))
    expected = [(i, t) for i, seq in enumerate(sequences) for t in range(seq.frames)]
    assert seen == expected


# ---------------------------------------------------------------------------------------------
# Toy task
# ---------------------------------------------------------------------------------------------

def test_drive_signal_recovers_the_syllable_envelope(face):
    seq = toy_sequence(face.names, "talk", 250, seed=5)
    envelope = syllable_envelope(np.random.default_rng(5), 250)  # the first draws of the same rng
    assert np.abs(drive_signal(seq.audio) - envelope).max() < 1e-5
    assert envelope.max() > 0.5 and envelope.min() < 0.1  # a real, moving envelope


def test_toy_mouth_follows_the_envelope_within_noise(face):
    seq = toy_sequence(face.names, "neutral", 250, seed=6)
    s = drive_signal(seq.audio)
    for channel, gain in MOUTH_GAINS.items():
        column = seq.exp[:, face.names.index(channel)]
        assert np.abs(column - gain * s).max() < 0.05  # 5 sigma of the 0.01 noise
        assert np.corrcoef(column, s)[0, 1] > 0.9


def test_toy_emotion_offsets_appear_on_their_channels_only(face):
    assert set(EMOTION_OFFSETS) == set(EMOTIONS)
    neutral = toy_sequence(face.names, "neutral", 200, seed=7).exp.mean(axis=0)
    for emotion in ("happy", "sad", "angry", "surprised"):
        assert EMOTION_OFFSETS[emotion]
        shifted = toy_sequence(face.names, emotion, 200, seed=7).exp.mean(axis=0)
        for channel, offset in EMOTION_OFFSETS[emotion].items():
            column = face.names.index(channel)
            assert shifted[column] - neutral[column] == pytest.approx(offset, abs=0.02)
        others = [face.names.index(n) for n in face.names if n not in EMOTION_OFFSETS[emotion]]
        assert np.abs(shifted[others] - neutral[others]).max() < 0.02


def test_toy_uses_names_not_column_positions():
    names = ("tongueOut", "jawOpen", "mouthSmileLeft")  # a different basis: D = 3, other order
    seq = toy_sequence(names, "happy", 120, seed=8)
    assert seq.exp.shape == (120, 3) and seq.beta0.shape == (3,)
    s = drive_signal(seq.audio)
    assert np.abs(seq.exp[:, 1] - 0.6 * s).max() < 0.05
    assert seq.exp[:, 2].mean() == pytest.approx(0.5, abs=0.02)
    assert seq.exp[:, 0].mean() < 0.02


def test_toy_is_reproducible_from_its_seed_and_has_small_slow_pose(face):
    a, b = (toy_sequence(face.names, "fear", 150, seed=9) for _ in range(2))
    for key in ("exp", "pose", "audio", "beta0"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    c = toy_sequence(face.names, "fear", 150, seed=10)
    assert not np.array_equal(a.exp, c.exp)
    assert np.abs(a.pose[:, :3]).max() < np.radians(15) and np.abs(a.pose[:, 3:]).max() < 0.02
    step = np.abs(np.diff(a.pose, axis=0)).mean(axis=0)
    assert (step < 0.35 * a.pose.std(axis=0)).all()  # slow: a frame's step is small against its spread
    assert not a.beta0.any()


def test_write_toy_dataset_loads_back_with_all_emotions(tmp_path, face):
    meta = write_toy_dataset(tmp_path / "toy", face.names, face.id, n_train=9, n_val=2, frames=40, seed=0)
    assert read_meta(tmp_path / "toy") == meta and meta.face_model == face.id
    train = load_split(tmp_path / "toy", "train")
    val = load_split(tmp_path / "toy", "val")
    assert sorted(s.emotion for s in train) == sorted(EMOTIONS) and len(val) == 2
    again = tmp_path / "again"
    write_toy_dataset(again, face.names, face.id, n_train=9, n_val=2, frames=40, seed=0)
    for x, y in zip(train, load_split(again, "train")):
        np.testing.assert_array_equal(x.exp, y.exp)
