"""The add-on's pure modules (no bpy) loaded as Blender would, but without Blender.

`addon/__init__.py` imports bpy, so ``import addon.posemath`` would load Blender. `pure_module`
registers a bare package object for the ``addon`` folder (its ``__init__`` is never run) and imports
the module through it, so relative imports between pure modules work and bpy stays out. `PURE` lists
the modules that must stay free of bpy; `test_pure_modules_never_import_bpy` holds them to it.
"""

import ast
import importlib
import sys
import types
from pathlib import Path

ADDON = Path(__file__).resolve().parents[2] / "addon"
PACKAGE = "flowvq_addon_pure"
# Modules of addon/ that run without Blender: conversions, mappings, reductions, the HTTP client.
PURE = ("client", "gltfnames", "jobs", "mapping", "posemath", "reduce", "retarget", "server_process", "timing",
        "visemes")


def pure_module(name: str) -> types.ModuleType:
    """``addon/<name>.py`` imported without running ``addon/__init__.py`` (so without bpy)."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(ADDON)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


def imported_names(name: str) -> set[str]:
    """The top-level module names ``addon/<name>.py`` imports (relative imports as ``.module``)."""
    tree = ast.parse((ADDON / f"{name}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0])
    return names
