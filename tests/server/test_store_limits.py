"""The server's limits with real ``flowvq serve`` processes: a full queue answers 429 and frees up
when a job is cancelled, the job store keeps within its size by deleting the oldest finished jobs,
and a graceful shutdown marks the running job interrupted."""

import requests

from server.store import parse_job_id
from tests.server.conftest import HTTP_TIMEOUT, assert_error, speech_wav, start_server, submit, wait_for

LONG_JOB = {"takes": 16}  # with 180 s of speech: runs for minutes on a CPU


def stored_job_bytes(data_dir, job_id: str) -> int:
    """The size of one job's directory in the store."""
    return sum(path.stat().st_size for path in (data_dir / "jobs" / job_id).rglob("*") if path.is_file())


def test_a_full_queue_answers_429_until_a_job_is_cancelled(tmp_path):
    server = start_server(tmp_path / "data", "--max-queued-jobs", "2")
    try:
        info = requests.get(f"{server.url}/v1/info", timeout=HTTP_TIMEOUT).json()
        assert info["limits"]["max_queued_jobs"] == 2
        running = submit(server.url, speech_wav(180.0), LONG_JOB).json()["id"]
        queued = submit(server.url, speech_wav(1.0)).json()["id"]
        error = assert_error(submit(server.url, speech_wav(1.0)), 429, "queue_full")
        assert "2 jobs" in error["message"]
        listed = requests.get(f"{server.url}/v1/jobs", timeout=HTTP_TIMEOUT).json()
        assert sorted(job["id"] for job in listed) == sorted([running, queued])  # none from the refusal
        assert requests.post(f"{server.url}/v1/jobs/{running}/cancel", timeout=HTTP_TIMEOUT).status_code == 200
        wait_for(server.url, running)
        accepted = submit(server.url, speech_wav(1.0))
        assert accepted.status_code == 202, accepted.text
        assert wait_for(server.url, accepted.json()["id"])[-1]["state"] == "done"
    finally:
        server.stop()


def test_the_store_deletes_the_oldest_finished_jobs_beyond_its_size(tmp_path):
    """With room for about one and a half jobs, finishing a second job deletes the first; the
    newest stays served."""
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        oldest = submit(first.url, speech_wav(1.0), {"takes": 2}).json()["id"]
        wait_for(first.url, oldest)
    finally:
        first.stop()
    size = stored_job_bytes(data_dir, oldest)
    second = start_server(data_dir, "--max-store-gb", str(1.5 * size / 1024**3))
    try:
        assert requests.get(f"{second.url}/v1/jobs/{oldest}", timeout=HTTP_TIMEOUT).status_code == 200
        newest = submit(second.url, speech_wav(1.0), {"takes": 2}).json()["id"]
        wait_for(second.url, newest)
        gone = requests.get(f"{second.url}/v1/jobs/{oldest}", timeout=HTTP_TIMEOUT)
        assert_error(gone, 404, "job_not_found")
        assert [p.name for p in (data_dir / "jobs").iterdir() if parse_job_id(p.name)] == [newest]
        takes = requests.get(f"{second.url}/v1/jobs/{newest}/takes", timeout=HTTP_TIMEOUT)
        assert takes.status_code == 200 and len(takes.json()) == 2
    finally:
        second.stop()


def test_a_graceful_shutdown_marks_the_running_job_interrupted(tmp_path):
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    try:
        running = submit(first.url, speech_wav(180.0), LONG_JOB).json()["id"]
        wait_for(first.url, running, ("running",), min_progress=0.1)
    finally:
        first.stop()  # SIGTERM: the server stops its worker before it exits
    assert "Application shutdown complete" in first.log_tail(), first.log_tail()
    second = start_server(data_dir)
    try:
        status = requests.get(f"{second.url}/v1/jobs/{running}", timeout=HTTP_TIMEOUT).json()
        assert status["state"] == "failed" and status["error"]["code"] == "interrupted", status
        assert "shut down" in status["error"]["message"]
    finally:
        second.stop()
