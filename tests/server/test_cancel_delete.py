"""Cancel never deletes, and a delete never cuts a download (issue 23): two cancels of a running
render job keep the job and the frames it rendered; deleting a running job is refused; a DELETE while
a frames zip is being built or streamed leaves the client a complete zip and the server log clean."""

import io
import threading
import time
import zipfile

import requests

from tests.server.conftest import (
    HTTP_TIMEOUT, assert_error, cancel, job, render, speech_wav, submit, take_object, wait_for,
)

RENDER_FPS = 25.0
ZIP_CLIP_S = 8.0  # 200 frames of 256 pixels: a zip of about 23 MB, more than the socket buffers hold


def test_two_cancels_keep_a_running_render_job_and_its_frames(url, info):
    job_id = render(url, take_object(info, 60.0, RENDER_FPS)).json()["id"]  # 1500 frames
    wait_for(url, job_id, ("running",), min_progress=10 / 1500)
    assert_error(requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT), 409, "job_not_finished")
    cancel(url, job_id)
    cancel(url, job_id)  # a double click
    final = wait_for(url, job_id, timeout=30)[-1]
    assert final["state"] == "cancelled" and final["frames"]["0"] >= 10
    assert job(url, job_id)["frames"] == final["frames"]  # still there, with what it rendered
    frame = requests.get(f"{url}/v1/jobs/{job_id}/frames/0/{final['frames']['0'] - 1}.png", timeout=HTTP_TIMEOUT)
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
    assert requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).status_code == 204


def test_a_delete_during_a_frames_zip_download_leaves_a_complete_zip_and_no_traceback(url, server):
    job_id = submit(url, speech_wav(ZIP_CLIP_S), {"render": True, "render_size": 256, "pose": False}).json()["id"]
    frames = wait_for(url, job_id)[-1]["frames"]["0"]
    frames_dir = server.data_dir / "jobs" / job_id / "frames"
    log_start = server.log_path.stat().st_size
    streaming, deleted, body = threading.Event(), threading.Event(), io.BytesIO()

    def download() -> None:
        with requests.get(f"{url}/v1/jobs/{job_id}/frames/0.zip", stream=True, timeout=HTTP_TIMEOUT) as response:
            assert response.status_code == 200
            chunks = response.iter_content(1 << 16)
            body.write(next(chunks))
            streaming.set()
            deleted.wait(HTTP_TIMEOUT)
            for chunk in chunks:
                body.write(chunk)

    downloader = threading.Thread(target=download)
    downloader.start()
    while not streaming.is_set() and not any(frames_dir.glob(".0.zip.*.tmp")):
        time.sleep(0.001)  # the zip is being built, or its first bytes have arrived: delete now
    assert requests.delete(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT).status_code == 204
    deleted.set()
    assert_error(requests.get(f"{url}/v1/jobs/{job_id}", timeout=HTTP_TIMEOUT), 404, "job_not_found")
    downloader.join(HTTP_TIMEOUT)
    archive = zipfile.ZipFile(body)
    assert archive.namelist() == [f"{n:05d}.png" for n in range(frames)] and archive.testzip() is None
    deadline = time.monotonic() + 10
    while frames_dir.parent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not frames_dir.parent.exists()  # removed once the download ended
    assert requests.get(f"{url}/v1/health", timeout=HTTP_TIMEOUT).status_code == 200
    assert job_id not in [j["id"] for j in requests.get(f"{url}/v1/jobs", timeout=HTTP_TIMEOUT).json()]
    with server.log_path.open("rb") as log:
        log.seek(log_start)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written and "Exception" not in written, written
