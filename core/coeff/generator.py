"""The coefficient generator the CLI and the server call: audio in, validated takes out.

`CoeffGenerator.load` reads the face model and the weights once; `CoeffGenerator.generate` then
turns one clip into ``settings.sample.takes`` takes:

    audio (path or bytes) -> log-mel features at the model fps            stage "features"
    (with the line's text: its phones aligned to the audio, `core.align`; without one, the phones
    heard in it by ``settings.closures``, `core.recognize.heard_phones`)
    -> `core.coeff.sampler.sample_takes` (all takes in one batch; a model with phone input reads
    those phones' visemes frame by frame, `core.visemes.frame_visemes`)    stage "sampling"
    (with the line: the jaw following its aligned phones as real speakers move it and the lips
    sealed on its bilabials and shaped on its /f v r/, `core.coeff.text.line_lips`; without one,
    the same on the phones a recogniser hears, `core.coeff.text.seal_lips`)
    -> one `core.formats.takes.Take` per take, resampled to the output fps, validated  stage "done"

A text that cannot be aligned (a word outside the dictionary, digits, a text that does not fit the
audio) does not fail the generation: the takes come from the audio and the phones heard in it, as
without a text, and ``note`` says why.

Take k carries seed ``settings.sample.seed + k`` and is the same whether it is generated alone or
in a batch. Audio errors (`core.audio.AudioError`) and settings errors (`SettingsError`,
`core.emotions.UnknownEmotionError`) are `FlowVQError`s and pass through unchanged.

Thread-safety: a generator holds one model on one device and is not locked; one generator serves
one worker thread. Cancel a generation from another thread with ``cancel=event.is_set``.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from core.align import MAX_TEXT_CHARS
from core.audio import MAX_FPS, SAMPLE_RATE, audio_features
from core.coeff.model import CoeffModel
from core.coeff.sampler import CancelFn, SampleSettings, SettingsError, check_cancel, sample_takes, take_seeds
from core.coeff.text import emotion_jaw_drop, known_lips, line_phones
from core.coeff.weights import default_weights_dir, load_weights
from core.emotions import EMOTIONS, REFERENCE, emotion_index
from core.device import resolve_device
from core.errors import FlowVQError
from core.expression import frame_energy
from core.jsonvalues import as_kind
from core.face import load_face_model
from core.face.model import FaceModel
from core.formats.takes import Take, load_takes, resample
from core.recognize import HEARING, RecognitionError, heard_phones
from core.visemes import frame_visemes

__all__ = [
    "CoeffGenerator",
    "GenerateSettings",
    "ReferenceTakeError",
    "ProgressFn",
    "NoteFn",
    "STAGES",
    "reference_from_takes",
    "source_from_portrait",
]

ProgressFn = Callable[[str, float], None]
NoteFn = Callable[[str], None]
STAGES = ("features", "sampling", "done")
_SAMPLING_START, _SAMPLING_END = 0.05, 0.99  # overall progress spent on features / sampling / takes


class ReferenceTakeError(FlowVQError):
    """A reference takes file whose chosen take is missing or made for another face model."""
    code = "reference_take"


@dataclass(frozen=True)
class GenerateSettings:
    """One generation request: the sampler's settings plus output fps and source expression.

    sample: `SampleSettings` (emotion, intensity, temperature, pose_temperature, style_temperature,
    seed, takes, pose, pose_amount, manifold_blend, manifold_k, reference); fps: output frame rate,
    None = the model's fps;
    source_exp: β₀, the source face's expression coefficients, None = zeros (the neutral face);
    text: what the clip says, None = unknown (module docstring); closures: without a text, which
    recogniser's /p b m/ seal the lips and its /f v r/ shape them (`core.recognize.HEARING`: "phones",
    "words" or "off").
    Shapes: source_exp (D,).
    """

    sample: SampleSettings = field(default_factory=SampleSettings)
    fps: float | None = None
    source_exp: np.ndarray | None = None
    text: str | None = None
    closures: str = "phones"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerateSettings":
        """Settings from a flat JSON object: the `SampleSettings` field names plus "fps",
        "source_exp", "text" and "closures"; missing keys take their defaults. Unknown keys and values of the wrong
        JSON type raise `SettingsError` naming the key; ranges are checked by `check`.
        """
        if not isinstance(data, Mapping):
            raise SettingsError(f"generation settings must be a JSON object, got {type(data).__name__}")
        sample_keys = {f.name for f in fields(SampleSettings)}
        known = sample_keys | {"fps", "source_exp", "text", "closures"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        defaults = SampleSettings()
        sample = {key: _typed(key, value, type(getattr(defaults, key)))
                  for key, value in data.items() if key in sample_keys - {"reference", "blend"}}
        if data.get("blend") is not None:
            sample["blend"] = _typed("blend", data["blend"], str)
        if data.get("reference") is not None:
            sample["reference"] = _array("reference", data["reference"])
        fps = data.get("fps")
        return cls(
            sample=SampleSettings(**sample),
            fps=None if fps is None else _typed("fps", fps, float),
            source_exp=None if data.get("source_exp") is None else _array("source_exp", data["source_exp"]),
            text=None if data.get("text") is None else _typed("text", data["text"], str),
            closures=cls.closures if data.get("closures") is None else _typed("closures", data["closures"], str),
        )

    def check(self, model: CoeffModel) -> None:
        """Raise `SettingsError` (or `UnknownEmotionError`) naming the first bad setting."""
        self.sample.check(model)
        fps = self.fps
        if fps is not None and not (isinstance(fps, (int, float)) and not isinstance(fps, bool)
                                    and 0 < fps <= MAX_FPS):
            raise SettingsError(f"fps must be a frame rate in (0, {MAX_FPS:g}], got {fps!r}")
        if self.source_exp is not None:
            source = np.asarray(self.source_exp)
            if source.shape != (model.dim,):
                raise SettingsError(
                    f"source_exp must hold {model.dim} expression coefficients (one per name of "
                    f"{model.face_model}), got shape {source.shape}"
                )
            if not np.isfinite(source).all():
                raise SettingsError("source_exp contains NaN or infinite values")
        if self.text is not None and not (isinstance(self.text, str) and len(self.text) <= MAX_TEXT_CHARS):
            raise SettingsError(f"text must be one line of at most {MAX_TEXT_CHARS} characters")
        if self.closures not in HEARING:
            raise SettingsError(f"closures must be one of {', '.join(HEARING)}, got {self.closures!r}")

    def beta0(self, dim: int) -> np.ndarray:
        """The source expression β₀ as float32, zeros when unset. Shapes: -> (D,)."""
        if self.source_exp is None:
            return np.zeros(dim, np.float32)
        return np.asarray(self.source_exp, dtype=np.float32)


def _typed(key: str, value: Any, expected: type) -> Any:
    """``value`` as ``expected`` (`core.jsonvalues.as_kind`), or `SettingsError` naming the key."""
    try:
        return as_kind(value, expected)
    except TypeError as exc:
        raise SettingsError(f"setting {key!r} {exc}") from None


def _array(key: str, value: Any) -> np.ndarray:
    """A JSON number or (nested) list of numbers as a float32 array."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {key!r} must be a list of numbers (or of rows of numbers): {exc}") from exc
    if array.dtype == object or array.size == 0:
        raise SettingsError(f"setting {key!r} must be a non-empty list of numbers")
    return array


class CoeffGenerator:
    """A loaded coefficient model ready to generate takes (module docstring; one per worker thread)."""

    def __init__(self, model: CoeffModel, face: FaceModel, weights_dir: Path) -> None:
        self.model, self.face, self.weights_dir = model, face, weights_dir
        self.device = model.lower.device

    @classmethod
    def load(
        cls,
        weights_dir: str | Path | None = None,
        face_model: FaceModel | str | Path | None = None,
        device: str = "auto",
    ) -> "CoeffGenerator":
        """Load the face model (a `FaceModel`, a file, or None = built-in) and the weights (a
        directory, or None = the default weights) once, onto ``device`` (`resolve_device`).
        Raises `WeightsError` for missing or mismatched weights, `DeviceError`, `FaceModelError`.
        """
        face = face_model if isinstance(face_model, FaceModel) else load_face_model(face_model)
        directory = Path(weights_dir) if weights_dir is not None else default_weights_dir()
        model = load_weights(directory, face, resolve_device(device))
        return cls(model, face, directory)

    @property
    def fps(self) -> float:
        """The model's frame rate; takes are generated at it, then resampled."""
        return float(self.model.config.fps)

    @property
    def names(self) -> tuple[str, ...]:
        """The D expression coefficient names, in take column order."""
        return self.model.names

    def info(self) -> dict[str, Any]:
        """A JSON-ready description: face model id, names, fps, weights dir, config, bank size, device."""
        return {
            "face_model": self.model.face_model,
            "names": list(self.names),
            "fps": self.fps,
            "weights_dir": str(self.weights_dir),
            "config": self.model.config.to_dict(),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "bank_size": len(self.model.bank),
            "device": str(self.device),
        }

    def generate(
        self,
        audio: str | Path | bytes,
        settings: GenerateSettings,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        note: NoteFn | None = None,
    ) -> list[Take]:
        """``settings.sample.takes`` validated takes for one clip (a path or the file's bytes).

        ``progress(stage, fraction)`` gets a stage of `STAGES` and the overall fraction done,
        non-decreasing and ending at ("done", 1.0); ``cancel()`` is polled between the 30-s
        segments closures are listened for in and the chunks of frames sampled (up to 10 each),
        and raises `GenerationCancelled`; ``note(message)`` gets what the user should know about
        the result (a text that could not be used, a clip too short to listen to). Shapes: each take exp (T, D), pose (T, 6) with
        T = round(frames at the model fps × output fps / model fps).
        """
        report = progress if progress is not None else _ignore
        sample = settings.sample
        settings.check(self.model)
        report("features", 0.0)
        wave, feats = audio_features(audio, self.fps)  # (T, audio_width) at the model fps
        phones = line_phones(wave, settings.text, note)
        known = phones if phones is not None else _heard(wave, settings.closures, note or _silent, cancel)
        report("sampling", _SAMPLING_START)
        exp, pose = sample_takes(
            self.model, feats, settings.beta0(self.model.dim), sample,
            progress=lambda done: report("sampling", _SAMPLING_START + (_SAMPLING_END - _SAMPLING_START) * done),
            cancel=cancel, loudness=frame_energy(wave, SAMPLE_RATE, self.fps, len(feats)),
            visemes=frame_visemes(known, self.fps, len(feats)),
        )  # (N, T, D), (N, T, 6)
        emotion = REFERENCE if sample.reference is not None else EMOTIONS[emotion_index(sample.emotion)]
        jaw_drop = emotion_jaw_drop(emotion, sample.intensity, sample.blend, sample.blend_weight)
        exp = known_lips(exp, known, self.names, self.fps, phones is not None, jaw_drop)
        takes = [self._take(k, seed, emotion, exp[k], pose[k], settings.fps)
                 for k, seed in enumerate(take_seeds(sample))]
        report("done", 1.0)
        return takes

    def _take(
        self, index: int, seed: int, emotion: str, exp: np.ndarray, pose: np.ndarray, fps: float | None
    ) -> Take:
        """One validated take at the output fps. Shapes: exp (T, D), pose (T, 6)."""
        take = Take(take=index, seed=seed, emotion=emotion, fps=self.fps, names=self.names,
                    exp=exp, pose=pose, face_model=self.model.face_model)
        if fps is not None and fps != self.fps:
            take = resample(take, fps)
        take.validate(self.face.names)
        return take


def _ignore(stage: str, fraction: float) -> None:
    """The progress callback used when the caller passes none."""


def _silent(message: str) -> None:
    """The note callback used when the caller passes none."""


def _heard(
    wave: np.ndarray, hearing: str, note: NoteFn, cancel: CancelFn | None
) -> tuple[tuple[str, float, float], ...]:
    """The phones ``hearing`` recognises in the wave, ``cancel()`` polled between its segments;
    none when the recogniser cannot take the clip (then ``note`` says why the lips follow the
    flows alone)."""
    try:
        return heard_phones(wave, hearing, poll=lambda: check_cancel(cancel, "while listening for closures"))
    except RecognitionError as err:
        note(f"no closures were heard, the lips follow the flows alone: {err}")
        return ()


def reference_from_takes(path: str | Path, names: tuple[str, ...], take: int = 0) -> np.ndarray:
    """Reference coefficients for emotion transfer: the exp of the ``take``-th take (0-based
    position in the file) of a takes file, which must be on the face model with ``names``.
    Raises `TakeError` for an unreadable file, `ReferenceTakeError` otherwise. Shapes: -> (R, D).
    """
    takes = load_takes(path)
    if not 0 <= take < len(takes):
        raise ReferenceTakeError(
            f"reference take {take} asked for, but {path} holds {len(takes)} take(s) (0 to {len(takes) - 1})"
        )
    chosen = takes[take]
    if chosen.names != tuple(names):
        raise ReferenceTakeError(
            f"reference take {take} in {path} is on face model {chosen.face_model!r} with "
            f"{len(chosen.names)} coefficients; it must use the generator's {len(names)} expression names"
        )
    return chosen.exp


def source_from_portrait(path: str | Path, face: FaceModel) -> np.ndarray:
    """β₀ from a portrait: FaceMesh landmarks fitted with the face model. Shapes: -> (D,) float32.

    Raises `FaceDetectionError` (no face, several faces, unreadable image) or `FitError`.
    """
    from core.face.fit import fit
    from core.face.landmarks import detect_landmarks, read_image

    return fit(face, detect_landmarks(read_image(path))).exp.astype(np.float32)
