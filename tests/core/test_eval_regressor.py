"""core.eval.regressor: the MSE baseline shares ExpFlow's conditioner, learns the toy task's
audio-to-jaw mapping, is deterministic, and its weights round-trip strictly."""

import dataclasses

import numpy as np
import pytest
import torch

from core.audio import frame_windows
from core.coeff.config import PRESETS
from core.coeff.model import ExpFlow, lip_columns
from core.emotions import emotion_index
from core.eval.regressor import RegressorError, load_regressor, save_regressor, train_regressor
from core.formats.dataset import load_split
from core.corpus.toy import drive_signal, write_toy_dataset

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory, face):
    root = tmp_path_factory.mktemp("toy") / "toy"
    write_toy_dataset(root, face.names, face.id, n_train=36, n_val=9, frames=100, seed=0)
    return root


@pytest.fixture(scope="module")
def trained(toy, face):
    torch.set_num_threads(1)
    return train_regressor(load_split(toy, "train"), TINY, face, steps=300, batch_size=32,
                           show_progress=False)


def test_the_conditioner_is_expflows_own(trained, face) -> None:
    model, _ = trained
    flow = ExpFlow(len(face.names), TINY, seed=0)
    shapes = {k: v.shape for k, v in model.conditioner.state_dict().items()}
    # 0 is the standardisation; 1 the context-set affine map and the flow steps are flow-only
    steps = tuple(f"flow.transforms.{k}." for k in range(1, TINY.exp.steps + 2))
    expected = {k: v.shape for k, v in flow.state_dict().items() if not k.startswith(steps)}
    assert shapes == expected


@pytest.mark.parametrize("lip_gap", [False, True])
def test_a_flow_started_from_the_regressor_locates_every_frame_at_its_prediction(trained, toy, face, lip_gap) -> None:
    """m(c) of the started flow is the regressor's head, in the flow's own coordinates: with the
    lip gap, the head's output mapped into them (the same coefficients once mapped back)."""
    model, _ = trained
    flow = ExpFlow(len(face.names), TINY, seed=3, gap=lip_columns(face.names) if lip_gap else None)
    model.initialise_flow(flow)
    seq = load_split(toy, "val")[0]
    windows = torch.as_tensor(frame_windows(seq.audio, TINY.audio_before, TINY.audio_after))[None]
    source, label = torch.as_tensor(seq.beta0)[None], torch.tensor([emotion_index(seq.emotion)])
    previous = torch.as_tensor(seq.exp[:TINY.exp.tau])[None].expand(len(seq.exp), -1, -1)
    present = torch.ones(len(seq.exp), TINY.exp.tau)
    with torch.no_grad():
        contexts = [net.frame_context(net.static_context(windows, source, label)[0], previous, present)
                    for net in (flow, model.conditioner)]
        torch.testing.assert_close(contexts[0], contexts[1])
        location, log_scale = flow.located.location_scale(contexts[0])
        predicted = model.conditioner.standardize.inverse(model.head(contexts[1]))
        torch.testing.assert_close(location, flow.standardize.coordinates(predicted), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(flow.standardize.inverse(location), predicted, atol=1e-5, rtol=1e-4)
    assert log_scale.abs().max() == 0  # the spread is left to flow training


def test_a_flow_with_phone_input_starts_from_the_regressor_ignoring_the_phones(trained, toy, face) -> None:
    """The phone embedding enters the static layer last, at zero: the started flow's context is
    the regressor's whatever the phones, until training gives them weight."""
    model, _ = trained
    flow = ExpFlow(len(face.names), dataclasses.replace(TINY, phone_dim=4), seed=3)
    model.initialise_flow(flow)
    seq = load_split(toy, "val")[0]
    windows = torch.as_tensor(frame_windows(seq.audio, TINY.audio_before, TINY.audio_after))[None]
    source, label = torch.as_tensor(seq.beta0)[None], torch.tensor([emotion_index(seq.emotion)])
    phones = torch.randint(1, 22, windows.shape[:3], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(flow.static_context(windows, source, label, phones=phones),
                                   model.conditioner.static_context(windows, source, label))


def test_a_flow_of_another_width_is_refused(trained, face) -> None:
    model, _ = trained
    wider = dataclasses.replace(TINY, exp=dataclasses.replace(TINY.exp, context_dim=2 * TINY.exp.context_dim))
    with pytest.raises(RegressorError, match="does not fit this flow"):
        model.initialise_flow(ExpFlow(len(face.names), wider, seed=0))


def test_training_lowers_the_error_and_the_jaw_follows_the_audio(trained, toy) -> None:
    model, history = trained
    assert history[-1] < 0.9 * history[0]  # most toy channels are unpredictable noise: the floor is high
    jaw = model.names.index("jawOpen")
    correlations = []
    for seq in load_split(toy, "val"):
        predicted = model.predict(seq.audio, seq.beta0, seq.emotion)
        correlations.append(np.corrcoef(predicted[:, jaw], drive_signal(seq.audio))[0, 1])
    assert min(correlations) > 0.8


def test_predictions_are_deterministic_and_inside_the_bounds(trained, toy, face) -> None:
    """Inside the face model's range, with lips that never pass through each other (the toy's
    random channels put mouthClose above jawOpen often; predictions never do)."""
    model, _ = trained
    seq = load_split(toy, "val")[0]
    first = model.predict(seq.audio, seq.beta0, seq.emotion)
    np.testing.assert_array_equal(first, model.predict(seq.audio, seq.beta0, seq.emotion))
    assert first.shape == seq.exp.shape
    assert (first >= face.lower - 1e-6).all() and (first <= face.upper + 1e-6).all()
    jaw, close = lip_columns(face.names)
    assert (seq.exp[:, close] > seq.exp[:, jaw]).any()
    assert (first[:, close] <= first[:, jaw]).all()


def test_the_same_seed_trains_the_same_weights(toy, face) -> None:
    train = load_split(toy, "train")
    a, _ = train_regressor(train, TINY, face, steps=5, batch_size=8, show_progress=False)
    b, _ = train_regressor(train, TINY, face, steps=5, batch_size=8, show_progress=False)
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=key)


def test_weights_round_trip_and_refuse_another_face_model(trained, toy, face, tmp_path) -> None:
    model, history = trained
    save_regressor(tmp_path / "reg", model, {"loss": history})
    loaded = load_regressor(tmp_path / "reg", face)
    seq = load_split(toy, "val")[1]
    np.testing.assert_array_equal(loaded.predict(seq.audio, seq.beta0, seq.emotion),
                                  model.predict(seq.audio, seq.beta0, seq.emotion))
    other = dataclasses.replace(face, names=tuple(f"x{i}" for i in range(len(face.names))))
    with pytest.raises(RegressorError, match="another face model"):
        load_regressor(tmp_path / "reg", other)
    with pytest.raises(RegressorError, match="no readable regressor"):
        load_regressor(tmp_path / "missing", face)
