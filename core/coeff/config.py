"""Architecture and regularisation settings of the coefficient flows (design section 3).

`CoeffConfig` is everything needed to rebuild a `core.coeff.model.CoeffModel` besides the face
model's names: it is saved with the weights and read back strictly (unknown or missing keys are an
error), so weights never load into a model of another shape.
"""

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.audio import DEFAULT_FPS, FRAME_FEATURES, N_MELS
from core.errors import FlowVQError
from core.jsonvalues import as_kind
from core.configparse import section_keys

__all__ = ["ConfigError", "FlowConfig", "CoeffConfig", "PRESETS"]


class ConfigError(FlowVQError):
    """A coefficient-model config that is malformed or out of range."""
    code = "config"


@dataclass(frozen=True)
class FlowConfig:
    """One conditional flow (ExpFlow or PoseFlow).

    steps: K flow steps; hidden/heads/layers: each coupling's transformer conditioner;
    context_dim: the per-frame context vector the couplings read, cut into tokens of
    ``context_token_dim`` values; value_token_dim: values of h1 per token; max_log_scale: the
    coupling's scale bound; tau: previous frames in the context; audio_dim: the audio embedding.
    Training regularisers: dropout (probability of dropping β_pre, the paper's data dropout),
    con_weight (weight of the consistency loss L_con, Eq. 11), rec_weight (weight of L_rec, the
    squared error of the location m(c) of the flow's context-set affine map; not in the paper, see
    docs/training.md) and noise_std (Gaussian
    dequantisation noise added to training targets, in coefficient units).
    """

    steps: int = 2
    hidden: int = 64
    heads: int = 4
    layers: int = 1
    context_dim: int = 64
    value_tokens: int = 4
    context_tokens: int = 4
    max_log_scale: float = 3.0
    tau: int = 2
    audio_dim: int = 64
    dropout: float = 0.3
    con_weight: float = 1.0
    rec_weight: float = 0.0
    noise_std: float = 0.01

    def coupling_kwargs(self) -> dict[str, int | float]:
        """The keyword arguments of `core.flow.AffineCoupling` (via `core.flow.flow_step`)."""
        return {
            "hidden": self.hidden,
            "heads": self.heads,
            "layers": self.layers,
            "max_log_scale": self.max_log_scale,
            "value_tokens": self.value_tokens,
            "context_tokens": self.context_tokens,
        }

    def check(self, which: str) -> None:
        """Raise `ConfigError` naming ``which.key`` for the first value out of range."""
        positive = ("steps", "hidden", "heads", "layers", "context_dim", "value_tokens",
                    "context_tokens", "audio_dim")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{which}.{key} must be >= 1, got {getattr(self, key)}")
        if self.hidden % self.heads:
            raise ConfigError(f"{which}.hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.tau < 0:
            raise ConfigError(f"{which}.tau must be >= 0, got {self.tau}")
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError(f"{which}.dropout must be in [0, 1], got {self.dropout}")
        if self.max_log_scale <= 0:
            raise ConfigError(f"{which}.max_log_scale must be > 0, got {self.max_log_scale}")
        for key in ("con_weight", "rec_weight", "noise_std"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{which}.{key} must be >= 0, got {getattr(self, key)}")


def _exp_default() -> FlowConfig:
    return FlowConfig(dropout=0.9, rec_weight=1.0)


def _pose_default() -> FlowConfig:
    return FlowConfig(steps=2, hidden=32, heads=2, context_dim=32, value_tokens=3, context_tokens=2,
                      audio_dim=32, noise_std=1e-4)


@dataclass(frozen=True)
class CoeffConfig:
    """Both flows plus what they share.

    fps: the model's frame rate (generation resamples to any output fps); audio_before/after: the
    audio window in model frames around each frame (after = look-ahead); audio_width: audio feature
    size; nu: the t-mixture's degrees of freedom; prior_seed: seeds the mixture means;
    emotion_dim: the emotion embedding in ExpFlow's context; emotion_dropout: the probability that
    a training sequence's context carries the talk class's embedding instead of its own (its
    style, ActNorm rows and prior component stay its own), so the couplings learn the mouth from
    the audio and the emotion from the style rather than from the embedding. lip_gap: ExpFlow models jawOpen as
    the lip gap jawOpen - mouthClose (`core.flow.Standardize`), which is 0 wherever the lips meet;
    seal_depth: training frames with closed lips (gap 0) are dequantised into gaps below 0, by a
    half-normal of this std in coefficient units, so the flow can put a take's closures on the far
    side of the limit that sampling clamps gaps to (mouthClose <= jawOpen) and seal them exactly.
    take_style: ExpFlow's context holds the take's style, its mean emotion-bearing expression
    (`core.face.rig.STYLE_PREFIXES`) relative to β₀, which sampling draws once per take.
    phone_dim: the width of the phone embedding in ExpFlow's context (0: no phone input): each
    frame's window of viseme classes (`core.visemes.frame_visemes`, the audio window's frames) from
    the line's aligned text or the phones a recogniser hears. In training a window reads no phones
    with probability phone_dropout (so the audio-only path is trained too), else the recogniser's
    phones of its speech with probability heard_share (the dataset's "heard") and the exact phones
    otherwise; audio_dropout: the probability that a window reading phones reads no audio (zeros, the
    features' mean), so the flow learns to shape the mouth from the phones alone too.
    """

    fps: float = DEFAULT_FPS
    audio_before: int = 4
    audio_after: int = 4
    audio_width: int = FRAME_FEATURES
    nu: float = 5.0
    prior_seed: int = 0
    emotion_dim: int = 16
    emotion_dropout: float = 0.0
    lip_gap: bool = True
    seal_depth: float = 0.05
    take_style: bool = True
    phone_dim: int = 0
    phone_dropout: float = 0.5
    heard_share: float = 0.5
    audio_dropout: float = 0.0
    exp: FlowConfig = field(default_factory=_exp_default)
    pose: FlowConfig = field(default_factory=_pose_default)

    @property
    def audio_window(self) -> int:
        """Audio rows per frame: before + 1 + after."""
        return self.audio_before + 1 + self.audio_after

    @property
    def tau(self) -> int:
        """Previous frames a training window must carry: the larger of the two flows' tau."""
        return max(self.exp.tau, self.pose.tau)

    def check(self) -> "CoeffConfig":
        """Validate every value; returns self so it chains."""
        if not 0 < self.fps <= 240:
            raise ConfigError(f"fps must be in (0, 240], got {self.fps}")
        for key in ("audio_before", "audio_after"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("audio_width", "emotion_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.audio_width % N_MELS:
            raise ConfigError(f"audio_width must be a multiple of {N_MELS} (log-mel rows per frame), got {self.audio_width}")
        if self.nu <= 0:
            raise ConfigError(f"nu (degrees of freedom) must be > 0, got {self.nu}")
        if not 0.0 <= self.emotion_dropout <= 1.0:
            raise ConfigError(f"emotion_dropout must be in [0, 1], got {self.emotion_dropout}")
        if self.phone_dim < 0:
            raise ConfigError(f"phone_dim must be >= 0 (0: no phone input), got {self.phone_dim}")
        for key in ("phone_dropout", "heard_share", "audio_dropout"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.seal_depth < 0:
            raise ConfigError(f"seal_depth must be >= 0, got {self.seal_depth}")
        self.exp.check("exp")
        self.pose.check("pose")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "CoeffConfig":
        """Strict inverse of `to_dict`: unknown keys and wrong types raise `ConfigError`.
        Missing keys take their defaults."""
        values = section_keys(cls, data, "model", ConfigError)
        for key in ("exp", "pose"):
            if key in values:
                base = getattr(cls(), key)
                section = section_keys(FlowConfig, values[key], key, ConfigError)
                values[key] = replace(base, **_typed(FlowConfig, section, key))
        return cls(**_typed(cls, values, "model")).check()


def _typed(kind: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Check scalar values against the defaults' types (`core.jsonvalues.as_kind`)."""
    defaults = kind()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is FlowConfig:
            continue
        try:
            values[key] = as_kind(value, expected)
        except TypeError as exc:
            raise ConfigError(f"{where}.{key} {exc}") from None
    return values


PRESETS: dict[str, CoeffConfig] = {
    "default": CoeffConfig(),
    "tiny": CoeffConfig(
        audio_before=2,
        audio_after=2,
        emotion_dim=4,
        exp=FlowConfig(steps=2, hidden=16, heads=2, context_dim=16, value_tokens=2,
                       context_tokens=2, audio_dim=16),
        pose=FlowConfig(steps=2, hidden=8, heads=2, context_dim=8, value_tokens=2,
                        context_tokens=1, audio_dim=8, noise_std=1e-4),
    ),
}
