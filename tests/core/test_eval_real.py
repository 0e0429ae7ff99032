"""Tests for `core.eval.real` and ``flowvq eval --real``: lip scores against a speaker's own lips.

The metric tests build lip-gap tracks whose answer is known by construction (a copy, a shifted
copy, closures dropped or added). The end-to-end tests write a real dataset folder whose
"speaker" is driven by loudness or by the flows themselves, and run the real CLI on it.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.align import align_text
from core.audio import FRAME_FEATURES, load_audio, wave_features
from core.coeff.sampler import SampleSettings, sample_takes
from core.coeff.weights import default_weights_dir, load_weights
from core.eval.metrics import CLOSED_GAP_MM
from core.eval.real import (
    RealEvalError, best_offset_correlation, bilabial_frames, closure_runs, evaluate_real, format_real_table, gap_track_mm,
    lip_scores, loudness_jaw, read_lines, real_clips, real_closed_level,
)
from core.face import builtin
from core.formats.dataset import CoeffSequence, DatasetMeta, write_meta, write_sequence, write_wave

FLOWVQ = Path(sys.executable).parent / "flowvq"
JFK = Path(__file__).resolve().parents[1] / "data" / "real" / "jfk.flac"


@pytest.fixture(scope="module")
def face():
    return builtin()


def speaking_gap(frames: int = 200, seed: int = 0) -> np.ndarray:
    """A lip gap in mm that opens to 4-12 mm per syllable and seals for 2-6 frames between some.
    Shapes: -> (frames,)."""
    rng = np.random.default_rng(seed)
    gap, t = np.zeros(frames), 0
    while t < frames:
        length = min(int(rng.integers(6, 12)), frames - t)
        gap[t:t + length] = rng.uniform(4, 12) * np.sin(np.linspace(0, np.pi, length))
        t += length + (int(rng.integers(2, 7)) if rng.random() < 0.5 else 0)
    return np.maximum(gap, 0.5)


def test_closure_runs_are_the_half_open_spans_below_the_threshold() -> None:
    gap = np.array([5, 1, 1, 5, 5, 0.5, 5, 1])
    assert closure_runs(gap, 2.0) == [(1, 3), (5, 6), (7, 8)]
    assert closure_runs(np.full(4, 9.0), 2.0) == []


def test_best_offset_finds_a_lag_within_three_frames_and_nothing_beyond() -> None:
    real = speaking_gap()
    for lag in (-3, -1, 0, 2, 3):
        take = np.roll(real, lag)
        correlation, offset = best_offset_correlation(real, take)
        assert offset == lag and correlation > 0.99
    correlation, _ = best_offset_correlation(real, np.roll(real, 8))
    assert correlation < 0.9


def test_best_offset_is_nan_for_a_constant_take() -> None:
    correlation, _ = best_offset_correlation(speaking_gap(), np.full(200, 3.0))
    assert np.isnan(correlation)


def test_a_take_equal_to_the_speaker_catches_every_closure_and_makes_none_while_open() -> None:
    real = speaking_gap()
    scores = lip_scores(real, real.copy())
    assert scores.real_closures > 5
    assert scores.gap_correlation > 0.999 and scores.closures == 1.0 and scores.closed_while_open == 0.0


def test_dropped_closures_lower_the_closure_share_by_the_share_dropped() -> None:
    real = speaking_gap()
    runs = [r for r in closure_runs(real) if r[1] - r[0] <= 10]
    take = real.copy()
    dropped = runs[::2]
    for start, end in dropped:  # open the lips over the closure and its tolerance
        take[max(0, start - 2): end + 2] = 6.0
    scores = lip_scores(real, take)
    assert scores.closures == pytest.approx(1 - len(dropped) / len(runs))
    assert scores.closed_while_open == 0.0


def test_closures_made_where_the_speaker_is_open_count_as_closed_while_open() -> None:
    real = np.full(120, 8.0)
    real[20:24] = 0.5  # one real closure
    take = real.copy()
    take[60:63] = 0.5
    take[90:92] = 0.5  # two closures while the real lips are open
    scores = lip_scores(real, take)
    assert scores.take_closures == 3 and scores.closed_while_open == pytest.approx(2 / 3)
    assert scores.closures == 1.0


def test_a_closure_two_frames_late_is_still_caught_three_frames_is_not() -> None:
    real = np.full(60, 8.0)
    real[20:23] = 0.5  # closed on frames 20-22
    late = np.full(60, 8.0)
    late[24:26] = 0.5  # first closed frame 2 after the speaker's last
    later = np.full(60, 8.0)
    later[25:27] = 0.5
    assert lip_scores(real, late).closures == 1.0
    assert lip_scores(real, later).closures == 0.0


def test_long_closures_are_not_counted_as_the_speakers_short_closures() -> None:
    real = np.full(80, 8.0)
    real[10:40] = 0.5  # a pause with the lips shut, 30 frames
    scores = lip_scores(real, np.full(80, 8.0))
    assert scores.real_closures == 0 and np.isnan(scores.closures)
    assert np.isnan(scores.closed_while_open)  # the take never closes


def test_bilabial_closures_count_only_the_speakers_closures_at_a_lines_p_b_m() -> None:
    real = speaking_gap()
    runs = [r for r in closure_runs(real, real_closed_level(real)) if 1 <= r[1] - r[0] <= 10]
    (first_start, first_end), (second_start, _) = runs[0], runs[1]
    phones = [("m", first_start / 25.0, first_end / 25.0), ("s", second_start / 25.0, (second_start + 1) / 25.0)]
    marked = bilabial_frames(phones, 25.0, len(real))
    assert marked[first_start:first_end].all() and marked.sum() == first_end - first_start
    same = lip_scores(real, real * 0.3, bilabials=marked)
    assert (same.real_bilabial_closures, same.bilabial_closures_caught) == (1, 1)
    open_lips = np.where(np.arange(len(real)) < first_end + 3, 8.0, real * 0.3)  # misses the first closure only
    missed = lip_scores(real, open_lips, bilabials=marked)
    assert (missed.real_bilabial_closures, missed.bilabial_closures_caught) == (1, 0)
    assert missed.closures > 0.5  # the speaker's other closures are still caught
    assert lip_scores(real, real * 0.3).real_bilabial_closures == 0  # no line, nothing counted


def test_lip_scores_refuse_tracks_of_different_length() -> None:
    with pytest.raises(RealEvalError, match="differ in length"):
        lip_scores(np.ones(10), np.ones(11))


def test_loudness_jaw_opens_with_loudness_and_shuts_in_silence(face) -> None:
    audio = np.zeros((100, FRAME_FEATURES), np.float32)
    audio[40:60] = 2.0
    exp = loudness_jaw(audio, np.zeros(face.n_expressions, np.float32), face.names)
    gap = gap_track_mm(face, exp)
    assert gap[45] > 10 * CLOSED_GAP_MM / 2 and (gap[:30] < CLOSED_GAP_MM).all()
    assert (exp[:, face.names.index("mouthClose")] == 0).all()


def write_real_dataset(root: Path, face, sequences: list[CoeffSequence], fps: float = 25.0) -> Path:
    """A from-videos-shaped dataset (meta + sequences split across train and test)."""
    write_meta(root, DatasetMeta(fps=fps, face_model=face.id, names=face.names, audio_width=FRAME_FEATURES))
    for index, seq in enumerate(sequences):
        write_sequence(root, ("train", "test")[index % 2], seq)
    return root


def syllable_audio(frames: int, seed: int) -> np.ndarray:
    """Normalised-feature-like rows whose loudness rises and falls per syllable. Shapes: -> (frames, F)."""
    rng = np.random.default_rng(seed)
    envelope = np.clip(np.sin(np.arange(frames) * 2 * np.pi / rng.uniform(7, 11)), 0, None)
    audio = envelope[:, None] * 2 - 1 + 0.1 * rng.standard_normal((frames, FRAME_FEATURES))
    return audio.astype(np.float32)


def loudness_speaker(face, name: str, seed: int, frames: int = 150) -> CoeffSequence:
    """A clip whose lips follow loudness exactly the way the loudness baseline moves them."""
    audio = syllable_audio(frames, seed)
    beta0 = np.zeros(face.n_expressions, np.float32)
    return CoeffSequence(name=name, exp=loudness_jaw(audio, beta0, face.names), pose=np.zeros((frames, 6)),
                         audio=audio, emotion="talk", beta0=beta0)


def test_a_speaker_who_moves_like_the_loudness_baseline_gives_it_a_perfect_score(tmp_path, face) -> None:
    folder = write_real_dataset(tmp_path / "real", face, [loudness_speaker(face, f"clip{i}", i) for i in range(3)])
    report = evaluate_real(folder, seed=0, closures="off")  # features without speech: nothing to hear
    assert [c["clip"] for c in report["clips"]] == ["clip0", "clip1", "clip2"]
    loud = report["means"]["loudness"]
    # every sealed frame of the take is a closed frame of the speaker; a few of the speaker's dips stop
    # short of sealing (quiet, not silent), which the take, being the same, does not seal either
    assert loud["gap_correlation"] > 0.999 and loud["closures"] > 0.95 and loud["closed_while_open"] == 0.0
    assert report["means"]["flow"]["gap_correlation"] < loud["gap_correlation"]
    assert report["wins"] == {"flow": 0}


def test_a_speaker_who_moves_like_the_flow_ranks_the_flow_first(tmp_path, face) -> None:
    model = load_weights(None, face)
    clips = []
    for i in range(2):
        audio = syllable_audio(150, 10 + i)
        beta0 = np.zeros(face.n_expressions, np.float32)
        exp = sample_takes(model, audio, beta0, SampleSettings(seed=0, pose=False))[0][0]
        clips.append(CoeffSequence(name=f"flowlike{i}", exp=exp, pose=np.zeros((150, 6)), audio=audio,
                                   emotion="talk", beta0=beta0))
    report = evaluate_real(write_real_dataset(tmp_path / "real", face, clips), seed=0, closures="off")
    assert report["means"]["flow"]["gap_correlation"] > 0.999
    assert report["wins"]["flow"] == 2
    table = format_real_table(report)
    assert "| flowlike0 |" in table and "flow beats loudness on correlation in 2 of 2 clips" in table
    assert "the flows alone (closures off)" in table


def test_the_flows_are_scored_with_the_closures_heard_in_the_stored_speech(tmp_path, face) -> None:
    """A dataset clip with its speech beside it (J. F. Kennedy, tests/data/real/CREDITS.md): the
    default scores the flows with the /p b m/ phone recognition hears sealed, as generation does;
    ``closures="off"`` the same takes unsealed; the loudness baseline is the same either way."""
    wave = load_audio(JFK)
    audio = wave_features(wave, 25.0)
    beta0 = np.zeros(face.n_expressions, np.float32)
    speaker = CoeffSequence(name="jfk", exp=loudness_jaw(audio, beta0, face.names), pose=np.zeros((len(audio), 6)),
                            audio=audio, emotion="talk", beta0=beta0)
    folder = write_real_dataset(tmp_path / "real", face, [speaker])
    write_wave(folder, "jfk", wave)
    heard, alone = evaluate_real(folder, seed=0), evaluate_real(folder, seed=0, closures="off")
    (heard_clip,), (alone_clip,) = heard["clips"], alone["clips"]
    assert heard_clip["systems"]["flow"]["take_closures"] > alone_clip["systems"]["flow"]["take_closures"]
    assert heard_clip["systems"]["loudness"] == alone_clip["systems"]["loudness"]


def test_a_dataset_without_its_speech_is_refused_unless_closures_are_off(tmp_path, face) -> None:
    folder = write_real_dataset(tmp_path / "real", face, [loudness_speaker(face, "quiet", 0)])
    with pytest.raises(RealEvalError, match=r"1 clip\(s\) have no speech stored \(quiet.*--closures off"):
        evaluate_real(folder, seed=0)


def test_a_dataset_at_another_frame_rate_is_refused_with_the_fix(tmp_path, face) -> None:
    folder = write_real_dataset(tmp_path / "real", face, [loudness_speaker(face, "a", 0)], fps=30.0)
    with pytest.raises(RealEvalError, match="--fps 25"):
        real_clips(folder, 25.0)


def test_a_folder_without_videos_or_dataset_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("no videos here")
    with pytest.raises(RealEvalError, match="holds no video files.*nor is it a dataset"):
        real_clips(tmp_path, 25.0)


def test_cli_prints_the_table_and_writes_the_report_with_previous_weights_side_by_side(tmp_path, face) -> None:
    folder = write_real_dataset(tmp_path / "real", face, [loudness_speaker(face, f"c{i}", i) for i in range(2)])
    out = tmp_path / "report.json"
    result = subprocess.run([str(FLOWVQ), "eval", "--real", str(folder), "--previous", str(default_weights_dir()),
                             "--closures", "off", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "flow corr" in result.stdout and "previous corr" in result.stdout and "loudness corr" in result.stdout
    report = json.loads(out.read_text())
    assert set(report["means"]) == {"flow", "previous", "loudness"}
    # the same weights and seed: the previous column repeats the flow's
    assert report["means"]["previous"] == report["means"]["flow"]


def test_cli_refuses_previous_without_real(tmp_path) -> None:
    result = subprocess.run([str(FLOWVQ), "eval", "--previous", str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "use it with --real" in result.stderr


GRID = Path(__file__).resolve().parents[1] / "data" / "real"


def test_a_real_speaker_on_camera_is_scored_and_the_flows_follow_his_lips() -> None:
    """The GRID clip (tests/data/real/CREDITS.md): a man saying "lay blue at x four now". His fitted
    lips close once for the /b/ of "blue"; the shipped flows follow his lip gap (0.74 when measured)
    better than chance and better than the loudness baseline."""
    report = evaluate_real(GRID, seed=0)
    assert report["closures"] == "phones"  # what generation does: the clip's speech is heard
    (clip,) = report["clips"]
    assert clip["clip"] == "grid_lbax4n" and clip["seconds"] == pytest.approx(3.0, abs=0.05)
    flow, loud = clip["systems"]["flow"], clip["systems"]["loudness"]
    assert flow["real_closures"] >= 1
    assert flow["gap_correlation"] > 0.5 and flow["gap_correlation"] > loud["gap_correlation"]


def test_the_speakers_lips_close_as_far_at_the_f_of_four_as_at_the_b_of_blue(face) -> None:
    """The GRID speaker's two short closures: his fitted lip gap falls into the lowest 20% of its
    range at the aligned /b/ of "blue" and again at the /f/ of "four", whose lower lip meets his
    upper teeth (what `core.visemes.hold_lip_consonants` builds on)."""
    ((seq, wave),) = real_clips(GRID, 25.0)
    real = gap_track_mm(face, seq.exp)
    phones = align_text(wave, "lay blue at x four now")
    short = [r for r in closure_runs(real, real_closed_level(real)) if r[1] - r[0] <= 10]
    for symbol in ("b", "f"):
        start, end = next((a, b) for s, a, b in phones if s == symbol)
        assert any(a < end * 25 and b > start * 25 for a, b in short), symbol
    assert len(short) == 2


def test_a_clips_line_seals_the_take_where_the_speakers_lips_close(tmp_path) -> None:
    """With the GRID clip's line (``--texts``), the aligned /b/ of "blue" seals the take where the
    speaker's lips close, as `generate --text` does: the take catches both his short closures (with
    the heard phones only the one at the /f/ of "four": the recogniser hears the /b/ as a /d/); of
    the closures the line adds, one at most comes while his lips are open (the held /r/ of "four",
    which he says with open lips); the loudness baseline is unchanged."""
    lines = tmp_path / "lines.tsv"
    lines.write_text("# name<tab>what the clip says\ngrid_lbax4n\tlay blue at x four now\n")
    told, heard = evaluate_real(GRID, seed=0, texts=lines), evaluate_real(GRID, seed=0)
    assert told["texts"] == 1 and told["text_not_aligned"] == 0 and told["clips"][0]["text"]
    flow, alone = told["clips"][0]["systems"]["flow"], heard["clips"][0]["systems"]["flow"]
    assert flow["closures"] == 1.0 > alone["closures"] and flow["take_closures"] > alone["take_closures"]
    open_closures = [round(s["take_closures"] * s["closed_while_open"]) for s in (flow, alone)]
    assert open_closures[0] - open_closures[1] <= 1
    scores = ("gap_correlation", "closures", "closed_while_open", "real_closures", "take_closures")
    assert ({k: told["clips"][0]["systems"]["loudness"][k] for k in scores}
            == {k: heard["clips"][0]["systems"]["loudness"][k] for k in scores})
    assert "1 clips' aligned lines set the flows' jaw and seal their lips (0 of 1 given could not be aligned)" in format_real_table(told)


def test_the_closure_at_a_lines_b_is_counted_and_the_flows_can_be_scored_on_the_audio_alone(tmp_path) -> None:
    """The /b/ of "blue" falls in one of the GRID speaker's short closures: with his line the take
    catches it; scored with the line but hearing only the audio (``--texts-score-only``), the take
    is the one generated without a line, and misses it."""
    lines = tmp_path / "lines.tsv"
    lines.write_text("grid_lbax4n\tlay blue at x four now\n")
    told = evaluate_real(GRID, seed=0, texts=lines)
    heard = evaluate_real(GRID, seed=0, texts=lines, texts_used=False)
    alone = evaluate_real(GRID, seed=0)
    assert told["bilabials"]["flow"] == {"real_bilabial_closures": 1, "bilabial_closures_caught": 1}
    assert heard["bilabials"]["flow"] == {"real_bilabial_closures": 1, "bilabial_closures_caught": 0}
    assert heard["clips"][0]["systems"]["flow"]["closures"] == alone["clips"][0]["systems"]["flow"]["closures"]
    assert alone["bilabials"]["flow"] == {"real_bilabial_closures": 0, "bilabial_closures_caught": 0}
    table = format_real_table(heard)
    assert "mark the /p b m/ scored below; the flows hear the audio only" in table
    assert "at those lines' /p b m/ caught: flow 0 of 1 (0%)" in table


@pytest.mark.parametrize("text, message", [
    ("grid_lbax4n lay blue at x four now\n", "line 1: write the clip's name, a tab, then what it says"),
    ("nobody\tlay blue\n", "line 1: no clip is named 'nobody'; the clips: grid_lbax4n"),
])
def test_a_lines_file_that_cannot_be_used_is_refused_naming_the_line(tmp_path, text, message) -> None:
    lines = tmp_path / "lines.tsv"
    lines.write_text(text)
    with pytest.raises(RealEvalError, match=message):
        read_lines(lines, ["grid_lbax4n"])


def test_cli_refuses_texts_score_only_without_texts(tmp_path) -> None:
    result = subprocess.run([str(FLOWVQ), "eval", "--real", str(tmp_path), "--texts-score-only"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "give them with --texts FILE" in result.stderr


def test_cli_refuses_texts_without_real(tmp_path) -> None:
    result = subprocess.run([str(FLOWVQ), "eval", "--texts", str(tmp_path / "lines.tsv")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "use it with --real" in result.stderr
