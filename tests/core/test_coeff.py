"""core.coeff: ExpFlow/PoseFlow contexts and losses, batched seeded sampling, emotion intensity and
transfer, manifold projection, weights on disk."""

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.coeff import sampler
from core.coeff.bank import project_to_manifold
from core.coeff.config import PRESETS, CoeffConfig, ConfigError
from core.coeff.model import CoeffModel, limit_lips, lip_columns
from core.face.rig import STYLE_PREFIXES
from core.coeff.sampler import (
    GenerationCancelled,
    SampleSettings,
    _Rollout,
    _run,
    SettingsError,
    exaggerate,
    latent_centres,
    sample_takes,
    take_styles,
)
from core.coeff.weights import WeightsError, load_weights, save_weights
from core.emotions import EMOTIONS, UnknownEmotionError, emotion_index
from core.eval.metrics import blink_count
from core.gaze import GAZE_CHANNELS, look_angles
from core.face.model import FaceModel
from core.visemes import VISEME_CLASSES

TINY = PRESETS["tiny"]
FRAMES = 30
AUDIO_WIDTH = TINY.audio_width


def perturbed_model(face: FaceModel, seed: int = 0, config: CoeffConfig = TINY) -> CoeffModel:
    """A tiny model with every parameter moved off its (identity-coupling) initial value.

    The 1×1 linears' triangular factors move less: random 52×52 unit-triangular factors with
    large entries are so ill-conditioned that float32 cannot invert them, which training never
    produces. The context maps (`ContextAffine`, transform 1) and the β_pre weights (``dynamic``)
    move less too: random large ones make each generated frame amplify the rounding error of the
    frame before, so a take drifts from the exact inverse, which training never produces either.
    Its style prior is fitted to random sequence offsets (a spread of 0.1 per channel) at random
    intensities.
    """
    model = CoeffModel(config, face.names, face.id, face.lower, face.upper, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    offsets = 0.1 * torch.rand(90, face.n_expressions, generator=generator)
    intensities = 0.1 + 0.9 * torch.rand(90, generator=generator)
    model.exp_flow.set_style_prior(offsets, torch.arange(90) % len(EMOTIONS), intensities)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            gentle = name.endswith(("lower", "upper")) or ".flow.transforms.1." in name or ".dynamic." in name
            scale = 0.01 if gentle else 0.2
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def audio_features(seed: int = 0, frames: int = FRAMES) -> np.ndarray:
    """Random normalised audio rows. Shapes: -> (T, audio_width)."""
    return np.random.default_rng(seed).standard_normal((frames, AUDIO_WIDTH)).astype(np.float32)


def window_batch(face: FaceModel, seed: int = 0, batch: int = 3, length: int = 5) -> dict[str, torch.Tensor]:
    """A batch in `core.formats.dataset.WindowSampler`'s layout with random contents."""
    generator = torch.Generator().manual_seed(seed)
    total = TINY.tau + length
    dim = face.n_expressions
    return {
        "exp": torch.rand(batch, total, dim, generator=generator),
        "pose": 0.05 * torch.randn(batch, total, 6, generator=generator),
        "available": torch.ones(batch, total, dtype=torch.bool),
        "audio": torch.randn(batch, length, TINY.audio_window, AUDIO_WIDTH, generator=generator),
        "label": torch.arange(batch) % len(EMOTIONS),
        "beta0": torch.zeros(batch, dim),
        "style": 0.1 * torch.rand(batch, dim, generator=generator),
    }


@pytest.fixture(scope="module")
def model(face: FaceModel) -> CoeffModel:
    return perturbed_model(face)


def zeros_source(model: CoeffModel) -> np.ndarray:
    return np.zeros(model.dim, np.float32)


# --- config ---------------------------------------------------------------------------------


def test_config_round_trips_through_a_dict_and_rejects_unknown_keys() -> None:
    assert CoeffConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ConfigError, match="unknown key"):
        CoeffConfig.from_dict({**TINY.to_dict(), "depth": 3})
    with pytest.raises(ConfigError, match="exp.steps"):
        CoeffConfig.from_dict({"exp": {"steps": 0}})
    with pytest.raises(ConfigError, match="nu"):
        CoeffConfig.from_dict({"nu": "five"})


def test_partial_config_keeps_defaults_for_missing_keys() -> None:
    config = CoeffConfig.from_dict({"exp": {"hidden": 32, "heads": 2}})
    assert config.exp.hidden == 32 and config.exp.steps == CoeffConfig().exp.steps
    assert config.pose == CoeffConfig().pose


# --- model: contexts and losses -------------------------------------------------------------


def test_model_dimension_comes_from_the_face_model(face: FaceModel) -> None:
    names = face.names[:7]
    small = CoeffModel(replace(TINY, lip_gap=False), names, "custom@1", np.zeros(7), np.ones(7))
    assert small.dim == 7 and small.exp_flow.prior.means.shape == (len(EMOTIONS), 7)
    assert small.lips is None and small.exp_flow.standardize.gap is None


def test_the_lip_gap_needs_a_jaw_and_a_lip_closing_channel(face: FaceModel) -> None:
    model = CoeffModel(TINY, face.names, face.id, face.lower, face.upper)
    jaw, close = face.names.index("jawOpen"), face.names.index("mouthClose")
    assert model.lips == (jaw, close) and model.exp_flow.standardize.gap == (jaw, close)
    assert model.pose_flow.standardize.gap is None
    names = [name for name in face.names if name != "mouthClose"]
    with pytest.raises(ConfigError, match="lip_gap needs .*mouthClose"):
        CoeffModel(TINY, names, "custom@1", np.zeros(len(names)), np.ones(len(names)))


def test_same_seed_builds_the_same_model(face: FaceModel) -> None:
    first = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=3).state_dict()
    second = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=3).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_loss_is_finite_and_trains_every_parameter(face: FaceModel) -> None:
    """Once the couplings' zero-initialised heads have moved, every parameter learns: both audio
    encoders, the context layers, the emotion embedding and every flow step."""
    trained = perturbed_model(face).train()
    losses = trained.loss(window_batch(face), torch.Generator().manual_seed(0))
    assert all(torch.isfinite(value) for value in losses.values())
    losses["loss"].backward()
    starved = [name for name, p in trained.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert starved == []


def test_a_fresh_model_starts_with_identity_couplings_and_context_map(face: FaceModel) -> None:
    fresh = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=0)
    located, first_step = fresh.exp_flow.flow.transforms[1:3]
    x = torch.rand(3, fresh.dim)
    context = torch.randn(3, TINY.exp.context_dim)
    for transform in (located, first_step.transforms[2]):
        z, logdet = transform(x, context)
        assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(3))


def test_exp_log_prob_uses_the_class_conditional_t_density(face: FaceModel, model: CoeffModel) -> None:
    flow = model.exp_flow
    x = torch.rand(4, model.dim)
    context = torch.randn(4, TINY.exp.context_dim)
    label = torch.tensor([0, 3, 5, 8])
    z, logdet = flow.flow(x, context, label)
    expected = flow.prior.log_prob_class(z, label) + logdet
    torch.testing.assert_close(flow.log_prob(x, context, label), expected)


def test_look_ahead_audio_changes_the_current_frame(model: CoeffModel) -> None:
    """Audio `audio_after` frames ahead is in frame t's context; audio further ahead is not."""
    audio = audio_features(1)
    settings = SampleSettings(takes=1, seed=4, manifold_blend=0.0, pose=False)
    base, _ = sample_takes(model, audio, zeros_source(model), settings)
    t = 10
    near, far = audio.copy(), audio.copy()
    near[t + TINY.audio_after] += 3.0
    far[t + TINY.audio_after + 1] += 3.0
    with_near, _ = sample_takes(model, near, zeros_source(model), settings)
    with_far, _ = sample_takes(model, far, zeros_source(model), settings)
    assert not np.allclose(with_near[0, t], base[0, t])
    np.testing.assert_array_equal(with_far[0, : t + 1], base[0, : t + 1])


def test_a_source_expression_enters_the_context_clipped_to_the_training_range(face: FaceModel) -> None:
    fresh = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=0)
    flow = fresh.exp_flow
    audio, label = torch.zeros(1, 3, TINY.audio_window, TINY.audio_width), torch.tensor([0])
    wild = torch.full((1, fresh.dim), 0.9)
    unclipped = flow.static_context(audio, wild, label)
    training = torch.rand(20, fresh.dim) * torch.linspace(0.0, 0.3, fresh.dim)  # channel 0 never used
    fresh.set_statistics(torch.rand(50, fresh.dim), torch.rand(50, 6), training, torch.rand(20, fresh.dim),
                         torch.arange(20) % len(EMOTIONS), torch.ones(20))
    torch.testing.assert_close(flow.source_lower, training.min(0).values)
    torch.testing.assert_close(flow.source_upper, training.max(0).values)
    edge = training.max(0).values[None]
    torch.testing.assert_close(flow.static_context(audio, wild, label), flow.static_context(audio, edge, label))
    inside = training[:1]
    assert not torch.allclose(flow.static_context(audio, inside, label), flow.static_context(audio, edge, label))
    assert not torch.allclose(unclipped, flow.static_context(audio, edge, label))


def test_missing_previous_frames_contribute_nothing_to_the_context(model: CoeffModel) -> None:
    flow = model.exp_flow
    static = torch.randn(2, TINY.exp.context_dim)
    absent = torch.zeros(2, TINY.exp.tau)
    first = flow.frame_context(static, torch.rand(2, TINY.exp.tau, model.dim), absent)
    second = flow.frame_context(static, torch.rand(2, TINY.exp.tau, model.dim), absent)
    torch.testing.assert_close(first, second)
    present = torch.ones(2, TINY.exp.tau)
    assert not torch.allclose(
        flow.frame_context(static, torch.rand(2, TINY.exp.tau, model.dim), present), first
    )


def test_data_dropout_of_one_removes_the_history_from_training(face: FaceModel) -> None:
    """With dropout 1 the loss cannot depend on β_pre; with dropout 0 it does."""
    def loss_with(dropout: float, history_scale: float) -> float:
        config = replace(TINY, exp=replace(TINY.exp, dropout=dropout, noise_std=0.0))
        fresh = CoeffModel(config, face.names, face.id, face.lower, face.upper, seed=0)
        with torch.no_grad():
            for parameter in fresh.parameters():
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(9)))
        batch = window_batch(face)
        batch["exp"][:, : config.tau] *= history_scale
        return float(fresh.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))["nll"])

    assert loss_with(1.0, 1.0) == pytest.approx(loss_with(1.0, 0.2), abs=1e-5)
    assert loss_with(0.0, 1.0) != pytest.approx(loss_with(0.0, 0.2), abs=1e-3)


def test_emotion_dropout_of_one_trains_every_context_on_the_talk_embedding(face: FaceModel) -> None:
    """With emotion_dropout 1 the loss cannot depend on a class's own embedding row (only talk's);
    with 0 it does; the prior component and ActNorm rows stay the class's own either way."""
    def loss_with(dropout: float, row_scale: float) -> float:
        fresh = CoeffModel(replace(TINY, emotion_dropout=dropout), face.names, face.id, face.lower, face.upper, seed=0)
        fresh.load_state_dict(perturbed_model(face, seed=4).state_dict())
        batch = window_batch(face, seed=7)
        batch["label"] = torch.full_like(batch["label"], emotion_index("sad"))
        with torch.no_grad():
            fresh.exp_flow.emotion.weight[emotion_index("sad")] *= row_scale
        return float(fresh.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))["nll"])

    assert loss_with(1.0, 1.0) == pytest.approx(loss_with(1.0, 5.0), abs=1e-5)
    assert loss_with(0.0, 1.0) != pytest.approx(loss_with(0.0, 5.0), abs=1e-3)
    with pytest.raises(ConfigError, match=r"emotion_dropout must be in \[0, 1\]"):
        replace(TINY, emotion_dropout=1.5).check()


PHONES = replace(TINY, phone_dim=4)


def phone_batch(face: FaceModel, exact_seed: int, heard_seed: int) -> dict[str, torch.Tensor]:
    """`window_batch` with random exact and heard viseme windows."""
    batch = window_batch(face, seed=7)
    shape = batch["audio"].shape[:3]
    for key, seed in (("phones", exact_seed), ("heard", heard_seed)):
        batch[key] = torch.randint(0, len(VISEME_CLASSES), shape, generator=torch.Generator().manual_seed(seed))
    return batch


def test_phone_input_enters_expflows_context_and_unknown_phones_are_no_phones(face: FaceModel) -> None:
    model = perturbed_model(face, 4, PHONES)
    flow = model.exp_flow
    audio = torch.randn(1, FRAMES, TINY.audio_window, AUDIO_WIDTH, generator=torch.Generator().manual_seed(2))
    source, label = torch.zeros(1, model.dim), torch.tensor([emotion_index("talk")])
    phones = torch.randint(1, len(VISEME_CLASSES), (1, FRAMES, TINY.audio_window), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        told = flow.static_context(audio, source, label, phones=phones)
        unknown = flow.static_context(audio, source, label, phones=torch.zeros_like(phones))
        torch.testing.assert_close(flow.static_context(audio, source, label), unknown)
    assert (told - unknown).abs().mean() > 0.05
    assert not any("phone" in key for key in perturbed_model(face).state_dict())  # phone_dim 0: no phone input


@pytest.mark.parametrize("dropout, heard_share, reads", [(1.0, 0.5, ()), (0.0, 1.0, ("heard",)), (0.0, 0.0, ("phones",))])
def test_training_reads_no_phones_the_heard_or_the_exact_ones_as_configured(
    face: FaceModel, dropout: float, heard_share: float, reads: tuple[str, ...]
) -> None:
    """The window loss depends on exactly the phones the config makes it read (`ExpFlow.training_inputs`)."""
    model = perturbed_model(face, 4, replace(PHONES, phone_dropout=dropout, heard_share=heard_share))

    def nll(exact_seed: int, heard_seed: int) -> float:
        batch = phone_batch(face, exact_seed, heard_seed)
        return float(model.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))["nll"])

    base = nll(1, 2)
    assert (nll(3, 2) != pytest.approx(base, abs=1e-4)) == ("phones" in reads)
    assert (nll(1, 3) != pytest.approx(base, abs=1e-4)) == ("heard" in reads)
    with pytest.raises(ConfigError, match=r"phone_dropout must be in \[0, 1\]"):
        replace(PHONES, phone_dropout=-0.1).check()
    with pytest.raises(ConfigError, match="phone_dim must be >= 0"):
        replace(PHONES, phone_dim=-1).check()


@pytest.mark.parametrize("phone_dropout, audio_dropout, hears", [(0.0, 1.0, False), (0.0, 0.0, True), (1.0, 1.0, True)])
def test_audio_dropout_makes_windows_that_read_phones_learn_from_the_phones_alone(
    face: FaceModel, phone_dropout: float, audio_dropout: float, hears: bool
) -> None:
    """Windows reading phones read zeros for audio with probability ``audio_dropout``; windows
    without phones always hear their audio."""
    config = replace(PHONES, phone_dropout=phone_dropout, heard_share=0.0, audio_dropout=audio_dropout)
    model = perturbed_model(face, 4, config)

    def nll(audio_scale: float) -> float:
        batch = phone_batch(face, 1, 2)
        batch["audio"] = audio_scale * batch["audio"]
        return float(model.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))["nll"])

    assert (nll(1.0) != pytest.approx(nll(3.0), abs=1e-4)) == hears
    with pytest.raises(ConfigError, match=r"audio_dropout must be in \[0, 1\]"):
        replace(PHONES, audio_dropout=2.0).check()


def test_consistency_loss_needs_frame_pairs(face: FaceModel) -> None:
    """L_con compares frame-to-frame differences: a window of one frame has none, a longer one does."""
    model = perturbed_model(face, seed=2)
    batch = window_batch(face, seed=5)
    assert float(model.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))["con"]) > 0
    single = {**batch, "audio": batch["audio"][:, :1]}
    for key in ("exp", "pose", "available"):
        single[key] = batch[key][:, : TINY.tau + 1]
    assert float(model.exp_flow.window_loss(single, torch.Generator().manual_seed(0))["con"]) == 0.0



def test_rec_weight_adds_the_squared_error_of_the_context_location(face: FaceModel) -> None:
    """L_rec is the mean squared error, in the flow's standardised coordinates (the lip gap among
    them), of the context map's location m(c) against the truth; rec_weight adds it to the loss,
    and 0 keeps the paper's loss."""
    batch = window_batch(face, seed=6)
    losses = {}
    for weight in (0.0, 2.0):
        config = replace(TINY, seal_depth=0.0,
                         exp=replace(TINY.exp, rec_weight=weight, dropout=0.0, noise_std=0.0))
        model = CoeffModel(config, face.names, face.id, face.lower, face.upper, seed=0)
        model.load_state_dict(perturbed_model(face, seed=2).state_dict())
        losses[weight] = model.exp_flow.window_loss(batch, torch.Generator().manual_seed(0))
    flow = model.exp_flow
    with torch.no_grad():
        static = flow.static_context(batch["audio"], batch["beta0"], batch["label"], flow.batch_style(batch))
        context = flow.window_contexts(batch["exp"], batch["available"], static)
        shift = flow.located.net(context)[:, : model.dim]
        truth = batch["exp"][:, TINY.tau:].reshape(-1, model.dim)
        expected = (shift - flow.standardize(truth)[0]).square().mean()
    assert float(losses[0.0]["rec"]) == 0.0
    assert float(losses[2.0]["rec"]) == pytest.approx(float(expected), rel=1e-5)
    assert float((losses[2.0]["loss"] - losses[0.0]["loss"]).detach()) == pytest.approx(2.0 * float(expected), rel=1e-4)


def test_closed_lips_are_dequantised_below_the_gap_limit_and_nothing_else_moves(face: FaceModel) -> None:
    """Training frames whose lips meet (mouthClose >= jawOpen) become gaps of -seal_depth·|noise|
    by a lower jawOpen; open frames and every other channel keep the ordinary dequantised values."""
    config = replace(TINY, seal_depth=0.05)
    flow = CoeffModel(config, face.names, face.id, face.lower, face.upper).exp_flow
    jaw, close = lip_columns(face.names)
    clean = torch.rand(40, face.n_expressions, generator=torch.Generator().manual_seed(3))
    clean[::2, close] = clean[::2, jaw]  # even frames sealed, odd frames open by construction
    clean[1::2, close] = 0.5 * clean[1::2, jaw]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(4))
    data = clean + 0.01 * noise
    pressed = flow.press_closed(data, clean, noise)
    gap = pressed[:, jaw] - pressed[:, close]
    torch.testing.assert_close(gap[::2], -0.05 * noise[::2, jaw].abs())
    torch.testing.assert_close(pressed[1::2], data[1::2])
    others = [k for k in range(face.n_expressions) if k != jaw]
    torch.testing.assert_close(pressed[:, others], data[:, others])
    flow.seal_depth = 0.0
    torch.testing.assert_close(flow.press_closed(data, clean, noise), data)


# --- sampling -------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_take(model: CoeffModel) -> None:
    settings = SampleSettings(takes=2, seed=11, manifold_blend=0.0)
    first = sample_takes(model, audio_features(), zeros_source(model), settings)
    second = sample_takes(model, audio_features(), zeros_source(model), settings)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0][0], first[0][1])


def test_takes_follow_the_visemes_they_are_given_and_the_same_seed_gives_the_same_take(face: FaceModel) -> None:
    model = perturbed_model(face, 4, PHONES)
    settings = SampleSettings(takes=2, seed=11, manifold_blend=0.0)
    visemes = np.random.default_rng(0).integers(1, len(VISEME_CLASSES), FRAMES).astype(np.uint8)
    told = sample_takes(model, audio_features(), zeros_source(model), settings, visemes=visemes)[0]
    np.testing.assert_array_equal(told, sample_takes(model, audio_features(), zeros_source(model), settings,
                                                     visemes=visemes)[0])
    unknown = sample_takes(model, audio_features(), zeros_source(model), settings,
                           visemes=np.zeros(FRAMES, np.uint8))[0]
    np.testing.assert_array_equal(unknown, sample_takes(model, audio_features(), zeros_source(model), settings)[0])
    assert np.abs(told - unknown).mean() > 1e-3
    with pytest.raises(SettingsError, match="one class per frame"):
        sample_takes(model, audio_features(), zeros_source(model), settings, visemes=visemes[:-1])


def test_a_take_does_not_depend_on_the_batch_it_was_generated_in(model: CoeffModel) -> None:
    batch_exp, batch_pose = sample_takes(
        model, audio_features(), zeros_source(model), SampleSettings(takes=4, seed=20, manifold_blend=0.0)
    )
    single_exp, single_pose = sample_takes(
        model, audio_features(), zeros_source(model), SampleSettings(takes=1, seed=22, manifold_blend=0.0)
    )
    np.testing.assert_allclose(batch_exp[2], single_exp[0], atol=1e-5)
    np.testing.assert_allclose(batch_pose[2], single_pose[0], atol=1e-5)


def test_sampling_follows_parameter_updates_after_a_compiled_run(face: FaceModel) -> None:
    """The compiled frame step is reused only while no parameter changed."""
    model = perturbed_model(face, seed=7)
    settings = SampleSettings(takes=2, seed=2, manifold_blend=0.0)
    before = sample_takes(model, audio_features(), zeros_source(model), settings)[0]
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.05)
    after = sample_takes(model, audio_features(), zeros_source(model), settings)[0]
    fresh = CoeffModel(TINY, face.names, face.id, face.lower, face.upper)
    fresh.load_state_dict(model.state_dict())
    expected = sample_takes(fresh.eval(), audio_features(), zeros_source(fresh), settings)[0]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, atol=1e-6)


def test_samples_respect_the_face_model_bounds(model: CoeffModel) -> None:
    exp, _ = sample_takes(model, audio_features(), zeros_source(model),
                          SampleSettings(takes=3, temperature=2.0, manifold_blend=0.0))
    assert (exp >= model.lower.numpy() - 1e-7).all() and (exp <= model.upper.numpy() + 1e-7).all()


def test_samples_never_push_the_lips_through_each_other(model: CoeffModel) -> None:
    """At a high temperature the flow draws many gaps below 0; every one comes out as lips that
    meet exactly (mouthClose == jawOpen), never as mouthClose above jawOpen."""
    exp, _ = sample_takes(model, audio_features(), zeros_source(model),
                          SampleSettings(takes=3, temperature=2.0, manifold_blend=0.0))
    jaw, close = model.lips
    assert (exp[..., close] <= exp[..., jaw]).all()
    assert (exp[..., close] == exp[..., jaw]).mean() > 0.05
    frame = torch.tensor([[0.2, 0.5, 0.1], [0.4, 0.3, 0.9]])
    torch.testing.assert_close(limit_lips(frame, (0, 1)), torch.tensor([[0.2, 0.2, 0.1], [0.4, 0.3, 0.9]]))


def test_head_poses_stay_inside_the_training_range_of_poses(face: FaceModel) -> None:
    """A take at a high head-motion temperature is held to the range of the training poses, on
    every frame, however far its flow would take it."""
    model = perturbed_model(face, seed=3)
    poses = 0.01 * torch.randn(200, 6, generator=torch.Generator().manual_seed(1))
    offsets, labels = torch.zeros(9, model.dim), torch.arange(9)
    model.set_statistics(torch.rand(200, model.dim), poses, torch.zeros(9, model.dim), offsets, labels,
                         torch.ones(9))
    _, pose = sample_takes(model, audio_features(), zeros_source(model),
                           SampleSettings(takes=3, pose_temperature=2.0, manifold_blend=0.0))
    lower, upper = poses.min(0).values.numpy(), poses.max(0).values.numpy()
    assert (pose >= lower).all() and (pose <= upper).all()
    assert ((pose == lower) | (pose == upper)).any()  # the flow alone would have left the range


def test_each_flow_starts_from_its_own_seed(face: FaceModel) -> None:
    """PoseFlow's initial weights do not depend on ExpFlow's shape, so a change to ExpFlow leaves
    head-motion training where it was."""
    plain = CoeffModel(replace(TINY, take_style=False), face.names, face.id, face.lower, face.upper, seed=2)
    styled = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=2)
    for (name, a), b in zip(plain.pose_flow.state_dict().items(), styled.pose_flow.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    other = CoeffModel(TINY, face.names, face.id, face.lower, face.upper, seed=3)
    assert not torch.equal(other.pose_flow.static.weight, styled.pose_flow.static.weight)


def test_pose_off_gives_zeros_and_leaves_expressions_unchanged(model: CoeffModel) -> None:
    """Without the gaze layer (whose eyes turn against the head) the head pose touches no expression."""
    on = sample_takes(model, audio_features(), zeros_source(model),
                      SampleSettings(seed=3, manifold_blend=0.0, gaze=False))
    off = sample_takes(model, audio_features(), zeros_source(model),
                       SampleSettings(seed=3, manifold_blend=0.0, pose=False, gaze=False))
    np.testing.assert_array_equal(on[0], off[0])
    assert np.abs(on[1]).sum() > 0
    assert not off[1].any()


def test_takes_blink_on_their_own_seeds_and_blinks_off_leaves_only_the_flow(model: CoeffModel) -> None:
    """Thirty seconds of a happy take: the blink layer closes both eyes several times, at times
    that differ between takes, and touches no other channel."""
    audio = audio_features(2, frames=750)
    common = dict(emotion="happy", takes=2, seed=5, manifold_blend=0.0, pose=False)
    on, _ = sample_takes(model, audio, zeros_source(model), SampleSettings(**common))
    off, _ = sample_takes(model, audio, zeros_source(model), SampleSettings(**common, blinks=False))
    eyes = [model.names.index(name) for name in ("eyeBlinkLeft", "eyeBlinkRight")]
    others = [k for k in range(model.dim) if k not in eyes]
    np.testing.assert_array_equal(on[..., others], off[..., others])
    counts = [blink_count(take, model.names) for take in on]
    assert min(counts) >= 2 and min(counts) > max(blink_count(take, model.names) for take in off)
    assert not np.allclose(on[0][:, eyes], on[1][:, eyes])


def test_takes_move_their_eyes_on_their_own_seeds_and_gaze_off_leaves_the_flow(model: CoeffModel) -> None:
    """Thirty seconds of a talk take: the gaze layer moves only the eight eyeLook channels, by
    several degrees, differently per take, and differently with the head still (the eyes turn
    against the head: `core.gaze.eye_angles`, tested in test_gaze)."""
    audio = audio_features(3, frames=750)
    common = dict(takes=2, seed=7, manifold_blend=0.0, blinks=False)
    on, _ = sample_takes(model, audio, zeros_source(model), SampleSettings(**common))
    off, _ = sample_takes(model, audio, zeros_source(model), SampleSettings(**common, gaze=False))
    still, _ = sample_takes(model, audio, zeros_source(model), SampleSettings(**common, pose=False))
    eyes = [model.names.index(name) for name in GAZE_CHANNELS]
    others = [k for k in range(model.dim) if k not in eyes]
    np.testing.assert_array_equal(on[..., others], off[..., others])
    turn = [look_angles(take[:, eyes]) - look_angles(flat[:, eyes]) for take, flat in zip(on, off)]
    assert min(np.ptp(angles[:, 0]) for angles in turn) > 5.0  # degrees of left-eye yaw
    assert not np.allclose(turn[0], turn[1])
    np.testing.assert_array_equal(still[0][:, others], off[0][:, others])
    assert not np.allclose(still[0][:, eyes], on[0][:, eyes])


def test_pose_amount_scales_the_head_motion(model: CoeffModel) -> None:
    full = sample_takes(model, audio_features(), zeros_source(model), SampleSettings(seed=3, manifold_blend=0.0))
    half = sample_takes(model, audio_features(), zeros_source(model),
                        SampleSettings(seed=3, manifold_blend=0.0, pose_amount=0.5))
    np.testing.assert_allclose(half[1], 0.5 * full[1], atol=1e-7)


def test_temperature_zero_removes_take_to_take_variation(model: CoeffModel) -> None:
    exp, pose = sample_takes(model, audio_features(), zeros_source(model),
                             SampleSettings(takes=3, temperature=0.0, pose_temperature=0.0,
                                            style_temperature=0.0, manifold_blend=0.0))
    np.testing.assert_allclose(exp[0], exp[2], atol=1e-6)
    np.testing.assert_allclose(pose[0], pose[1], atol=1e-6)


def test_each_temperature_spreads_only_its_own_flow(model: CoeffModel) -> None:
    """temperature varies the expressions between takes and leaves the head motion as it is;
    pose_temperature the other way round; style_temperature varies the expressions only."""
    def takes(temperature: float, pose_temperature: float, style: float = 0.0) -> tuple[np.ndarray, ...]:
        return sample_takes(model, audio_features(), zeros_source(model), SampleSettings(
            takes=2, seed=4, temperature=temperature, pose_temperature=pose_temperature,
            style_temperature=style, manifold_blend=0.0, blinks=False, gaze=False))
    still_head, moving_head = takes(0.7, 0.0), takes(0.7, 0.7)
    np.testing.assert_array_equal(still_head[0], moving_head[0])
    np.testing.assert_allclose(still_head[1][0], still_head[1][1], atol=1e-5)
    assert not np.allclose(moving_head[1][0], moving_head[1][1])
    still_face = takes(0.0, 0.7)
    np.testing.assert_array_equal(still_face[1], moving_head[1])
    np.testing.assert_allclose(still_face[0][0], still_face[0][1], atol=1e-5)
    assert not np.allclose(moving_head[0][0], moving_head[0][1])
    styled = takes(0.0, 0.7, style=1.0)
    np.testing.assert_array_equal(styled[1], moving_head[1])
    assert not np.allclose(styled[0][0], styled[0][1])


def test_the_style_prior_is_each_emotions_line_of_sequence_styles_in_their_intensity(face: FaceModel) -> None:
    """Per emotion, the least-squares line of its sequences' styles in their intensities (the value
    at intensity 1 and the slope) and the covariance (factor · factorᵀ) around it; an emotion whose
    sequences share one intensity goes from talk's style at intensity 0 to its own mean at 1; an
    emotion with fewer than two sequences gets the pooled fit of all of them."""
    flow = CoeffModel(TINY, face.names, face.id, face.lower, face.upper).exp_flow
    columns = [face.names.index(name) for name in face.names if name.startswith(STYLE_PREFIXES)]
    styled = {face.names[c] for c in columns}
    assert list(flow.style) == columns and {"browInnerUp", "mouthSmileLeft", "mouthStretchRight"} <= styled
    assert not {"jawOpen", "mouthClose", "mouthFunnel", "eyeBlinkLeft"} & styled
    generator = torch.Generator().manual_seed(2)
    size = len(columns)
    sad, talk, fear, angry = (emotion_index(name) for name in ("sad", "talk", "fear", "angry"))
    start, apex = torch.rand(size, dtype=torch.float64, generator=generator), torch.rand(size, dtype=torch.float64,
                                                                                        generator=generator)
    intensities = torch.linspace(0.1, 1.0, 400, dtype=torch.float64)
    scatter = 0.05 * torch.randn(400, size, dtype=torch.float64, generator=generator)
    offsets = torch.zeros(441, face.n_expressions, dtype=torch.float64)
    offsets[:400, columns] = start + intensities[:, None] * (apex - start) + scatter
    offsets[400:440, columns] = torch.rand(40, size, dtype=torch.float64, generator=generator)
    labels = torch.tensor([sad] * 400 + [talk] * 40 + [fear])
    levels = torch.cat([intensities, torch.ones(41, dtype=torch.float64)])
    flow.set_style_prior(offsets, labels, levels)
    torch.testing.assert_close(flow.style_mean[sad].double(), apex, atol=0.02, rtol=0)
    torch.testing.assert_close(flow.style_slope[sad].double(), apex - start, atol=0.05, rtol=0)
    factor = flow.style_factor[sad].double()
    torch.testing.assert_close(factor @ factor.T, torch.cov(scatter.T), atol=1e-3, rtol=0)
    talk_styles = offsets[400:440, columns]
    torch.testing.assert_close(flow.style_mean[talk].double(), talk_styles.mean(0), atol=1e-6, rtol=0)
    # talk's own intensities do not spread: its line starts and ends at its mean
    torch.testing.assert_close(flow.style_slope[talk].double(), torch.zeros(size, dtype=torch.float64))
    # angry has no sequences: the pooled line; fear has one: the pooled line too
    torch.testing.assert_close(flow.style_mean[angry], flow.style_mean[fear])


def test_takes_draw_their_style_from_the_emotion_and_a_reference_brings_its_own(model: CoeffModel) -> None:
    """At style_temperature 0 every take has the emotion's style at the intensity (on its line);
    above it the styles spread with the emotion's covariance; a reference's takes all have the
    reference's mean offset from β₀."""
    flow, source = model.exp_flow, torch.zeros(model.dim)
    sad = emotion_index("sad")
    noise = torch.randn(4000, len(flow.style), generator=torch.Generator().manual_seed(0))
    settings = SampleSettings(emotion="sad", intensity=0.5, style_temperature=0.0)
    mean = take_styles(model, settings, source, noise[:3])
    torch.testing.assert_close(mean, (flow.style_mean[sad] - 0.5 * flow.style_slope[sad]).expand(3, -1))
    drawn = take_styles(model, SampleSettings(emotion="sad", style_temperature=2.0), source, noise)
    factor = flow.style_factor[sad]
    torch.testing.assert_close(torch.cov(drawn.T), 4.0 * factor @ factor.T, atol=2e-4, rtol=0.1)
    reference = np.random.default_rng(1).uniform(0.0, 0.5, (7, model.dim)).astype(np.float32)
    beta0 = torch.full((model.dim,), 0.1)
    transferred = take_styles(model, SampleSettings(reference=reference), beta0, noise[:2])
    expected = flow.style_of(torch.as_tensor(reference).mean(0) - 0.1)
    torch.testing.assert_close(transferred, expected.expand(2, -1))


def test_a_face_model_without_emotion_channels_needs_take_style_off(face: FaceModel) -> None:
    mouth = [name for name in face.names if name.startswith(("jaw", "mouth")) and not name.startswith(STYLE_PREFIXES)]
    bounds = np.zeros(len(mouth)), np.ones(len(mouth))
    with pytest.raises(ConfigError, match="take_style"):
        CoeffModel(TINY, mouth, "mouth@1", *bounds)
    plain = CoeffModel(replace(TINY, take_style=False), mouth, "mouth@1", *bounds)
    assert plain.exp_flow.style == () and "style_mean" not in plain.exp_flow.state_dict()


def test_intensity_moves_the_latent_centre_from_talk_to_the_emotion(model: CoeffModel) -> None:
    means = model.exp_flow.prior.means
    talk, happy = means[emotion_index("talk")], means[emotion_index("happy")]
    source = torch.zeros(model.dim)
    for intensity in (0.0, 0.5, 1.0):
        centres = latent_centres(model, SampleSettings(emotion="happy", intensity=intensity), source, 4)
        torch.testing.assert_close(centres, (talk + intensity * (happy - talk)).expand(4, -1))


def test_intensity_above_one_exaggerates_the_apex_take_in_the_emotion_channels_only(model: CoeffModel) -> None:
    """Above 1 the flows run at the apex (inputs they were trained on) and the emotion-bearing
    channels depart from β₀ further, clamped to the rig; the lips and blinks keep the apex take's."""
    audio, source = audio_features(seed=3), np.full(model.dim, 0.05, np.float32)
    fixed = dict(emotion="fear", seed=4, blinks=False, gaze=False, manifold_blend=0.0)
    apex = sample_takes(model, audio, source, SampleSettings(intensity=1.0, **fixed))[0]
    over = sample_takes(model, audio, source, SampleSettings(intensity=1.5, **fixed))[0]
    np.testing.assert_array_equal(over, exaggerate(apex, model, source, 1.5))
    names = list(model.names)
    style = [names.index(n) for n in names if n.startswith(STYLE_PREFIXES)]
    other = [i for i in range(model.dim) if i not in style]
    np.testing.assert_array_equal(over[..., other], apex[..., other])
    assert np.abs(over[..., style] - apex[..., style]).max() > 0.01
    expected = np.clip(source[style] + 1.5 * (apex[..., style] - source[style]),
                       model.lower.numpy()[style], model.upper.numpy()[style])
    np.testing.assert_allclose(over[..., style], expected, atol=1e-6)


def test_a_blend_mixes_two_emotions_in_the_latent_space_and_its_ends_are_single_emotions(model: CoeffModel) -> None:
    """Sad blended with angry at 0.3: the latent centre from the 70/30 mix of the two components,
    the take style from the 70/30 mix of their lines; weight 0 is sad alone, weight 1 angry alone."""
    means, flow = model.exp_flow.prior.means, model.exp_flow
    talk, sad, angry = (emotion_index(name) for name in ("talk", "sad", "angry"))
    source = torch.zeros(model.dim)
    mix = SampleSettings(emotion="sad", blend="angry", blend_weight=0.3, intensity=0.8, style_temperature=0.0,
                         manifold_blend=0.0, blinks=False, gaze=False)
    expected = means[talk] + 0.8 * (0.7 * means[sad] + 0.3 * means[angry] - means[talk])
    torch.testing.assert_close(latent_centres(model, mix, source, 3), expected.expand(3, -1))
    line = flow.style_mean - 0.2 * flow.style_slope
    torch.testing.assert_close(take_styles(model, mix, source, torch.zeros(1, len(flow.style)))[0],
                               0.7 * line[sad] + 0.3 * line[angry])
    audio = audio_features()
    alone = sample_takes(model, audio, zeros_source(model), replace(mix, blend=None))[0]
    np.testing.assert_array_equal(sample_takes(model, audio, zeros_source(model), replace(mix, blend_weight=0.0))[0],
                                  alone)
    other = sample_takes(model, audio, zeros_source(model), replace(mix, emotion="angry", blend=None))[0]
    np.testing.assert_array_equal(sample_takes(model, audio, zeros_source(model), replace(mix, blend_weight=1.0))[0],
                                  other)
    blended = sample_takes(model, audio, zeros_source(model), mix)[0]
    assert not np.allclose(blended, alone) and not np.allclose(blended, other)


def test_emotion_changes_the_generated_expressions(model: CoeffModel) -> None:
    angry = sample_takes(model, audio_features(), zeros_source(model),
                         SampleSettings(emotion="angry", manifold_blend=0.0))[0]
    happy = sample_takes(model, audio_features(), zeros_source(model),
                         SampleSettings(emotion="happy", manifold_blend=0.0))[0]
    assert np.abs(angry - happy).mean() > 1e-3


def test_emotion_transfer_reproduces_a_reference_played_in_its_own_context(model: CoeffModel) -> None:
    """z = f⁻¹(βʳ, c): with temperature 0 and the reference's own (silent) context, generation
    gives the reference sequence back frame for frame (a reference whose lips never pass through
    each other: mouthClose at most jawOpen, as `limit_lips` keeps every take)."""
    rng = np.random.default_rng(5)
    reference = rng.uniform(0.1, 0.9, (FRAMES, model.dim)).astype(np.float32)
    jaw, close = model.lips
    reference[:, close] = np.minimum(reference[:, close], reference[:, jaw])
    silent = np.zeros((FRAMES, AUDIO_WIDTH), np.float32)
    settings = SampleSettings(temperature=0.0, manifold_blend=0.0, reference=reference, pose=False)
    exp, _ = sample_takes(model, silent, zeros_source(model), settings)
    np.testing.assert_allclose(exp[0], reference, atol=2e-4)


def test_a_one_frame_reference_is_held_and_a_different_reference_changes_the_take(model: CoeffModel) -> None:
    rng = np.random.default_rng(6)
    first, second = rng.uniform(0.1, 0.9, (2, model.dim)).astype(np.float32)
    base = SampleSettings(temperature=0.0, manifold_blend=0.0, pose=False)
    centres = latent_centres(model, replace(base, reference=first), torch.zeros(model.dim), FRAMES)
    torch.testing.assert_close(centres, centres[:1].expand(FRAMES, -1))
    a = sample_takes(model, audio_features(), zeros_source(model), replace(base, reference=first))[0]
    b = sample_takes(model, audio_features(), zeros_source(model), replace(base, reference=second))[0]
    assert np.abs(a - b).mean() > 1e-3


def test_a_reference_sequence_is_played_back_and_forth(model: CoeffModel) -> None:
    reference = np.random.default_rng(8).uniform(0.1, 0.9, (4, model.dim)).astype(np.float32)
    settings = SampleSettings(temperature=0.0, manifold_blend=0.0, reference=reference)
    centres = latent_centres(model, settings, torch.zeros(model.dim), 9)
    order = [0, 1, 2, 3, 2, 1, 0, 1, 2]
    for t, k in enumerate(order):
        torch.testing.assert_close(centres[t], centres[order.index(k)])
    assert not torch.allclose(centres[0], centres[1])


def test_progress_reaches_one_in_order_and_cancel_stops_generation(model: CoeffModel) -> None:
    seen: list[float] = []
    sample_takes(model, audio_features(), zeros_source(model), SampleSettings(manifold_blend=0.0),
                 progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 10
    calls = []
    with pytest.raises(GenerationCancelled, match="frame 5"):
        sample_takes(model, audio_features(), zeros_source(model), SampleSettings(manifold_blend=0.0),
                     cancel=lambda: calls.append(1) or len(calls) > 5)


def test_the_flows_step_in_parallel_like_one_after_the_other_and_leave_the_thread_count(model: CoeffModel) -> None:
    """With two threads the pose flow steps on a worker thread beside the expression flow; with
    one they step one after the other. Only the reductions' thread count differs between them."""
    settings = SampleSettings(takes=2, seed=5, manifold_blend=0.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = sample_takes(model, audio_features(), zeros_source(model), settings)
        torch.set_num_threads(2)
        parallel = sample_takes(model, audio_features(), zeros_source(model), settings)
        assert torch.get_num_threads() == 2 and count_in_a_new_thread() == 2
    finally:
        torch.set_num_threads(before)
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(parallel[1]).max() > 1e-3  # the worker's pose is there, not zeros


def test_a_long_take_runs_in_chunks_that_give_the_frame_by_frame_take_and_report_between_them(
    model: CoeffModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SampleSettings(takes=2, seed=3, manifold_blend=0.0)
    long_audio = audio_features(frames=250)
    seen: list[float] = []
    chunked = sample_takes(model, long_audio, zeros_source(model), settings, progress=seen.append)
    assert len(seen) == 25 and seen == sorted(seen) and seen[-1] == 1.0  # chunks of 10 frames
    polls = []
    with pytest.raises(GenerationCancelled, match="at frame 20 of 250"):
        sample_takes(model, long_audio, zeros_source(model), settings, cancel=lambda: polls.append(1) or len(polls) > 2)
    monkeypatch.setattr(sampler, "MAX_CHUNK_FRAMES", 1)
    by_frame = sample_takes(model, long_audio, zeros_source(model), settings)
    for a, b in zip(chunked, by_frame):
        np.testing.assert_array_equal(a, b)


def count_in_a_new_thread() -> int:
    """The intra-op thread count a thread started now gets (the count is process-wide)."""
    seen = []
    reader = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    reader.start()
    reader.join()
    return seen[0]


def rollout_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("flowvq-rollout")]


def test_a_cancel_or_a_failing_flow_stops_both_parallel_rollouts(model: CoeffModel) -> None:
    before = torch.get_num_threads()
    calls = []
    try:
        torch.set_num_threads(2)
        with pytest.raises(GenerationCancelled, match="frame 5"):
            sample_takes(model, audio_features(), zeros_source(model), SampleSettings(manifold_blend=0.0),
                         cancel=lambda: calls.append(1) or len(calls) > 5)
        assert rollout_threads() == []
        expression = _Rollout(model.exp_flow, torch.zeros(1, 200, model.exp_flow.settings.context_dim),
                              torch.zeros(1, 200, model.dim), torch.ones(1, len(EMOTIONS)) / len(EMOTIONS),
                              None, None)

        stepped_on: list[str] = []

        class FailingPose:
            def step(self, start: int, stop: int) -> None:
                stepped_on.append(threading.current_thread().name)
                if start >= 30:
                    raise RuntimeError("CUDA out of memory")

        done = []
        with pytest.raises(RuntimeError, match="out of memory"):
            _run([expression, FailingPose()], 200, done.append, None)
        assert stepped_on and all(name.startswith("flowvq-rollout") for name in stepped_on)  # beside, not after
        assert rollout_threads() == [] and (not done or done[-1] < 1.0)
        assert torch.get_num_threads() == 2 and count_in_a_new_thread() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"emotion": "bored"}, UnknownEmotionError, "bored"),
        ({"intensity": 1.51}, SettingsError, "intensity"),
        ({"blend": "bored", "blend_weight": 0.3}, UnknownEmotionError, "bored"),
        ({"blend": "sad", "blend_weight": 1.2}, SettingsError, "blend_weight"),
        ({"temperature": float("nan")}, SettingsError, "temperature"),
        ({"pose_temperature": 2.5}, SettingsError, "pose_temperature"),
        ({"style_temperature": -0.5}, SettingsError, "style_temperature"),
        ({"takes": 0}, SettingsError, "takes"),
        ({"seed": -1}, SettingsError, "seed"),
        ({"manifold_blend": 0.5}, SettingsError, "latent bank"),
        ({"manifold_k": 65}, SettingsError, "manifold_k must be from 1 to 64"),
        ({"manifold_k": 0}, SettingsError, "manifold_k"),
        ({"reference": np.full((2, 3), 0.5)}, SettingsError, "reference"),
        ({"reference": np.full((1, 52), np.nan)}, SettingsError, "NaN"),
        ({"reference": np.full((1, 52), 1e30)}, SettingsError, "outside its range"),
        ({"reference": np.full(52, -1.5)}, SettingsError, "outside its range"),
    ],
)
def test_bad_settings_are_refused_with_a_named_reason(model: CoeffModel, change, error, match) -> None:
    settings = replace(SampleSettings(manifold_blend=0.0), **change)
    with pytest.raises(error, match=match):
        sample_takes(model, audio_features(), zeros_source(model), settings)


# --- manifold projection --------------------------------------------------------------------


def test_projection_keeps_points_in_the_affine_hull_of_their_neighbours() -> None:
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(200, 5, generator=generator, dtype=torch.float64)
    on_bank = bank[:7]
    torch.testing.assert_close(project_to_manifold(on_bank, bank, k=4), on_bank, atol=1e-2, rtol=0)
    far = 10.0 + torch.randn(3, 5, generator=generator, dtype=torch.float64)
    projected = project_to_manifold(far, bank, k=8)
    assert (projected.norm(dim=1) < far.norm(dim=1)).all()


def test_projection_weights_sum_to_one() -> None:
    """Translating bank and query together translates the projection: Σ w = 1."""
    generator = torch.Generator().manual_seed(1)
    bank = torch.randn(100, 4, generator=generator, dtype=torch.float64)
    query = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    shift = torch.tensor([3.0, -2.0, 1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        project_to_manifold(query + shift, bank + shift, k=6),
        project_to_manifold(query, bank, k=6) + shift,
    )


def test_manifold_blend_pulls_samples_onto_the_bank(face: FaceModel) -> None:
    """A one-latent bank: full projection maps every take's latents to it, so takes of one style
    agree."""
    model = perturbed_model(face, seed=4)
    model.bank = torch.randn(1, model.dim, generator=torch.Generator().manual_seed(2))
    model.bank_labels = torch.zeros(1, dtype=torch.long)
    settings = SampleSettings(takes=2, manifold_blend=0.0, style_temperature=0.0, gaze=False)
    free = sample_takes(model, audio_features(), zeros_source(model), settings)[0]
    projected = sample_takes(model, audio_features(), zeros_source(model), replace(settings, manifold_blend=1.0))[0]
    halfway = sample_takes(model, audio_features(), zeros_source(model), replace(settings, manifold_blend=0.5))[0]
    assert not np.allclose(free[0], free[1], atol=1e-3)
    np.testing.assert_allclose(projected[0], projected[1], atol=1e-5)
    assert not np.allclose(halfway[0], halfway[1], atol=1e-3)


# --- weights --------------------------------------------------------------------------------


def test_weights_round_trip_gives_identical_samples(face: FaceModel, tmp_path) -> None:
    model = perturbed_model(face, seed=6)
    model.bank = torch.randn(16, model.dim)
    model.bank_labels = torch.arange(16) % len(EMOTIONS)
    save_weights(tmp_path, model, training={"steps": 0})
    loaded = load_weights(tmp_path, face)
    assert torch.equal(loaded.bank, model.bank) and loaded.config == model.config
    settings = SampleSettings(takes=2, seed=1)
    for a, b in zip(sample_takes(model, audio_features(), zeros_source(model), settings),
                    sample_takes(loaded, audio_features(), zeros_source(loaded), settings)):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".*tmp"))


def test_weights_for_another_face_model_are_refused(face: FaceModel, tmp_path) -> None:
    other = CoeffModel(replace(TINY, lip_gap=False), face.names[:5], "other@1", np.zeros(5), np.ones(5))
    save_weights(tmp_path, other)
    with pytest.raises(WeightsError, match="other@1"):
        load_weights(tmp_path, face)


def test_missing_or_broken_weights_get_a_clear_error(face: FaceModel, tmp_path) -> None:
    with pytest.raises(WeightsError, match="config.yaml is missing"):
        load_weights(tmp_path / "nowhere", face)
    save_weights(tmp_path, perturbed_model(face))
    (tmp_path / "coeff.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(WeightsError, match="safetensors"):
        load_weights(tmp_path, face)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("version: 3", "version: 2"))
    with pytest.raises(WeightsError, match="has version 2; this build reads 3 .*retrain"):
        load_weights(tmp_path, face)
