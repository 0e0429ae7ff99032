"""Strict parsing of YAML config files and their sections, shared by the model configs
(`core.coeff.config`, `core.vq.config`), the weights folders (`core.coeff.weights`,
`core.vq.weights`) and the training configs (`core.train.common`).

Nothing here imports torch or training code, so config modules can use it without pulling in the
trainers. Each function raises the caller's error class (a `core.errors.FlowVQError`).
"""

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.errors import FlowVQError

__all__ = ["section_keys", "split_preset", "read_yaml"]

PresetT = TypeVar("PresetT")


def section_keys(kind: type, data: Any, where: str, error: type[FlowVQError]) -> dict[str, Any]:
    """The config section ``data`` (named ``where``) as a dict, after checking that every key is a
    field of the dataclass ``kind``; ``error`` is the config module's error class."""
    if not isinstance(data, dict):
        raise error(f"config section {where!r} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(kind)}
    unknown = sorted(map(str, set(data) - names))
    if unknown:
        raise error(f"unknown key(s) in {where!r}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return dict(data)


def split_preset(
    section: Any, presets: Mapping[str, PresetT], default: str, error: type[FlowVQError], *, keys: str, label: str,
) -> tuple[PresetT, dict[str, Any]]:
    """A training config's ``model`` section (None: the ``default`` preset alone) split into the
    preset its ``preset`` key names and the keys overriding it. ``keys`` says what a section holds
    and ``label`` what kind of preset it names, for ``error``'s messages."""
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise error(f"model must be a mapping ({keys}), got {section!r}")
    overrides = dict(section)
    name = overrides.pop("preset", default)
    if name not in presets:
        raise error(f"unknown {label} preset {name!r}; choose one of: {', '.join(presets)}")
    return presets[name], overrides


def read_yaml(path: Path, error: type[FlowVQError], prefix: str = "") -> Any:
    """The parsed UTF-8 YAML file ``path``; a file that is not raises ``error`` with
    ``prefix`` (words before the path) in its message."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise error(f"{prefix}{path} is not valid YAML: {err}") from err
