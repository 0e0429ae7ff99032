"""Training losses of the codebook autoencoder and the VQIG (paper Eq. 14-18).

* reconstruction: L1 between images (`F.l1_loss`);
* perceptual: squared distance of VGG19 features (`PerceptualLoss`). Pretrained VGG19 weights cannot
  be downloaded here: the loss reads torchvision's ``vgg19`` state dict (``features.N.weight`` /
  ``features.N.bias``; the layers after relu5_1 and ``classifier.*`` are ignored) from a ``.pth`` or ``.safetensors`` path
  the user gives. Without a path it is OFF: it returns zero and warns loudly (`PerceptualOffWarning`);
* adversarial: a PatchGAN discriminator (`PatchDiscriminator`) with the non-saturating loss of
  Eq. 15 or the hinge loss (`generator_adversarial`, `discriminator_adversarial`), weighted by
  λ_adv (0.8 in the paper);
* code level: the quantizer's ``code`` and ``feat`` terms (`core.vq.quantize`), λ_feat 0.25;
* VQIG code level (Eq. 18): cross-entropy of the predicted code logits (`code_cross_entropy`) and the
  squared error between ẑ_f and the target's z_c.
"""

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from core.errors import FlowVQError

__all__ = [
    "ADVERSARIAL_LOSSES", "VGG19_LAYERS", "PerceptualWeightsError", "PerceptualOffWarning", "PerceptualLoss",
    "PatchDiscriminator", "generator_adversarial", "discriminator_adversarial", "code_cross_entropy",
    "code_accuracy",
]

ADVERSARIAL_LOSSES: tuple[str, ...] = ("non-saturating", "hinge")
# torchvision's vgg19 "features": output channels of each 3×3 conv, "M" a 2×2 max-pool.
_VGG19_PLAN: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
)
# Indices into "features" of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (the features compared).
VGG19_LAYERS: tuple[int, ...] = (1, 6, 11, 20, 29)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualWeightsError(FlowVQError):
    """A VGG19 weights file that is missing, unreadable, or not in torchvision's layout."""
    code = "perceptual_weights"


class PerceptualOffWarning(UserWarning):
    """The perceptual loss runs without VGG19 weights, i.e. it is off."""


def _vgg19_features() -> nn.Sequential:
    """torchvision's ``vgg19().features`` layout up to relu5_1, so its state dict keys load as is."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers[: VGG19_LAYERS[-1] + 1])


def _read_vgg_state(path: Path) -> dict[str, Tensor]:
    """The ``features.*`` tensors up to relu5_1 of a torchvision vgg19 state dict, keys without the prefix."""
    if not path.is_file():
        raise PerceptualWeightsError(f"VGG19 weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise PerceptualWeightsError(f"{path} is not a readable VGG19 state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise PerceptualWeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    kept = {}
    for key, value in state.items():
        layer, _, name = key.removeprefix("features.").partition(".")
        if key.startswith("features.") and layer.isdigit() and int(layer) <= VGG19_LAYERS[-1]:
            kept[f"{layer}.{name}"] = value
    return kept


class PerceptualLoss(nn.Module):
    """Mean over relu1_1..relu5_1 of the squared feature difference of a frozen VGG19 (Eq. 14).

    ``weights``: torchvision's vgg19 state dict (``.pth`` or ``.safetensors``); None turns the loss
    off (it returns 0 and warns once, at construction). Images in [-1, 1].
    Shapes: prediction, target (B, 3, H, W) -> scalar.
    """

    def __init__(self, weights: str | Path | None) -> None:
        super().__init__()
        self.enabled = weights is not None
        self.features = _vgg19_features() if self.enabled else None
        if self.features is None:
            warnings.warn(
                "the perceptual loss is OFF: no VGG19 weights were given (set 'perceptual_weights' to "
                "torchvision's vgg19 state dict, e.g. vgg19-dcbb9e9d.pth); training continues without it",
                PerceptualOffWarning, stacklevel=2,
            )
            return
        try:
            self.features.load_state_dict(_read_vgg_state(Path(weights)), strict=True)
        except RuntimeError as exc:
            raise PerceptualWeightsError(f"{weights} is not torchvision's vgg19 layout: {exc}") from exc
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        if self.features is None:
            return prediction.new_zeros(())
        x = torch.cat([prediction, target]) * 0.5 + 0.5  # (2B, 3, H, W) in [0, 1]
        x = (x - self.mean) / self.std
        total = prediction.new_zeros(())
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG19_LAYERS:
                predicted, wanted = x.chunk(2)
                total = total + F.mse_loss(predicted, wanted)
        return total / len(VGG19_LAYERS)


class PatchDiscriminator(nn.Module):
    """PatchGAN: stride-2 conv layers then a 1-channel conv, one real/fake logit per patch.
    Shapes: image (B, 3, S, S) -> logits (B, 1, S / 2**layers - 2, ...)."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = channels
        for layer in range(1, layers + 1):
            out = channels * 2 ** min(layer, 3)
            stride = 2 if layer < layers else 1
            blocks += [nn.Conv2d(width, out, 4, stride=stride, padding=1), nn.GroupNorm(1, out), nn.LeakyReLU(0.2)]
            width = out
        blocks.append(nn.Conv2d(width, 1, 4, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


def generator_adversarial(fake_logits: Tensor, kind: str) -> Tensor:
    """The generator's adversarial loss: non-saturating -log D(fake), or hinge -D(fake)."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial(real_logits: Tensor, fake_logits: Tensor, kind: str) -> Tensor:
    """The discriminator's loss: -log D(real) - log(1 - D(fake)) (Eq. 15), or the hinge loss."""
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def code_cross_entropy(logits: Tensor, indices: Tensor) -> Tensor:
    """Mean cross-entropy of the code logits against the target codes (Eq. 18).
    Shapes: logits (B, m*n, N), indices (B, m, n) -> scalar."""
    return F.cross_entropy(logits.flatten(0, 1), indices.flatten())


def code_accuracy(logits: Tensor, indices: Tensor) -> Tensor:
    """Fraction of cells whose most likely code is the target code.
    Shapes: logits (B, m*n, N), indices (B, m, n) -> scalar."""
    return (logits.argmax(-1) == indices.flatten(1)).float().mean()
