"""core.corpus.realspeech and `flowvq corpus build --real-speech`: real recorded lines (LJ Speech,
tests/data/real/CREDITS.md) join the corpus with their aligned phones; bad lines are dropped and
listed; speakers stay apart across splits."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.align import align_text
from core.audio import load_audio, wave_features
from core.cli import main
from core.corpus.build import CorpusError, CorpusSpec, build_corpus, read_manifest
from core.corpus.realspeech import SpeechManifestError, read_speech_manifest
from core.corpus.speech import VOICES, available_voices
from core.eval.metrics import bilabial_closure_rate
from core.formats.dataset import load_split

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
MBROLA = [v for v in VOICES if v in available_voices()]
pytestmark = pytest.mark.skipif(len(MBROLA) < 2, reason="needs two MBROLA voices: run `bash scripts/setup_speech.sh`")


def write_manifest(folder: Path, rows: list[tuple[str, str, str]], header: str = "audio\ttext\tspeaker") -> Path:
    """Copy the LJ clips beside a manifest listing ``rows`` (audio, text, speaker)."""
    folder.mkdir(parents=True, exist_ok=True)
    for clip in REAL.glob("LJ*.flac"):
        shutil.copy(clip, folder / clip.name)
    path = folder / "lines.tsv"
    path.write_text("\n".join([header, *("\t".join(row) for row in rows)]) + "\n")
    return path


ROWS = [
    ("LJ001-0008.flac", "has never been surpassed.", "LJ"),
    ("LJ001-0013.flac", "than in the same operations with ugly ones.", "LJ"),
    ("LJ001-0002.flac", "in being comparatively modern.", "held"),  # the val speaker
    ("LJ001-0002.flac", "in being zorblax modern.", "LJ"),  # a word outside the dictionary
    ("missing.flac", "hello there", "LJ"),  # no such file
]


def spec(manifest: Path, **changes) -> CorpusSpec:
    return CorpusSpec(**{**dict(train_voices=(MBROLA[0],), test_voices=(MBROLA[-1],), extra_sentences=0,
                                heldout_sentences=1, emotions=("talk",), seed=3, real_speech=str(manifest),
                                real_val_speakers=("held",), real_repeats=2), **changes})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    root = folder / "corpus"
    summary = build_corpus(root, spec(write_manifest(folder / "lines", ROWS)), workers=1)
    return root, summary


def test_aligned_lines_join_train_and_val_by_speaker_twice_each_and_bad_lines_are_listed(corpus) -> None:
    root, summary = corpus
    real = summary["real_speech"]
    assert (real["lines"], real["aligned"]) == (5, 3)
    reasons = {Path(d["audio"]).name: d["reason"] for d in real["dropped"]}
    assert "zorblax" in reasons["LJ001-0002.flac"] and "missing.flac" in reasons
    assert set(real["minutes"]["train"]) == {"LJ"} and set(real["minutes"]["val"]) == {"held"}
    records = [r for r in read_manifest(root)["sequences"] if r["voice"].startswith("real:")]
    assert sorted((r["split"], r["voice"]) for r in records) == [
        ("train", "real:LJ")] * 4 + [("val", "real:held")] * 2
    assert {r["emotion"] for r in records} == {"talk"} and all(r["prosody"] is None for r in records)


def test_a_real_lines_curves_follow_its_aligned_phones_and_its_features_its_own_audio(corpus, face) -> None:
    root, _ = corpus
    records = {r["name"]: r for r in read_manifest(root)["sequences"]}
    sequences = [s for s in load_split(root, "train") if s.name.startswith("real-")]
    assert len(sequences) == 4
    for seq in sequences:
        record = records[seq.name]
        wave = load_audio(record["audio_source"])
        phones = align_text(wave, record["text"])
        assert [p[0] for p in record["phones"]] == [p[0] for p in phones]
        assert bilabial_closure_rate(face, seq.exp, record["phones"], 25.0) == 1.0
        assert len(seq.exp) == len(wave_features(wave, 25.0))
    copies = [s for s in sequences if "_0000_" in s.name]
    assert len(copies) == 2 and not np.array_equal(copies[0].audio, copies[1].audio)  # own augmentation each


def test_a_manifest_without_the_needed_columns_or_with_an_unknown_emotion_is_refused(tmp_path) -> None:
    bad = write_manifest(tmp_path / "a", [("LJ001-0008.flac", "has never been surpassed.")], header="audio\ttext")
    with pytest.raises(SpeechManifestError, match="lacks the column.*speaker"):
        read_speech_manifest(bad)
    grumpy = write_manifest(tmp_path / "b", [("LJ001-0008.flac", "has never been surpassed.", "LJ", "grumpy")],
                            header="audio\ttext\tspeaker\temotion")
    with pytest.raises(SpeechManifestError, match="row 2: unknown emotion 'grumpy'"):
        read_speech_manifest(grumpy)
    with pytest.raises(SpeechManifestError, match="does not exist"):
        read_speech_manifest(tmp_path / "nope.tsv")


def test_val_speakers_without_a_manifest_and_zero_repeats_are_refused(tmp_path) -> None:
    manifest = write_manifest(tmp_path / "m", ROWS[:1])
    with pytest.raises(CorpusError, match="give real_speech too"):
        build_corpus(tmp_path / "x", spec(manifest, real_speech=None))
    with pytest.raises(CorpusError, match="real_repeats"):
        build_corpus(tmp_path / "y", spec(manifest, real_repeats=0))


def test_cli_builds_with_real_speech_and_prints_the_dropped_count(tmp_path, capsys) -> None:
    manifest = write_manifest(tmp_path / "lines", ROWS[:1] + ROWS[3:4])
    code = main(["corpus", "build", str(tmp_path / "c"), "--voices", MBROLA[0], "--test-voices", MBROLA[-1],
                 "--sentences", "0", "--heldout", "1", "--workers", "1", "--real-speech", str(manifest),
                 "--real-repeats", "1"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["real_speech"]["aligned"] == 1 and printed["real_speech"]["dropped"] == 1
