"""The add-on's plain logic, loaded from the installed add-on: name matching, keyframe reduction,
resampling, the background task, and the HTTP client's messages for a server that is not there."""

import sys
import threading

import numpy as np
import pytest

from .conftest import PACKAGE
from .scenes import closed_port


@pytest.fixture(scope="module")
def mods(addon):
    """name -> module of the installed add-on."""
    return {name: sys.modules[f"{PACKAGE}.{name}"] for name in ("retarget", "reduce", "jobs", "client")}


@pytest.mark.parametrize("name, arkit", [
    ("jawOpen", "jawOpen"), ("JAW_OPEN", "jawOpen"), ("jaw-open", "jawOpen"), ("mouthOpen", "jawOpen"),
    ("EyeBlink_L", "eyeBlinkLeft"), ("eyeBlinkR", "eyeBlinkRight"), ("eye.blink.left", "eyeBlinkLeft"),
    ("Blink_Right", "eyeBlinkRight"), ("smileLeft", "mouthSmileLeft"), ("browInnerUp", "browInnerUp"),
])
def test_names_match_across_case_separators_sides_and_aliases(mods, name, arkit):
    assert mods["retarget"].normalize(name) == mods["retarget"].normalize(arkit)


def test_match_lists_missing_model_names_and_unmatched_keys(mods):
    match = mods["retarget"].match_names(["jawOpen", "mouthClose", "eyeBlinkLeft"],
                                         ["Jaw_Open", "blink_L", "hairFlip"])
    assert match.mapping == {"jawOpen": "Jaw_Open", "eyeBlinkLeft": "blink_L"}
    assert match.missing == ["mouthClose"] and match.unmatched == ["hairFlip"]


@pytest.mark.parametrize("tolerance", [0.001, 0.01, 0.05])
def test_reduction_error_never_exceeds_the_tolerance(mods, tolerance):
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(0, 0.02, 400)) + 0.3 * np.sin(np.arange(400) / 9)
    kept = mods["reduce"].reduce_keys(values, tolerance)
    rebuilt = np.interp(np.arange(400), kept, values[kept])
    assert np.abs(rebuilt - values).max() <= tolerance
    assert kept[0] == 0 and kept[-1] == 399 and len(kept) < 400


def test_reduction_keeps_the_frames_it_is_told_to_and_zero_keeps_all(mods):
    values = np.linspace(0, 1, 50)
    assert mods["reduce"].reduce_keys(values, 0.1).tolist() == [0, 49]
    assert mods["reduce"].reduce_keys(values, 0.1, keep=np.array([17])).tolist() == [0, 17, 49]
    assert len(mods["reduce"].reduce_keys(values, 0.0)) == 50


def test_closures_are_the_minima_of_the_mouth_opening(mods):
    names = ["jawOpen", "mouthClose", "browInnerUp"]
    exp = np.zeros((7, 3))
    exp[:, 0] = [0.1, 0.5, 0.0, 0.6, 0.6, 0.2, 0.4]
    assert mods["reduce"].closure_frames(exp, names).tolist() == [2, 5]
    exp[3, 1] = 0.9  # mouthClose at frame 3 seals the lips despite the open jaw
    assert mods["reduce"].closure_frames(exp, names).tolist() == [3, 5]
    assert mods["reduce"].closure_frames(exp, ["browInnerUp"] * 3).tolist() == []


def test_task_reports_progress_then_its_result(mods):
    jobs = mods["jobs"]
    release = threading.Event()

    def work(report, cancelled):
        report(0.5, "halfway")
        release.wait(5)
        return "result"

    task = jobs.Task(work).start()
    while task.poll().message != "halfway":
        task.join(0.01)
    assert task.state.fraction == 0.5 and not task.state.done
    release.set()
    task.join(5)
    state = task.poll()
    assert state.done and state.result == "result" and state.error is None


def test_a_cancelled_task_ends_cancelled(mods):
    jobs = mods["jobs"]

    def work(report, cancelled):
        cancelled.wait(5)
        raise jobs.Cancelled()

    task = jobs.Task(work).start()
    task.cancel()
    task.join(5)
    state = task.poll()
    assert state.done and state.cancelled and state.result is None


@pytest.mark.parametrize("url", [lambda: f"http://127.0.0.1:{closed_port()}", lambda: "not a url"])
def test_client_says_the_server_cannot_be_reached(mods, url):
    client = mods["client"]
    conn = client.Connection(url=url(), connect_timeout=1.0, read_timeout=1.0)
    with pytest.raises(client.ServerError, match="cannot reach the FlowVQ server") as info:
        client.Client(conn).health()
    assert info.value.code == "unreachable"


def test_the_face_model_is_fetched_once_per_server_and_id(addon, face_npz):
    face, client = sys.modules[f"{PACKAGE}.face"], sys.modules[f"{PACKAGE}.client"]

    class Server:
        """A client whose ``GET /v1/face-model`` counts its calls."""

        def __init__(self, url):
            self.conn, self.calls = client.Connection(url=url), 0

        def face_model(self):
            self.calls += 1
            return face_npz

    first, other = Server("http://face-model-cache.test:1"), Server("http://face-model-cache.test:2")
    model = face.face_model_for(first, "builtin-arkit52@1")
    assert face.face_model_for(first, "builtin-arkit52@1") is model and first.calls == 1
    assert len(model.names) == model.basis.shape[0] > 0
    face.face_model_for(other, "builtin-arkit52@1")
    face.face_model_for(first, "builtin-arkit52@2")
    assert (first.calls, other.calls) == (2, 1)


def test_local_server_process_starts_and_stops(addon):
    local = sys.modules[f"{PACKAGE}.server_process"].LocalServer()
    local.start(f"{sys.executable} -c 'import time; time.sleep(60)'")
    assert local.running
    local.stop()
    assert not local.running


def test_local_server_without_a_command_says_what_to_set(addon):
    with pytest.raises(ValueError, match="preferences"):
        sys.modules[f"{PACKAGE}.server_process"].LocalServer().start("  ")
