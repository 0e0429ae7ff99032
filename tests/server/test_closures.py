"""The job's ``closures`` field against a real server: without a text, the lips seal on the /p b m/
a recogniser hears in a real speaker's clip (J. F. Kennedy, tests/data/real/CREDITS.md); "off"
gives the flows' lips alone; an unknown recogniser is a 422 naming the field."""

from pathlib import Path

import requests

from core.align import align_text
from core.audio import load_audio
from core.eval.metrics import bilabial_closure_rate
from core.face import builtin
from core.formats.takes import Take
from core.visemes import BILABIALS
from tests.server.conftest import HTTP_TIMEOUT, assert_error, submit, wait_for

CLIP = Path(__file__).resolve().parents[1] / "data" / "real" / "jfk.flac"
LINE = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


def take_of(url: str, settings: dict) -> Take:
    done = wait_for(url, submit(url, CLIP.read_bytes(), settings).json()["id"])[-1]
    assert done["state"] == "done" and done["messages"] == [], done
    body = requests.get(f"{url}/v1/jobs/{done['id']}/takes", timeout=HTTP_TIMEOUT).json()
    return Take.from_dict(body["takes"][0])


def test_heard_closures_seal_the_real_speakers_bilabials_and_off_leaves_the_flows_lips(url):
    said = [p for p in align_text(load_audio(CLIP), LINE) if p[0] in BILABIALS]
    heard = take_of(url, {"closures": "words", "seed": 3, "pose": False})
    alone = take_of(url, {"closures": "off", "seed": 3, "pose": False})
    assert bilabial_closure_rate(builtin(), heard.exp, said, heard.fps) == 1.0
    names = list(heard.names)
    brows = [i for i, name in enumerate(names) if name.startswith("brow")]
    assert (heard.exp[:, brows] == alone.exp[:, brows]).all() and not (heard.exp == alone.exp).all()


def test_an_unknown_recogniser_is_refused_at_submit(url):
    response = submit(url, CLIP.read_bytes(), {"closures": "visemes"})
    assert_error(response, 422, "invalid_settings")
    assert response.json()["error"]["field"] == "settings.closures"
