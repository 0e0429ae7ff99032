"""Training of the image generator from YAML configs: ``flowvq train codebook`` and ``flowvq train vqig``.

Both runs follow `core.train.loop` (the coefficient trainer) and share its process-group, seeding,
history, checkpoint and config helpers (`core.train.common`): every random draw depends on (seed,
rank, step) only, so ``--resume`` continues exactly where a checkpoint left off; under ``torchrun``
each rank draws its own batches and DistributedDataParallel averages the gradients; only rank 0
writes files and shows the tqdm bar.

* **codebook** (paper Eq. 13-17): E_h, C, D_h by self-reconstruction of still images with
  L1 + perceptual + λ_adv · adversarial (from ``adv_start`` on) + code + λ_feat · feat. The codes are
  initialised from the encoder's outputs on the first batch, so every code starts in use.
* **vqig** (paper Eq. 18, two stages): the codebook is loaded and frozen and E_w starts as E_h.
  Steps before ``stage1_steps`` train on code cross-entropy + feature MSE; the later steps add the
  image-level losses (L1, perceptual, adversarial) on the decoded image, whose gradient reaches the
  code logits through a straight-through lookup.

The output folder holds the weights (`core.vq.weights`, written at every checkpoint), trainer_state.pt
(models, optimizers, step, config, world size; written atomically) and history.jsonl (one
``{"event": "train", "step", "stage", <losses>, "world_size", "seconds"}`` object per log).
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.face import builtin
from core.train.common import (
    Process, TrainError, check_betas, check_float_minima, check_integer_minima, known_keys, load_yaml_config,
    output_folder, plain_config, process_group, read_trainer_state, resolve_path, resolve_paths, run_steps,
    stream_seed, to_device, wrap_ddp, write_trainer_state,
)
from core.vq.codebook import CodebookAE
from core.vq.config import PRESETS, VQConfig, VQConfigError, resolve_preset
from core.vq.data import FrameSampler, ImageSampler, list_images, load_frame_sequences
from core.vq.losses import (
    ADVERSARIAL_LOSSES, PatchDiscriminator, PerceptualLoss, code_accuracy, code_cross_entropy,
    discriminator_adversarial, generator_adversarial,
)
from core.vq.vqig import VQIG
from core.vq.weights import load_codebook, save_codebook, save_vqig

__all__ = [
    "CODEBOOK_KEYS", "VQIG_KEYS", "CodebookTrainConfig", "VQIGTrainConfig", "load_codebook_config",
    "load_vqig_config", "train_codebook", "train_vqig",
]

CODEBOOK_KEYS: tuple[str, ...] = ("loss", "l1", "perceptual", "code", "feat", "adv", "disc")
VQIG_KEYS: tuple[str, ...] = ("loss", "code", "feat", "accuracy", "l1", "perceptual", "adv", "disc")
STATE_FORMAT = "flowvq-vq-trainer-state"
STATE_VERSION = 1
_RESUMABLE_CHANGES = frozenset({"images", "dataset", "out", "steps", "log_every", "checkpoint_every"})
_INTEGER_MINIMA = {"steps": 1, "batch_size": 1, "seed": 0, "log_every": 1, "checkpoint_every": 1}
# key -> (minimum, whether the minimum itself is allowed); the loss weights may be 0
_FLOAT_MINIMA = {
    "lr": (0.0, False), "grad_clip": (0.0, False),
    **{key: (0.0, True) for key in ("l1_weight", "perceptual_weight", "adv_weight", "code_weight", "feat_weight")},
}
_REQUIRED_HINT = "see docs/vqig.md"
_BATCH_STREAM, _INIT_STREAM = 0, 1
Batch = dict[str, Tensor]


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodebookTrainConfig:
    """A ``flowvq train codebook`` run (docs/vqig.md lists every key).

    images: still-image folders (searched recursively); model: `VQConfig` (its codebook part is
    trained); perceptual_weights: torchvision's vgg19 state dict, None = perceptual loss off;
    adv_start: the step the adversarial loss starts at; adv_loss: one of `ADVERSARIAL_LOSSES`.
    """

    images: tuple[Path, ...]
    out: Path | None = None
    model: VQConfig = field(default_factory=lambda: PRESETS["paper-512"])
    steps: int = 100000
    batch_size: int = 8
    seed: int = 0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    grad_clip: float = 1.0
    perceptual_weights: Path | None = None
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    adv_weight: float = 0.8
    adv_start: int = 20000
    adv_loss: str = "non-saturating"
    code_weight: float = 1.0
    feat_weight: float = 0.25
    log_every: int = 50
    checkpoint_every: int = 5000

    def __post_init__(self) -> None:
        _check_common(self, {**_INTEGER_MINIMA, "adv_start": 0})
        if not self.images:
            raise TrainError("images must list at least one image folder")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML ready); `from_dict` reads it back to an equal config."""
        return plain_config(self)

    @classmethod
    def from_dict(cls, data: Any, base: Path = Path(".")) -> "CodebookTrainConfig":
        """Strict: unknown keys and wrong types raise `TrainError`; relative paths resolve against ``base``."""
        values = known_keys(cls, data, required={"images": _REQUIRED_HINT})
        images = values["images"] if isinstance(values["images"], list) else [values["images"]]
        values["images"] = tuple(resolve_path("images", item, base) for item in images)
        values["model"] = _model(values.get("model"))
        return cls(**resolve_paths(values, ("out", "perceptual_weights"), base))


@dataclass(frozen=True)
class VQIGTrainConfig:
    """A ``flowvq train vqig`` run (docs/vqig.md lists every key).

    dataset: the talking-face frame folder (`core.vq.data`); codebook: a trained codebook weights
    folder (its config replaces the model's codebook part); model: preset plus ``vqig:`` overrides;
    stage1_steps: steps of code-level training before the image-level losses join.
    """

    dataset: Path
    codebook: Path
    out: Path | None = None
    model: VQConfig = field(default_factory=lambda: PRESETS["paper-512"])
    steps: int = 100000
    stage1_steps: int = 50000
    batch_size: int = 8
    seed: int = 0
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    perceptual_weights: Path | None = None
    code_weight: float = 1.0
    feat_weight: float = 1.0
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    adv_weight: float = 0.8
    adv_loss: str = "non-saturating"
    log_every: int = 50
    checkpoint_every: int = 5000

    def __post_init__(self) -> None:
        _check_common(self, {**_INTEGER_MINIMA, "stage1_steps": 0})

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML ready)."""
        return plain_config(self)

    @classmethod
    def from_dict(cls, data: Any, base: Path = Path(".")) -> "VQIGTrainConfig":
        """Strict, like `CodebookTrainConfig.from_dict`; the model's codebook part comes from the
        codebook weights, so ``model.codebook`` may not be set here."""
        values = known_keys(cls, data, required={"dataset": _REQUIRED_HINT, "codebook": _REQUIRED_HINT})
        if isinstance(values.get("model"), dict) and "codebook" in values["model"]:
            raise TrainError("model.codebook cannot be set for a VQIG run: it comes from the codebook weights")
        values["model"] = _model(values.get("model"))
        return cls(**resolve_paths(values, ("dataset", "codebook", "out", "perceptual_weights"), base))


def _check_common(config: Any, integer_minima: dict[str, int]) -> None:
    """Range checks shared by both configs; normalises numbers in place."""
    check_integer_minima(config, integer_minima)
    check_float_minima(config, _FLOAT_MINIMA)
    check_betas(config)
    if config.adv_loss not in ADVERSARIAL_LOSSES:
        raise TrainError(f"adv_loss must be one of {', '.join(ADVERSARIAL_LOSSES)}, got {config.adv_loss!r}")
    if not isinstance(config.model, VQConfig):
        raise TrainError(f"model must be a VQConfig, got {type(config.model).__name__}")


def _model(section: Any) -> VQConfig:
    """The ``model`` section resolved by `core.vq.config.resolve_preset`, its errors as `TrainError`."""
    try:
        return resolve_preset(section)
    except VQConfigError as exc:
        raise TrainError(str(exc)) from None


def load_codebook_config(path: str | Path) -> CodebookTrainConfig:
    """Read a codebook training YAML (see configs/codebook-tiny.yaml); errors name the file."""
    return load_yaml_config(path, CodebookTrainConfig.from_dict)


def load_vqig_config(path: str | Path) -> VQIGTrainConfig:
    """Read a VQIG training YAML (see configs/vqig-tiny.yaml); errors name the file."""
    return load_yaml_config(path, VQIGTrainConfig.from_dict)


# ---------------------------------------------------------------------------------------------
# Generator losses (the modules DistributedDataParallel wraps)
# ---------------------------------------------------------------------------------------------

class _CodebookLoss(nn.Module):
    """Self-reconstruction losses of the codebook autoencoder; returns the terms, the total
    (without the adversarial term) and the real/fake images for the discriminator."""

    def __init__(self, model: CodebookAE, perceptual: PerceptualLoss, config: CodebookTrainConfig) -> None:
        super().__init__()
        self.model, self.perceptual, self.config = model, perceptual, config

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        recon, encoded = self.model(images)
        terms = {
            "l1": F.l1_loss(recon, images), "perceptual": self.perceptual(recon, images),
            "code": encoded.losses.code, "feat": encoded.losses.feat,
        }
        c = self.config
        loss = (c.l1_weight * terms["l1"] + c.perceptual_weight * terms["perceptual"]
                + c.code_weight * terms["code"] + c.feat_weight * terms["feat"])
        return {"loss": loss, **terms, "fake": recon, "real": images}


class _VQIGLoss(nn.Module):
    """Stage 1 (code cross-entropy + feature MSE against the target's codes) and, with
    ``image_level``, stage 2's L1 and perceptual losses on the decoded image."""

    def __init__(self, model: VQIG, perceptual: PerceptualLoss, config: VQIGTrainConfig) -> None:
        super().__init__()
        self.model, self.perceptual, self.config = model, perceptual, config

    def forward(self, batch: Batch, image_level: bool) -> dict[str, Tensor]:
        output = self.model(batch["source"], batch["exp"], batch["pose"], decode=image_level)
        with torch.no_grad():
            target = self.model.codebook.encode(batch["target"])
        c = self.config
        terms = {
            "code": code_cross_entropy(output.logits, target.indices),
            "feat": F.mse_loss(output.features, target.quantized),
            "accuracy": code_accuracy(output.logits.detach(), target.indices),
        }
        loss = c.code_weight * terms["code"] + c.feat_weight * terms["feat"]
        if output.image is not None:
            terms.update(l1=F.l1_loss(output.image, batch["target"]),
                         perceptual=self.perceptual(output.image, batch["target"]))
            loss = loss + c.l1_weight * terms["l1"] + c.perceptual_weight * terms["perceptual"]
        return {"loss": loss, **terms, "fake": output.image, "real": batch["target"]}


# ---------------------------------------------------------------------------------------------
# The shared GAN loop
# ---------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """What differs between the two trainings, for `_fit`."""

    kind: str                                   # "codebook" or "vqig"
    keys: tuple[str, ...]                       # logged losses
    model: nn.Module                            # the trained model (saved in the trainer state)
    loss: nn.Module                             # its loss module
    sample: Callable[[np.random.Generator], Any]  # one rank's batch (on the CPU)
    inputs: Callable[[Any, int], tuple]         # loss module arguments for (batch, step)
    adversarial: Callable[[int], bool]          # whether step uses the discriminator
    stage: Callable[[int], int]                 # the stage a step belongs to (1 for the codebook)
    save: Callable[[Path, dict[str, Any]], None]  # write the weights with provenance


def _read_state(out: Path, config: Any, kind: str, world_size: int, device: torch.device) -> dict[str, Any]:
    """The trainer state to resume from, after checking it belongs to this run and job size."""
    return read_trainer_state(
        out, config, header=_state_header(kind), what=f"{kind} trainer state of version {STATE_VERSION}",
        resumable=_RESUMABLE_CHANGES, world_size=world_size, device=device,
    )


def _state_header(kind: str) -> dict[str, Any]:
    """The first keys of a ``kind`` ("codebook" or "vqig") trainer state."""
    return {"format": STATE_FORMAT, "version": STATE_VERSION, "kind": kind}


def _fit(run: _Run, config: Any, out: Path, process: Process, state: dict[str, Any] | None) -> None:
    """Alternate generator and discriminator steps from the state's step to ``config.steps`` in
    the trainers' loop (`run_steps`), which logs and checkpoints."""
    discriminator = PatchDiscriminator(config.model.codebook.disc_channels, config.model.codebook.disc_layers)
    discriminator.to(process.device)
    trainable = [p for p in run.model.parameters() if p.requires_grad]
    g_opt = torch.optim.Adam(trainable, lr=config.lr, betas=config.betas)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=config.betas)
    first = 0
    if state is not None:
        run.model.load_state_dict(state["model"])
        discriminator.load_state_dict(state["discriminator"])
        g_opt.load_state_dict(state["g_optimizer"])
        d_opt.load_state_dict(state["d_optimizer"])
        first = state["step"]
    loss_module, critic = wrap_ddp(run.loss, process), wrap_ddp(discriminator, process)

    def step(index: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
        rng = np.random.default_rng(stream_seed(config.seed, process.rank, index, _BATCH_STREAM))
        batch = to_device(run.sample(rng), process.device)
        adversarial = run.adversarial(index)
        terms = loss_module(*run.inputs(batch, index))
        loss = terms["loss"]
        if adversarial:
            terms["adv"] = generator_adversarial(critic(terms["fake"]), config.adv_loss)
            loss = loss + config.adv_weight * terms["adv"]
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        g_opt.step()
        if adversarial:
            logits = critic(torch.cat([terms["real"], terms["fake"].detach()]))
            terms["disc"] = discriminator_adversarial(*logits.chunk(2), config.adv_loss)
            d_opt.zero_grad(set_to_none=True)
            terms["disc"].backward()
            d_opt.step()
        terms["loss"] = loss
        return terms, {"stage": run.stage(index)}

    run_steps(run.kind, run.keys, config, out, process, first, step,
              lambda done: _checkpoint(run, discriminator, g_opt, d_opt, config, out, done, process.world_size))


def _checkpoint(
    run: _Run, discriminator: nn.Module, g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer,
    config: Any, out: Path, step: int, world_size: int,
) -> None:
    """Weights for use and inspection, then the trainer state that --resume reads."""
    run.save(out, {"step": step, "world_size": world_size, "config": config.to_dict()})
    write_trainer_state(out, {
        **_state_header(run.kind), "step": step, "world_size": world_size, "config": config.to_dict(),
        "model": run.model.state_dict(), "discriminator": discriminator.state_dict(),
        "g_optimizer": g_opt.state_dict(), "d_optimizer": d_opt.state_dict(),
    })


def _perceptual(config: Any, device: torch.device) -> PerceptualLoss:
    """The perceptual loss, and a loud line on stderr when it is off."""
    if config.perceptual_weights is None and config.perceptual_weight > 0:
        print("WARNING: perceptual loss OFF (no perceptual_weights: torchvision's vgg19 state dict); "
              "results will be blurrier than the paper's", file=sys.stderr)
    return PerceptualLoss(config.perceptual_weights).to(device)


# ---------------------------------------------------------------------------------------------
# The two commands
# ---------------------------------------------------------------------------------------------

def train_codebook(
    config: CodebookTrainConfig | str | Path, out: str | Path | None = None, resume: bool = False,
    device: str = "auto",
) -> Path:
    """Train the codebook autoencoder as ``config`` (a config or a YAML path) says; returns the
    weights folder (``out``, else ``config.out``) that `core.vq.weights.load_codebook` reads."""
    config = config if isinstance(config, CodebookTrainConfig) else load_codebook_config(config)
    out = output_folder(Path(out) if out is not None else config.out, resume)
    book = config.model.codebook
    sampler = ImageSampler(list_images(config.images), book.resolution)
    with process_group(device) as process:
        state = _read_state(out, config, "codebook", process.world_size, process.device) if resume else None
        torch.manual_seed(config.seed)
        model = CodebookAE(book).to(process.device)
        if state is None:
            _init_codes(model, sampler, config, process.device)
        run = _Run(
            kind="codebook", keys=CODEBOOK_KEYS, model=model,
            loss=_CodebookLoss(model, _perceptual(config, process.device), config),
            sample=lambda rng: sampler.sample(rng, config.batch_size), inputs=lambda batch, step: (batch,),
            adversarial=lambda step: config.adv_weight > 0 and step >= config.adv_start, stage=lambda step: 1,
            save=lambda folder, training: save_codebook(folder, model, training),
        )
        _fit(run, config, out, process, state)
    if process.main:
        print(f"train codebook: {config.steps} steps done; weights -> {out.resolve()}")
    return out


@torch.no_grad()
def _init_codes(model: CodebookAE, sampler: ImageSampler, config: CodebookTrainConfig, device: torch.device) -> None:
    """Codes from the untrained encoder's outputs on one seeded batch (the same on every rank)."""
    rng = np.random.default_rng(stream_seed(config.seed, 0, 0, _INIT_STREAM))
    generator = torch.Generator().manual_seed(stream_seed(config.seed, 0, 0, _INIT_STREAM))
    model.quantizer.init_codes(model.encoder(sampler.sample(rng, config.batch_size).to(device)).cpu(), generator)


def train_vqig(
    config: VQIGTrainConfig | str | Path, out: str | Path | None = None, resume: bool = False, device: str = "auto",
) -> Path:
    """Train the VQIG on top of a trained codebook as ``config`` says; returns the weights folder
    that `core.vq.weights.load_vqig` (and `core.vq.renderer.VQIGRenderer.load`) reads."""
    config = config if isinstance(config, VQIGTrainConfig) else load_vqig_config(config)
    out = output_folder(Path(out) if out is not None else config.out, resume)
    face = builtin()
    codebook = load_codebook(config.codebook)
    try:
        model_config = VQConfig(codebook=codebook.config, vqig=config.model.vqig).check()
    except VQConfigError as exc:
        raise TrainError(f"the VQIG settings do not fit the codebook in {config.codebook}: {exc}") from None
    sampler = FrameSampler(load_frame_sequences(config.dataset, face), model_config.vqig.window,
                           model_config.codebook.resolution)
    with process_group(device) as process:
        state = _read_state(out, config, "vqig", process.world_size, process.device) if resume else None
        torch.manual_seed(config.seed)
        model = VQIG(model_config, face.n_expressions)
        model.init_from_codebook(codebook)
        model.to(process.device)
        run = _Run(
            kind="vqig", keys=VQIG_KEYS, model=model,
            loss=_VQIGLoss(model, _perceptual(config, process.device), config),
            sample=lambda rng: sampler.sample(rng, config.batch_size),
            inputs=lambda batch, step: (batch, step >= config.stage1_steps),
            adversarial=lambda step: config.adv_weight > 0 and step >= config.stage1_steps,
            stage=lambda step: 1 if step < config.stage1_steps else 2,
            save=lambda folder, training: save_vqig(folder, model, face, training),
        )
        _fit(run, config, out, process, state)
    if process.main:
        print(f"train vqig: {config.steps} steps done ({min(config.stage1_steps, config.steps)} code-level); "
              f"weights -> {out.resolve()}")
    return out
