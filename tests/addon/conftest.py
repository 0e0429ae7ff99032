"""Fixtures for the add-on tests: real bpy, the add-on installed from its built zip, real takes.

Blender's user folders and caches point to a temporary folder before bpy is imported, so the
tests never touch the machine's Blender configuration.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_HOME = Path(tempfile.mkdtemp(prefix="flowvq-addon-tests-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_HOME / "blender")
os.environ["XDG_CACHE_HOME"] = str(_HOME / "cache")

PACKAGE = "bl_ext.user_default.flowvq_talker"
# The interpreter that runs FlowVQ itself (`flowvq generate`, `flowvq serve`: torch lives there).
# It is this one, unless the add-on runs on another Blender in its own environment
# (scripts/test_bpy42.sh points it at the main .venv).
FLOWVQ_PYTHON = os.environ.get("FLOWVQ_SERVER_PYTHON", sys.executable)
SPEECH = ROOT / "core" / "assets" / "demo_speech.wav"


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """The extension zip as `flowvq build-addon` builds it."""
    from buildtools.addon import build_addon

    return build_addon(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def addon(addon_zip):
    """The add-on package, installed from the zip and enabled through Blender's extension API."""
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=str(addon_zip), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    return sys.modules[PACKAGE]


@pytest.fixture
def bpy_empty(addon):
    """An empty scene (preferences, and so the enabled add-on, kept); returns bpy."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy


@pytest.fixture(scope="session")
def face_npz(tmp_path_factory) -> bytes:
    """The face model .npz, exactly as ``GET /v1/face-model`` serves it (FaceModel.save)."""
    import core.face

    path = tmp_path_factory.mktemp("face") / "face.npz"
    core.face.builtin().save(str(path))
    return path.read_bytes()


@pytest.fixture(scope="session")
def wire_takes(tmp_path_factory) -> list[dict]:
    """Two real happy takes of the demo clip at 24 fps, in the wire format (`flowvq generate`)."""
    out = tmp_path_factory.mktemp("takes") / "takes.json"
    subprocess.run([FLOWVQ_PYTHON, "-m", "core.cli", "generate", str(SPEECH), "--emotion", "happy",
                    "--takes", "2", "--seed", "3", "--fps", "24", "--out", str(out)],
                   check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.read_text())["takes"]


# A sentence full of bilabials and open vowels, spoken by an MBROLA voice that the default weights
# never trained on (us3 is one of the held-out test voices), with the phone timings it was rendered with.
PHONED_SENTENCE = "Bob's father bought a map of the palm park, but mom hopped on a bus by the pond."
_SPEAK = ("import json, sys, soundfile; from core.audio import SAMPLE_RATE; from core.corpus.speech import synthesize; "
          "u = synthesize(sys.argv[1], 'us3'); soundfile.write(sys.argv[2], u.wave, SAMPLE_RATE); "
          "json.dump([[p.symbol, p.start, p.end] for p in u.phones], open(sys.argv[3], 'w'))")


@pytest.fixture(scope="session")
def phoned_take(tmp_path_factory) -> tuple[dict, list[tuple[str, float, float]]]:
    """A talk take of `PHONED_SENTENCE` at 24 fps (`flowvq generate`, no head pose) and the
    sentence's phones as (SAMPA symbol, start s, end s)."""
    folder = tmp_path_factory.mktemp("phoned")
    wav, phones, out = folder / "speech.wav", folder / "phones.json", folder / "takes.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([FLOWVQ_PYTHON, "-c", _SPEAK, PHONED_SENTENCE, str(wav), str(phones)], check=True, cwd=ROOT, env=env)
    subprocess.run([FLOWVQ_PYTHON, "-m", "core.cli", "generate", str(wav), "--emotion", "talk", "--takes", "1",
                    "--seed", "0", "--fps", "24", "--no-pose", "--out", str(out)], check=True, cwd=ROOT, env=env)
    return json.loads(out.read_text())["takes"][0], [tuple(p) for p in json.loads(phones.read_text())]


# The `bpy` 4.2 module (not Blender 4.2 itself) crashes with SIGSEGV while Python shuts down once
# an EnumProperty with an items callback has been registered, which the add-on's Emotion menu is.
BPY_CRASHES_AT_EXIT = ((4, 2),)
_exit_status = 0


def pytest_sessionfinish(session, exitstatus) -> None:
    """Remember pytest's exit status for `pytest_unconfigure`."""
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """On a `bpy` module that crashes at shutdown, end the process with pytest's own status once
    everything else is done, skipping the interpreter's teardown."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version[:2]) in BPY_CRASHES_AT_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
