"""A client's whole lifecycle against a real server: discover, submit, follow, download, delete;
rendering and re-rendering; cancelling; 20 concurrent jobs; responsiveness while the worker works."""

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import requests

from core.emotions import EMOTIONS
from core.formats.takes import POSE_COLUMNS, Take
from tests.server.conftest import HTTP_TIMEOUT, assert_error, cancel, job, speech_wav, submit, wait_for

LONG_CLIP_S = 180.0  # with 16 takes, several seconds of sampling on this CPU: time to cancel it


@pytest.fixture(scope="module")
def short_clip() -> bytes:
    return speech_wav(1.0)


def takes_of(url: str, job_id: str) -> list[Take]:
    """The job's takes, parsed and validated by `core.formats.takes`."""
    response = requests.get(f"{url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    return [Take.from_dict(obj) for obj in body["takes"]]


def test_health_reports_device_models_and_face_model(url, info):
    health = requests.get(f"{url}/v1/health", timeout=HTTP_TIMEOUT).json()
    assert health["status"] == "ready"
    assert health["device"] == "cpu"
    assert health["face_model"] == info["face_model"]
    assert health["models"]["coeff"] == "default"
    assert health["models"]["renderers"] == info["renderers"]


def test_info_describes_the_model_and_limits(info):
    assert info["emotions"] == list(EMOTIONS)
    assert info["dim"] == len(info["names"]) and info["dim"] > 0
    assert info["pose_columns"] == list(POSE_COLUMNS)
    assert info["fps"] > 0
    assert info["limits"]["max_takes"] >= 1 and info["limits"]["max_upload_bytes"] > 0


def test_face_model_is_an_npz_numpy_reads_without_pickle(url, info):
    response = requests.get(f"{url}/v1/face-model", timeout=HTTP_TIMEOUT)
    assert response.headers["content-type"] == "application/octet-stream"
    with np.load(io.BytesIO(response.content), allow_pickle=False) as data:
        assert f"{data['name']}@{data['version']}" == info["face_model"]
        assert list(data["names"]) == info["names"]
        assert data["basis"].shape == (info["dim"], *data["neutral"].shape)
        assert data["faces"].dtype == np.int32 and data["faces"].shape[1] == 3
        assert all(f"region_{name}" in data for name in data["region_names"])


def test_job_lifecycle_submit_follow_download_delete(url, server, info, short_clip):
    response = submit(url, short_clip, {"emotion": "happy", "takes": 2, "seed": 7, "fps": 30})
    assert response.status_code == 202
    created = response.json()
    assert created["state"] == "queued" and created["kind"] == "generate"
    seen = wait_for(url, created["id"])
    done = seen[-1]
    assert done["state"] == "done" and done["progress"] == 1.0 and done["error"] is None
    assert done["takes"] == 2 and done["started"] <= done["finished"]
    takes = takes_of(url, created["id"])
    assert [t.seed for t in takes] == [7, 8]
    assert all(t.emotion == "happy" and t.fps == 30.0 and t.frames == 30 for t in takes)
    assert all(list(t.names) == info["names"] and t.face_model == info["face_model"] for t in takes)
    listed = requests.get(f"{url}/v1/jobs", timeout=HTTP_TIMEOUT).json()
    assert created["id"] in [j["id"] for j in listed]
    directory = server.data_dir / "jobs" / created["id"]
    assert (directory / "takes.json").is_file()
    assert requests.delete(f"{url}/v1/jobs/{created['id']}", timeout=HTTP_TIMEOUT).status_code == 204
    assert_error(requests.get(f"{url}/v1/jobs/{created['id']}", timeout=HTTP_TIMEOUT), 404, "job_not_found")
    assert not directory.exists()  # deleted with its files


def test_same_request_gives_the_same_takes(url, short_clip):
    settings = {"emotion": "sad", "seed": 11, "takes": 1}
    ids = [submit(url, short_clip, settings).json()["id"] for _ in range(2)]
    for job_id in ids:
        wait_for(url, job_id)
    first, second = (takes_of(url, job_id)[0] for job_id in ids)
    np.testing.assert_array_equal(first.exp, second.exp)
    np.testing.assert_array_equal(first.pose, second.pose)


def test_twenty_concurrent_jobs_all_finish_with_their_own_takes(url, short_clip):
    requests_ = [{"emotion": EMOTIONS[i % len(EMOTIONS)], "seed": 100 + i, "takes": 1 + i % 2, "pose": i % 3 != 0}
                 for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda settings: submit(url, short_clip, settings), requests_))
    assert [r.status_code for r in responses] == [202] * 20
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 20
    for job_id, settings in zip(ids, requests_):
        assert wait_for(url, job_id)[-1]["state"] == "done"
        takes = takes_of(url, job_id)
        assert [t.seed for t in takes] == [settings["seed"] + k for k in range(settings["takes"])]
        assert all(t.emotion == settings["emotion"] and t.frames == 25 for t in takes)
        assert all(np.any(t.pose != 0) == settings["pose"] for t in takes)


def test_cancel_mid_job_stops_it_keeps_it_and_serves_no_takes(url, short_clip):
    job_id = submit(url, speech_wav(LONG_CLIP_S), {"takes": 16}).json()["id"]
    queued_id = submit(url, short_clip).json()["id"]
    wait_for(url, job_id, ("running",), min_progress=0.1)
    assert_error(requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT), 409, "job_not_finished")
    queued = cancel(url, queued_id)  # a queued job is cancelled at once and never starts
    assert queued["state"] == "cancelled" and queued["started"] is None
    assert cancel(url, job_id)["state"] == "running"  # it stops at the worker's next check
    asked = time.monotonic()
    assert cancel(url, job_id)["id"] == job_id  # a second click asks again, and deletes nothing
    final = wait_for(url, job_id, timeout=30)[-1]
    assert final["state"] == "cancelled" and final["progress"] < 1.0
    assert time.monotonic() - asked < 10
    again = cancel(url, job_id)  # a finished job is answered as it is
    assert (again["state"], again["finished"]) == ("cancelled", final["finished"])
    assert_error(requests.get(f"{url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT), 409, "not_ready")
    assert requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).status_code == 204
    assert job(url, queued_id)["started"] is None


def test_progress_rises_with_an_eta_and_health_stays_fast_while_working(url):
    job_id = submit(url, speech_wav(LONG_CLIP_S / 3), {"takes": 16}).json()["id"]
    wait_for(url, job_id, ("running",), min_progress=0.05)
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        assert requests.get(f"{url}/v1/health", timeout=HTTP_TIMEOUT).status_code == 200
        latencies.append(time.perf_counter() - started)
    seen = wait_for(url, job_id)
    assert seen[-1]["state"] == "done"
    progress = [j["progress"] for j in seen]
    assert progress == sorted(progress)
    assert any(j["eta_seconds"] is not None and j["eta_seconds"] > 0 for j in seen if j["state"] == "running")
    assert {j["stage"] for j in seen} <= {"queued", "features", "sampling", "done"}
    assert max(latencies) < 1.0, latencies


def png_size(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[1], image.shape[0]


def test_render_job_serves_frames_and_a_zip_per_take(url, info, short_clip):
    if "warp" not in info["renderers"]:
        pytest.skip("core.render is not installed")
    job_id = submit(url, short_clip, {"takes": 2, "render": True, "render_size": 64, "fps": 10}).json()["id"]
    done = wait_for(url, job_id)[-1]
    assert done["state"] == "done", done
    assert done["frames"] == {"0": 10, "1": 10}
    frame = requests.get(f"{url}/v1/jobs/{job_id}/frames/1/9.png", timeout=HTTP_TIMEOUT)
    assert frame.headers["content-type"] == "image/png" and png_size(frame.content) == (64, 64)
    assert_error(requests.get(f"{url}/v1/jobs/{job_id}/frames/1/10.png", timeout=HTTP_TIMEOUT), 404, "frame_not_found")
    archive = zipfile.ZipFile(io.BytesIO(requests.get(f"{url}/v1/jobs/{job_id}/frames/0.zip", timeout=HTTP_TIMEOUT).content))
    assert archive.namelist() == [f"{n:05d}.png" for n in range(10)]
    assert png_size(archive.read("00003.png")) == (64, 64)


def test_edited_take_is_rerendered_with_the_given_curves(url, info, short_clip):
    if "warp" not in info["renderers"]:
        pytest.skip("core.render is not installed")
    job_id = submit(url, short_clip, {"fps": 5, "pose": False}).json()["id"]
    wait_for(url, job_id)
    take = requests.get(f"{url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT).json()["takes"][0]
    frames = []
    for jaw in (0.0, 1.0):  # an animator's edit: the jaw closed, then wide open
        take["exp"] = [[jaw if name == "jawOpen" else 0.0 for name in take["names"]] for _ in take["exp"]]
        response = requests.post(f"{url}/v1/render", data={"take": json.dumps(take), "settings": json.dumps({"render_size": 64})},
                                 timeout=HTTP_TIMEOUT)
        assert response.status_code == 202 and response.json()["kind"] == "render"
        rendered = wait_for(url, response.json()["id"])[-1]
        assert rendered["state"] == "done" and rendered["frames"] == {"0": 5}
        png = requests.get(f"{url}/v1/jobs/{response.json()['id']}/frames/0/2.png", timeout=HTTP_TIMEOUT).content
        frames.append(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(np.int16))
    assert np.abs(frames[0] - frames[1]).mean() > 1.0  # the open jaw changes the picture


def test_unexpected_error_is_a_generic_500_and_the_log_has_the_traceback(url, server, short_clip):
    job_id = submit(url, short_clip).json()["id"]
    wait_for(url, job_id)
    (server.data_dir / "jobs" / job_id / "takes.json").unlink()  # the disk changed behind the server's back
    response = requests.get(f"{url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal",
                                         "message": "internal server error; the server log has the details"}}
    time.sleep(0.2)
    log = server.log_tail(20000)
    assert "Traceback" in log and "takes.json" in log
