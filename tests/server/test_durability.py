"""Jobs survive the server: after kill -9 and a restart, finished results are still served and the
job that was running reads failed (interrupted); old jobs are cleaned by age."""

import time

import requests

from server.store import parse_job_id
from tests.server.conftest import HTTP_TIMEOUT, assert_error, speech_wav, start_server, submit, wait_for


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
