"""A line's text on the lips (`core.coeff.text`, `GenerateSettings.text`, ``flowvq generate --text``):
the aligned phones move the jaw as real speakers do and seal every bilabial on the flows' mouth, and the flows keep
the rest; a text that cannot be aligned falls back to the heard closures and says so. Real speech: LJ Speech and a GRID speaker
(tests/data/real/CREDITS.md)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.align import align_text
from core.audio import load_audio
from core.coeff.generator import CoeffGenerator, GenerateSettings
from core.coeff.sampler import SampleSettings, SettingsError
from core.coeff.text import emotion_jaw_drop, line_lips, seal_lips
from core.eval.metrics import CLOSED_GAP_MM, bilabial_closure_rate
from core.face.measure import lip_gap
from core.formats.takes import load_takes
from core.recognize import heard_phones
from core.visemes import BILABIALS, LIP_CONSONANT_PHONES, LIP_PARTING, jaw_curve

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
CLIP, LINE = REAL / "LJ001-0013.flac", "than in the same operations with ugly ones."
FLOWVQ = Path(sys.executable).parent / "flowvq"


@pytest.fixture(scope="module")
def generator() -> CoeffGenerator:
    return CoeffGenerator.load()


def settings(**changes) -> GenerateSettings:
    return GenerateSettings(sample=SampleSettings(seed=2, takes=2, emotion="happy"), **changes)


def test_with_the_text_every_bilabial_of_a_real_reader_seals(generator, face) -> None:
    phones = align_text(load_audio(CLIP), LINE)
    takes = generator.generate(CLIP, settings(text=LINE))
    assert sum(p[0] in BILABIALS for p in phones) == 2
    for take in takes:
        assert bilabial_closure_rate(face, take.exp, phones, take.fps) == 1.0


def test_the_text_moves_the_jaw_and_seals_the_flows_mouth_and_keeps_everything_else(generator) -> None:
    """The shipped flows read no phones: the text's takes are the audio's with the jaw following
    the aligned line as real speakers move it (a happy take has no jaw drop of its own), mouthClose
    at most that jaw and the lips sealed around the aligned /p b m/; nothing else changes."""
    plain = generator.generate(CLIP, settings(closures="off"))
    spoken = generator.generate(CLIP, settings(text=LINE))
    phones = align_text(load_audio(CLIP), LINE)
    names = list(generator.names)
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    lips = [jaw, close, *(names.index(c) for c in LIP_PARTING)]
    others = [i for i in range(len(names)) if i not in lips]
    for a, b in zip(plain, spoken):
        assert np.array_equal(a.exp[:, others], b.exp[:, others]) and np.array_equal(a.pose, b.pose)
        assert np.allclose(b.exp[:, jaw], jaw_curve(phones, b.fps, b.frames), atol=1e-6)
        assert not np.allclose(a.exp[:, jaw], b.exp[:, jaw], atol=0.02)
        assert (b.exp[:, close] <= b.exp[:, jaw] + 1e-6).all()


def test_a_surprised_or_fearful_take_keeps_its_own_jaw_drop_on_the_line(face) -> None:
    """The line sets the jaw, so the emotion's own jaw drop (the corpus's fear and surprise) is
    added to it, in proportion to the intensity and to its share in a blend; the other emotions and
    a reference's style add none."""
    assert emotion_jaw_drop("surprised", 1.0) > emotion_jaw_drop("fear", 1.0) > 0.0
    assert emotion_jaw_drop("surprised", 0.5) == pytest.approx(emotion_jaw_drop("surprised", 1.0) / 2)
    assert emotion_jaw_drop("talk", 1.0) == emotion_jaw_drop("happy", 1.0) == emotion_jaw_drop("reference", 1.0) == 0.0
    assert emotion_jaw_drop("talk", 1.0, "surprised", 0.25) == pytest.approx(emotion_jaw_drop("surprised", 1.0) / 4)
    assert emotion_jaw_drop("surprised", 0.5, "sad", 0.5) == pytest.approx(emotion_jaw_drop("surprised", 1.0) / 4)
    assert emotion_jaw_drop("surprised", 1.0, None, 0.9) == emotion_jaw_drop("surprised", 1.0)  # no blend: weight unused
    names = list(face.names)
    phones = [("_", 0.0, 0.2), ("h", 0.2, 0.28), ("@", 0.28, 0.36), ("l", 0.36, 0.44), ("@U", 0.44, 0.7), ("_", 0.7, 1.0)]
    exp = np.zeros((1, 25, len(names)), np.float32)
    calm = line_lips(exp, phones, names, 25.0)[0]
    surprised = line_lips(exp, phones, names, 25.0, emotion_jaw_drop("surprised", 1.0))[0]
    jaw = names.index("jawOpen")
    assert np.allclose(surprised[:, jaw] - calm[:, jaw], emotion_jaw_drop("surprised", 1.0), atol=1e-6)


@pytest.mark.parametrize("emotion, blend", [("surprised", None), ("talk", "surprised")])
def test_generate_adds_the_takes_emotion_jaw_drop_to_the_lines_jaw(generator, emotion, blend) -> None:
    sample = SampleSettings(seed=0, takes=1, emotion=emotion, intensity=0.8, blend=blend, blend_weight=0.5)
    (take,) = generator.generate(CLIP, GenerateSettings(sample=sample, text=LINE))
    line_jaw = jaw_curve(align_text(load_audio(CLIP), LINE), take.fps, take.frames)
    drop = emotion_jaw_drop(emotion, 0.8, blend, 0.5)
    assert drop > 0.05 and np.allclose(take.exp[:, take.names.index("jawOpen")], np.clip(line_jaw + drop, 0, 1), atol=1e-6)


def test_the_lines_jaw_never_lets_the_flows_lips_pass_through_each_other(face) -> None:
    """Flows whose lips met on a wider jaw (mouthClose 0.4) keep them met, not crossed, when the
    line's jaw is lower; the /m/ seals."""
    names = list(face.names)
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    exp = np.zeros((1, 25, len(names)), np.float32)
    exp[..., jaw], exp[..., close] = 0.4, 0.4
    phones = [("_", 0.0, 0.3), ("m", 0.3, 0.4), ("u:", 0.4, 0.7), ("_", 0.7, 1.0)]
    out = line_lips(exp, phones, names, 25.0)[0]
    assert (out[:, close] <= out[:, jaw] + 1e-7).all() and out[:, jaw].max() < 0.4
    assert bilabial_closure_rate(face, out, phones, 25.0) == 1.0


def test_a_smile_and_a_dropped_jaw_survive_the_sealed_bilabials(face) -> None:
    names = list(face.names)
    frames = 50
    exp = np.zeros((1, frames, len(names)), np.float32)
    smile = [names.index("mouthSmileLeft"), names.index("mouthSmileRight")]
    exp[0][:, smile] = 0.6
    exp[0][:, names.index("jawOpen")] = 0.3  # a surprised take's dropped jaw
    phones = [("_", 0.0, 0.4), ("m", 0.4, 0.5), ("A", 0.5, 0.9), ("p", 0.9, 1.0), ("_", 1.0, 2.0)]
    out = seal_lips(exp, phones, names, 25.0)
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    assert (out[0][:, smile] == 0.6).all() and (out[0][:, jaw] == 0.3).all()
    assert (out[0][:, close] <= out[0][:, jaw] + 1e-7).all()
    assert bilabial_closure_rate(face, out[0], phones, 25.0) == 1.0


def test_a_text_that_cannot_be_aligned_gives_the_audio_takes_and_a_note(generator) -> None:
    notes: list[str] = []
    plain = generator.generate(CLIP, settings())
    fallback = generator.generate(CLIP, settings(text="it cost 42 pounds"), note=notes.append)
    assert len(notes) == 1 and "not used" in notes[0] and "spell out the numbers" in notes[0]
    assert all(np.array_equal(a.exp, b.exp) for a, b in zip(plain, fallback))


def test_settings_take_text_from_json_and_refuse_a_non_string_or_an_overlong_one(generator) -> None:
    assert GenerateSettings.from_dict({"text": "hello there"}).text == "hello there"
    with pytest.raises(SettingsError, match="'text'"):
        GenerateSettings.from_dict({"text": 42})
    with pytest.raises(SettingsError, match="at most 2000"):
        GenerateSettings(text="a" * 2001).check(generator.model)


def test_cli_generate_with_text_and_text_file(tmp_path, face) -> None:
    out = tmp_path / "takes.json"
    line = tmp_path / "line.txt"
    line.write_text(LINE + "\n")
    result = subprocess.run([str(FLOWVQ), "generate", str(CLIP), "--out", str(out), "--text-file", str(line),
                             "--no-pose"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (take,) = load_takes(out)
    phones = align_text(load_audio(CLIP), LINE)
    assert bilabial_closure_rate(face, take.exp, phones, take.fps) == 1.0
    bad = subprocess.run([str(FLOWVQ), "generate", str(CLIP), "--out", str(tmp_path / "b.json"),
                          "--text", "in being zorblax modern"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 0 and "note: the text was not used" in bad.stderr and "zorblax" in bad.stderr
    missing = subprocess.run([str(FLOWVQ), "generate", str(CLIP), "--out", str(tmp_path / "c.json"),
                              "--text-file", str(tmp_path / "nope.txt")], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "cannot read the text file" in missing.stderr


def test_aligned_bilabials_seal_through_their_end(face) -> None:
    """An aligner's phone times can be a frame or two off the lips (the synthetic test voices' /m/
    lands 27 ms late or 13 ms early in the median): the lips stay sealed from just before an aligned
    /p b m/ through its end, not only to its centre."""
    names = list(face.names)
    phones = [("_", 0.0, 0.4), ("m", 0.4, 0.6), ("A", 0.6, 1.0)]
    open_mouth = np.zeros((1, 25, len(names)), np.float32)
    open_mouth[..., names.index("jawOpen")] = 0.5
    out = seal_lips(open_mouth, phones, names, 25.0)[0]
    sealed = out[:, names.index("mouthClose")] >= out[:, names.index("jawOpen")] - 1e-6
    centres = (np.arange(25) + 0.5) / 25.0
    assert sealed[(centres > 0.5) & (centres < 0.6)].all()  # after the centre, before the end
    assert not sealed[centres > 0.64].any() and not sealed[centres < 0.3].any()


JFK, JFK_LINE = REAL / "jfk.flac", ("And so, my fellow Americans, ask not what your country can do for you, "
                                    "ask what you can do for your country.")


@pytest.mark.parametrize("text", [JFK_LINE, None])
def test_a_real_speakers_f_v_and_r_bring_the_takes_lips_nearly_together(generator, face, text) -> None:
    """J. F. Kennedy's /f/ of "fellow" and "for" and his /r/: with his line, at the centre of every
    aligned /f v r/ the take's lips are in that phone's viseme shape, under the closure threshold on
    the built-in face (real speakers' lips there are as close as at /p b m/); without it, the same
    at every /f v r/ the recogniser hears."""
    wave = load_audio(JFK)
    known = align_text(wave, JFK_LINE) if text else heard_phones(wave, "phones")
    held = [(s, a, b) for s, a, b in known if s in LIP_CONSONANT_PHONES]
    assert {"f", "r"} <= {s for s, _, _ in held}
    (take,) = generator.generate(JFK, GenerateSettings(sample=SampleSettings(seed=0, takes=1), text=text))
    for symbol, start, end in held:
        centre = take.exp[int((start + end) / 2 * take.fps)]
        assert 1000 * lip_gap(face, face.expression_mesh(centre)) < CLOSED_GAP_MM, (symbol, start)
        assert centre[take.names.index("mouthRollLower" if symbol in "fv" else "mouthPucker")] > 0.25
