"""Closures heard in the audio (`GenerateSettings.closures`, `core.coeff.text.seal_lips`,
``flowvq generate --closures``): without a text, the lips seal on the /p b m/ a recogniser hears,
keep the /f v r/ shapes on the /f v r/ it hears, and nothing else of the take changes. Real speech: J. F. Kennedy's "ask not..." (tests/data/real/CREDITS.md),
whose two /m/ ("my fellow Americans") both recognisers hear."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.align import align_text
from core.audio import SAMPLE_RATE, load_audio
from core.coeff.config import PRESETS
from core.coeff.generator import CoeffGenerator, GenerateSettings
from core.coeff.model import CoeffModel
from core.coeff.sampler import GenerationCancelled, SampleSettings, SettingsError
from core.coeff.text import seal_lips
from core.coeff.weights import save_weights
from core.eval.metrics import bilabial_closure_rate
from core.formats.takes import load_takes
from core.recognize import heard_phones, recognize_phones, segment_bounds
from core.visemes import BILABIALS, LIP_CONSONANT_PHONES, LIP_PARTING, VISEMES

CLIP = Path(__file__).resolve().parents[1] / "data" / "real" / "jfk.flac"
LINE = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
FLOWVQ = Path(sys.executable).parent / "flowvq"


@pytest.fixture(scope="module")
def generator() -> CoeffGenerator:
    return CoeffGenerator.load()


@pytest.fixture(scope="module")
def said() -> list[tuple[str, float, float]]:
    """The /m/ of "my" and "Americans", placed by aligning the known line."""
    return [p for p in align_text(load_audio(CLIP), LINE) if p[0] in BILABIALS]


def settings(closures: str) -> GenerateSettings:
    return GenerateSettings(sample=SampleSettings(seed=3, takes=2, emotion="sad"), closures=closures)


@pytest.mark.parametrize("closures", ["phones", "words"])
def test_heard_bilabials_of_a_real_speaker_seal_and_nothing_else_changes(generator, face, said, closures) -> None:
    """Both /m/ seal; the lip channels change only around what is heard (under a quarter of the
    frames), the /f v r/ shapes' own channels (mouthRollLower, mouthPucker) only on the heard /f v r/."""
    alone = generator.generate(CLIP, settings("off"))
    heard = generator.generate(CLIP, settings(closures))
    assert len(said) == 2
    names = list(generator.names)
    held = {c for v in ("labiodental", "approximant_r") for c in VISEMES[v].targets} - {"jawOpen"}
    lips = [names.index(c) for c in ("mouthClose", *LIP_PARTING, *held)]
    others = [i for i in range(len(names)) if i not in lips]
    shape = [names.index(c) for c in held - set(LIP_PARTING)]
    near = np.zeros(heard[0].frames, bool)
    for symbol, start, end in heard_phones(load_audio(CLIP), closures):
        if symbol in LIP_CONSONANT_PHONES:
            near[max(0, int(start * heard[0].fps) - 2): int(np.ceil(end * heard[0].fps)) + 1] = True
    for a, b in zip(alone, heard):
        assert bilabial_closure_rate(face, b.exp, said, b.fps) == 1.0
        assert np.array_equal(a.exp[:, others], b.exp[:, others]) and np.array_equal(a.pose, b.pose)
        assert np.array_equal(a.exp[~near][:, shape], b.exp[~near][:, shape])
        changed = np.flatnonzero((a.exp != b.exp).any(axis=1))
        assert 0 < len(changed) < 0.25 * b.frames  # only around the heard phones


@pytest.fixture(scope="module")
def phone_generator(tmp_path_factory, face) -> CoeffGenerator:
    """A tiny model with phone input, its parameters nudged off their start (saved as real weights)."""
    model = CoeffModel(replace(PRESETS["tiny"], phone_dim=8), face.names, face.id, face.lower, face.upper, seed=0)
    nudge = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=nudge))
        model.exp_flow.phone_encoder.classes.weight.mul_(20.0)
    return CoeffGenerator.load(save_weights(tmp_path_factory.mktemp("phones"), model))


def test_a_model_with_phone_input_reads_the_heard_or_the_texts_phones_across_the_take(phone_generator) -> None:
    """Heard phones (and a line's aligned phones) enter the flows' context, so the whole take moves,
    not only the sealed frames; with closures off nothing is heard and the take is the audio's alone."""
    alone = phone_generator.generate(CLIP, replace(settings("off"), sample=alone_sample()))
    heard = phone_generator.generate(CLIP, replace(settings("phones"), sample=alone_sample()))
    told = phone_generator.generate(CLIP, replace(settings("off"), text=LINE, sample=alone_sample()))
    frames = alone[0].frames
    for other in (heard, told):
        moved = np.flatnonzero((np.abs(other[0].exp - alone[0].exp) > 1e-4).any(axis=1))
        assert len(moved) > 0.5 * frames
    assert np.abs(told[0].exp - heard[0].exp).mean() > 1e-4  # the text's phones are not the heard ones
    again = phone_generator.generate(CLIP, replace(settings("phones"), sample=alone_sample()))
    assert all(np.array_equal(a.exp, b.exp) for a, b in zip(heard, again))


def alone_sample() -> SampleSettings:
    return SampleSettings(seed=3, takes=2, manifold_blend=0.0)


def test_seal_lips_keep_the_lips_from_passing_through_each_other(face) -> None:
    names = list(face.names)
    exp = np.random.default_rng(0).uniform(0, 1, (2, 40, len(names))).astype(np.float32)
    phones = [("_", 0.0, 0.4), ("b", 0.4, 0.5), ("A", 0.5, 0.9), ("m", 0.9, 1.0), ("_", 1.0, 1.6)]
    out = seal_lips(exp, phones, names, 25.0)
    jaw, close = names.index("jawOpen"), names.index("mouthClose")
    for take in out:
        assert bilabial_closure_rate(face, take, phones, 25.0) == 1.0
    sealed = out[:, :, close] == out[:, :, jaw]
    assert sealed.any() and np.array_equal(out[~sealed], exp[~sealed])  # frames away from /b m/ untouched
    assert out.dtype == np.float32 and exp is not out


def test_off_hears_nothing_and_an_unknown_recogniser_is_refused(generator) -> None:
    assert heard_phones(load_audio(CLIP), "off") == ()
    assert GenerateSettings.from_dict({"closures": "words"}).closures == "words"
    assert GenerateSettings.from_dict({"closures": None}).closures == "phones"
    with pytest.raises(SettingsError, match="closures must be one of phones, words, off"):
        GenerateSettings.from_dict({"closures": "visemes"}).check(generator.model)
    with pytest.raises(SettingsError, match="'closures'"):
        GenerateSettings.from_dict({"closures": 1})


def test_a_clip_too_short_to_recognise_gives_the_flows_lips_and_a_note(generator, tmp_path) -> None:
    blip = tmp_path / "blip.wav"
    sf.write(blip, 0.3 * np.sin(np.arange(800) * 2 * np.pi * 220 / SAMPLE_RATE), SAMPLE_RATE)  # 0.05 s
    notes: list[str] = []
    takes = generator.generate(blip, settings("phones"), note=notes.append)
    assert len(notes) == 1 and "no closures were heard" in notes[0] and "at least 0.1 s" in notes[0]
    assert all(np.array_equal(a.exp, b.exp) for a, b in zip(takes, generator.generate(blip, settings("off"))))


def test_cli_generate_listens_for_closures_and_refuses_an_unknown_recogniser(tmp_path, face, said) -> None:
    out = tmp_path / "takes.json"
    result = subprocess.run([str(FLOWVQ), "generate", str(CLIP), "--out", str(out), "--closures", "words",
                             "--no-pose"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (take,) = load_takes(out)
    assert bilabial_closure_rate(face, take.exp, said, take.fps) == 1.0
    bad = subprocess.run([str(FLOWVQ), "generate", str(CLIP), "--out", str(tmp_path / "b.json"),
                          "--closures", "visemes"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "invalid choice: 'visemes'" in bad.stderr and not (tmp_path / "b.json").exists()


def test_a_long_clip_is_heard_in_segments_and_cancel_stops_between_them(generator, tmp_path) -> None:
    """77 s of speech: three segments cut at quiet frames near 30 s and 60 s; the phones of a
    segment are those of the clip heard alone, shifted; cancel stops before the second segment."""
    line = load_audio(CLIP)
    long = np.concatenate([line] * 7)
    energy = np.square(np.pad(long, (0, -len(long) % 160)).reshape(-1, 160)).mean(axis=1)
    bounds = segment_bounds(len(long), energy)
    assert len(bounds) == 3 and bounds[0][0] == 0 and bounds[-1][1] == len(long)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(25 * SAMPLE_RATE <= end - start <= 30 * SAMPLE_RATE for start, end in bounds[:-1])
    polls: list[int] = []
    phones = recognize_phones(long, poll=lambda: polls.append(1))
    assert len(polls) == 2 and phones[-1][2] == pytest.approx(len(long) / SAMPLE_RATE, abs=0.3)
    start, end = bounds[1]
    alone = recognize_phones(long[start:end])
    shifted = [(s, a + start / SAMPLE_RATE, b + start / SAMPLE_RATE) for s, a, b in alone]
    assert [p for p in phones if start / SAMPLE_RATE <= p[1] < end / SAMPLE_RATE] == shifted
    clip = tmp_path / "long.wav"
    sf.write(clip, long, SAMPLE_RATE)
    asked: list[int] = []
    with pytest.raises(GenerationCancelled, match="while listening for closures"):
        generator.generate(clip, settings("phones"), cancel=lambda: bool(asked.append(1)) or True)
    assert len(asked) == 1  # the first segment was heard, the flows never started
