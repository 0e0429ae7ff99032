"""The job's ``text`` field against a real server: a real reader's line (LJ Speech,
tests/data/real/CREDITS.md) moves the jaw as real speakers do and seals every bilabial; a line that cannot be aligned still gives takes,
from the audio, with a message saying why; a text too long or not a string is a 422."""

from pathlib import Path

import numpy as np
import requests

from core.align import align_text
from core.audio import load_audio
from core.eval.metrics import bilabial_closure_rate
from core.face import builtin
from core.formats.takes import Take
from core.visemes import jaw_curve
from tests.server.conftest import HTTP_TIMEOUT, assert_error, submit, wait_for

CLIP = Path(__file__).resolve().parents[1] / "data" / "real" / "LJ001-0013.flac"
LINE = "than in the same operations with ugly ones."


def first_take(url: str, job_id: str) -> Take:
    body = requests.get(f"{url}/v1/jobs/{job_id}/takes", timeout=HTTP_TIMEOUT).json()
    return Take.from_dict(body["takes"][0])


def test_a_jobs_text_moves_the_jaw_seals_the_real_readers_bilabials_and_leaves_no_message(url):
    created = submit(url, CLIP.read_bytes(), {"text": LINE, "emotion": "sad", "seed": 3})
    assert created.status_code == 202, created.text
    done = wait_for(url, created.json()["id"])[-1]
    assert done["state"] == "done" and done["messages"] == []
    take = first_take(url, done["id"])
    phones = align_text(load_audio(CLIP), LINE)
    assert bilabial_closure_rate(builtin(), take.exp, phones, take.fps) == 1.0
    assert np.allclose(take.exp[:, take.names.index("jawOpen")], jaw_curve(phones, take.fps, take.frames), atol=1e-6)


def test_a_text_that_cannot_be_aligned_gives_audio_takes_and_says_why(url):
    created = submit(url, CLIP.read_bytes(), {"text": "than in the same zorblax with ugly ones", "seed": 3})
    done = wait_for(url, created.json()["id"])[-1]
    assert done["state"] == "done" and done["takes"] == 1
    (message,) = done["messages"]
    assert "not used" in message and "zorblax" in message
    plain = wait_for(url, submit(url, CLIP.read_bytes(), {"seed": 3}).json()["id"])[-1]
    assert (first_take(url, done["id"]).exp == first_take(url, plain["id"]).exp).all()


def test_a_text_too_long_or_not_a_string_is_refused_at_submit(url):
    assert_error(submit(url, CLIP.read_bytes(), {"text": "word " * 401}), 422, "invalid_settings")
    assert_error(submit(url, CLIP.read_bytes(), {"text": ["not", "a", "string"]}), 422, "invalid_settings")
