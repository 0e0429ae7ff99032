"""Tests for `core.train.loop` and `core.train.cli`: the YAML config, user errors, resume, DDP under
torchrun, and that a short run of the shipped tiny config learns the toy task (`core.corpus.toy`)."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from core.coeff.config import PRESETS
from core.coeff.sampler import SampleSettings, sample_takes
from core.coeff.weights import WEIGHTS_FILE, load_weights
from core.cli import main
from core.eval.regressor import RegressorError, save_regressor, train_regressor
from core.formats.dataset import load_split
from core.train.loop import (
    STATE_FILE,
    TrainConfig,
    TrainError,
    learning_rate,
    load_train_config,
    read_history,
    resolve_model,
    train_coeff,
)
from core.corpus.toy import EMOTION_OFFSETS, drive_signal, write_toy_dataset

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


def tiny_config(folder: Path, dataset: Path, **changes) -> Path:
    """The shipped configs/coeff-tiny.yaml with its dataset and out pointed into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((CONFIGS / "coeff-tiny.yaml").read_text())
    data.update(dataset=str(dataset), out=str(folder / "run"), **changes)
    path = folder / f"tiny-{len(list(folder.glob('tiny-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def without_time(events: list[dict]) -> list[dict]:
    return [{key: value for key, value in event.items() if key != "seconds"} for event in events]


@pytest.fixture(scope="module")
def toy(tmp_path_factory, face) -> Path:
    root = tmp_path_factory.mktemp("toy") / "toy"
    write_toy_dataset(root, face.names, face.id, n_train=36, n_val=9, frames=100, seed=0)
    return root


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory) -> Path:
    """The shipped tiny config trained as is (400 steps) on the toy set: the weights folder."""
    return train_coeff(tiny_config(tmp_path_factory.mktemp("trained"), toy), device="cpu")


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def test_shipped_configs_load_with_paths_relative_to_their_folder() -> None:
    tiny = load_train_config(CONFIGS / "coeff-tiny.yaml")
    default = load_train_config(CONFIGS / "coeff-default.yaml")
    assert tiny.model == PRESETS["tiny"]
    assert default.model == replace(PRESETS["default"], emotion_dropout=0.5)  # the shipped recipe
    assert tiny.dataset == REPO / "configs" / ".." / "out" / "toy-coeff"
    assert default.steps > tiny.steps


def test_config_round_trips_through_a_dict(tmp_path) -> None:
    config = load_train_config(tiny_config(tmp_path, tmp_path / "data", lr=1e-3, betas=[0.8, 0.99]))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.betas == (0.8, 0.99) and config.lr == 1e-3


def test_extra_datasets_are_resolved_against_the_config_folder_and_round_trip(tmp_path) -> None:
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir()
    path.write_text("dataset: ../corpus\nextra_datasets: [../actor, /studio/voice]\nextra_repeats: 4\n")
    config = load_train_config(path)
    assert config.extra_datasets == (path.parent / "../actor", Path("/studio/voice"))
    assert config.extra_repeats == 4 and TrainConfig.from_dict(config.to_dict()) == config


def test_model_overrides_change_only_the_keys_they_name() -> None:
    model = resolve_model({"preset": "tiny", "exp": {"steps": 3}, "nu": 7})
    tiny = PRESETS["tiny"]
    assert model.exp.steps == 3 and model.nu == 7.0
    assert model.exp.hidden == tiny.exp.hidden and model.pose == tiny.pose
    assert resolve_model(None) == PRESETS["default"]


def test_the_learning_rate_is_constant_until_the_decay_then_falls_along_a_cosine_to_zero() -> None:
    constant = TrainConfig(dataset=Path("d"), steps=100, lr=0.01)
    assert {learning_rate(constant, step) for step in range(100)} == {0.01}
    decayed = TrainConfig(dataset=Path("d"), steps=100, lr=0.01, lr_decay_steps=40)
    rates = [learning_rate(decayed, step) for step in range(100)]
    assert rates[:61] == [0.01] * 61
    assert all(later < earlier for earlier, later in zip(rates[60:], rates[61:]))
    assert rates[80] == pytest.approx(0.005) and 0 < rates[-1] < 1e-4


@pytest.mark.parametrize(
    "text, match",
    [
        ("dataset: d\nstpes: 10\n", "unknown key.*stpes"),
        ("dataset: d\nsteps: [1,\n", "not valid YAML"),
        ("steps: 10\n", "'dataset'.*required"),
        ("dataset: d\nsteps: 0\n", "steps must be an integer >= 1"),
        ("dataset: d\nlr: fast\n", "lr must be a number"),
        ("dataset: d\nbetas: [0.9]\n", "betas must be a list of two numbers"),
        ("dataset: d\nmodel: {preset: huge}\n", "unknown model preset 'huge'"),
        ("dataset: d\nmodel: {exp: {stepz: 2}}\n", "unknown key.*stepz"),
        ("dataset: d\nsteps: 10\nlr_decay_steps: 11\n", r"lr_decay_steps \(11\) cannot exceed steps \(10\)"),
        ("dataset: d\nextra_datasets: actor\n", "extra_datasets must be a list of dataset folders"),
        ("dataset: d\nextra_datasets: [3]\n", "extra_datasets must be a path string"),
        ("dataset: d\nextra_repeats: 0\n", "extra_repeats must be an integer >= 1"),
    ],
)
def test_bad_configs_are_refused_naming_the_file_and_key(tmp_path, text, match) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TrainError, match=match) as caught:
        load_train_config(path)
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Errors before training
# ---------------------------------------------------------------------------------------------

def test_missing_dataset_is_one_error_line_with_status_2(tmp_path, capsys) -> None:
    config = tiny_config(tmp_path, tmp_path / "nowhere")
    assert main(["train", "coeff", "--config", str(config), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flowvq: error:") and "does not exist" in err[0]


def test_dataset_for_another_face_model_is_refused(tmp_path, face) -> None:
    names = list(face.names)
    names[0], names[1] = names[1], names[0]
    write_toy_dataset(tmp_path / "other", names, face.id, n_train=2, n_val=0, frames=20, seed=0)
    with pytest.raises(TrainError, match=f"first difference at index 0: {names[0]!r}"):
        train_coeff(tiny_config(tmp_path, tmp_path / "other"), device="cpu")


def test_an_extra_dataset_is_trained_on_its_repeats_times_and_validated_on(tmp_path, face) -> None:
    """The run's standardisation and head-pose range come from every training frame: the dataset's
    and each extra sequence ``extra_repeats`` times; the extra val split is the run's validation."""
    corpus, actor = tmp_path / "corpus", tmp_path / "actor"
    write_toy_dataset(corpus, face.names, face.id, n_train=6, n_val=0, frames=60, seed=0)
    write_toy_dataset(actor, face.names, face.id, n_train=3, n_val=2, frames=40, seed=5)
    for file in (actor / "train").glob("*.npz"):
        data = dict(np.load(file))
        data["exp"][:, face.names.index("jawOpen")] = 0.9
        data["pose"][:, 0] += 0.5  # a pitch beyond the corpus's
        np.savez(file, **data)
    config = tiny_config(tmp_path, corpus, extra_datasets=[str(actor)], extra_repeats=3, steps=2, val_every=1,
                         checkpoint_every=2, val_batches=1)
    weights = train_coeff(config, device="cpu")
    model = load_weights(weights, device="cpu")
    parts = [*load_split(corpus, "train"), *load_split(actor, "train") * 3]
    jaw = np.concatenate([seq.exp[:, face.names.index("jawOpen")] for seq in parts])
    assert float(model.exp_flow.standardize.mean[face.names.index("jawOpen")]) == pytest.approx(jaw.mean(), rel=1e-4)
    assert float(model.pose_upper[0]) == pytest.approx(max(float(seq.pose[:, 0].max()) for seq in parts), rel=1e-5)
    assert [event["step"] for event in read_history(weights) if event["event"] == "val"] == [0, 1, 2]


def test_an_extra_dataset_for_another_face_model_is_refused_by_name(tmp_path, toy, face) -> None:
    names = list(face.names)
    names[0], names[1] = names[1], names[0]
    write_toy_dataset(tmp_path / "actor", names, face.id, n_train=2, n_val=0, frames=20, seed=0)
    with pytest.raises(TrainError, match=f"dataset {tmp_path / 'actor'} was made for face model"):
        train_coeff(tiny_config(tmp_path, toy, extra_datasets=[str(tmp_path / "actor")]), device="cpu")


# ---------------------------------------------------------------------------------------------
# Checkpoints, resume, DDP
# ---------------------------------------------------------------------------------------------

def test_resume_gives_the_same_weights_and_history_as_an_uninterrupted_run(tmp_path, toy, capsys) -> None:
    intervals = {"log_every": 10, "val_every": 10, "checkpoint_every": 20, "val_batches": 1}
    straight = train_coeff(tiny_config(tmp_path / "a", toy, steps=40, **intervals), device="cpu")
    first = tiny_config(tmp_path / "b", toy, steps=20, **intervals)
    assert main(["train", "coeff", "--config", str(first), "--device", "cpu"]) == 0
    second = tiny_config(tmp_path / "b", toy, steps=40, **intervals)
    assert main(["train", "coeff", "--config", str(second), "--resume", "--device", "cpu"]) == 0
    resumed = tmp_path / "b" / "run"
    assert f"-> {resumed}" in capsys.readouterr().out

    expected, actual = load_file(straight / WEIGHTS_FILE), load_file(resumed / WEIGHTS_FILE)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert without_time(read_history(resumed)) == without_time(read_history(straight))


def test_a_finished_folder_is_not_overwritten_and_resume_refuses_a_changed_config(tmp_path, toy) -> None:
    out = train_coeff(tiny_config(tmp_path, toy, steps=2, val_batches=1), device="cpu")
    with pytest.raises(TrainError, match="already holds a training run"):
        train_coeff(tiny_config(tmp_path, toy, steps=2), device="cpu")
    with pytest.raises(TrainError, match=r"config changed since it was written \(lr\)"):
        train_coeff(tiny_config(tmp_path, toy, steps=4, lr=1e-4), out=out, resume=True, device="cpu")
    with pytest.raises(TrainError, match="holds no trainer_state.pt"):
        train_coeff(tiny_config(tmp_path, toy, steps=2), out=tmp_path / "empty", resume=True, device="cpu")


def test_a_decayed_run_matches_a_constant_one_until_its_decay_and_refuses_steps_that_would_move_it(
    tmp_path, toy
) -> None:
    """Decay over the last 10 of 20 steps: the first 10 updates run at lr, so the losses logged and
    validated at step 10 equal the constant run's; the last 10 run lower, so the end differs."""
    intervals = {"log_every": 10, "val_every": 10, "checkpoint_every": 10, "val_batches": 1}
    constant = train_coeff(tiny_config(tmp_path / "a", toy, steps=20, **intervals), device="cpu")
    decayed = train_coeff(tiny_config(tmp_path / "b", toy, steps=20, lr_decay_steps=10, **intervals), device="cpu")
    before, after = without_time(read_history(constant)), without_time(read_history(decayed))
    assert [e for e in before if e["step"] <= 10] == [e for e in after if e["step"] <= 10]
    assert [e for e in before if e["step"] == 20] != [e for e in after if e["step"] == 20]
    expected, actual = load_file(constant / WEIGHTS_FILE), load_file(decayed / WEIGHTS_FILE)
    assert any(not torch.equal(expected[key], actual[key]) for key in expected)
    with pytest.raises(TrainError, match=r"config changed since it was written \(steps\)"):
        train_coeff(tiny_config(tmp_path / "b", toy, steps=30, lr_decay_steps=10, **intervals), resume=True,
                    device="cpu")


def test_a_state_saved_before_a_config_key_existed_resumes_when_the_key_has_its_default(tmp_path, toy) -> None:
    out = train_coeff(tiny_config(tmp_path, toy, steps=2, val_batches=1), device="cpu")
    state = torch.load(out / STATE_FILE, weights_only=True)
    del state["config"]["lr_decay_steps"]
    torch.save(state, out / STATE_FILE)
    assert train_coeff(tiny_config(tmp_path, toy, steps=4, val_batches=1), out=out, resume=True, device="cpu") == out
    with pytest.raises(TrainError, match=r"config changed since it was written \(lr_decay_steps, steps\)"):
        train_coeff(tiny_config(tmp_path, toy, steps=6, val_batches=1, lr_decay_steps=2), out=out, resume=True,
                    device="cpu")


def test_a_run_started_from_a_regressor_keeps_its_frozen_audio_encoder_and_starts_at_its_error(
    tmp_path, toy, face
) -> None:
    """``conditioner`` copies the regressor into ExpFlow before step 0, so the first validation's
    location error (L_rec) is the regressor's level, well below a fresh flow's; ``freeze_audio``
    leaves the copied audio encoder untouched while the rest trains."""
    regressor, _ = train_regressor(load_split(toy, "train"), PRESETS["tiny"], face, steps=150,
                                   batch_size=32, show_progress=False)
    save_regressor(tmp_path / "regressor", regressor, {})
    located = {"preset": "tiny", "exp": {"rec_weight": 1.0}}
    runs = {
        name: train_coeff(tiny_config(tmp_path / name, toy, steps=20, val_batches=2, model=located, **extra),
                          device="cpu")
        for name, extra in (("fresh", {}),
                            ("adopted", {"conditioner": str(tmp_path / "regressor"), "freeze_audio": True}))
    }
    first_rec = {name: read_history(out)[0]["exp_rec"] for name, out in runs.items()}
    assert first_rec["adopted"] < 0.8 * first_rec["fresh"], first_rec  # the toy noise channels set a high floor
    weights = load_file(runs["adopted"] / WEIGHTS_FILE)
    copied = regressor.conditioner.state_dict()
    for key in (k for k in copied if k.startswith("audio.")):
        assert torch.equal(weights[f"exp_flow.{key}"], copied[key]), key
    assert not torch.equal(weights["exp_flow.static.weight"], copied["static.weight"])


def test_a_conditioner_that_does_not_fit_the_flow_is_refused(tmp_path, toy, face) -> None:
    regressor, _ = train_regressor(load_split(toy, "train"), PRESETS["tiny"], face, steps=1,
                                   batch_size=4, show_progress=False)
    save_regressor(tmp_path / "regressor", regressor, {})
    wider = {"preset": "tiny", "exp": {"context_dim": 2 * PRESETS["tiny"].exp.context_dim}}
    config = tiny_config(tmp_path, toy, steps=1, model=wider, conditioner=str(tmp_path / "regressor"))
    with pytest.raises(RegressorError, match="does not fit this flow"):
        train_coeff(config, device="cpu")


def test_torchrun_with_two_cpu_processes_trains_loadable_weights(tmp_path, toy, face) -> None:
    config = tiny_config(tmp_path, toy, steps=10, log_every=5, val_every=10, val_batches=1)
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "core.cli", "train", "coeff", "--config", str(config), "--out", str(out),
               "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    events = read_history(out)
    assert {event["world_size"] for event in events} == {2}
    assert [event["step"] for event in events if event["event"] == "train"] == [5, 10]
    model = load_weights(out, face)
    sequence = load_split(toy, "val")[0]
    exp, pose = sample_takes(model, sequence.audio[:20], sequence.beta0, SampleSettings(takes=2))
    assert exp.shape == (2, 20, len(face.names)) and np.isfinite(pose).all()


# ---------------------------------------------------------------------------------------------
# Learning the toy task (shared 300-step run of configs/coeff-tiny.yaml)
# ---------------------------------------------------------------------------------------------

def test_training_lowers_the_validation_nll(trained) -> None:
    validations = [event for event in read_history(trained) if event["event"] == "val"]
    before, after = validations[0], validations[-1]
    assert before["step"] == 0 and after["step"] == load_train_config(CONFIGS / "coeff-tiny.yaml").steps
    assert after["exp_nll"] < before["exp_nll"] and after["pose_nll"] < before["pose_nll"]


def test_sampled_jaw_follows_the_held_out_drive_signal_with_correlation_above_0_9(trained, toy, face) -> None:
    model = load_weights(trained, face)
    jaw = face.names.index("jawOpen")
    for sequence in load_split(toy, "val"):
        exp, _ = sample_takes(model, sequence.audio, sequence.beta0,
                              SampleSettings(emotion=sequence.emotion, pose=False))
        correlation = np.corrcoef(exp[0, :, jaw], drive_signal(sequence.audio))[0, 1]
        assert correlation > 0.9, (sequence.name, correlation)


def test_happy_raises_the_smile_by_its_toy_offset_within_0_2(trained, toy, face) -> None:
    """The toy task adds 0.5 to mouthSmileLeft for "happy" and nothing for "neutral"; sampled on
    the same held-out audio the difference must be at least that offset minus 0.2 (i.e. >= 0.3)."""
    offsets = {emotion: EMOTION_OFFSETS[emotion].get("mouthSmileLeft", 0.0)
               for emotion in ("happy", "neutral")}
    expected = offsets["happy"] - offsets["neutral"]
    model = load_weights(trained, face)
    smile = face.names.index("mouthSmileLeft")
    sequence = load_split(toy, "val")[0]
    means = {}
    for emotion in ("happy", "neutral"):
        exp, _ = sample_takes(model, sequence.audio, sequence.beta0,
                              SampleSettings(emotion=emotion, takes=2, pose=False))
        means[emotion] = float(exp[..., smile].mean())
    assert means["happy"] - means["neutral"] >= expected - 0.2, means
