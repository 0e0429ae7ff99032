"""Issue 23, case 3: takes and references as long as the limits allow are accepted, sent the way the
Blender add-on sends them (Starlette's own 1 MiB cap on a form field used to refuse a 120 s take with
a 400 the docs did not list); a field over the published ``max_field_bytes`` is refused with 413
``field_too_large``, naming it."""

import json

import numpy as np
import pytest
import requests

from core.audio import MAX_FPS
from core.formats.takes import DECIMALS
from tests.addon.pure import pure_module
from tests.server.conftest import (
    HTTP_TIMEOUT, assert_error, cancel, render, speech_wav, submit, take_object, wait_for,
)

FPS = 25.0
addon_client = pure_module("client")


def addon_rounded(take: dict) -> dict:
    """The take as the add-on's ``takes.sample_take`` hands it to its client: rows rounded to the
    wire's places."""
    rounded = {key: np.round(np.asarray(take[key]), addon_client.WIRE_DECIMALS).tolist() for key in ("exp", "pose")}
    return {**take, **rounded}


def stop(url: str, job_id: str) -> None:
    """Cancel a job this module started and delete it (the shared server's worker moves on)."""
    cancel(url, job_id)
    wait_for(url, job_id)
    assert requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).status_code == 204


@pytest.mark.parametrize("seconds", [120.0, 600.0])
def test_a_long_take_is_accepted_for_rerendering_as_the_addon_sends_it(url, info, seconds):
    take = take_object(info, seconds, FPS)
    client = addon_client.Client(addon_client.Connection(url))
    try:
        created = client.render(addon_rounded(take), {"render_size": 64})  # raises ServerError unless 2xx
    finally:
        client.close()
    assert created["kind"] == "render"
    stop(url, created["id"])
    unrounded = json.dumps(take)  # what the add-on sent before it rounded: about twice the bytes
    assert len(unrounded) > 2**20
    response = render(url, unrounded)
    assert response.status_code == 202, response.text
    stop(url, response.json()["id"])


def test_the_addon_rounds_takes_to_the_wires_places():
    """The add-on cannot import core: its copy of the places takes travel with must stay the same."""
    assert addon_client.WIRE_DECIMALS == DECIMALS


def test_the_longest_take_at_the_highest_fps_fits_the_published_limits(info):
    """600 s at 240 fps is 144 000 frames: too many to send in a test, so one frame of the widest
    numbers the rounded wire carries stands for each of them."""
    limits = info["limits"]
    widest = [-0.123456] * info["dim"], [-0.123456] * len(info["pose_columns"])
    frame_bytes = len(json.dumps(list(widest), separators=(",", ":")))  # a row of exp, a row of pose
    frames = limits["max_audio_seconds"] * MAX_FPS
    assert frames * frame_bytes < limits["max_field_bytes"] < limits["max_body_bytes"]
    assert limits["max_body_bytes"] == limits["max_upload_bytes"] + limits["max_field_bytes"]


def test_a_long_reference_is_accepted(url, info):
    reference = take_object(info, 120.0, FPS)["exp"]  # 3000 frames, unrounded: several MiB of settings
    response = submit(url, speech_wav(1.0), {"reference": reference})
    assert response.status_code == 202, response.text
    assert wait_for(url, response.json()["id"])[-1]["state"] == "done"


@pytest.mark.parametrize("field", ["take", "settings"])
def test_a_field_over_the_published_limit_is_refused_naming_it(url, info, field):
    limit = info["limits"]["max_field_bytes"]
    padded = "{}" + " " * (limit - 1)  # valid JSON, one byte over the limit
    if field == "take":
        response = render(url, padded)
    else:
        response = requests.post(f"{url}/v1/jobs", files={"audio": ("clip.wav", speech_wav(1.0), "audio/wav")},
                                 data={"settings": padded}, timeout=HTTP_TIMEOUT)
    error = assert_error(response, 413, "field_too_large")
    assert error["field"] == field and str(limit) in error["message"]
