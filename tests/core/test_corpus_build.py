"""core.corpus.build / augment / text: the synthetic corpus is split by voice, reproducible, states
its size, and its curves follow the phones and the emotion; `flowvq corpus build` writes it."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from core.audio import SAMPLE_RATE, wave_features
from core.cli import main
from core.corpus.augment import AUGMENT_PROBABILITY, augment_wave
from core.corpus.build import (
    CorpusError, CorpusItem, CorpusSpec, build_corpus, plan_corpus,
    read_manifest, render_item,
)
from core.corpus.speech import SENTENCES, VOICES, available_voices, phone_symbols
from core.corpus.text import TextError, WORDS, template_sentences
from core.expression import frame_energy
from core.visemes import LIP_CONSONANT_PHONES, PHONE_VISEMES, frame_visemes, frames_at
from core.emotions import EMOTIONS
from core.eval.metrics import CLOSED_GAP_MM, bilabial_closure_rate
from core.face.measure import lip_gap
from core.formats.dataset import AUDIO_DIR, PHONE_KEYS, load_split, read_meta

MBROLA = [v for v in VOICES if v in available_voices()]
needs_voices = pytest.mark.skipif(
    len(MBROLA) < 2, reason="needs two MBROLA voices: run `bash scripts/setup_speech.sh`"
)
SMALL = dict(extra_sentences=3, heldout_sentences=3, emotions=("neutral", "happy"), seed=7)


def small_spec(**changes) -> CorpusSpec:
    voices = dict(train_voices=(MBROLA[0],), test_voices=(MBROLA[-1],))
    return CorpusSpec(**{**voices, **SMALL, **changes})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if len(MBROLA) < 2:
        pytest.skip("needs two MBROLA voices: run `bash scripts/setup_speech.sh`")
    root = tmp_path_factory.mktemp("corpus") / "c"
    summary = build_corpus(root, small_spec(), workers=2)
    return root, summary


def test_template_sentences_are_distinct_seeded_and_speakable_by_every_voice() -> None:
    first = template_sentences(50, np.random.default_rng(3))
    assert len(set(first)) == 50
    assert first == template_sentences(50, np.random.default_rng(3))
    assert first != template_sentences(50, np.random.default_rng(4))
    words = [w for group in WORDS.values() for w in group]
    for voice in MBROLA:
        assert phone_symbols(voice, first + words) <= set(PHONE_VISEMES)
    with pytest.raises(TextError, match=">= 0"):
        template_sentences(-1, np.random.default_rng(0))


def test_augmentation_is_seeded_keeps_length_and_limits_the_peak() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wave = (0.5 * np.sin(2 * np.pi * 220 * t) * (t < 0.6)).astype(np.float32)
    seen: set[str] = set()
    for seed in range(40):
        out, info = augment_wave(wave, np.random.default_rng(seed))
        again, _ = augment_wave(wave, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, again)
        assert out.shape == wave.shape and out.dtype == np.float32
        assert np.abs(out).max() <= 0.99 + 1e-6
        seen.update(info.steps)
    assert seen == set(AUGMENT_PROBABILITY)  # every step happens within 40 draws


def test_noise_step_lands_in_its_snr_range() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * 300 * t)
    for seed in range(60):
        out, info = augment_wave(wave, np.random.default_rng(seed))
        if info.steps == ("noise",):
            clean = wave * 10 ** (info.gain_db / 20)
            noise = out - clean
            snr = 10 * np.log10((clean**2).mean() / (noise**2).mean())
            assert 14.5 < snr < 40.5
            return
    pytest.fail("no draw applied noise alone")


def test_frame_energy_is_loudness_per_frame_scaled_to_one() -> None:
    wave = np.concatenate([np.zeros(SAMPLE_RATE // 2), 0.5 * np.ones(SAMPLE_RATE // 2)])
    energy = frame_energy(wave, SAMPLE_RATE, 25.0, 25)
    assert energy.max() == pytest.approx(1.0)
    assert energy[:12].max() == 0.0 and energy[13:].min() == pytest.approx(1.0)


@needs_voices
def test_plan_splits_by_voice_and_by_text() -> None:
    items = plan_corpus(small_spec())
    train = [i for i in items if i.split == "train"]
    val = [i for i in items if i.split == "val"]
    test = [i for i in items if i.split == "test"]
    assert {i.voice for i in test} == {MBROLA[-1]}
    assert {i.voice for i in train} == {i.voice for i in val} == {MBROLA[0]}
    assert not {i.text for i in train} & {i.text for i in test}
    assert {i.text for i in val} == {i.text for i in test}
    assert len(train) == (len(SENTENCES) + 3 - 3) * 2 and len(test) == 3 * 2
    assert len({i.name for i in items}) == len(items)


@needs_voices
def test_corpus_states_its_size_and_matches_its_files(corpus) -> None:
    root, summary = corpus
    manifest = read_manifest(root)
    for split in ("train", "val", "test"):
        sequences = load_split(root, split)
        assert len(sequences) == summary["utterances"][split]
        seconds = sum(r["seconds"] for r in manifest["sequences"] if r["split"] == split)
        assert summary["hours"][split] == pytest.approx(seconds / 3600, abs=1e-4)
    assert manifest["voices"]["test"] == [MBROLA[-1]]
    assert read_meta(root).fps == 25.0


@needs_voices
def test_audio_features_come_from_the_stored_wave(corpus) -> None:
    root, _ = corpus
    seq = load_split(root, "test")[0]
    wave, rate = sf.read(root / AUDIO_DIR / f"{seq.name}.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    feats = wave_features(wave, 25.0, len(seq.exp))
    # the wav is the same wave stored as 16-bit PCM: the features agree closely
    assert np.corrcoef(feats.ravel(), seq.audio.ravel())[0, 1] > 0.99


@needs_voices
def test_every_sequence_carries_its_exact_and_heard_visemes(corpus) -> None:
    """The exact classes are the manifest's phones frame by frame; the recogniser, which hears the
    augmented wave, agrees with them on most frames (it is trained on real speech, not on these voices)."""
    root, _ = corpus
    records = {r["name"]: r for r in read_manifest(root)["sequences"]}
    agreement = []
    for seq in load_split(root, "train"):
        exact = frame_visemes([tuple(p) for p in records[seq.name]["phones"]], 25.0, seq.frames)
        np.testing.assert_array_equal(seq.phones, exact)
        assert seq.heard is not None and seq.heard.shape == (seq.frames,)
        agreement.append(np.mean(seq.heard == seq.phones))
    assert 0.3 < np.mean(agreement) < 1.0


@needs_voices
def test_corpus_phones_adds_the_same_classes_to_a_corpus_built_without_them(corpus, tmp_path, capsys) -> None:
    root, _ = corpus
    copy = tmp_path / "old"
    shutil.copytree(root, copy)
    for path in (copy / "val").glob("*.npz"):  # as a corpus from before the phones were stored
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files if key not in PHONE_KEYS}
        np.savez(path, **arrays)
    assert all(seq.phones is None and seq.heard is None for seq in load_split(copy, "val"))
    assert main(["corpus", "phones", str(copy), "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"sequences": len(read_manifest(root)["sequences"])}
    for built, added in zip(load_split(root, "val"), load_split(copy, "val")):
        np.testing.assert_array_equal(added.phones, built.phones)
        assert np.mean(added.heard == built.heard) > 0.9  # the recogniser hears the stored 16-bit wave
        np.testing.assert_array_equal(added.exp, built.exp)


@needs_voices
def test_lips_close_on_bilabials_and_happy_smiles_more_than_neutral(corpus, face) -> None:
    root, _ = corpus
    records = {r["name"]: r for r in read_manifest(root)["sequences"]}
    sequences = load_split(root, "train")
    rates = [bilabial_closure_rate(face, s.exp, records[s.name]["phones"], 25.0) for s in sequences]
    assert np.nanmean(rates) > 0.8
    smile = [face.names.index("mouthSmileLeft"), face.names.index("mouthSmileRight")]
    happy = np.mean([(s.exp - s.beta0)[:, smile].mean() for s in sequences if s.emotion == "happy"])
    neutral = np.mean([(s.exp - s.beta0)[:, smile].mean() for s in sequences if s.emotion == "neutral"])
    assert happy > neutral + 0.1


@needs_voices
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_closes_the_lips_on_every_bilabial(face, emotion) -> None:
    """An emotion's style (a surprised jaw drop, a disgusted upper lip) is layered over the
    lip-sync, but the truth curves still seal every /p b m/ of "Bob, please pass the soup."."""
    spec = small_spec(intensity=(1.0, 1.0))
    for seed in range(3):
        item = CorpusItem("s", "train", MBROLA[0], SENTENCES[0], emotion, seed)
        sequence, _, record = render_item(item, face.names, spec)
        assert bilabial_closure_rate(face, sequence.exp, record["phones"], spec.fps) == 1.0, seed


@needs_voices
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_keeps_the_f_v_and_r_lips_nearly_closed(face, emotion) -> None:
    """Nor does the style part the lips at the /f v r/ of "Five brave men fought the flood.": at each
    one's centre frame the truth's lips are in its viseme's shape, under the closure threshold."""
    spec = small_spec(intensity=(1.0, 1.0))
    item = CorpusItem("s", "train", MBROLA[0], SENTENCES[2], emotion, 0)
    sequence, _, record = render_item(item, face.names, spec)
    held = [(s, a, b) for s, a, b in record["phones"] if s in LIP_CONSONANT_PHONES]
    assert {s for s, _, _ in held} == {"f", "v", "r"}
    for symbol, start, end in held:
        centre = sequence.exp[int(frames_at(np.array([(start + end) / 2]), spec.fps)[0])]
        assert 1000 * lip_gap(face, face.expression_mesh(centre)) < CLOSED_GAP_MM, (symbol, start)


@needs_voices
def test_same_seed_same_corpus_whatever_the_worker_count(tmp_path) -> None:
    spec = small_spec(extra_sentences=0, heldout_sentences=1)
    one = build_corpus(tmp_path / "one", spec, workers=1)
    two = build_corpus(tmp_path / "two", spec, workers=2)
    assert one == two
    for split in ("train", "test"):
        for a, b in zip(load_split(tmp_path / "one", split), load_split(tmp_path / "two", split)):
            np.testing.assert_array_equal(a.exp, b.exp)
            np.testing.assert_array_equal(a.audio, b.audio)
            np.testing.assert_array_equal(a.pose, b.pose)
    other = build_corpus(tmp_path / "other", dataclasses.replace(spec, seed=8), workers=1)
    assert other["hours"] != one["hours"]


@needs_voices
def test_bad_specs_and_existing_folders_are_refused(corpus, tmp_path) -> None:
    root, _ = corpus
    with pytest.raises(CorpusError, match="already exists"):
        build_corpus(root, small_spec())
    with pytest.raises(CorpusError, match="not installed"):
        build_corpus(tmp_path / "x", small_spec(train_voices=("nobody",)))
    with pytest.raises(CorpusError, match="both"):
        build_corpus(tmp_path / "x", small_spec(test_voices=(MBROLA[0],)))
    with pytest.raises(CorpusError, match="unknown"):
        build_corpus(tmp_path / "x", small_spec(emotions=("grumpy",)))
    assert not (tmp_path / "x").exists()


@needs_voices
def test_cli_builds_a_corpus_and_prints_its_size(tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    code = main(["corpus", "build", str(out), "--voices", MBROLA[0], "--test-voices", MBROLA[-1],
                 "--sentences", "0", "--heldout", "2", "--workers", "1", "--no-augment"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["utterances"]["test"] == 2 * 9 and printed["total_hours"] > 0
    assert all(r["augmentation"] == [] for r in read_manifest(out)["sequences"])
