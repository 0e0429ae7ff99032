"""Coefficient-model weights on disk (design section 5): safetensors plus the config that built them.

A weights directory holds::

    config.yaml              {"format": "flowvq-coeff-weights", "version": 3, "face_model": ID,
                              "names": [D names], "model": CoeffConfig, "training": {...}}
    coeff.safetensors        both flows' parameters and buffers (the latent bank excluded)
    latent_bank.safetensors  "bank" (N, D) and "bank_labels" (N,): ExpFlow latents of training
                             frames for manifold projection (optional; without it projection is off)

Loading is strict: every tensor must be present with its shape, and the face model must be the one
the weights were trained for (same id and expression names).
"""

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from core.coeff.config import CoeffConfig, ConfigError
from core.coeff.model import CoeffModel
from core.errors import FlowVQError
from core.face import builtin
from core.face.model import FaceModel
from core.configparse import read_yaml
from core.formats.weights import module_tensors, write_weights

__all__ = [
    "WeightsError",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "BANK_FILE",
    "WEIGHTS_FORMAT",
    "save_weights",
    "load_weights",
    "read_weights_config",
    "default_weights_dir",
]

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "coeff.safetensors"
BANK_FILE = "latent_bank.safetensors"
WEIGHTS_FORMAT = "flowvq-coeff-weights"
WEIGHTS_VERSION = 3  # 2: ExpFlow reads jawOpen as the lip gap; 3: the take style (`CoeffConfig.take_style`)
_BANK_KEYS = ("bank", "bank_labels")


class WeightsError(FlowVQError):
    """A weights directory that is missing, incomplete, or made for another model or face."""
    code = "weights"


def default_weights_dir() -> Path:
    """Where the default coefficient weights ship inside the package."""
    return Path(__file__).resolve().parent / "assets" / "default"


def save_weights(directory: str | Path, model: CoeffModel, training: dict[str, Any] | None = None) -> Path:
    """Write config.yaml, coeff.safetensors and latent_bank.safetensors, each atomically.

    ``training`` is free-form provenance stored in the config (steps, dataset, losses...).
    """
    state = module_tensors(model)
    bank = {key: state.pop(key) for key in _BANK_KEYS}
    config = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "face_model": model.face_model,
        "names": list(model.names),
        "model": model.config.to_dict(),
        "training": training or {},
    }
    return write_weights(Path(directory), {WEIGHTS_FILE: state, BANK_FILE: bank}, CONFIG_FILE, config)


def read_weights_config(directory: str | Path) -> dict[str, Any]:
    """The parsed config.yaml of a weights directory, with its format and version checked."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise WeightsError(
            f"{directory} is not a coefficient weights directory: {CONFIG_FILE} is missing "
            f"(train one with `flowvq train coeff --config CONFIG.yaml`)"
        )
    config = read_yaml(path, WeightsError)
    if not isinstance(config, dict) or config.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path} is not a {WEIGHTS_FORMAT} config")
    if config.get("version") != WEIGHTS_VERSION:
        raise WeightsError(f"{path} has version {config.get('version')!r}; this build reads "
                           f"{WEIGHTS_VERSION} (retrain with `flowvq train coeff`, or use the "
                           f"shipped weights)")
    for key in ("face_model", "names", "model"):
        if key not in config:
            raise WeightsError(f"{path} lacks the key {key!r}")
    return config


def load_weights(
    directory: str | Path | None = None, face: FaceModel | None = None, device: str | torch.device = "cpu"
) -> CoeffModel:
    """The `CoeffModel` saved in ``directory`` (default: `default_weights_dir`), in eval mode.

    ``face`` defaults to the built-in face model; it must be the model the weights were trained for.
    """
    directory = Path(directory) if directory is not None else default_weights_dir()
    config = read_weights_config(directory)
    face = face if face is not None else builtin()
    if config["face_model"] != face.id or tuple(config["names"]) != tuple(face.names):
        raise WeightsError(
            f"the weights in {directory} were trained for face model {config['face_model']!r} "
            f"({len(config['names'])} expressions) but the face model in use is {face.id!r} "
            f"({face.n_expressions} expressions)"
        )
    try:
        model_config = CoeffConfig.from_dict(config["model"])
    except ConfigError as exc:
        raise WeightsError(f"{directory / CONFIG_FILE}: {exc}") from exc
    model = CoeffModel(model_config, face.names, face.id, face.lower, face.upper)
    state = _read_tensors(directory / WEIGHTS_FILE, required=True)
    bank = _read_tensors(directory / BANK_FILE, required=False)
    if bank:
        model.bank, model.bank_labels = bank["bank"], bank["bank_labels"]
    state.update({key: getattr(model, key) for key in _BANK_KEYS})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{directory / WEIGHTS_FILE} does not fit its config: {exc}") from exc
    return model.to(device).eval()


def _read_tensors(path: Path, required: bool) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; {} for a missing optional file."""
    if not path.is_file():
        if required:
            raise WeightsError(f"{path} is missing")
        return {}
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
