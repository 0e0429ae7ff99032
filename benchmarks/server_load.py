"""Load on the local inference server: request overhead and coefficient-job throughput.

Run as ``python benchmarks/server_load.py [--jobs N] [--clients C] [--clip-seconds S] [--json]``.
It starts a real ``flowvq serve`` on 127.0.0.1 at a free port with a temporary job store (loopback
only, stopped at the end) and measures, on this CPU:

* health: p50/p95 latency of ``GET /v1/health`` on an idle server, and while jobs run;
* job overhead: p50/p95 of (submit -> done as the client sees it) minus the model time the job
  reports (``finished - started``): upload, validation, storage, queueing and polling, for jobs
  submitted one at a time;
* throughput: completed coefficient jobs per minute with C concurrent clients (1 take each).

Bounded: a fixed number of requests and jobs, each with a timeout.
"""

import argparse
import io
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

from core.cli import DEMO_SPEECH
from server.process import ServerProcess

__all__ = ["main", "speech_clip", "run_benchmark"]

TIMEOUT_S = 120.0
POLL_S = 0.005


def speech_clip(seconds: float) -> bytes:
    """``seconds`` of the demo speech clip (repeated as needed) as WAV bytes."""
    wave, rate = sf.read(DEMO_SPEECH, dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, np.resize(wave, round(seconds * rate)), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def percentiles_ms(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) of seconds, in milliseconds."""
    return float(np.percentile(samples, 50) * 1e3), float(np.percentile(samples, 95) * 1e3)


def health_latencies(session: requests.Session, url: str, count: int) -> list[float]:
    """Seconds per ``GET /v1/health``, ``count`` times in a row."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        session.get(f"{url}/v1/health", timeout=TIMEOUT_S).raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def run_job(session: requests.Session, url: str, audio: bytes, seed: int) -> tuple[float, float]:
    """Submit one 1-take job and poll it to done: (client seconds, model seconds the job reports)."""
    started = time.perf_counter()
    response = session.post(f"{url}/v1/jobs", files={"audio": ("clip.wav", audio)},
                            data={"settings": json.dumps({"seed": seed})}, timeout=TIMEOUT_S)
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        job = session.get(f"{url}/v1/jobs/{job_id}", timeout=TIMEOUT_S).json()
        if job["state"] == "done":
            return time.perf_counter() - started, job["finished"] - job["started"]
        if job["state"] in ("failed", "cancelled"):
            raise RuntimeError(f"benchmark job ended {job['state']}: {job['error']}")
        time.sleep(POLL_S)
    raise RuntimeError(f"benchmark job {job_id} did not finish in {TIMEOUT_S:g} s")


def run_clients(url: str, audio: bytes, jobs: int, clients: int) -> tuple[float, list[float]]:
    """``jobs`` jobs from ``clients`` concurrent clients, with health polled meanwhile:
    (jobs per minute, health latencies under load)."""
    under_load: list[float] = []
    stop = threading.Event()

    def poll_health() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                under_load.extend(health_latencies(session, url, 1))
                time.sleep(0.05)

    def client(index: int) -> None:
        with requests.Session() as session:
            for k in range(index, jobs, clients):
                run_job(session, url, audio, seed=k)

    poller = threading.Thread(target=poll_health)
    poller.start()
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
    finally:
        stop.set()
        poller.join()
    return jobs / (time.perf_counter() - started) * 60.0, under_load


def run_benchmark(jobs: int, clients: int, clip_seconds: float, health_requests: int) -> dict:
    """Start a server, measure, stop it; returns the numbers of the module docstring."""
    audio = speech_clip(clip_seconds)
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch) / "data").start()
        try:
            server.wait_ready()
            with requests.Session() as session:
                run_job(session, server.url, audio, seed=0)  # warm-up (traced frame steps)
                idle = health_latencies(session, server.url, health_requests)
                timed = [run_job(session, server.url, audio, seed=k) for k in range(jobs)]
            per_minute, loaded = run_clients(server.url, audio, jobs, clients)
        finally:
            server.stop()
    overhead = [client_s - model_s for client_s, model_s in timed]
    return {
        "clip_seconds": clip_seconds, "jobs": jobs, "clients": clients,
        "health_idle_ms": percentiles_ms(idle), "health_under_load_ms": percentiles_ms(loaded),
        "job_overhead_ms": percentiles_ms(overhead), "model_ms": percentiles_ms([m for _, m in timed]),
        "jobs_per_minute": per_minute,
    }


def print_table(result: dict) -> None:
    """The result as a Markdown table."""
    print(f"server load: {result['clip_seconds']:g} s clips, 1 take, {result['jobs']} jobs, "
          f"{result['clients']} concurrent clients, loopback")
    print("| measure | p50 | p95 |")
    print("|---|---|---|")
    for key, label in (("health_idle_ms", "GET /v1/health, idle (ms)"),
                       ("health_under_load_ms", "GET /v1/health, jobs running (ms)"),
                       ("model_ms", "model time per job (ms)"),
                       ("job_overhead_ms", "job submit->done minus model time (ms)")):
        p50, p95 = result[key]
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    print(f"| completed jobs per minute, {result['clients']} clients | {result['jobs_per_minute']:.0f} | |")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs per phase (default %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=2.0, help="clip length (default %(default)s)")
    parser.add_argument("--health-requests", type=int, default=200, help="(default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    result = run_benchmark(args.jobs, args.clients, args.clip_seconds, args.health_requests)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return result


if __name__ == "__main__":
    main()
