"""Tests for core.coeff.generator and `flowvq generate`: real audio files written with soundfile,
a tiny untrained model saved as real weights (no latent bank, so manifold_blend is 0), no mocks.

Couplings start as the identity, so the model's parameters get a seeded nudge: then the audio and
the source expression reach the output as they do in a trained model."""

import argparse
import threading
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from core.audio import SAMPLE_RATE, CorruptAudioError
from core.cli import build_parser, main
from core.coeff.cli import run_generate
from core.coeff.config import PRESETS
from core.coeff.generator import (
    STAGES, CoeffGenerator, GenerateSettings, ReferenceTakeError, reference_from_takes,
    source_from_portrait,
)
from core.coeff.model import CoeffModel
from core.coeff.sampler import GenerationCancelled, SampleSettings, SettingsError
from core.coeff.weights import WeightsError, default_weights_dir, save_weights
from core.emotions import REFERENCE, UnknownEmotionError
from core.device import DeviceError, resolve_device
from core.errors import FlowVQError
from core.formats.takes import Take, load_takes, save_takes
from core.gaze import GAZE_CHANNELS

SECONDS = 2.0


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Harmonics of a gliding 110-190 Hz pitch under a ~4 Hz syllable envelope. Shapes: -> (N,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 150 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(h * phase) / h for h in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 2
    return (0.3 * voice * envelope + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def settings(**sample) -> GenerateSettings:
    """Generation settings on the sampler defaults with manifold projection off (no bank)."""
    return GenerateSettings(sample=SampleSettings(**{"manifold_blend": 0.0, **sample}))


@pytest.fixture(scope="module")
def weights(tmp_path_factory, face) -> Path:
    model = CoeffModel(PRESETS["tiny"], face.names, face.id, face.lower, face.upper, seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return save_weights(tmp_path_factory.mktemp("weights"), model)


@pytest.fixture(scope="module")
def generator(weights) -> CoeffGenerator:
    return CoeffGenerator.load(weights, device="cpu")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(path, speech_like(SECONDS, seed=0), SAMPLE_RATE)
    return path


def test_takes_are_valid_and_labelled(generator, speech, face):
    takes = generator.generate(speech, settings(emotion="Happy", takes=3, seed=7))
    assert [(t.take, t.seed) for t in takes] == [(0, 7), (1, 8), (2, 9)]
    for take in takes:
        take.validate(face.names)
        assert take.emotion == "happy" and take.face_model == face.id and take.names == face.names
        assert take.fps == generator.fps
        assert np.all(take.exp >= face.lower - 1e-6) and np.all(take.exp <= face.upper + 1e-6)


@pytest.mark.parametrize("fps", [None, 30.0, 60.0, 29.97])
def test_frame_count_is_duration_times_output_fps(generator, speech, fps):
    (take,) = generator.generate(speech, replace(settings(), fps=fps))
    expected_fps = fps or generator.fps
    assert take.fps == expected_fps
    assert take.frames == round(SECONDS * expected_fps)


def test_output_fps_resamples_the_model_fps_take(generator, speech):
    (native,) = generator.generate(speech, settings(seed=3))
    (doubled,) = generator.generate(speech, replace(settings(seed=3), fps=2 * generator.fps))
    np.testing.assert_allclose(doubled.exp[::2], native.exp, atol=1e-6)


def test_same_seed_gives_the_same_take(generator, speech):
    first, second = (generator.generate(speech, settings(seed=11))[0] for _ in range(2))
    np.testing.assert_array_equal(first.exp, second.exp)
    np.testing.assert_array_equal(first.pose, second.pose)


def test_take_k_of_a_batch_is_the_single_take_with_seed_plus_k(generator, speech):
    batch = generator.generate(speech, settings(seed=20, takes=4))
    for k in (1, 3):
        (alone,) = generator.generate(speech, settings(seed=20 + k))
        np.testing.assert_allclose(batch[k].exp, alone.exp, atol=1e-5)
        np.testing.assert_allclose(batch[k].pose, alone.pose, atol=1e-5)


def test_different_seeds_give_different_takes(generator, speech):
    a, b = generator.generate(speech, settings(takes=2))
    assert np.abs(a.exp - b.exp).max() > 1e-3
    assert np.abs(a.pose - b.pose).max() > 1e-4


def test_pose_off_gives_zero_pose_and_pose_amount_scales_it(generator, speech):
    (off,) = generator.generate(speech, settings(pose=False))
    (full,) = generator.generate(speech, settings(pose_amount=1.0))
    (half,) = generator.generate(speech, settings(pose_amount=0.5))
    assert not off.pose.any()
    assert np.abs(full.pose).max() > 1e-4
    np.testing.assert_allclose(half.pose, 0.5 * full.pose, atol=1e-6)
    # Pose never feeds into the expression but for the gaze layer's eyes, which turn against the head.
    eyes = [generator.face.names.index(name) for name in GAZE_CHANNELS]
    others = [k for k in range(off.exp.shape[1]) if k not in eyes]
    np.testing.assert_array_equal(off.exp[:, others], full.exp[:, others])
    assert not np.array_equal(off.exp[:, eyes], full.exp[:, eyes])


def test_reference_transfer_labels_takes_and_follows_the_reference(generator, speech, face):
    rng = np.random.default_rng(0)
    smile, frown = (rng.uniform(face.lower, 0.5 * face.upper)[None].astype(np.float32) for _ in range(2))
    takes = generator.generate(speech, settings(reference=smile, temperature=0.0, takes=2))
    (other,) = generator.generate(speech, settings(reference=frown, temperature=0.0))
    assert {t.emotion for t in takes} == {REFERENCE}
    np.testing.assert_allclose(takes[0].exp, takes[1].exp, atol=1e-5)  # temperature 0: the seed is unused
    assert np.abs(takes[0].exp - other.exp).max() > 1e-3


def test_source_expression_changes_the_take(generator, speech, face):
    (neutral,) = generator.generate(speech, settings())
    source = np.asarray(face.upper * 0.5, dtype=np.float32)
    (posed,) = generator.generate(speech, replace(settings(), source_exp=source))
    assert np.abs(neutral.exp - posed.exp).max() > 1e-3


@pytest.mark.parametrize("fraction", [0.3, 0.8])
def test_a_source_face_unlike_any_training_face_lip_syncs_like_the_neutral_one_with_the_shipped_weights(
    face, fraction
):
    """A portrait's fitted expression can use shapes the corpus faces never rest in (the demo's
    astronaut: mouthShrugUpper 1.0, where training sources are all 0). Clipped to the training
    range of sources, the take keeps the neutral source's lip motion; unclipped, the jaw stayed
    wide open on every frame, and clipped only to ±1.5 standard deviations it moved at 40%."""
    generator = CoeffGenerator.load(device="cpu")
    speech = Path(__file__).resolve().parents[2] / "core" / "assets" / "demo_speech.wav"
    jaw = face.names.index("jawOpen")
    neutral, posed = (
        generator.generate(speech, GenerateSettings(SampleSettings(emotion="happy"), source_exp=source))[0]
        for source in (None, np.asarray(face.upper * fraction, dtype=np.float32))
    )
    assert posed.exp[:, jaw].std() > 0.7 * neutral.exp[:, jaw].std()
    assert abs(posed.exp[:, jaw].mean() - neutral.exp[:, jaw].mean()) < 0.05


def test_shipped_takes_differ_in_their_brows_over_the_whole_take_as_much_as_the_corpus_does(face):
    """Each take draws one style: sad takes of the demo clip at one intensity hold browInnerUp at
    different levels for the whole take (the corpus's sad utterances at one intensity differ by
    0.04, std of their means around the intensity line; the takes by about half that); at
    style_temperature 0 they all hold the emotion's line (the per-frame latents alone left 0.001)."""
    generator = CoeffGenerator.load(device="cpu")
    speech = Path(__file__).resolve().parents[2] / "core" / "assets" / "demo_speech.wav"
    inner = face.names.index("browInnerUp")

    def take_means(style_temperature: float) -> np.ndarray:
        sample = SampleSettings(emotion="sad", takes=8, style_temperature=style_temperature, pose=False)
        takes = generator.generate(speech, GenerateSettings(sample))
        return np.array([take.exp[len(take.exp) // 4 :, inner].mean() for take in takes])

    styled, plain = take_means(1.0), take_means(0.0)
    assert styled.std() > 0.012
    assert plain.std() < 0.2 * styled.std()


def test_progress_goes_through_the_stages_in_order_to_one(generator, speech):
    calls: list[tuple[str, float]] = []
    generator.generate(speech, settings(), progress=lambda stage, fraction: calls.append((stage, fraction)))
    stages = [stage for stage, _ in calls]
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == list(STAGES)
    fractions = [fraction for _, fraction in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and calls[-1] == ("done", 1.0)
    assert stages.count("sampling") > 10


def test_cancel_raises_and_returns_nothing(generator, speech):
    cancelled = threading.Event()
    calls: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        calls.append(stage)
        if stage == "sampling" and fraction > 0.3:
            cancelled.set()

    with pytest.raises(GenerationCancelled, match="cancelled"):
        generator.generate(speech, settings(), progress=progress, cancel=cancelled.is_set)
    assert "done" not in calls


@pytest.mark.parametrize(
    ("sample", "error", "words"),
    [
        (lambda dim: {"emotion": "bored"}, UnknownEmotionError, "bored"),
        (lambda dim: {"reference": np.full((1, dim), np.nan, np.float32)}, SettingsError, "nan"),
        (lambda dim: {"reference": np.zeros((3, dim - 1), np.float32)}, SettingsError, "shape"),
        (lambda dim: {"temperature": 3.0}, SettingsError, "temperature"),
        (lambda dim: {"manifold_blend": 1.0}, SettingsError, "latent bank"),
    ],
)
def test_bad_sample_settings_are_refused_before_audio_is_read(generator, tmp_path, sample, error, words):
    with pytest.raises(error) as caught:
        generator.generate(tmp_path / "never-read.wav", settings(**sample(generator.model.dim)))
    assert words in str(caught.value).lower()


@pytest.mark.parametrize(
    ("change", "words"),
    [(lambda dim: {"fps": 0.0}, "fps"), (lambda dim: {"fps": 1000.0}, "fps"),
     (lambda dim: {"source_exp": np.zeros(dim + 1)}, "source_exp"),
     (lambda dim: {"source_exp": np.full(dim, np.inf)}, "infinite")],
)
def test_bad_output_fps_or_source_is_refused(generator, speech, change, words):
    with pytest.raises(SettingsError, match=words):
        generator.generate(speech, replace(settings(), **change(generator.model.dim)))


def test_corrupt_audio_passes_its_audio_error_through(generator, tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x00\x10\x00\x00WAVE" + np.random.default_rng(5).bytes(4000))
    with pytest.raises(CorruptAudioError):
        generator.generate(path, settings())


def test_audio_bytes_give_the_same_takes_as_the_file(generator, speech):
    (from_file,) = generator.generate(speech, settings(seed=4))
    (from_bytes,) = generator.generate(speech.read_bytes(), settings(seed=4))
    np.testing.assert_array_equal(from_file.exp, from_bytes.exp)


def test_missing_weights_directory_is_a_weights_error_that_says_what_to_do(tmp_path):
    with pytest.raises(WeightsError, match="not a coefficient weights directory") as caught:
        CoeffGenerator.load(tmp_path / "nowhere", device="cpu")
    assert "flowvq train coeff" in str(caught.value)


def test_without_a_directory_the_shipped_default_weights_load(face):
    generator = CoeffGenerator.load(device="cpu")
    assert generator.weights_dir == default_weights_dir()
    assert generator.names == tuple(face.names) and generator.info()["bank_size"] > 0


def test_unknown_or_unavailable_device_is_refused():
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_info_describes_the_loaded_model(generator, weights, face):
    info = generator.info()
    assert info["face_model"] == face.id and info["names"] == list(face.names)
    assert info["fps"] == PRESETS["tiny"].fps and info["weights_dir"] == str(weights)
    assert info["config"] == PRESETS["tiny"].to_dict()
    assert info["bank_size"] == 0 and info["device"] == "cpu" and info["parameters"] > 0


def test_settings_from_dict_match_the_same_settings_built_in_python(face):
    reference = [[0.1] * face.n_expressions]
    built = GenerateSettings.from_dict({
        "emotion": "sad", "blend": "angry", "blend_weight": 0.25, "intensity": 1, "temperature": 0.5, "pose_temperature": 1.5, "style_temperature": 0.25,
        "seed": 3, "takes": 2, "pose": False,
        "pose_amount": 0.5, "manifold_blend": 0, "manifold_k": 4, "reference": reference, "fps": 60,
        "source_exp": [0.0] * face.n_expressions,
    })
    assert built.sample == replace(
        SampleSettings(emotion="sad", blend="angry", blend_weight=0.25, intensity=1.0, temperature=0.5, pose_temperature=1.5, style_temperature=0.25,
                       seed=3, takes=2, pose=False,
                       pose_amount=0.5, manifold_blend=0.0, manifold_k=4),
        reference=built.sample.reference,
    )
    np.testing.assert_array_equal(built.sample.reference, np.float32(reference))
    assert built.fps == 60.0 and built.source_exp.shape == (face.n_expressions,)
    assert GenerateSettings.from_dict({}) == GenerateSettings()


@pytest.mark.parametrize(
    ("data", "words"),
    [({"temprature": 1.0}, "unknown setting"), ({"takes": "3"}, "'takes' must be an integer"),
     ({"pose": 1}, "'pose' must be true or false"), ({"seed": True}, "'seed'"),
     ({"reference": [[1.0], [1.0, 2.0]]}, "'reference'"), ({"fps": "25"}, "'fps'"), ([], "JSON object"),
     ({"blend": 3}, "'blend'")],
)
def test_settings_from_dict_refuse_unknown_keys_and_wrong_types(data, words):
    with pytest.raises(SettingsError, match=words):
        GenerateSettings.from_dict(data)


def make_takes_file(path: Path, face, rows: list[float]) -> Path:
    """A takes file whose take k holds one frame with every coefficient at rows[k]."""
    takes = [Take(take=k, seed=k, emotion="talk", fps=25.0, names=face.names,
                  exp=np.full((1, face.n_expressions), value), pose=np.zeros((1, 6)), face_model=face.id)
             for k, value in enumerate(rows)]
    save_takes(path, takes)
    return path


def test_reference_from_takes_reads_the_chosen_take(tmp_path, face):
    path = make_takes_file(tmp_path / "ref.json", face, [0.1, 0.2])
    np.testing.assert_allclose(reference_from_takes(path, face.names), 0.1)
    np.testing.assert_allclose(reference_from_takes(path, face.names, take=1), 0.2)
    with pytest.raises(ReferenceTakeError, match="holds 2 take"):
        reference_from_takes(path, face.names, take=2)
    with pytest.raises(ReferenceTakeError, match="expression names"):
        reference_from_takes(path, face.names[::-1])


def test_source_from_portrait_is_the_fitted_expression(tmp_path, face, photos, photo_landmarks):
    from core.face.fit import fit

    path = tmp_path / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(photos["astronaut"], cv2.COLOR_RGB2BGR))
    expected = fit(face, photo_landmarks["astronaut"]).exp
    np.testing.assert_allclose(source_from_portrait(path, face), expected, atol=1e-5)


def generate_command(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["generate", *argv])


def test_cli_writes_a_loadable_takes_file_and_one_line_per_take(
    generator, weights, speech, tmp_path, face, capsys
):
    out = tmp_path / "takes.json"
    reference = make_takes_file(tmp_path / "ref.json", face, [0.1, 0.3])
    args = generate_command(str(speech), "--takes", "2", "--seed", "5", "--manifold-blend", "0", "--fps", "30",
                            "--reference", str(reference), "--reference-take", "1", "--weights", str(weights),
                            "--device", "cpu", "--out", str(out))
    assert args.func(args) == 0
    takes = load_takes(out)
    expected = generator.generate(speech, GenerateSettings(
        sample=SampleSettings(takes=2, seed=5, manifold_blend=0.0, reference=np.full((1, face.n_expressions), 0.3, np.float32)),
        fps=30.0))
    assert [(t.seed, t.emotion, t.fps, t.frames) for t in takes] == [(5, REFERENCE, 30.0, 60),
                                                                     (6, REFERENCE, 30.0, 60)]
    np.testing.assert_allclose(takes[1].exp, expected[1].exp, atol=1e-6)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "take 0: seed 5, reference, 60 frames, 2.00 s at 30 fps" and len(lines) == 3


def test_cli_blends_a_second_emotion_at_its_weight(generator, weights, speech, tmp_path):
    out = tmp_path / "takes.json"
    args = generate_command(str(speech), "--emotion", "sad", "--blend", "angry", "--blend-weight", "0.3",
                            "--intensity", "1.2", "--manifold-blend", "0", "--weights", str(weights),
                            "--device", "cpu", "--out", str(out))
    assert args.func(args) == 0
    expected = generator.generate(speech, GenerateSettings(sample=SampleSettings(
        emotion="sad", blend="angry", blend_weight=0.3, intensity=1.2, manifold_blend=0.0)))
    np.testing.assert_allclose(load_takes(out)[0].exp, expected[0].exp, atol=1e-6)


@pytest.mark.parametrize(
    ("extra", "error"),
    [(["--emotion", "bored"], UnknownEmotionError), (["--emotion", "sad", "--blend", "bored"], UnknownEmotionError), (["--takes", "0"], SettingsError),
     (["--manifold-blend", "1"], SettingsError), (["--weights", "/nonexistent/weights"], WeightsError)],
)
def test_cli_bad_input_is_one_error_line_with_status_2_and_writes_nothing(
    weights, speech, tmp_path, extra, error, capsys
):
    out = tmp_path / "takes.json"
    argv = [str(speech), "--manifold-blend", "0", "--weights", str(weights), "--device", "cpu", "--out", str(out)]
    with pytest.raises(error) as caught:
        run_generate(generate_command(*argv, *extra))
    assert isinstance(caught.value, FlowVQError)
    capsys.readouterr()
    assert main(["generate", *argv, *extra]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"flowvq: error: {caught.value}"]
    assert list(tmp_path.iterdir()) == []
