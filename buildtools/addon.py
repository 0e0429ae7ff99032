"""``flowvq build-addon --out DIR``: the installable Blender extension zip.

The zip holds ``blender_manifest.toml`` and the contents of ``addon/`` at its root. It is built by
Blender's own extension builder (``blender_ext.py``, the script behind ``blender --command extension
build``, shipped inside the ``bpy`` module) when ``bpy`` is installed, and by `zipfile` otherwise.
Either way the result is validated: Blender's ``validate`` when available, and always our own
checks that the layout is right and that every module imports only what Blender's Python has
(bpy, numpy, requests, the standard library).
"""

import argparse
import ast
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

from core.errors import FlowVQError

__all__ = ["BuildError", "build_addon", "validate_zip", "add_build_addon_parser"]

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
ADDON_DIR = "addon"
# Third-party modules Blender's bundled Python provides; everything else must be stdlib or relative.
ALLOWED_THIRD_PARTY = frozenset({"bpy", "bpy_extras", "mathutils", "numpy", "requests"})
EXCLUDED_NAMES = ("__pycache__", "*.pyc", ".*")
BLENDER_EXT_GLOB = "*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


class BuildError(FlowVQError):
    """The extension could not be built or failed validation; the message says why."""


def blender_ext_script() -> Path | None:
    """Blender's extension command-line script inside the installed ``bpy`` module, or None.

    Found without importing ``bpy`` (which would start Blender in this process).
    """
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob(BLENDER_EXT_GLOB))
        if found:
            return found[-1]
    return None


def read_manifest(path: Path) -> dict:
    """The parsed manifest; its ``id`` and ``version`` must be present."""
    with open(path, "rb") as fh:
        manifest = tomllib.load(fh)
    for key in ("id", "version"):
        if not isinstance(manifest.get(key), str):
            raise BuildError(f"{path}: '{key}' is missing")
    return manifest


def stage(root: Path, staging: Path) -> None:
    """Copy the manifest and the contents of ``addon/`` (caches and dot-files left out) to ``staging``."""
    shutil.copy2(root / MANIFEST, staging / MANIFEST)
    shutil.copytree(root / ADDON_DIR, staging, ignore=shutil.ignore_patterns(*EXCLUDED_NAMES),
                    dirs_exist_ok=True)


def run_blender_ext(script: Path, args: list[str]) -> None:
    """Run Blender's extension script with ``args``; a non-zero exit is a `BuildError` with its output."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"Blender's extension builder failed ({' '.join(args[:1])}):\n"
                         f"{done.stdout}{done.stderr}".rstrip())


def zip_directory(source: Path, out_zip: Path) -> None:
    """Write every file under ``source`` into ``out_zip`` with paths relative to ``source``."""
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(source).as_posix())


def imported_top_modules(source: str) -> set[str]:
    """Top-level names of the absolute imports in Python ``source`` (relative imports excluded)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def validate_zip(out_zip: Path) -> None:
    """Check the built zip: manifest and ``__init__.py`` at the root, no caches, imports allowed.

    Raises `BuildError` naming the first problem found.
    """
    with zipfile.ZipFile(out_zip) as zf:
        names = zf.namelist()
        for required in (MANIFEST, "__init__.py"):
            if required not in names:
                raise BuildError(f"{out_zip}: '{required}' is not at the zip root")
        for name in names:
            if "__pycache__" in name or name.endswith(".pyc"):
                raise BuildError(f"{out_zip}: contains the cache file '{name}'")
            if name.endswith(".py"):
                foreign = (imported_top_modules(zf.read(name).decode("utf-8"))
                           - ALLOWED_THIRD_PARTY - set(sys.stdlib_module_names))
                if foreign:
                    raise BuildError(f"{out_zip}: {name} imports {sorted(foreign)}, which Blender's "
                                     f"Python does not ship (allowed: bpy, numpy, requests, stdlib)")


def build_addon(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    """Build and validate the extension zip in ``out_dir``; returns its path.

    The file is ``<id>-<version>.zip`` from the manifest.
    """
    manifest = read_manifest(root / MANIFEST)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_zip = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    out_zip.unlink(missing_ok=True)
    script = blender_ext_script()
    with tempfile.TemporaryDirectory(prefix="flowvq-addon-") as tmp:
        staging = Path(tmp)
        stage(root, staging)
        if script is None:
            zip_directory(staging, out_zip)
        else:
            run_blender_ext(script, ["build", "--source-dir", str(staging),
                                     "--output-filepath", str(out_zip)])
    validate_zip(out_zip)
    if script is not None:
        run_blender_ext(script, ["validate", str(out_zip)])
    return out_zip


def _run(args: argparse.Namespace) -> None:
    """The command function: build, then print the zip's path."""
    print(build_addon(Path(args.out)))


def add_build_addon_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``build-addon --out DIR`` on the ``flowvq`` subparsers."""
    parser = sub.add_parser("build-addon", help="build the installable Blender extension zip")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.set_defaults(func=_run)
