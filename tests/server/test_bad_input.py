"""Bad input gets a 4xx in the one error shape, never a 500 or a job: audio, settings, portraits,
takes, ids, sizes, hosts and origins."""

import io
import json
import socket
import time
import uuid

import numpy as np
import pytest
import requests
import soundfile as sf

from tests.server.conftest import HTTP_TIMEOUT, assert_error, speech_wav, submit, wait_for

TWO_HOURS_S = 7200
FLAC_RATE = 8000


@pytest.fixture(scope="module")
def clip() -> bytes:
    return speech_wav(1.0)


def two_hour_flac() -> bytes:
    """A 2-hour FLAC of silence (about 100 kB: silence compresses), written a minute at a time."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", FLAC_RATE, 1, "PCM_16", format="FLAC") as sound:
        for _ in range(TWO_HOURS_S // 60):
            sound.write(np.zeros(FLAC_RATE * 60, np.float32))
    return buffer.getvalue()


def corrupt_flac() -> bytes:
    """FLAC's magic bytes followed by seeded garbage."""
    return b"fLaC" + np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()


def silent_wav() -> bytes:
    """One second of digital silence."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000, np.float32), 16000, format="WAV")
    return buffer.getvalue()


BAD_AUDIO = {
    "empty": (b"", "empty_audio"),
    "corrupt": (None, "corrupt_audio"),
    "not_audio": (b"this is a text file, not a recording\n" * 20, "not_audio"),
    "png_as_audio": (b"\x89PNG\r\n\x1a\n" + bytes(200), "not_audio"),
    "two_hours": (None, "audio_too_long"),
    "silent": (None, "silent_audio"),
}


@pytest.mark.parametrize("kind", sorted(BAD_AUDIO))
def test_bad_audio_is_refused_with_its_code(url, kind):
    data, code = BAD_AUDIO[kind]
    data = {"corrupt": corrupt_flac, "two_hours": two_hour_flac, "silent": silent_wav}[kind]() if data is None else data
    error = assert_error(submit(url, data), 422, code)
    assert error["field"] == "audio"


BAD_SETTINGS = {
    "unknown_emotion": ({"emotion": "joyful"}, "unknown_emotion", "settings.emotion"),
    "unknown_blend": ({"emotion": "sad", "blend": "joyful"}, "unknown_emotion", "settings.blend"),
    "blend_weight_over_one": ({"blend": "angry", "blend_weight": 1.5}, "invalid_settings", "settings.blend_weight"),
    "too_many_takes": ({"takes": 999}, "invalid_settings", "settings.takes"),
    "negative_seed": ({"seed": -1}, "invalid_settings", "settings.seed"),
    "intensity_over_the_maximum": ({"intensity": 1.6}, "invalid_settings", "settings.intensity"),
    "unknown_key": ({"temprature": 0.5}, "invalid_settings", "settings.temprature"),
    "string_for_number": ({"temperature": "hot"}, "invalid_settings", "settings.temperature"),
    "render_size_not_multiple_of_8": ({"render_size": 100}, "invalid_settings", "settings.render_size"),
    "fps_zero": ({"fps": 0}, "invalid_settings", "settings.fps"),
    "reference_wrong_width": ({"reference": [0.1, 0.2]}, "invalid_settings", "settings"),
}


@pytest.mark.parametrize("kind", sorted(BAD_SETTINGS))
def test_bad_settings_are_refused_with_their_code_and_field(url, clip, kind):
    settings, code, field = BAD_SETTINGS[kind]
    assert assert_error(submit(url, clip, settings), 422, code)["field"] == field


def test_nan_reference_is_refused(url, clip, info):
    text = json.dumps({"reference": [0.0] * (info["dim"] - 1)})[:-2] + ", NaN]}"
    response = requests.post(f"{url}/v1/jobs", files={"audio": ("a.wav", clip)}, data={"settings": text},
                             timeout=HTTP_TIMEOUT)
    assert "NaN" in assert_error(response, 422, "invalid_settings")["message"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"happy"'])
def test_settings_that_are_not_a_json_object_are_refused(url, clip, text):
    response = requests.post(f"{url}/v1/jobs", files={"audio": ("a.wav", clip)}, data={"settings": text},
                             timeout=HTTP_TIMEOUT)
    assert_error(response, 422, "invalid_settings")


def test_missing_audio_part_is_refused(url):
    response = requests.post(f"{url}/v1/jobs", data={"settings": "{}"}, timeout=HTTP_TIMEOUT)
    assert assert_error(response, 422, "invalid_request")["field"] == "audio"


def test_portrait_that_is_not_an_image_is_refused(url, clip):
    assert_error(submit(url, clip, portrait=b"GIF? no, just bytes"), 422, "invalid_portrait")


def test_portrait_without_a_face_fails_the_job_with_no_face(url, clip):
    import cv2

    blank = cv2.imencode(".png", np.full((128, 128, 3), 200, np.uint8))[1].tobytes()
    response = submit(url, clip, portrait=blank)
    assert response.status_code == 202
    final = wait_for(url, response.json()["id"])[-1]
    assert final["state"] == "failed" and final["error"]["code"] == "no_face"


@pytest.mark.parametrize("take_kind", ["not_json", "nan_rows", "wrong_face_model"])
def test_bad_take_for_rerender_is_refused(url, info, take_kind):
    dim = info["dim"]
    take = {"take": 0, "seed": 0, "emotion": "talk", "fps": 25.0, "frames": 2, "names": info["names"],
            "exp": [[0.0] * dim] * 2, "pose": [[0.0] * 6] * 2, "face_model": info["face_model"]}
    if take_kind == "not_json":
        text, code = "{take", "invalid_take"
    elif take_kind == "nan_rows":
        text, code = json.dumps(take).replace("0.0]", "NaN]", 1), "invalid_take"
    else:
        text, code = json.dumps({**take, "face_model": "other@1"}), "wrong_face_model"
    response = requests.post(f"{url}/v1/render", data={"take": text}, timeout=HTTP_TIMEOUT)
    assert assert_error(response, 422, code)["field"] == "take"


PATH_LIKE_IDS = [
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "not-a-uuid",
    str(uuid.uuid1()),
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    "00000000-0000-4000-8000-000000000000%00",
]


@pytest.mark.parametrize("job_id", PATH_LIKE_IDS)
def test_unknown_or_path_like_job_ids_are_404(url, job_id):
    code = "not_found" if "%2F" in job_id else "job_not_found"  # an encoded slash matches no route at all
    for suffix in ("", "/takes", "/frames/0/0.png", "/frames/0.zip"):
        assert_error(requests.get(f"{url}/v1/jobs/{job_id}{suffix}", timeout=HTTP_TIMEOUT), 404, code)
    assert_error(requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT), 404, code)
    assert_error(requests.post(f"{url}/v1/jobs/{job_id}/cancel", timeout=HTTP_TIMEOUT), 404, code)


def test_other_spellings_of_a_real_job_id_are_404(url, clip):
    job_id = submit(url, clip).json()["id"]
    assert requests.get(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).status_code == 200
    for spelling in (job_id.upper(), job_id.replace("-", ""), f"urn:uuid:{job_id}", f"{{{job_id}}}"):
        assert_error(requests.get(f"{url}/v1/jobs/{spelling}", timeout=HTTP_TIMEOUT), 404, "job_not_found")


def raw_response(port: int, request: bytes, body_chunks: list[bytes] = ()) -> tuple[int, dict]:
    """Send a raw HTTP request (then body chunks, stopping when the server closes), read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(request)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: that is the point
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_oversized_upload_is_refused_from_its_content_length(url, server, info):
    declared = info["limits"]["max_body_bytes"] + 1
    request = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: multipart/form-data; "
               f"boundary=x\r\nContent-Length: {declared}\r\n\r\n").encode()
    status, body = raw_response(server.port, request)
    assert status == 413 and body["error"]["code"] == "too_large"


def test_oversized_chunked_upload_is_refused_while_streaming(url, server, info):
    chunk = b"x" * (1 << 20)
    count = info["limits"]["max_body_bytes"] // len(chunk) + 2
    request = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: multipart/form-data; "
               f"boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    part = b'--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    framed = [b"%x\r\n%s\r\n" % (len(data), data) for data in [part] + [chunk] * count]
    status, body = raw_response(server.port, request, framed)
    assert status == 413 and body["error"]["code"] == "too_large"


@pytest.mark.parametrize("headers,code", [
    ({"Origin": "https://evil.example"}, "bad_origin"),
    ({"Origin": "null"}, "bad_origin"),
    ({"Host": "evil.example"}, "bad_host"),
    ({"Host": "attacker.127.0.0.1.nip.io:80"}, "bad_host"),
])
def test_browser_pages_on_other_sites_are_refused(url, clip, headers, code):
    assert_error(requests.get(f"{url}/v1/info", headers=headers, timeout=HTTP_TIMEOUT), 403, code)
    assert_error(submit(url, clip, headers=headers), 403, code)


def test_loopback_origins_are_accepted(url, server):
    for origin in (f"http://127.0.0.1:{server.port}", "http://localhost:3000", "http://[::1]:8765"):
        assert requests.get(f"{url}/v1/info", headers={"Origin": origin}, timeout=HTTP_TIMEOUT).status_code == 200


def test_an_unbounded_manifold_k_is_refused_at_submit_and_its_bound_is_published(url, clip, info):
    """Issue 23, case 1: k = 10⁹ used to be accepted and then ate memory in the worker."""
    assert info["settings"]["manifold_k"]["maximum"] == 64
    start = time.perf_counter()
    error = assert_error(submit(url, clip, {"manifold_k": 1_000_000_000}), 422, "invalid_settings")
    assert error["field"] == "settings.manifold_k" and time.perf_counter() - start < 5.0
    done = wait_for(url, submit(url, clip, {"manifold_k": 64}).json()["id"])[-1]
    assert done["state"] == "done"


def submit_text(url: str, clip: bytes, settings: str) -> requests.Response:
    """``POST /v1/jobs`` with ``settings`` sent as given (not made by json.dumps)."""
    return requests.post(f"{url}/v1/jobs", files={"audio": ("clip.wav", clip, "audio/wav")},
                         data={"settings": settings}, timeout=HTTP_TIMEOUT)


@pytest.mark.parametrize("field", ["settings", "take"])
def test_deeply_nested_json_is_refused_with_its_own_code_not_a_500(url, clip, info, field):
    """Issue 23, case 2: "[" × 100 000 used to raise RecursionError inside the parser (500)."""
    assert info["limits"]["max_json_depth"] == 8
    nested = "[" * 100_000 + "]" * 100_000
    if field == "settings":
        response = submit_text(url, clip, nested)
    else:
        response = requests.post(f"{url}/v1/render", data={"take": nested}, timeout=HTTP_TIMEOUT)
    assert assert_error(response, 422, "json_too_deep")["field"] == field


def test_brackets_inside_strings_do_not_count_towards_the_depth(url, clip):
    response = submit_text(url, clip, json.dumps({"emotion": "[[[[[[[[[[[[happy"}))
    assert assert_error(response, 422, "unknown_emotion")


def test_a_huge_finite_reference_is_refused_at_submit_not_failed_in_the_worker(url, clip, info):
    """Issue 23, case 7: a reference of 1e30 used to become a failed job (non-finite take)."""
    error = assert_error(submit(url, clip, {"reference": [1e30] * info["dim"]}), 422, "invalid_settings")
    assert "outside its range" in error["message"]
    overshoot = [1.4] + [0.0] * (info["dim"] - 1)  # a rig's slider a little past 1 still works
    assert wait_for(url, submit(url, clip, {"reference": overshoot}).json()["id"])[-1]["state"] == "done"
