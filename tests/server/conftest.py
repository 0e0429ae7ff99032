"""Fixtures and helpers for the server tests: real ``flowvq serve`` processes on 127.0.0.1 at a
free port (`server.process.ServerProcess`), speech clips made from the committed demo clip, and a
small HTTP client for the job lifecycle."""

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import soundfile as sf

from core.cli import DEMO_SPEECH
from server.process import ServerProcess

FINISHED = ("done", "failed", "cancelled")
HTTP_TIMEOUT = 30


def speech_wav(seconds: float) -> bytes:
    """``seconds`` of real speech (the demo clip, repeated as needed) as 16-bit WAV bytes."""
    wave, rate = sf.read(DEMO_SPEECH, dtype="float32")
    clip = np.resize(wave, round(seconds * rate))  # (N,)
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def take_object(info: dict[str, Any], seconds: float, fps: float, seed: int = 0) -> dict[str, Any]:
    """A take (wire format) of ``seconds`` at ``fps`` on the server's face model (``info``: its
    ``GET /v1/info``): seeded random curves with Blender's precision, float32 values as float64, as
    the add-on samples them before it rounds them. Shapes: exp (T, D), pose (T, 6)."""
    frames = round(seconds * fps)
    rng = np.random.default_rng(seed)
    exp = rng.random((frames, info["dim"]), dtype=np.float32).astype(np.float64)
    pose = (0.1 * rng.standard_normal((frames, len(info["pose_columns"])))).astype(np.float32).astype(np.float64)
    return {"take": 0, "seed": seed, "emotion": "talk", "fps": fps, "frames": frames, "names": info["names"],
            "exp": exp.tolist(), "pose": pose.tolist(), "face_model": info["face_model"]}


def render(url: str, take: dict[str, Any] | str, size: int = 64) -> requests.Response:
    """``POST /v1/render`` of a take (an object, or JSON text sent as it is) at ``size`` pixels."""
    text = take if isinstance(take, str) else json.dumps(take)
    return requests.post(f"{url}/v1/render", data={"take": text, "settings": json.dumps({"render_size": size})},
                         timeout=HTTP_TIMEOUT)


def cancel(url: str, job_id: str) -> dict[str, Any]:
    """``POST /v1/jobs/{id}/cancel`` (must answer 200); the job object."""
    response = requests.post(f"{url}/v1/jobs/{job_id}/cancel", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def submit(url: str, audio: bytes, settings: dict[str, Any] | None = None, portrait: bytes | None = None,
           **kwargs: Any) -> requests.Response:
    """``POST /v1/jobs`` with the multipart parts of docs/api.md."""
    files: dict[str, Any] = {"audio": ("clip.wav", audio, "audio/wav")}
    if portrait is not None:
        files["portrait"] = ("portrait.png", portrait, "image/png")
    data = {"settings": json.dumps(settings)} if settings is not None else {}
    return requests.post(f"{url}/v1/jobs", files=files, data=data, timeout=HTTP_TIMEOUT, **kwargs)


def job(url: str, job_id: str) -> dict[str, Any]:
    """``GET /v1/jobs/{id}`` (must answer 200)."""
    response = requests.get(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(url: str, job_id: str, states: tuple[str, ...] = FINISHED, timeout: float = 120.0,
             min_progress: float = 0.0) -> list[dict[str, Any]]:
    """Poll the job until its state is one of ``states`` (and its progress >= ``min_progress``);
    returns every job object seen, the last one matching."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(job(url, job_id))
        if seen[-1]["state"] in states and seen[-1]["progress"] >= min_progress:
            return seen
        if seen[-1]["state"] in FINISHED:
            raise AssertionError(f"job ended {seen[-1]['state']} while waiting for {states}: {seen[-1]}")
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {seen[-1] if seen else None}")


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with the one error shape and ``code``; returns the error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and len(body["error"]["message"]) > 10
    return body["error"]


def start_server(data_dir: Path, *args: str) -> ServerProcess:
    """A ready server on a free loopback port (stop it when done)."""
    process = ServerProcess(data_dir, extra_args=args).start()
    try:
        process.wait_ready()
    except BaseException:
        process.stop()
        raise
    return process


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerProcess:
    """One server shared by the lifecycle, bad-input and schemathesis tests."""
    process = start_server(tmp_path_factory.mktemp("shared") / "data")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def info(url) -> dict[str, Any]:
    return requests.get(f"{url}/v1/info", timeout=HTTP_TIMEOUT).json()
