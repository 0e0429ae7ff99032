"""Weights folders: safetensors files of module states plus the config YAML that built them, each
written atomically. The coefficient flows (`core.coeff.weights`) and the image generator
(`core.vq.weights`) read and write their folders through these; trainers only call them.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file
from torch import Tensor, nn

from core.fileio import write_atomic

__all__ = ["module_tensors", "write_weights"]


def module_tensors(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s state as detached, contiguous CPU tensors, ready for safetensors."""
    return {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}


def write_weights(
    directory: Path, tensors: Mapping[str, dict[str, Tensor]], config_file: str, config: dict[str, Any],
) -> Path:
    """Write a weights folder: each safetensors file (name -> tensors), then the config YAML (keys
    in the given order), each atomically; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, state in tensors.items():
        write_atomic(directory / name, lambda path, state=state: save_file(state, path))
    text = yaml.safe_dump(config, sort_keys=False)
    write_atomic(directory / config_file, lambda path: path.write_text(text, encoding="utf-8"))
    return directory
