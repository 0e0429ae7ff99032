"""`flowvq build-addon`: the zip's layout and validation, and installing it into real Blender."""

import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from buildtools.addon import BuildError, build_addon

from .conftest import PACKAGE, ROOT


def test_zip_has_manifest_and_addon_modules_at_its_root(addon_zip):
    names = set(zipfile.ZipFile(addon_zip).namelist())
    expected = {p.name for p in (ROOT / "addon").glob("*.py")} | {"blender_manifest.toml"}
    assert names == expected


def test_manifest_declares_schema_minimum_version_and_reasoned_permissions(addon_zip):
    manifest = tomllib.loads(zipfile.ZipFile(addon_zip).read("blender_manifest.toml").decode())
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert all(reason.strip() for reason in manifest["permissions"].values())


def test_build_refuses_an_addon_importing_what_blender_lacks(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "addon", root / "addon", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "blender_manifest.toml", root)
    (root / "addon" / "heavy.py").write_text("import torch\n")
    with pytest.raises(BuildError, match="torch"):
        build_addon(tmp_path / "dist", root=root)


def test_build_addon_is_a_flowvq_subcommand(tmp_path, capsys):
    import argparse

    from buildtools.addon import add_build_addon_parser

    parser = argparse.ArgumentParser()
    add_build_addon_parser(parser.add_subparsers())
    args = parser.parse_args(["build-addon", "--out", str(tmp_path)])
    args.func(args)
    assert Path(capsys.readouterr().out.strip()).is_file()


def test_register_and_unregister_twice_through_the_preferences(addon):
    import bpy

    for _ in range(2):
        bpy.ops.preferences.addon_disable(module=PACKAGE)
        assert not hasattr(bpy.types.Scene, "flowvq")
        assert not hasattr(bpy.types, "FLOWVQ_PT_main")
        bpy.ops.preferences.addon_enable(module=PACKAGE)
        assert hasattr(bpy.types.Scene, "flowvq")
        assert bpy.types.FLOWVQ_PT_main.bl_category == "FlowVQ"
    assert PACKAGE in sys.modules
