"""Image-generator weights on disk (design section 5): safetensors plus the YAML config that built them.

A codebook weights folder (`save_codebook`, `load_codebook`)::

    config.yaml           {"format": "flowvq-codebook-weights", "version": 1, "model": {"codebook": CodebookConfig},
                           "training": {...}}
    codebook.safetensors  E_h, C and D_h

A VQIG weights folder (`save_vqig`, `load_vqig`) — what `core.vq.renderer.VQIGRenderer` loads::

    config.yaml           {"format": "flowvq-vqig-weights", "version": 1, "face_model": ID, "names": [D names],
                           "model": VQConfig, "training": {...}}
    vqig.safetensors      every VQIG tensor, the frozen codebook autoencoder included

Loading is strict: every tensor must be present with its shape, and a VQIG must be loaded on the
face model it was trained for (same id and expression names), since its input is coefficients.
"""

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from core.errors import FlowVQError
from core.face.model import FaceModel
from core.configparse import read_yaml
from core.formats.weights import module_tensors, write_weights
from core.vq.codebook import CodebookAE
from core.vq.config import VQConfig, VQConfigError
from core.vq.vqig import VQIG

__all__ = [
    "VQWeightsError", "CONFIG_FILE", "CODEBOOK_FILE", "VQIG_FILE", "CODEBOOK_FORMAT", "VQIG_FORMAT",
    "save_codebook", "load_codebook", "save_vqig", "load_vqig", "read_config",
]

CONFIG_FILE = "config.yaml"
CODEBOOK_FILE = "codebook.safetensors"
VQIG_FILE = "vqig.safetensors"
CODEBOOK_FORMAT = "flowvq-codebook-weights"
VQIG_FORMAT = "flowvq-vqig-weights"
VERSION = 1
_HOW_TO = {
    CODEBOOK_FORMAT: "train one with `flowvq train codebook --config CONFIG.yaml`",
    VQIG_FORMAT: "train one with `flowvq train vqig --config CONFIG.yaml`",
}


class VQWeightsError(FlowVQError):
    """A weights folder that is missing, incomplete, or made for another model or face model."""
    code = "vq_weights"


def _write(directory: Path, tensors_file: str, module: nn.Module, header: dict[str, Any]) -> Path:
    """Write the module's state and the config, each atomically."""
    config = {"version": VERSION, **header}
    return write_weights(directory, {tensors_file: module_tensors(module)}, CONFIG_FILE, config)


def read_config(directory: str | Path, kind: str) -> dict[str, Any]:
    """The parsed config.yaml of a weights folder of format ``kind``, format and version checked."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise VQWeightsError(f"{directory} is not a {kind} folder: {CONFIG_FILE} is missing ({_HOW_TO[kind]})")
    config = read_yaml(path, VQWeightsError)
    if not isinstance(config, dict) or config.get("format") != kind:
        raise VQWeightsError(f"{path} is not a {kind} config ({_HOW_TO[kind]})")
    if config.get("version") != VERSION:
        raise VQWeightsError(f"{path} has version {config.get('version')!r}; this build reads {VERSION}")
    if "model" not in config:
        raise VQWeightsError(f"{path} lacks the key 'model'")
    return config


def _model_config(directory: Path, section: Any) -> VQConfig:
    try:
        return VQConfig.from_dict(section)
    except VQConfigError as exc:
        raise VQWeightsError(f"{directory / CONFIG_FILE}: {exc}") from exc


def _load_state(module: nn.Module, path: Path) -> None:
    """Strictly load a safetensors file into ``module``."""
    if not path.is_file():
        raise VQWeightsError(f"{path} is missing")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise VQWeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise VQWeightsError(f"{path} does not fit its config: {exc}") from exc


def save_codebook(directory: str | Path, model: CodebookAE, training: dict[str, Any] | None = None) -> Path:
    """Write a codebook weights folder; ``training`` is free-form provenance."""
    header = {"format": CODEBOOK_FORMAT, "model": {"codebook": VQConfig(codebook=model.config).to_dict()["codebook"]},
              "training": training or {}}
    return _write(Path(directory), CODEBOOK_FILE, model, header)


def load_codebook(directory: str | Path, device: str | torch.device = "cpu") -> CodebookAE:
    """The `CodebookAE` saved in ``directory``, in eval mode."""
    directory = Path(directory)
    config = read_config(directory, CODEBOOK_FORMAT)
    model = CodebookAE(_model_config(directory, config["model"]).codebook)
    _load_state(model, directory / CODEBOOK_FILE)
    return model.to(device).eval()


def save_vqig(directory: str | Path, model: VQIG, face: FaceModel, training: dict[str, Any] | None = None) -> Path:
    """Write a VQIG weights folder for ``face`` (whose D must be the model's)."""
    if face.n_expressions != model.exp_dim:
        raise VQWeightsError(
            f"the VQIG reads {model.exp_dim} expressions, face model {face.id} has {face.n_expressions}"
        )
    header = {"format": VQIG_FORMAT, "face_model": face.id, "names": list(face.names),
              "model": model.config.to_dict(), "training": training or {}}
    return _write(Path(directory), VQIG_FILE, model, header)


def load_vqig(directory: str | Path, face: FaceModel, device: str | torch.device = "cpu") -> VQIG:
    """The `VQIG` saved in ``directory``, in eval mode; ``face`` must be the model it was trained for."""
    directory = Path(directory)
    config = read_config(directory, VQIG_FORMAT)
    if config.get("face_model") != face.id or tuple(config.get("names") or ()) != tuple(face.names):
        raise VQWeightsError(
            f"the VQIG weights in {directory} were trained for face model {config.get('face_model')!r} "
            f"({len(config.get('names') or ())} expressions) but the face model in use is {face.id!r} "
            f"({face.n_expressions} expressions)"
        )
    model = VQIG(_model_config(directory, config["model"]), face.n_expressions)
    _load_state(model, directory / VQIG_FILE)
    return model.to(device).eval()
