"""Jobs survive the server: after kill -9 and a restart, finished results are still served and the
job that was running reads failed (interrupted), with the frames it rendered counted from the disk;
old jobs are cleaned by age."""

import json
import time

import requests

from server.store import parse_job_id
from tests.server.conftest import (
    HTTP_TIMEOUT, assert_error, render, speech_wav, start_server, submit, take_object, wait_for,
)


def test_kill_restart_keeps_results_fails_interrupted_and_cleans_old_jobs(tmp_path):
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        finished = submit(first.url, speech_wav(1.0), {"takes": 2, "seed": 5}).json()["id"]
        wait_for(first.url, finished)
        takes_before = requests.get(f"{first.url}/v1/jobs/{finished}/takes", timeout=HTTP_TIMEOUT).json()
        running = submit(first.url, speech_wav(180.0), {"takes": 16}).json()["id"]
        queued = submit(first.url, speech_wav(1.0)).json()["id"]
        wait_for(first.url, running, ("running",), min_progress=0.1)
        first.kill()
    finally:
        first.stop()

    second = start_server(data_dir)
    try:
        takes_after = requests.get(f"{second.url}/v1/jobs/{finished}/takes", timeout=HTTP_TIMEOUT).json()
        assert takes_after == takes_before
        for job_id, was in ((running, "running"), (queued, "queued")):
            status = requests.get(f"{second.url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).json()
            assert status["state"] == "failed", status
            assert status["error"]["code"] == "interrupted" and was in status["error"]["message"]
            assert_error(requests.get(f"{second.url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT), 409, "not_ready")
        fresh = submit(second.url, speech_wav(1.0)).json()["id"]
        assert wait_for(second.url, fresh)[-1]["state"] == "done"  # the restarted worker works
    finally:
        second.stop()

    time.sleep(1.0)
    third = start_server(data_dir, "--max-job-age-hours", str(0.5 / 3600))
    try:
        assert requests.get(f"{third.url}/v1/jobs", timeout=HTTP_TIMEOUT).json() == []
        assert_error(requests.get(f"{third.url}/v1/jobs/{finished}", timeout=HTTP_TIMEOUT), 404, "job_not_found")
        assert [p for p in (data_dir / "jobs").iterdir() if parse_job_id(p.name)] == []
    finally:
        third.stop()


def test_after_kill_9_mid_render_the_interrupted_job_counts_the_frames_on_disk(tmp_path):
    """status.json is written at most twice a second while frames are written as they render, so
    after kill -9 it lags; the restart counts the frames again."""
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        info = requests.get(f"{first.url}/v1/info", timeout=HTTP_TIMEOUT).json()
        job_id = render(first.url, take_object(info, 60.0, 25.0)).json()["id"]  # 1500 frames
        wait_for(first.url, job_id, ("running",), min_progress=100 / 1500)
        first.kill()
    finally:
        first.stop()
    directory = data_dir / "jobs" / job_id
    on_disk = len(list((directory / "frames" / "0").glob("[0-9][0-9][0-9][0-9][0-9].png")))
    stored = json.loads((directory / "status.json").read_text())["frames"]["0"]
    assert stored <= on_disk and on_disk >= 100
    second = start_server(data_dir)
    try:
        status = requests.get(f"{second.url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).json()
        assert status["state"] == "failed" and status["error"]["code"] == "interrupted", status
        assert status["frames"] == {"0": on_disk}
        last = requests.get(f"{second.url}/v1/jobs/{job_id}/frames/0/{on_disk - 1}.png", timeout=HTTP_TIMEOUT)
        assert last.status_code == 200
    finally:
        second.stop()
