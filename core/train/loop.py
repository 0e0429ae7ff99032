"""Training of the coefficient flows from a YAML config: what ``flowvq train coeff`` runs.

A run reads a dataset in the `core.train.data` layout, fixes both flows' standardisation from every
training frame, trains ExpFlow and PoseFlow together with AdamW on random windows, validates on the
val split, checkpoints, and at the end builds the latent bank from the training split and writes
the weights. Under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK set) it trains with
DistributedDataParallel: each rank draws its own windows, gradients are averaged, and only rank 0
writes files and shows the progress bar.

The output directory holds::

    OUT/
      config.yaml, coeff.safetensors, latent_bank.safetensors   `core.coeff.weights` (the bank is
                         empty in intermediate checkpoints and filled at the end)
      trainer_state.pt   model and optimizer state, step, best validation loss, world size and the
                         training config: one file written atomically, so ``--resume`` never pairs
                         weights and optimizer state of different steps
      history.jsonl      one JSON object per event: {"event": "train" | "val", "step", "loss",
                         "exp_nll", "exp_con", "pose_nll", "pose_con", "world_size", "seconds"}

Randomness depends on (seed, rank, step) only: step k's batch on rank r comes from a numpy
generator and its loss noise (dequantisation, data dropout, consistency latents) from a torch
generator, both seeded from ``SeedSequence([seed, r, k, stream])``. The step is therefore the whole
RNG state, and a resumed run draws exactly what an uninterrupted run would.
"""

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, distributed, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from core.coeff.bank import build_latent_bank
from core.coeff.config import PRESETS, CoeffConfig
from core.coeff.model import CoeffModel
from core.coeff.weights import save_weights
from core.device import resolve_device
from core.errors import FlowVQError
from core.face import builtin
from core.face.model import FaceModel
from core.fileio import write_atomic
from core.jsonvalues import as_kind
from core.train.data import CoeffSequence, WindowSampler, frame_batches, load_split, read_meta

__all__ = [
    "TrainError", "TrainConfig", "LOSS_KEYS", "HISTORY_FILE", "STATE_FILE",
    "resolve_model", "load_train_config", "read_history", "train_coeff",
]

LOSS_KEYS: tuple[str, ...] = ("loss", "exp_nll", "exp_con", "pose_nll", "pose_con")
HISTORY_FILE = "history.jsonl"
STATE_FILE = "trainer_state.pt"
STATE_FORMAT = "flowvq-trainer-state"
STATE_VERSION = 1

# Keys that may change between a checkpoint and its resumption: they do not touch the trajectory.
_RESUMABLE_CHANGES = frozenset(
    {"dataset", "out", "steps", "log_every", "val_every", "val_batches", "checkpoint_every", "bank_size"}
)
_INTEGER_MINIMA = {
    "steps": 1, "window": 1, "batch_size": 1, "seed": 0, "log_every": 1, "val_every": 1,
    "val_batches": 1, "checkpoint_every": 1, "bank_size": 1,
}
# key -> (minimum, whether the minimum itself is allowed)
_FLOAT_MINIMA = {"lr": (0.0, False), "weight_decay": (0.0, True), "grad_clip": (0.0, False)}
# Streams of SeedSequence([seed, rank, step, stream]).
_BATCH_STREAM, _NOISE_STREAM, _VAL_BATCH_STREAM, _VAL_NOISE_STREAM = range(4)


class TrainError(FlowVQError):
    """A training config, dataset, output directory or checkpoint that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a coefficient training run needs; read strictly from YAML by `load_train_config`.

    dataset: the dataset folder (`core.train.data` layout); out: the output folder (None: must be
    given to `train_coeff`); model: the `CoeffConfig` (see `resolve_model`); steps: optimiser steps;
    window: target frames per training window; batch_size: windows per step and rank; seed: model
    initialisation and every random stream; lr, weight_decay, betas: AdamW; grad_clip: the maximal
    global gradient norm; log_every / val_every / checkpoint_every: steps between train-loss logs,
    validations and checkpoints (the last step always does all three); val_batches: fixed
    validation batches of ``batch_size`` windows; bank_size: training latents kept for manifold
    projection.
    """

    dataset: Path
    out: Path | None = None
    model: CoeffConfig = field(default_factory=CoeffConfig)
    steps: int = 20000
    window: int = 8
    batch_size: int = 32
    seed: int = 0
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    log_every: int = 50
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 1000
    bank_size: int = 4096

    def __post_init__(self) -> None:
        for key, minimum in _INTEGER_MINIMA.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise TrainError(f"{key} must be an integer >= {minimum}, got {value!r}")
        for key, (minimum, inclusive) in _FLOAT_MINIMA.items():
            value = _number(key, getattr(self, key))
            if not (math.isfinite(value) and (value >= minimum if inclusive else value > minimum)):
                bound = f"{'>=' if inclusive else '>'} {minimum:g}"
                raise TrainError(f"{key} must be a number {bound}, got {value!r}")
            object.__setattr__(self, key, value)
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise TrainError(f"betas must be a list of two numbers in [0, 1), got {betas!r}")
        betas = tuple(_number("betas", beta) for beta in betas)
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise TrainError(f"betas must be a list of two numbers in [0, 1), got {list(betas)}")
        object.__setattr__(self, "betas", betas)
        if not isinstance(self.model, CoeffConfig):
            raise TrainError(f"model must be a CoeffConfig, got {type(self.model).__name__}")
        object.__setattr__(self, "dataset", Path(self.dataset))
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON ready); `from_dict` reads it back to an equal config."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            dataset=str(self.dataset), out=None if self.out is None else str(self.out),
            model=self.model.to_dict(), betas=list(self.betas),
        )
        return values

    @classmethod
    def from_dict(cls, data: Any, base: Path = Path(".")) -> "TrainConfig":
        """Strict: unknown keys and wrong types raise `TrainError`; ``dataset`` is required, the
        rest takes the defaults; relative ``dataset``/``out`` paths are resolved against ``base``.
        """
        if not isinstance(data, dict):
            raise TrainError(f"a training config must be a mapping of keys, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise TrainError(f"unknown key(s) {', '.join(map(str, unknown))}; known keys: {', '.join(known)}")
        if data.get("dataset") is None:
            raise TrainError("the key 'dataset' (the dataset folder, see core.train.data) is required")
        values = dict(data)
        values["model"] = resolve_model(data.get("model"))
        for key in ("dataset", "out"):
            if values.get(key) is not None:
                if not isinstance(values[key], str):
                    raise TrainError(f"{key} must be a path string, got {values[key]!r}")
                values[key] = base / Path(values[key]).expanduser()
        return cls(**values)


def _number(key: str, value: Any) -> float:
    """``value`` as a float (`core.jsonvalues.as_kind`); otherwise `TrainError` naming ``key``."""
    try:
        return as_kind(value, float)
    except TypeError as exc:
        raise TrainError(f"{key} {exc}") from None


def resolve_model(section: Any) -> CoeffConfig:
    """The model section: ``preset`` (a `core.coeff.config.PRESETS` name, default "default") plus
    `CoeffConfig` keys overriding it; ``exp``/``pose`` overrides change only the keys they name.
    None (no section) is the default preset.
    """
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise TrainError(f"model must be a mapping (preset and CoeffConfig keys), got {section!r}")
    overrides = dict(section)
    preset = overrides.pop("preset", "default")
    if preset not in PRESETS:
        raise TrainError(f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    merged = PRESETS[preset].to_dict()
    for key, value in overrides.items():
        nested = key in ("exp", "pose") and isinstance(value, dict)
        merged[key] = {**merged[key], **value} if nested else value
    return CoeffConfig.from_dict(merged)


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML (see configs/coeff-tiny.yaml); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"training config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise TrainError(f"training config {path} is not valid YAML: {err}") from err
    try:
        return TrainConfig.from_dict(data, base=path.resolve().parent)
    except FlowVQError as err:
        raise TrainError(f"training config {path}: {err}") from err


def read_history(out: str | Path) -> list[dict[str, Any]]:
    """The events of ``out/history.jsonl`` in order."""
    path = Path(out) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------------------------
# Processes, data, randomness
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Process:
    """This process's place in the (possibly one-process) job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


@contextmanager
def _process_group(device: str) -> Iterator[_Process]:
    """This process's rank and device; under torchrun, a process group (nccl on CUDA, gloo on CPU)
    set up from the environment and torn down afterwards (unless the caller had set one up)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world_size == 1:
        yield _Process(0, 1, target)
        return
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(target)
    owned = not distributed.is_initialized()
    if owned:
        distributed.init_process_group("nccl" if target.type == "cuda" else "gloo")
    try:
        yield _Process(distributed.get_rank(), distributed.get_world_size(), target)
    finally:
        if owned:
            distributed.destroy_process_group()


def _load_dataset(config: TrainConfig, face: FaceModel) -> tuple[list[CoeffSequence], list[CoeffSequence]]:
    """The train and (possibly empty) val splits, after checking the dataset fits face and model."""
    meta = read_meta(config.dataset)
    if meta.face_model != face.id or meta.names != tuple(face.names):
        raise TrainError(
            f"dataset {config.dataset} was made for face model {meta.face_model!r} with "
            f"{len(meta.names)} expressions, but training uses {face.id!r} with {len(face.names)} "
            f"expressions{_first_difference(meta.names, face.names)}; re-export the dataset on this "
            "face model"
        )
    model = config.model
    if meta.fps != model.fps or meta.n_mels != model.n_mels:
        raise TrainError(
            f"dataset {config.dataset} has fps {meta.fps:g} and {meta.n_mels} mel bins but the model "
            f"expects fps {model.fps:g} and {model.n_mels}; set model.fps / model.n_mels to match"
        )
    return load_split(config.dataset, "train"), load_split(config.dataset, "val", required=False)


def _first_difference(names: Sequence[str], expected: Sequence[str]) -> str:
    """`` (first difference at index i: 'a' vs 'b')`` or "" when one list is a prefix of the other."""
    for index, (name, wanted) in enumerate(zip(names, expected)):
        if name != wanted:
            return f" (first difference at index {index}: {name!r} vs {wanted!r})"
    return ""


def _stream_seed(seed: int, rank: int, step: int, stream: int) -> int:
    """A 32-bit seed for one random stream of one step of one rank (module docstring)."""
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


def _to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def _sampler(sequences: Sequence[CoeffSequence], config: TrainConfig, process: _Process) -> WindowSampler:
    model = config.model
    return WindowSampler(
        sequences, model.tau, config.window, model.audio_before, model.audio_after, config.batch_size
    )


class _LossModule(nn.Module):
    """`CoeffModel.loss` as a forward, so that DistributedDataParallel syncs its gradients."""

    def __init__(self, model: CoeffModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        return self.model.loss(batch, generator)


class _Validator:
    """Mean losses over ``val_batches`` fixed windows of the val split, with fixed loss noise."""

    def __init__(self, sequences: Sequence[CoeffSequence], config: TrainConfig, device: torch.device) -> None:
        sampler = _sampler(sequences, config, _Process(0, 1, device))
        rng = np.random.default_rng(_stream_seed(config.seed, 0, 0, _VAL_BATCH_STREAM))
        self.batches = [_to_device(sampler.sample(rng), device) for _ in range(config.val_batches)]
        self.seed, self.device = _stream_seed(config.seed, 0, 0, _VAL_NOISE_STREAM), device

    @torch.no_grad()
    def __call__(self, model: CoeffModel) -> dict[str, float]:
        generator = torch.Generator(self.device).manual_seed(self.seed)
        totals = torch.zeros(len(LOSS_KEYS), device=self.device)
        for batch in self.batches:
            losses = model.loss(batch, generator)
            totals += torch.stack([losses[key] for key in LOSS_KEYS])
        return dict(zip(LOSS_KEYS, (totals / len(self.batches)).tolist()))


# ---------------------------------------------------------------------------------------------
# Output folder: history and trainer state
# ---------------------------------------------------------------------------------------------

def _start_history(out: Path, step: int) -> None:
    """Keep the events up to ``step`` (those a resumed run has not outlived); none for a new run."""
    path = out / HISTORY_FILE
    kept = [event for event in read_history(out) if event["step"] <= step] if step and path.is_file() else []
    path.write_text("".join(json.dumps(event) + "\n" for event in kept), encoding="utf-8")


def _append_history(out: Path, event: dict[str, Any]) -> None:
    with (out / HISTORY_FILE).open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")


def _read_state(out: Path, config: TrainConfig, world_size: int, device: torch.device) -> dict[str, Any]:
    """The trainer state to resume from, after checking it belongs to this config and job size."""
    path = out / STATE_FILE
    if not path.is_file():
        raise TrainError(f"cannot resume: {out} holds no {STATE_FILE}; start without --resume")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch.load raises many kinds for damaged files
        raise TrainError(f"cannot resume: {path} is not a readable trainer state ({err})") from err
    header = (state.get("format"), state.get("version")) if isinstance(state, dict) else None
    if header != (STATE_FORMAT, STATE_VERSION):
        raise TrainError(f"cannot resume: {path} is not a {STATE_FORMAT} version {STATE_VERSION} file")
    saved, current = state["config"], config.to_dict()
    changed = sorted(
        key for key in current if key not in _RESUMABLE_CHANGES and saved.get(key) != current[key]
    )
    if changed:
        raise TrainError(
            f"cannot resume from {path}: the config changed since it was written ({', '.join(changed)}); "
            f"only {', '.join(sorted(_RESUMABLE_CHANGES))} may change, or train into a new --out folder"
        )
    if state["world_size"] != world_size:
        raise TrainError(
            f"cannot resume from {path}: it was trained on {state['world_size']} processes, this job has "
            f"{world_size}; each process draws its own windows, so resume with the same number"
        )
    if state["step"] > config.steps:
        raise TrainError(
            f"cannot resume from {path}: it is at step {state['step']}, beyond steps={config.steps}"
        )
    return state


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def train_coeff(
    config: TrainConfig | str | Path,
    out: str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
) -> Path:
    """Train the coefficient flows as described by ``config`` (a `TrainConfig` or a YAML path) and
    return the weights folder (``out``, else ``config.out``), which `core.coeff.weights.load_weights`
    reads; rank 0 prints where the weights went. ``resume`` continues from the folder's
    trainer_state.pt; without it, a folder that already holds one is refused. ``device`` is one of
    `DEVICES`.
    """
    config = config if isinstance(config, TrainConfig) else load_train_config(config)
    out = Path(out) if out is not None else config.out
    if out is None:
        raise TrainError("no output folder: set 'out' in the training config or pass --out")
    if not resume and (out / STATE_FILE).is_file():
        raise TrainError(
            f"{out} already holds a training run; pass --resume to continue it or choose another --out"
        )
    face = builtin()
    train, val = _load_dataset(config, face)
    with _process_group(device) as process:
        state = _read_state(out, config, process.world_size, process.device) if resume else None
        model = CoeffModel(config.model, face.names, face.id, face.lower, face.upper, seed=config.seed)
        model.to(process.device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        if state is None:
            model.set_statistics(*_all_frames(train, process.device))
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        best = _fit(model, optimizer, config, train, val, out, process, state)
        if process.main:
            _finish(model, config, train, out, best, process.world_size)
    return out


def _all_frames(sequences: Sequence[CoeffSequence], device: torch.device) -> tuple[Tensor, Tensor]:
    """Every training frame. Shapes: -> exp (sum T, D), pose (sum T, 6)."""
    exp = torch.from_numpy(np.concatenate([seq.exp for seq in sequences])).to(device)
    pose = torch.from_numpy(np.concatenate([seq.pose for seq in sequences])).to(device)
    return exp, pose


def _fit(
    model: CoeffModel, optimizer: torch.optim.Optimizer, config: TrainConfig,
    train: Sequence[CoeffSequence], val: Sequence[CoeffSequence], out: Path, process: _Process,
    state: dict[str, Any] | None,
) -> float | None:
    """The optimisation loop from the state's step (0 for a new run) to ``config.steps``; returns the
    best validation loss (None without a val split)."""
    step = 0 if state is None else state["step"]
    best = None if state is None else state["best_val"]
    wrapped: nn.Module = _LossModule(model)
    if process.world_size > 1:
        ids = [process.device] if process.device.type == "cuda" else None
        wrapped = DistributedDataParallel(wrapped, device_ids=ids)
    sampler = _sampler(train, config, process)
    validator = _Validator(val, config, process.device) if val and process.main else None
    started = time.monotonic()

    def record(event: str, losses: dict[str, float]) -> None:
        _append_history(out, {"event": event, "step": step, **losses, "world_size": process.world_size,
                              "seconds": round(time.monotonic() - started, 3)})

    if process.main:
        out.mkdir(parents=True, exist_ok=True)
        _start_history(out, step)
        if validator is not None and step == 0:
            record("val", validator(model))
    totals = torch.zeros(len(LOSS_KEYS) + 1, device=process.device)  # loss sums and the step count
    bar = tqdm(
        total=config.steps, initial=step, desc="train coeff", disable=not process.main, dynamic_ncols=True
    )
    while step < config.steps:
        rng = np.random.default_rng(_stream_seed(config.seed, process.rank, step, _BATCH_STREAM))
        batch = _to_device(sampler.sample(rng), process.device)
        generator = torch.Generator(process.device).manual_seed(
            _stream_seed(config.seed, process.rank, step, _NOISE_STREAM)
        )
        losses = wrapped(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        bar.update(1)
        totals += torch.stack([*(losses[key].detach() for key in LOSS_KEYS), totals.new_ones(())])
        last = step == config.steps
        if step % config.log_every == 0 or last:
            means = _mean_losses(totals, process.world_size)
            totals.zero_()
            bar.set_postfix({key: f"{value:.3f}" for key, value in means.items()})
            if process.main:
                record("train", means)
        if validator is not None and (step % config.val_every == 0 or last):
            scores = validator(model)
            best = scores["loss"] if best is None else min(best, scores["loss"])
            record("val", scores)
        if process.main and (step % config.checkpoint_every == 0 or last):
            _checkpoint(model, optimizer, config, out, step, best, process.world_size)
    bar.close()
    return best


def _mean_losses(totals: Tensor, world_size: int) -> dict[str, float]:
    """Mean of each loss since the last log over all ranks. Shapes: totals (len(LOSS_KEYS) + 1,)."""
    if world_size > 1:
        totals = totals.clone()
        distributed.all_reduce(totals)
    return dict(zip(LOSS_KEYS, (totals[:-1] / totals[-1]).tolist()))


def _checkpoint(
    model: CoeffModel, optimizer: torch.optim.Optimizer, config: TrainConfig, out: Path, step: int,
    best: float | None, world_size: int,
) -> None:
    """Weights (without a bank) for inspection, then the trainer state that --resume reads."""
    save_weights(out, model, training=_provenance(config, step, best, world_size))
    write_atomic(out / STATE_FILE, lambda path: torch.save({
        "format": STATE_FORMAT, "version": STATE_VERSION, "step": step, "best_val": best,
        "world_size": world_size, "config": config.to_dict(),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
    }, path))


def _provenance(config: TrainConfig, step: int, best: float | None, world_size: int) -> dict[str, Any]:
    """The ``training`` entry of the weights' config.yaml."""
    return {"step": step, "best_val_loss": best, "world_size": world_size, "config": config.to_dict()}


def _finish(
    model: CoeffModel, config: TrainConfig, train: Sequence[CoeffSequence], out: Path, best: float | None,
    world_size: int,
) -> None:
    """Build the latent bank from the training split, write the final weights and say where."""
    settings = model.config
    batches = frame_batches(
        train, settings.tau, settings.audio_before, settings.audio_after, config.batch_size * config.window
    )
    size = build_latent_bank(model, batches, config.bank_size, config.seed)
    save_weights(out, model, training=_provenance(config, config.steps, best, world_size))
    print(f"train coeff: {config.steps} steps done; weights with a latent bank of {size} frames -> {out.resolve()}")
