"""Issue 23, cases 5 and 6: an upload whose header announces far more than it weighs on disk (a FLAC
of silence at 384 kHz x 8 channels, a one-colour 16000 x 16000 PNG or a JPEG claiming that size) is
refused from its header with its own code, fast and without the server's memory growing; a legal
large clip is still accepted, decoded once (the job keeps the 16 kHz mono wave for the worker).

Each test measures a server of its own (so that no other test's job runs in its worker meanwhile):
its peak resident memory (VmHWM, reset through /proc/<pid>/clear_refs) against its resident memory
just before the request."""

import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import soundfile as sf
from scipy.signal import resample_poly

from core.audio import MAX_SECONDS, SAMPLE_RATE, load_audio
from core.cli import DEMO_SPEECH
from server.process import ServerProcess
from tests.server.conftest import assert_error, speech_wav, start_server, submit

BOMB_RATE, BOMB_CHANNELS, BOMB_SECONDS = 384_000, 8, 60  # 184 320 000 samples, 3.2 x the limit
BOMB_SIDE = 16_000
MAX_SECONDS_TO_ANSWER = 2.0
MAX_RSS_GROWTH_MB = 200.0


@pytest.fixture(scope="module")
def own_server(tmp_path_factory) -> ServerProcess:
    """A server for this module's measurements alone."""
    process = start_server(tmp_path_factory.mktemp("decode-bounds") / "data")
    yield process
    process.stop()


def memory_mb(pid: int, field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def measured(server: ServerProcess, request: Callable[[], requests.Response]) -> tuple[requests.Response, float, float]:
    """(the response of ``request()``, its seconds, how many MiB the server's peak resident memory
    rose above its resident memory before it)."""
    pid = server.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = memory_mb(pid, "VmRSS")
    start = time.perf_counter()
    response = request()
    return response, time.perf_counter() - start, memory_mb(pid, "VmHWM") - before


def silent_flac(seconds: int, rate: int, channels: int) -> bytes:
    """``seconds`` of digital silence as 16-bit FLAC, written ten seconds at a time (about 3 kB a
    second at 384 kHz x 8 channels: silence compresses)."""
    buffer = io.BytesIO()
    block = np.zeros((rate * 10, channels), np.int16)
    with sf.SoundFile(buffer, "w", rate, channels, "PCM_16", format="FLAC") as sound:
        for _ in range(seconds // 10):
            sound.write(block)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def black_png(side: int) -> bytes:
    """A valid ``side`` x ``side`` 8-bit greyscale PNG, all black, compressed a row at a time
    (16 000 a side: about 250 kB announcing 256 MB of grey, 768 MB decoded as colour)."""
    deflate, row = zlib.compressobj(9), bytes(1 + side)  # filter byte 0, then the row's pixels
    data = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8 bits, greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def jpeg_claiming(side: int) -> bytes:
    """A 16 x 16 colour JPEG whose start-of-frame says ``side`` x ``side`` (libjpeg decodes what
    is missing as grey, at the announced size)."""
    small = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    frame = b"\xff\xc0\x00\x11\x08"  # SOF0, length 17, 8-bit precision; then height, width
    assert small.count(frame + struct.pack(">HH", 16, 16)) == 1
    return small.replace(frame + struct.pack(">HH", 16, 16), frame + struct.pack(">HH", side, side))


def speech_flac(seconds: float, rate: int, channels: int) -> bytes:
    """``seconds`` of the demo speech resampled to ``rate``, on every channel, as 16-bit FLAC."""
    wave, demo_rate = sf.read(DEMO_SPEECH, dtype="float32")
    clip = np.resize(resample_poly(wave, rate, demo_rate).astype(np.float32), round(seconds * rate))  # (N,)
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(clip[:, None], channels, axis=1), rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def test_the_sample_limit_is_published_as_600_s_of_48_khz_stereo(own_server):
    limits = requests.get(f"{own_server.url}/v1/info", timeout=30).json()["limits"]
    assert limits["max_audio_samples"] == round(MAX_SECONDS) * 48_000 * 2 == 57_600_000


def test_a_small_flac_announcing_too_many_samples_is_refused_from_its_header(own_server):
    """Case 5: the 599 s version of this file took 20 s and +2.7 GB before a 422 silent_audio."""
    bomb = silent_flac(BOMB_SECONDS, BOMB_RATE, BOMB_CHANNELS)
    assert len(bomb) < 1_000_000
    response, seconds, growth = measured(own_server, lambda: submit(own_server.url, bomb))
    error = assert_error(response, 422, "audio_too_large")
    assert error["field"] == "audio"
    assert "184,320,000 samples" in error["message"] and "57,600,000" in error["message"]
    assert "384000 Hz x 8 channels" in error["message"] and "mono" in error["message"]
    assert seconds < MAX_SECONDS_TO_ANSWER and growth < MAX_RSS_GROWTH_MB, (seconds, growth)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_a_small_image_announcing_a_huge_portrait_is_refused_from_its_header(own_server, kind):
    """Case 6: the PNG took 5.2 s and +1.47 GB (decoded, then measured) before its 422."""
    bomb = black_png(BOMB_SIDE) if kind == "png" else jpeg_claiming(BOMB_SIDE)
    assert len(bomb) < 1_000_000
    clip = speech_wav(1.0)
    response, seconds, growth = measured(own_server, lambda: submit(own_server.url, clip, portrait=bomb))
    error = assert_error(response, 422, "invalid_portrait")
    assert error["field"] == "portrait" and "16000x16000" in error["message"] and "8192" in error["message"]
    assert seconds < MAX_SECONDS_TO_ANSWER and growth < MAX_RSS_GROWTH_MB, (seconds, growth)


def test_a_legal_large_clip_is_accepted_and_decoded_once_for_the_worker(own_server):
    """60 s of 48 kHz stereo is accepted, and the job stores the 16 kHz mono wave the request
    decoded, for the worker to read as it is (every other job test runs a job from such a file;
    this one is left to the server's shutdown: a minute of sampling proves nothing more here)."""
    upload = speech_flac(60.0, 48_000, 2)
    response, _, growth = measured(own_server, lambda: submit(own_server.url, upload))
    assert response.status_code == 202, response.text
    assert growth < MAX_RSS_GROWTH_MB
    job_id = response.json()["id"]
    with sf.SoundFile(own_server.data_dir / "jobs" / job_id / "audio") as stored:
        assert (stored.samplerate, stored.channels, stored.subtype) == (SAMPLE_RATE, 1, "FLOAT")
        assert np.array_equal(stored.read(dtype="float32"), load_audio(upload))
