"""core.eval.run / `flowvq eval`: the shipped flows, the shipped MSE regressor and the Rhubarb-style
baseline run side by side on a small corpus with a held-out voice; the report and table hold every
metric, and the NLL prefers real sequences to scrambled ones."""

import json
import math

import numpy as np
import pytest

from core.cli import main
from core.errors import FlowVQError
from core.coeff.weights import load_weights
from core.corpus.build import CorpusError, CorpusSpec, build_corpus
from core.corpus.speech import VOICES, available_voices
from core.eval.run import BASELINES, SYSTEMS, EvalSettings, evaluate, format_table, sequence_nll
from core.formats.dataset import load_split

MBROLA = [v for v in VOICES if v in available_voices()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if len(MBROLA) < 2:
        pytest.skip("needs two MBROLA voices: run `bash scripts/setup_speech.sh`")
    root = tmp_path_factory.mktemp("eval") / "corpus"
    spec = CorpusSpec(train_voices=(MBROLA[0],), test_voices=(MBROLA[-1],), extra_sentences=0,
                      heldout_sentences=2, emotions=("neutral", "happy", "sad"), seed=3)
    build_corpus(root, spec, workers=2)
    return root


@pytest.fixture(scope="module")
def report(corpus):
    return evaluate(corpus, EvalSettings(takes=3))


def test_every_system_gets_every_metric(report) -> None:
    assert report["sequences"] == 2 * 3 and report["voices"] == [MBROLA[-1]]
    for system in SYSTEMS:
        row = report["systems"][system]
        for key in ("m_lmd_mm", "f_lmd_mm", "bilabial_closure", "open_vowel_gap_mm", "jerk_m_s3",
                    "emotion_accuracy"):
            assert math.isfinite(row[key]), (system, key)
    assert report["systems"]["truth"]["m_lmd_mm"] == 0.0
    assert report["systems"]["truth"]["emotion_accuracy"] == 1.0
    flow = report["systems"]["flow"]
    assert flow["m_lmd_mean_over_best"] >= 1.0
    assert flow["diversity_expression"] > 0 and flow["diversity_pose_degrees"] > 0
    assert math.isfinite(flow["nll"])


def test_closure_is_also_split_by_emotion_and_the_split_pools_back_to_the_whole(report) -> None:
    """Each system's closure per emotion of the sequences (the truth seals every bilabial); the
    table names the flow's; weighted by each emotion's bilabials they give the pooled rate."""
    for system in SYSTEMS:
        by_emotion = report["closure_by_emotion"][system]
        assert set(by_emotion) <= {"neutral", "happy", "sad"} and by_emotion
        assert all(0.0 <= rate <= 1.0 for rate in by_emotion.values())
        assert min(by_emotion.values()) - 1e-9 <= report["systems"][system]["bilabial_closure"] \
            <= max(by_emotion.values()) + 1e-9
    assert set(report["closure_by_emotion"]["truth"].values()) == {1.0}
    line = next(l for l in format_table(report).splitlines() if l.startswith("flow closure by emotion"))
    assert all(emotion in line for emotion in report["closure_by_emotion"]["flow"])


def test_the_flow_is_scored_with_the_closures_generation_hears_and_off_is_the_flows_alone(corpus, report) -> None:
    """The default flow row seals the bilabials phone recognition hears, as `flowvq generate`
    does; ``closures="off"`` scores the same takes unsealed: never more closures (the shipped flows
    alone already seal every bilabial of these few lines), other systems equal."""
    alone = evaluate(corpus, EvalSettings(takes=3, closures="off"))
    assert report["settings"]["closures"] == "phones" and alone["settings"]["closures"] == "off"
    heard, flows = report["systems"]["flow"], alone["systems"]["flow"]
    assert heard["bilabial_closure"] >= flows["bilabial_closure"]
    assert heard["m_lmd_mm"] != flows["m_lmd_mm"] and heard["open_vowel_gap_mm"] != flows["open_vowel_gap_mm"]
    for system in ("regressor", "rhubarb", "truth"):
        assert report["systems"][system] == alone["systems"][system]


def test_with_text_each_lines_aligned_bilabials_seal_the_flow_takes(corpus, report) -> None:
    """``text``: the corpus's line of each sequence, aligned, seals the takes' lips as `generate --text`
    does, every closure of the truth. The held-out voice
    is a Polish one reading English: some of its lines fit the English model too poorly to align,
    fall back to the heard phones, and are counted."""
    told = evaluate(corpus, EvalSettings(takes=3, text=True))
    assert told["settings"]["text"] and 0 < told["text_not_aligned"] < told["sequences"]
    assert told["systems"]["flow"]["bilabial_closure"] == 1.0
    assert told["systems"]["flow"]["m_lmd_mm"] != report["systems"]["flow"]["m_lmd_mm"]
    assert told["systems"]["rhubarb"] == report["systems"]["rhubarb"]
    assert f"lips sealed on its /p b m/ and shaped on its /f v r/ ({told['text_not_aligned']} not aligned" in format_table(told)


def test_the_val_split_is_evaluated_on_its_own_voices_and_other_splits_are_refused(corpus) -> None:
    """val (held-out sentences of the training voices) is there for choosing settings without
    the test voices; the report names the split and its voices."""
    val = load_split(corpus, "val")
    report = evaluate(corpus, EvalSettings(takes=2, limit=2, split="val"))
    assert report["sequences"] == min(2, len(val)) > 0 and report["voices"] == [MBROLA[0]]
    assert report["settings"]["split"] == "val" and "val sequences" in format_table(report)
    with pytest.raises(FlowVQError, match="split must be one of test, val"):
        evaluate(corpus, EvalSettings(split="train"))


def test_the_flow_carries_the_emotion_the_recogniser_baseline_cannot(report) -> None:
    systems = report["systems"]
    assert systems["flow"]["emotion_accuracy"] >= 0.8 > systems["rhubarb"]["emotion_accuracy"]
    assert systems["flow"]["f_lmd_mm"] < systems["rhubarb"]["f_lmd_mm"]


def test_nll_prefers_the_real_sequence_to_a_scrambled_one(corpus) -> None:
    model = load_weights()
    seq = load_split(corpus, "test")[0]
    scrambled = type(seq)(seq.name, seq.exp[np.random.default_rng(0).permutation(len(seq.exp))],
                          seq.pose, seq.audio, seq.emotion, seq.beta0)
    assert sequence_nll(model, seq) < sequence_nll(model, scrambled)


def test_the_flow_is_compared_with_each_baseline_sequence_by_sequence(report) -> None:
    """The paired M-LMD gap is the difference of the two rows (the flow's row scores its first
    take), with an interval around it, and the table says it in words."""
    for name in BASELINES:
        paired = report["paired_m_lmd"][name]
        low, high = paired["ci95"]
        assert low <= paired["mean"] <= high and 0.0 <= paired["lower_share"] <= 1.0
        assert paired["sequences"] == report["sequences"]
        rows = report["systems"]
        assert paired["mean"] == pytest.approx(rows["flow"]["m_lmd_mm"] - rows[name]["m_lmd_mm"], abs=1e-9)
        assert f"flow - {name} M-LMD: {paired['mean']:+.3f} mm" in format_table(report)


def test_one_sequence_is_evaluated_without_a_paired_comparison(corpus) -> None:
    report = evaluate(corpus, EvalSettings(takes=2, limit=1))
    assert report["sequences"] == 1 and report["paired_m_lmd"] == {}
    assert "| flow |" in format_table(report) and "M-LMD: " not in format_table(report)


def test_table_lists_each_system(report) -> None:
    table = format_table(report)
    for system in SYSTEMS:
        assert f"| {system} |" in table
    assert "M-LMD mm" in table and "closure" in table


def test_cli_prints_json_on_stdout_and_the_table_on_stderr(corpus, tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main(["eval", "--corpus", str(corpus), "--takes", "2", "--limit", "2", "--json",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed == json.loads(out.read_text())
    assert printed["sequences"] == 2
    assert "| flow |" in captured.err


def test_a_folder_that_is_not_a_corpus_is_one_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(CorpusError, match="corpus build"):
        evaluate(tmp_path)
    assert main(["eval", "--corpus", str(tmp_path)]) == 2
    assert "corpus build" in capsys.readouterr().err
