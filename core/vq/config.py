"""Architecture settings of the image generator (design section 4): the codebook autoencoder and the VQIG.

`VQConfig` holds a `CodebookConfig` (E_h, codebook, D_h, discriminator) and a `VQIGConfig` (the
networks around them). Resolution is a setting; the latent grid is ``resolution / 2**downsamples``
cells per side (16×16 at 512 px in the paper). The coefficient dimension D is not a setting: it
comes from the face model the VQIG is built for. Configs are saved with the weights and read back
strictly (`VQConfig.from_dict`), so weights never load into a model of another shape.

Presets (`PRESETS`):

* ``paper-512``: the paper's 512 px, N = 1024 codes of d = 256, a 16×16 latent (CodeFormer-sized
  encoder/decoder and code transformer);
* ``preview-256``: the interactive preview: 256 px, same codebook size and 16×16 latent, thinner nets;
* ``tiny``: 64 px, 32 codes of 16, an 8×8 latent: for tests and CI-sized smoke training.
"""

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import FlowVQError
from core.jsonvalues import as_kind
from core.configparse import section_keys, split_preset

__all__ = ["VQConfigError", "CodebookConfig", "VQIGConfig", "VQConfig", "PRESETS", "resolve_preset"]


class VQConfigError(FlowVQError):
    """An image-generator config that is malformed or out of range."""
    code = "vq_config"


@dataclass(frozen=True)
class CodebookConfig:
    """The codebook autoencoder (E_h, codebook C, D_h) and its PatchGAN discriminator.

    resolution: image side in pixels; channels × channel_mult[i]: the width of encoder level i (the
    decoder mirrors it), one 2× downsampling between consecutive levels; res_blocks: residual blocks
    per level; codebook_size N and code_dim d: the codebook; disc_channels / disc_layers: the
    discriminator's first width and its stride-2 layers.
    """

    resolution: int = 512
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)
    res_blocks: int = 2
    codebook_size: int = 1024
    code_dim: int = 256
    disc_channels: int = 64
    disc_layers: int = 3

    @property
    def downsamples(self) -> int:
        """2× downsamplings from the image to the latent grid."""
        return len(self.channel_mult) - 1

    @property
    def latent_size(self) -> int:
        """Latent cells per side (m = n)."""
        return self.resolution >> self.downsamples

    def check(self) -> None:
        """Raise `VQConfigError` for the first value out of range."""
        _positive(self, ("resolution", "channels", "res_blocks", "codebook_size", "code_dim",
                         "disc_channels", "disc_layers"), "codebook")
        if not self.channel_mult or any(m < 1 for m in self.channel_mult):
            raise VQConfigError(
                f"codebook.channel_mult must be a non-empty list of integers >= 1, got {self.channel_mult}"
            )
        if self.codebook_size < 2:
            raise VQConfigError(f"codebook.codebook_size must be >= 2, got {self.codebook_size}")
        if self.resolution % (1 << self.downsamples) or self.latent_size < 2:
            raise VQConfigError(
                f"codebook.resolution {self.resolution} must be a multiple of 2**{self.downsamples} "
                f"(one per channel_mult step) with a latent of at least 2×2"
            )


@dataclass(frozen=True)
class VQIGConfig:
    """The networks of the VQIG around the frozen codebook autoencoder.

    window: coefficient frames Φ reads around each output frame (odd; edges repeated);
    motion_dim / mapping_channels / mapping_layers: Φ's descriptor σ and its 1-D conv net;
    warp_channels / warp_levels: the warping net W, an AdaIN hourglass with warp_levels 2×
    downsamplings whose dense flow is predicted at half the resolution; heads: the cross-attention heads;
    transformer_dim / transformer_heads / transformer_layers: the code transformer T.
    """

    window: int = 27
    motion_dim: int = 256
    mapping_channels: int = 256
    mapping_layers: int = 3
    warp_channels: int = 32
    warp_levels: int = 4
    heads: int = 8
    transformer_dim: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 9

    def check(self, codebook: CodebookConfig) -> None:
        """Raise `VQConfigError` for the first value out of range (some depend on ``codebook``)."""
        _positive(self, ("window", "motion_dim", "mapping_channels", "mapping_layers", "warp_channels",
                         "warp_levels", "heads", "transformer_dim", "transformer_heads",
                         "transformer_layers"), "vqig")
        if self.window % 2 == 0:
            raise VQConfigError(f"vqig.window must be odd (centred on the frame), got {self.window}")
        if codebook.code_dim % self.heads:
            raise VQConfigError(
                f"codebook.code_dim ({codebook.code_dim}) must be a multiple of vqig.heads ({self.heads})"
            )
        if self.transformer_dim % self.transformer_heads:
            raise VQConfigError(
                f"vqig.transformer_dim ({self.transformer_dim}) must be a multiple of "
                f"vqig.transformer_heads ({self.transformer_heads})"
            )
        if codebook.resolution % (1 << (self.warp_levels + 1)):
            raise VQConfigError(
                f"codebook.resolution {codebook.resolution} must be a multiple of 2**(vqig.warp_levels + 1) "
                f"= {1 << (self.warp_levels + 1)}"
            )


@dataclass(frozen=True)
class VQConfig:
    """The whole image generator: codebook autoencoder plus VQIG networks."""

    codebook: CodebookConfig = field(default_factory=CodebookConfig)
    vqig: VQIGConfig = field(default_factory=VQIGConfig)

    def check(self) -> "VQConfig":
        """Validate every value; returns self so it chains."""
        self.codebook.check()
        self.vqig.check(self.codebook)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON ready)."""
        values = asdict(self)
        values["codebook"]["channel_mult"] = list(self.codebook.channel_mult)
        return values

    @classmethod
    def from_dict(cls, data: Any) -> "VQConfig":
        """Strict inverse of `to_dict`: unknown keys and wrong types raise `VQConfigError`; missing
        keys (and sections) take the paper-512 defaults."""
        values = section_keys(cls, data, "model", VQConfigError)
        codebook = _section(CodebookConfig, values.get("codebook", {}), "codebook")
        vqig = _section(VQIGConfig, values.get("vqig", {}), "vqig")
        return cls(codebook=codebook, vqig=vqig).check()


def _positive(config: Any, keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if getattr(config, key) < 1:
            raise VQConfigError(f"{where}.{key} must be >= 1, got {getattr(config, key)}")


def _section(kind: type, data: Any, where: str) -> Any:
    """A `CodebookConfig` or `VQIGConfig` from a mapping, each value checked against the default's type."""
    values = section_keys(kind, data, where, VQConfigError)
    defaults = kind()
    for key, value in values.items():
        default = getattr(defaults, key)
        try:
            if isinstance(default, tuple):
                if not isinstance(value, (list, tuple)):
                    raise TypeError(f"must be a list of integers, got {value!r}")
                values[key] = tuple(as_kind(item, int) for item in value)
            else:
                values[key] = as_kind(value, type(default))
        except TypeError as exc:
            raise VQConfigError(f"{where}.{key} {exc}") from None
    return replace(defaults, **values)


PRESETS: dict[str, VQConfig] = {
    "paper-512": VQConfig(),
    "preview-256": VQConfig(
        codebook=CodebookConfig(resolution=256, channels=32, channel_mult=(1, 2, 4, 4, 8), res_blocks=1,
                                disc_channels=32),
        vqig=VQIGConfig(window=13, motion_dim=128, mapping_channels=128, warp_channels=16, heads=4,
                        transformer_dim=256, transformer_heads=4, transformer_layers=4),
    ),
    "tiny": VQConfig(
        codebook=CodebookConfig(resolution=64, channels=8, channel_mult=(1, 2, 2, 4), res_blocks=1,
                                codebook_size=32, code_dim=16, disc_channels=8, disc_layers=2),
        vqig=VQIGConfig(window=3, motion_dim=16, mapping_channels=16, mapping_layers=1, warp_channels=8,
                        warp_levels=2, heads=2, transformer_dim=32, transformer_heads=2, transformer_layers=2),
    ),
}


def resolve_preset(section: Any) -> VQConfig:
    """A config's ``model`` section: ``preset`` (a `PRESETS` name, default "paper-512") plus
    ``codebook:`` / ``vqig:`` keys overriding only the keys they name. None is the preset alone."""
    preset, overrides = split_preset(section, PRESETS, "paper-512", VQConfigError,
                                     keys="preset plus codebook:/vqig: overrides", label="image-generator")
    merged = preset.to_dict()
    for key, value in section_keys(VQConfig, overrides, "model", VQConfigError).items():
        merged[key] = {**merged[key], **section_keys(type(getattr(preset, key)), value, key, VQConfigError)}
    return VQConfig.from_dict(merged)
