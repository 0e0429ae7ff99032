"""The wire codes of `core`'s errors are part of the public API (docs/api.md, "Errors"): every
error class names its own code, and this table lists them all, so renaming a class, adding one or
changing a code fails here until the table (and the docs) say so."""

import importlib
import pkgutil
import re

import pytest

import core
import server
from core.errors import FlowVQError
from server.errors import error_code, flowvq_error

WIRE_CODES = {
    "core.align.AlignmentError": "alignment",
    "core.audio.AudioError": "audio",
    "core.audio.AudioNotFoundError": "audio_not_found",
    "core.audio.AudioTooLargeError": "audio_too_large",
    "core.audio.AudioTooLongError": "audio_too_long",
    "core.audio.CorruptAudioError": "corrupt_audio",
    "core.audio.EmptyAudioError": "empty_audio",
    "core.audio.FeatureError": "feature",
    "core.audio.FpsError": "fps",
    "core.audio.NotAudioError": "not_audio",
    "core.audio.SampleRateError": "sample_rate",
    "core.audio.SilentAudioError": "silent_audio",
    "core.blinks.BlinkError": "blink",
    "core.gaze.GazeError": "gaze",
    "core.coeff.config.ConfigError": "config",
    "core.coeff.generator.ReferenceTakeError": "reference_take",
    "core.coeff.sampler.GenerationCancelled": "generation_cancelled",
    "core.coeff.sampler.SettingsError": "invalid_settings",
    "core.coeff.weights.WeightsError": "weights",
    "core.corpus.build.CorpusError": "corpus",
    "core.corpus.performance.PerformanceError": "performance",
    "core.corpus.realspeech.SpeechManifestError": "speech_manifest",
    "core.corpus.speechtools.SpeechError": "speech",
    "core.corpus.speechtools.SpeechToolsMissingError": "speech_tools_missing",
    "core.corpus.text.TextError": "text",
    "core.visemes.VisemeError": "viseme",
    "core.device.DeviceError": "device",
    "core.emotions.UnknownEmotionError": "unknown_emotion",
    "core.errors.FlowVQError": "invalid_input",
    "core.eval.image.ImageMetricError": "image_metric",
    "core.eval.metrics.EvalError": "eval",
    "core.eval.real.RealEvalError": "real_eval",
    "core.eval.regressor.RegressorError": "regressor",
    "core.recognize.RecognitionError": "recognition",
    "core.face.bfm.BFMError": "bfm",
    "core.face.fit.FitError": "fit",
    "core.face.landmarks.FaceDetectionError": "face_detection",
    "core.face.landmarks.MultipleFacesError": "multiple_faces",
    "core.face.landmarks.NoFaceError": "no_face",
    "core.face.model.FaceModelError": "face_model",
    "core.formats.dataset.DatasetError": "dataset",
    "core.formats.render_inputs.RenderInputError": "render_input",
    "core.formats.takes.TakeError": "invalid_take",
    "core.render.RendererError": "renderer",
    "core.train.common.TrainError": "train",
    "core.vq.config.VQConfigError": "vq_config",
    "core.vq.data.DataError": "data",
    "core.vq.losses.PerceptualWeightsError": "perceptual_weights",
    "core.vq.weights.VQWeightsError": "vq_weights",
    "server.config.ConfigError": "config",
    "server.rendering.PortraitError": "invalid_portrait",
}


def error_classes() -> list[type]:
    """Every `FlowVQError` class of `core` and `server` (all their modules imported)."""
    for package in (core, server):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = {FlowVQError}, [FlowVQError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    ours = [cls for cls in found if cls.__module__.split(".")[0] in ("core", "server")]  # not the tests'
    return sorted(ours, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_every_error_class_is_listed_with_its_wire_code():
    assert {f"{cls.__module__}.{cls.__qualname__}": cls.code for cls in error_classes()} == WIRE_CODES


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__qualname__)
def test_each_error_class_names_its_own_snake_case_code(cls):
    assert "code" in vars(cls), f"{cls.__qualname__} inherits its code; give it its own"
    assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", cls.code)


def test_the_server_answers_with_the_class_code_whatever_the_class_is_called():
    class RenamedTakeProblem(importlib.import_module("core.formats.takes").TakeError):
        """A subclass that keeps its parent's code on purpose."""

    error = flowvq_error(RenamedTakeProblem("bad take"), "take")
    assert (error.code, error.status_code, error.message, error.field) == ("invalid_take", 422, "bad take", "take")
    assert error_code(RenamedTakeProblem("x")) == "invalid_take"
