"""What every trainer shares: the coefficient trainer (`core.train.loop`) and the image-generator
trainers (`core.train.vq`), plus the config and weights modules they read and write.

* **Processes**: `process_group` (the torchrun process group, if any), `Process`, `wrap_ddp`.
* **Randomness**: `stream_seed`, one 32-bit seed per (seed, rank, step, stream), so a run's step is
  its whole RNG state and a resumed run draws what an uninterrupted one would.
* **The loop**: `run_steps`, the step loop both trainers run (progress bar, per-step losses averaged
  over ranks and logged every ``log_every`` steps, checkpoints every ``checkpoint_every``), around
  the trainer's own step.
* **Logging**: `mean_losses` (mean of each logged term over all ranks) and the output folder's
  history.jsonl (`read_history`, `start_history`, `append_history`).
* **Checkpoints**: `output_folder` (refuses to overwrite a run), `read_trainer_state` and
  `write_trainer_state` (trainer_state.pt, written atomically).
* **Training configs** (frozen dataclasses read strictly from YAML): `load_yaml_config`,
  `known_keys`, `resolve_path(s)`, `as_number`, `check_integer_minima`, `check_float_minima`,
  `check_betas`, `plain_config`.

Weights folders are written by `core.formats.weights` (inference loads them, so they sit below
training).

The strict YAML and config-section parsing that model configs share with these training configs
(`read_yaml`, `section_keys`, `split_preset`) lives in `core.configparse`, which imports no torch.

Nothing here knows a model: the trainers pass their loss names, state header and config classes.
"""

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, distributed, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from core.device import resolve_device
from core.errors import FlowVQError
from core.fileio import write_atomic
from core.configparse import read_yaml
from core.jsonvalues import as_kind

__all__ = [
    "TrainError", "HISTORY_FILE", "STATE_FILE", "RunConfig",
    "Process", "process_group", "wrap_ddp", "stream_seed", "to_device", "mean_losses",
    "read_history", "start_history", "append_history", "Record", "run_steps",
    "output_folder", "read_trainer_state", "write_trainer_state",
    "load_yaml_config", "known_keys", "resolve_path", "resolve_paths", "as_number",
    "check_integer_minima", "check_float_minima", "check_betas", "plain_config",
]

HISTORY_FILE = "history.jsonl"
STATE_FILE = "trainer_state.pt"

ConfigT = TypeVar("ConfigT")
BatchT = TypeVar("BatchT", Tensor, dict[str, Tensor])


class TrainError(FlowVQError):
    """A training config, dataset, output directory or checkpoint that cannot be used."""
    code = "train"


class RunConfig(Protocol):
    """What the shared checkpoint code reads of a training config."""

    steps: int

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML ready)."""
        ...


# ---------------------------------------------------------------------------------------------
# Processes and randomness
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Process:
    """This process's place in the (possibly one-process) job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes files and shows the progress bar."""
        return self.rank == 0


@contextmanager
def process_group(device: str) -> Iterator[Process]:
    """This process's rank and device; under torchrun, a process group (nccl on CUDA, gloo on CPU)
    set up from the environment and torn down afterwards (unless the caller had set one up)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world_size == 1:
        yield Process(0, 1, target)
        return
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(target)
    owned = not distributed.is_initialized()
    if owned:
        distributed.init_process_group("nccl" if target.type == "cuda" else "gloo")
    try:
        yield Process(distributed.get_rank(), distributed.get_world_size(), target)
        distributed.barrier()  # rank 0 still writes the weights: nobody leaves the group before it
    finally:
        if owned:
            distributed.destroy_process_group()


def wrap_ddp(module: nn.Module, process: Process) -> nn.Module:
    """``module`` itself in a one-process job, else wrapped in DistributedDataParallel so that its
    gradients are averaged over the ranks."""
    if process.world_size == 1:
        return module
    ids = [process.device] if process.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def stream_seed(seed: int, rank: int, step: int, stream: int) -> int:
    """A 32-bit seed for one random stream of one step of one rank: ``SeedSequence([seed, rank,
    step, stream])``'s first word."""
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


def to_device(batch: BatchT, device: torch.device) -> BatchT:
    """A tensor, or each tensor of a dict of tensors, moved to ``device``."""
    if isinstance(batch, dict):
        return {key: value.to(device) for key, value in batch.items()}
    return batch.to(device)


def mean_losses(totals: Tensor, keys: Sequence[str], world_size: int) -> dict[str, float]:
    """Mean of each logged term since the last log over all ranks, by name.

    Shapes: totals (len(keys) + 1,): the sum of each term, then the number of steps summed.
    """
    if world_size > 1:
        totals = totals.clone()
        distributed.all_reduce(totals)
    return dict(zip(keys, (totals[:-1] / totals[-1]).tolist()))


# ---------------------------------------------------------------------------------------------
# Output folder: history.jsonl and trainer_state.pt
# ---------------------------------------------------------------------------------------------

def read_history(out: str | Path) -> list[dict[str, Any]]:
    """The events of ``out/history.jsonl`` in order."""
    path = Path(out) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def start_history(out: Path, step: int) -> None:
    """Keep the events up to ``step`` (those a resumed run has not outlived); none for a new run."""
    path = out / HISTORY_FILE
    kept = [event for event in read_history(out) if event["step"] <= step] if step and path.is_file() else []
    path.write_text("".join(json.dumps(event) + "\n" for event in kept), encoding="utf-8")


def append_history(out: Path, event: dict[str, Any]) -> None:
    """Add one event (a JSON object on one line) to ``out/history.jsonl``."""
    with (out / HISTORY_FILE).open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")


# Writes one history event: (event name, its values); the step, world size and seconds are added.
Record = Callable[[str, dict[str, Any]], None]


def run_steps(
    kind: str, keys: Sequence[str], config: Any, out: Path, process: Process, first_step: int,
    step: Callable[[int], tuple[dict[str, Tensor], dict[str, Any]]], checkpoint: Callable[[int], None],
    on_start: Callable[[Record], None] = lambda record: None,
    after_step: Callable[[int, bool, Record], None] = lambda done, last, record: None,
) -> None:
    """The loop of every trainer, from ``first_step`` to ``config.steps``.

    ``step(index)`` runs optimiser step ``index`` (0-based) and returns its loss terms (a key of
    ``keys`` it lacks counts 0) and the extra values of its history line (e.g. the stage). Every
    ``config.log_every`` steps and at the last, the terms' means over those steps and all ranks go
    to the progress bar and (rank 0) to history.jsonl as a ``train`` event; then
    ``after_step(done, last, record)`` runs (validation); then rank 0 calls ``checkpoint(done)``
    every ``config.checkpoint_every`` steps and at the last. Rank 0 starts the history at
    ``first_step`` and calls ``on_start(record)`` before the first step.
    """
    started = time.monotonic()
    done = first_step

    def record(event: str, values: dict[str, Any]) -> None:
        append_history(out, {"event": event, "step": done, **values, "world_size": process.world_size,
                             "seconds": round(time.monotonic() - started, 3)})

    if process.main:
        out.mkdir(parents=True, exist_ok=True)
        start_history(out, first_step)
        on_start(record)
    totals = torch.zeros(len(keys) + 1, device=process.device)  # loss sums and the step count
    bar = tqdm(total=config.steps, initial=done, desc=f"train {kind}", disable=not process.main, dynamic_ncols=True)
    while done < config.steps:
        terms, extra = step(done)
        done += 1
        bar.update(1)
        zero = totals.new_zeros(())
        totals += torch.stack([*(terms.get(key, zero).detach().float() for key in keys), totals.new_ones(())])
        last = done == config.steps
        if done % config.log_every == 0 or last:
            means = mean_losses(totals, keys, process.world_size)
            totals.zero_()
            bar.set_postfix({key: f"{value:.3f}" for key, value in means.items()})
            if process.main:
                record("train", {**extra, **means})
        after_step(done, last, record)
        if process.main and (done % config.checkpoint_every == 0 or last):
            checkpoint(done)
    bar.close()


def output_folder(out: Path | None, resume: bool) -> Path:
    """``out``, after refusing a missing folder name and, without ``resume``, a folder that already
    holds a run."""
    if out is None:
        raise TrainError("no output folder: set 'out' in the training config or pass --out")
    if not resume and (out / STATE_FILE).is_file():
        raise TrainError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    return out


def read_trainer_state(
    out: Path, config: RunConfig, *, header: Mapping[str, Any], what: str, resumable: frozenset[str],
    world_size: int, device: torch.device,
) -> dict[str, Any]:
    """The trainer state in ``out`` to resume from, after checking it belongs to this run.

    header: the keys and values the state must start with (format, version...); what: the kind of
    file the error names when they differ; resumable: the config keys that may have changed since
    (those that do not touch the trajectory). The job must have the state's number of processes
    and ``config.steps`` may not be below the state's step.
    """
    path = out / STATE_FILE
    if not path.is_file():
        raise TrainError(f"cannot resume: {out} holds no {STATE_FILE}; start without --resume")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch.load raises many kinds for damaged files
        raise TrainError(f"cannot resume: {path} is not a readable trainer state ({err})") from err
    found = {key: state.get(key) for key in header} if isinstance(state, dict) else None
    if found != dict(header):
        raise TrainError(f"cannot resume: {path} is not a {what}")
    saved, current = state["config"], config.to_dict()
    # A key newer than the state counts as unchanged while it keeps its default.
    defaults = {f.name: f.default for f in fields(config) if f.default is not MISSING}
    changed = sorted(key for key in current
                     if key not in resumable and saved.get(key, defaults.get(key)) != current[key])
    if changed:
        raise TrainError(
            f"cannot resume from {path}: the config changed since it was written ({', '.join(changed)}); "
            f"only {', '.join(sorted(resumable))} may change, or train into a new --out folder"
        )
    if state["world_size"] != world_size:
        raise TrainError(
            f"cannot resume from {path}: it was trained on {state['world_size']} processes, this job has "
            f"{world_size}; each process draws its own batches, so resume with the same number"
        )
    if state["step"] > config.steps:
        raise TrainError(f"cannot resume from {path}: it is at step {state['step']}, beyond steps={config.steps}")
    return state


def write_trainer_state(out: Path, state: dict[str, Any]) -> None:
    """Write ``out/trainer_state.pt`` atomically, so --resume never pairs weights and optimizer
    state of different steps. ``state`` starts with the header `read_trainer_state` checks."""
    write_atomic(out / STATE_FILE, lambda path: torch.save(state, path))


# ---------------------------------------------------------------------------------------------
# Training configs
# ---------------------------------------------------------------------------------------------

def load_yaml_config(path: str | Path, parse: Callable[[Any, Path], ConfigT]) -> ConfigT:
    """Read a training YAML with ``parse(data, folder of the file)``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"training config {path} does not exist")
    data = read_yaml(path, TrainError, prefix="training config ")
    try:
        return parse(data, path.resolve().parent)
    except FlowVQError as err:
        raise TrainError(f"training config {path}: {err}") from err


def known_keys(kind: type, data: Any, required: Mapping[str, str]) -> dict[str, Any]:
    """A training config's mapping as a dict, after checking that every key is a field of the
    dataclass ``kind`` and that each ``required`` key (-> a hint on what it is) is set."""
    if not isinstance(data, dict):
        raise TrainError(f"a training config must be a mapping of keys, got {type(data).__name__}")
    known = [f.name for f in fields(kind)]
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise TrainError(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")
    for key, hint in required.items():
        if data.get(key) is None:
            raise TrainError(f"the key {key!r} is required ({hint})")
    return dict(data)


def resolve_path(key: str, value: Any, base: Path) -> Path:
    """The path string ``value`` of ``key`` (``~`` expanded) resolved against ``base``."""
    if not isinstance(value, str):
        raise TrainError(f"{key} must be a path string, got {value!r}")
    return base / Path(value).expanduser()


def resolve_paths(values: dict[str, Any], keys: Sequence[str], base: Path) -> dict[str, Any]:
    """``values`` with those of ``keys`` that are present and not None resolved against ``base``."""
    for key in keys:
        if values.get(key) is not None:
            values[key] = resolve_path(key, values[key], base)
    return values


def as_number(key: str, value: Any) -> float:
    """``value`` as a float (`core.jsonvalues.as_kind`); otherwise `TrainError` naming ``key``."""
    try:
        return as_kind(value, float)
    except TypeError as exc:
        raise TrainError(f"{key} {exc}") from None


def check_integer_minima(config: Any, minima: Mapping[str, int]) -> None:
    """Refuse a field of ``config`` that is not an integer (bools excluded) at least its minimum."""
    for key, minimum in minima.items():
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TrainError(f"{key} must be an integer >= {minimum}, got {value!r}")


def check_float_minima(config: Any, minima: Mapping[str, tuple[float, bool]]) -> None:
    """Refuse a field of the frozen dataclass ``config`` that is not a finite number above its
    minimum (key -> (minimum, whether the minimum itself is allowed)); store it as a float."""
    for key, (minimum, inclusive) in minima.items():
        value = as_number(key, getattr(config, key))
        if not (math.isfinite(value) and (value >= minimum if inclusive else value > minimum)):
            raise TrainError(f"{key} must be a number {'>=' if inclusive else '>'} {minimum:g}, got {value!r}")
        object.__setattr__(config, key, value)


def check_betas(config: Any) -> None:
    """Refuse ``config.betas`` unless it is two numbers in [0, 1); store them as a tuple of floats."""
    betas = config.betas
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise TrainError(f"betas must be a list of two numbers in [0, 1), got {betas!r}")
    betas = tuple(as_number("betas", beta) for beta in betas)
    if not all(0.0 <= beta < 1.0 for beta in betas):
        raise TrainError(f"betas must be a list of two numbers in [0, 1), got {list(betas)}")
    object.__setattr__(config, "betas", betas)


def plain_config(config: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML values, in field order: paths as strings, tuples as lists,
    nested configs through their ``to_dict``."""
    return {f.name: _plain_value(getattr(config, f.name)) for f in fields(config)}


def _plain_value(value: Any) -> Any:
    """One config value as a plain YAML value (see `plain_config`)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain_value(item) for item in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value
