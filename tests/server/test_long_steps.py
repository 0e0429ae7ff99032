"""Long steps stop promptly (issue 23): while a long take is projected onto the latent manifold
(about 30 s for 16 takes of 300 s at K = 64 on a 2-core CPU), a cancel ends the job ``cancelled``
and a SIGTERM ends the server within seconds; the projection checks the job's cancel flag between
chunks, and the shutdown sets it."""

import time

import requests

from tests.server.conftest import HTTP_TIMEOUT, cancel, job, speech_wav, start_server, submit, wait_for

LONG_CLIP_S = 300.0
LONG_PROJECTION = {"takes": 16, "manifold_k": 64}
PAST_THE_NOISE_S = 3.0  # drawing the takes' noise comes first (about 1.6 s here), then the projection
PROMPT_S = 10.0


def projecting(url: str) -> str:
    """Submit the long job and return its id once it is inside the manifold projection (on a CPU
    like this project's; a faster one may be sampling frames already, which is checked every frame)."""
    job_id = submit(url, speech_wav(LONG_CLIP_S), LONG_PROJECTION).json()["id"]
    wait_for(url, job_id, ("running",), timeout=60)
    while job(url, job_id)["stage"] != "sampling":
        time.sleep(0.05)
    time.sleep(PAST_THE_NOISE_S)
    return job_id


def test_a_cancel_during_the_manifold_projection_ends_the_job_cancelled_quickly(url):
    job_id = projecting(url)
    asked = time.monotonic()
    cancel(url, job_id)
    final = wait_for(url, job_id, timeout=60)[-1]
    assert final["state"] == "cancelled" and time.monotonic() - asked < PROMPT_S


def test_sigterm_during_the_manifold_projection_stops_the_server_within_seconds(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    try:
        job_id = projecting(server.url)
        asked = time.monotonic()
        server.process.terminate()
        server.process.wait(60)
        assert time.monotonic() - asked < PROMPT_S, server.log_tail()
    finally:
        server.stop()
    assert "Application shutdown complete" in server.log_tail(), server.log_tail()
    restarted = start_server(data_dir)
    try:
        status = requests.get(f"{restarted.url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).json()
        assert status["state"] == "failed" and status["error"]["code"] == "interrupted", status
    finally:
        restarted.stop()
