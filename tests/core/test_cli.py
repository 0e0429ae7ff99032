"""The `flowvq` command as a user runs it: a real process, real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FLOWVQ = Path(sys.executable).with_name("flowvq")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLOWVQ), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "GLOG_minloglevel": "2"})


def test_face_info_json_describes_the_built_in_model(face):
    result = run("face", "info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["name"] == face.name and info["version"] == face.version
    assert (info["vertices"], info["faces"], info["expressions"]) == (468, len(face.faces), face.n_expressions)
    assert info["names"] == list(face.names)


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_face_export_writes_a_mesh_other_tools_read(tmp_path, face, suffix):
    import trimesh

    out = tmp_path / f"head{suffix}"
    assert run("face", "export", str(out)).returncode == 0
    mesh = trimesh.load(out, force="mesh", process=False)
    assert len(mesh.faces) == len(face.faces)
    assert np.allclose(np.sort(mesh.vertices[:, 1]), np.sort(face.neutral[:, 1]), atol=1e-5)


def test_face_export_applies_expression_weights(tmp_path, face):
    import trimesh

    neutral, opened = tmp_path / "n.obj", tmp_path / "o.obj"
    assert run("face", "export", str(neutral)).returncode == 0
    assert run("face", "export", str(opened), "--exp", "jawOpen=1").returncode == 0
    low_n = trimesh.load(neutral, process=False).vertices[:, 1].min()
    low_o = trimesh.load(opened, process=False).vertices[:, 1].min()
    assert low_o < low_n - 0.01  # the chin dropped


def test_face_export_npz_round_trips_the_whole_model(tmp_path, face):
    from core.face import FaceModel

    out = tmp_path / "face.npz"
    assert run("face", "export", str(out)).returncode == 0
    loaded = FaceModel.load(out)
    assert loaded.id == face.id and set(loaded.regions) == set(face.regions)
    np.testing.assert_allclose(loaded.basis, face.basis, atol=1e-7)


def test_bad_export_suffix_and_unknown_expression_fail_cleanly(tmp_path):
    result = run("face", "export", str(tmp_path / "head.txt"))
    assert result.returncode == 2 and ".obj, .glb, .npz" in result.stderr
    result = run("face", "export", str(tmp_path / "head.obj"), "--exp", "smile=1")
    assert result.returncode == 2 and "unknown expression 'smile'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_fit_json_on_a_real_portrait(tmp_path, photos):
    import skimage.io

    portrait = tmp_path / "astronaut.png"
    skimage.io.imsave(portrait, photos["astronaut"], check_contrast=False)
    result = run("fit", str(portrait), "--json")
    assert result.returncode == 0, result.stderr
    fitted = json.loads(result.stdout)
    assert fitted["exp"]["mouthSmileLeft"] > 0.4 and fitted["exp"]["eyeBlinkLeft"] < 0.2
    assert len(fitted["pose"]) == 6 and fitted["face_model"] == "builtin-arkit52@1"


def test_fit_on_a_non_image_says_so(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    result = run("fit", str(text))
    assert result.returncode == 2 and "not an image" in result.stderr


def test_demo_writes_its_outputs(tmp_path):
    result = run("demo", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    fitted = json.loads((tmp_path / "out" / "portrait_fit.json").read_text())
    assert fitted["exp"]["mouthSmileLeft"] > 0.4
    assert (tmp_path / "out" / "head.glb").stat().st_size > 10_000


def test_installed_packages_add_their_commands_through_the_entry_point_group() -> None:
    from core.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve"]).func.__module__ == "server.cli"
    assert parser.parse_args(["build-addon"]).func.__module__ == "buildtools.addon"


def test_a_command_whose_package_cannot_be_imported_says_what_is_missing() -> None:
    import argparse
    from importlib.metadata import EntryPoint

    from core.cli import COMMAND_GROUP, _add_plugin_parser
    from core.errors import FlowVQError

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    _add_plugin_parser(sub, EntryPoint("ghost", "no_such_flowvq_module:add", COMMAND_GROUP))
    args = parser.parse_args(["ghost"])
    with pytest.raises(FlowVQError, match="'flowvq ghost' cannot run: No module named 'no_such_flowvq_module'"):
        args.func(args)
