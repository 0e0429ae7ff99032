"""`flowvq eval`: the default flows against two baselines on the corpus's held-out voices.

Systems, each run on every sequence of one split of a built corpus (`core.corpus.build`): the test
split, whose voices training never hears, unless told otherwise (``val``: held-out sentences of the
training voices, for choosing settings without looking at the test voices):

    flow        the coefficient flows (default weights unless given): ``takes`` seeded takes at
                the given temperatures, the sequence's own emotion at its own intensity (stored with
                it by the corpus; 1 for recordings), their lips sealed on the bilabials ``closures``
                hears in the clip as generation does (`core.coeff.text.seal_lips`; "off": the flows
                alone); a model with phone input reads those phones' visemes. With ``text``: the
                sequence's line (the corpus's text) aligned to its audio instead, the jaw following
                it and the lips sealed on it as ``generate --text`` does (`core.coeff.text.line_lips`;
                a line that cannot be aligned falls back to the heard phones and is counted)
    regressor   `core.eval.regressor.MSERegressor`: the same conditioner trained with MSE (the
                shipped baseline weights unless given); deterministic, one take
    rhubarb     `core.eval.rhubarb`: pocketsphinx phone recognition without the transcript ->
                visemes; no emotion, one take; the source's resting expression β₀ is added
    truth       the ground truth itself, for the reference values of the per-take metrics

Metrics (`core.eval.metrics`; the geometric ones on the built-in mesh's expression-only vertices):
M-LMD and F-LMD in mm against the truth, bilabial closure rate, open-vowel lip gap in mm (the truth
row says how open it should be), mouth jerk in m/s³, emotion accuracy of a classifier fitted on the
training split's ground truth (sequences minus β₀), and for the flow: NLL of the truth (nats per
frame and dimension, teacher-forced contexts), take diversity, and the ratio of the mean take's
M-LMD to the best take's (the "equal lip error" check). The flow's row scores its first take (the
seed's own). ``paired_m_lmd`` compares that take's M-LMD with each baseline's, sequence by sequence
(`core.eval.metrics.paired_difference`: mean difference, bootstrap 95% interval, share of
sequences where the flow is closer). Per-sequence values are averaged; the
closure rate pools all bilabials of the split, and ``closure_by_emotion`` those of each emotion.
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.audio import SAMPLE_RATE, frame_windows, load_audio
from core.coeff.model import CoeffModel
from core.coeff.sampler import SampleSettings, sample_takes
from core.coeff.text import emotion_jaw_drop, known_lips, line_phones
from core.coeff.weights import load_weights
from core.corpus.build import read_manifest
from core.visemes import BILABIALS, frame_visemes
from core.emotions import emotion_index
from core.expression import frame_energy
from core.errors import FlowVQError
from core.eval.metrics import (
    BROWS, CLOSED_GAP_MM, MOUTH, EmotionClassifier, bilabial_closure_rate, jerk, landmark_distance,
    open_vowel_opening, paired_difference, region_spread_mm, take_diversity,
)
from core.eval.regressor import MSERegressor, load_regressor
from core.eval.rhubarb import rhubarb_curves
from core.face import builtin
from core.face.model import FaceModel
from core.formats.dataset import CoeffSequence, load_split, read_meta, wave_file
from core.recognize import heard_phones, recognize_phones

__all__ = ["SYSTEMS", "BASELINES", "EVAL_SPLITS", "EvalSettings", "default_regressor_dir", "sequence_nll",
           "evaluate", "format_table"]

SYSTEMS: tuple[str, ...] = ("flow", "regressor", "rhubarb", "truth")
BASELINES: tuple[str, ...] = ("regressor", "rhubarb")  # what the flow's paired M-LMD is compared with
EVAL_SPLITS: tuple[str, ...] = ("test", "val")
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("m_lmd_mm", "M-LMD mm", "{:.2f}"),
    ("f_lmd_mm", "F-LMD mm", "{:.2f}"),
    ("bilabial_closure", "closure", "{:.0%}"),
    ("open_vowel_gap_mm", "open gap mm", "{:.1f}"),
    ("jerk_m_s3", "jerk m/s³", "{:.2f}"),
    ("emotion_accuracy", "emotion acc", "{:.0%}"),
    ("nll", "NLL", "{:.2f}"),
)


@dataclass(frozen=True)
class EvalSettings:
    """What `evaluate` runs: flow takes per sequence, their expression, head-motion and style
    temperatures (the sampler's defaults unless given), first seed and manifold projection blend, and an
    optional limit on the number of sequences (the first N by name), the split evaluated, and which
    recogniser's bilabials seal the flow takes' lips (`core.recognize.HEARING`), or whether each
    sequence's text drives them instead (``text``)."""

    takes: int = 4
    temperature: float = SampleSettings.temperature
    pose_temperature: float = SampleSettings.pose_temperature
    style_temperature: float = SampleSettings.style_temperature
    seed: int = 0
    manifold_blend: float = 1.0
    limit: int | None = None
    split: str = "test"
    closures: str = "phones"
    text: bool = False


def default_regressor_dir() -> Path:
    """The shipped MSE-regressor baseline, trained on the default corpus like the default flows."""
    return Path(__file__).resolve().parent / "assets" / "regressor"


def sequence_nll(model: CoeffModel, seq: CoeffSequence) -> float:
    """ExpFlow's negative log-likelihood of a true sequence, nats per frame and dimension, each
    frame conditioned on its true predecessors (teacher forcing) and on the sequence's own take
    style."""
    flow, tau = model.exp_flow, model.config.exp.tau
    frames = len(seq.exp)
    exp = torch.as_tensor(seq.exp)
    data = torch.cat([torch.zeros(tau, model.dim), exp])[None]  # (1, τ + T, D)
    available = torch.cat([torch.zeros(tau, dtype=torch.bool), torch.ones(frames, dtype=torch.bool)])[None]
    windows = torch.as_tensor(frame_windows(seq.audio, model.config.audio_before, model.config.audio_after))[None]
    label = torch.tensor([emotion_index(seq.emotion)])
    with torch.no_grad():
        style = flow.style_of(torch.as_tensor(seq.offset)[None]) if flow.style else None
        static = flow.static_context(windows, torch.as_tensor(seq.beta0)[None], label, style)
        context = flow.window_contexts(data, available, static)
        log_prob = flow.log_prob(exp, context, label.repeat(frames))
    return float(-log_prob.mean() / model.dim)


@dataclass
class _Scores:
    """Per-sequence metric lists of one system (``closed``: one entry per scored bilabial, also
    kept per emotion of the sequence in ``closed_by_emotion``)."""

    m_lmd: list[float] = field(default_factory=list)
    f_lmd: list[float] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)
    opening: list[float] = field(default_factory=list)
    jerk: list[float] = field(default_factory=list)
    correct: list[float] = field(default_factory=list)
    closed_by_emotion: dict[str, list[float]] = field(default_factory=dict)


def _score(scores: _Scores, face: FaceModel, exp: np.ndarray, seq: CoeffSequence, phones: list,
           fps: float, predicted: str) -> None:
    """Append one take's metrics against the truth ``seq``. Shapes: exp (T, D)."""
    scores.m_lmd.append(landmark_distance(face, exp, seq.exp, MOUTH))
    scores.f_lmd.append(landmark_distance(face, exp, seq.exp, None))
    rate = bilabial_closure_rate(face, exp, phones, fps)
    if not math.isnan(rate):  # weight each sequence's rate by its bilabials: the split's pooled rate
        weighted = [rate] * sum(p[0] in BILABIALS for p in phones)
        scores.closed.extend(weighted)
        scores.closed_by_emotion.setdefault(seq.emotion, []).extend(weighted)
    opening = open_vowel_opening(face, exp, phones, fps)
    if not math.isnan(opening):
        scores.opening.append(opening)
    scores.jerk.append(jerk(face, exp, fps, MOUTH))
    scores.correct.append(float(predicted == seq.emotion))


def _mean(values: list[float]) -> float:
    """The mean, NaN for an empty list."""
    return float(np.mean(values)) if values else float("nan")


def _summary(scores: _Scores) -> dict[str, float]:
    """Means of the per-sequence lists."""
    return {
        "m_lmd_mm": _mean(scores.m_lmd), "f_lmd_mm": _mean(scores.f_lmd),
        "bilabial_closure": _mean(scores.closed), "open_vowel_gap_mm": _mean(scores.opening),
        "jerk_m_s3": _mean(scores.jerk), "emotion_accuracy": _mean(scores.correct),
    }


def evaluate(
    corpus: str | Path,
    settings: EvalSettings = EvalSettings(),
    *,
    weights: str | Path | None = None,
    regressor: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every system on the corpus's ``settings.split``; returns the JSON report (see
    `format_table`; ``"voices"``: the split's voices)."""
    if settings.split not in EVAL_SPLITS:
        raise FlowVQError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {settings.split!r}")
    corpus = Path(corpus)
    manifest = read_manifest(corpus)
    meta = read_meta(corpus)
    face = builtin()
    model = load_weights(weights, face)
    baseline: MSERegressor = load_regressor(regressor or default_regressor_dir(), face)
    if abs(meta.fps - model.config.fps) > 1e-6:
        raise FlowVQError(f"the corpus is at {meta.fps} fps but the flows run at {model.config.fps} fps")
    records = {r["name"]: r for r in manifest["sequences"]}
    sequences = load_split(corpus, settings.split)[: settings.limit]
    train = load_split(corpus, "train")
    train_exps, train_labels = [s.exp - s.beta0 for s in train], [s.emotion for s in train]
    classifier = EmotionClassifier(meta.fps).fit(train_exps, train_labels)
    scores = {name: _Scores() for name in SYSTEMS}
    take_scores: list[dict[str, float]] = []
    nll: list[float] = []
    unaligned = 0
    for done, seq in enumerate(sequences, 1):
        phones = [tuple(p) for p in records[seq.name]["phones"]]
        wave = load_audio(wave_file(corpus, seq.name))
        outputs = _system_outputs(model, baseline, seq, wave, records[seq.name]["text"], meta.fps, settings)
        flow_takes, flow_pose = outputs.pop("flow")
        used_text = outputs.pop("aligned")
        unaligned += int(settings.text and not used_text)
        for name, exp in {"flow": flow_takes[0], **outputs, "truth": seq.exp}.items():
            _score(scores[name], face, exp, seq, phones, meta.fps, classifier.predict([exp - seq.beta0])[0])
        take_scores.append(_take_report(face, flow_takes, flow_pose, seq))
        nll.append(sequence_nll(model, seq))
        if progress:
            progress(done, len(sequences))
    report = {name: _summary(scores[name]) for name in SYSTEMS}
    report["flow"]["nll"] = float(np.mean(nll))
    report["flow"].update({k: float(np.mean([t[k] for t in take_scores])) for k in take_scores[0]})
    return {
        "corpus": str(corpus), "voices": manifest["voices"][settings.split], "sequences": len(sequences),
        "frames": int(sum(len(s.exp) for s in sequences)), "settings": asdict(settings),
        "closed_gap_mm": CLOSED_GAP_MM, "classifier_train_sequences": len(train), "text_not_aligned": unaligned,
        "classifier_train_accuracy": classifier.accuracy(train_exps, train_labels),
        "systems": report,
        "closure_by_emotion": {name: {emotion: _mean(rates) for emotion, rates in sorted(scores[name].closed_by_emotion.items())}
                               for name in SYSTEMS},
        "paired_m_lmd": {name: asdict(paired_difference(scores["flow"].m_lmd, scores[name].m_lmd))
                         for name in BASELINES} if len(sequences) >= 2 else {},  # an interval needs two
    }


def _system_outputs(
    model: CoeffModel, baseline: MSERegressor, seq: CoeffSequence, wave: np.ndarray, text: str, fps: float,
    settings: EvalSettings,
) -> dict[str, Any]:
    """Each system's expression for one test sequence saying ``text``: "flow" -> (takes (K, T, D),
    poses (K, T, 6)), "regressor" and "rhubarb" -> (T, D); "aligned": whether the text was used."""
    sample = SampleSettings(emotion=seq.emotion, intensity=seq.intensity, temperature=settings.temperature,
                            pose_temperature=settings.pose_temperature,
                            style_temperature=settings.style_temperature, seed=settings.seed,
                            takes=settings.takes, manifold_blend=settings.manifold_blend)
    recognised = recognize_phones(wave)  # the baseline's phones, which the default closures hear too
    aligned = line_phones(wave, text) if settings.text else None
    if aligned is not None:
        known = aligned
    else:
        known = recognised if settings.closures == "phones" else heard_phones(wave, settings.closures)
    exp, pose = sample_takes(model, seq.audio, seq.beta0, sample,
                             loudness=frame_energy(wave, SAMPLE_RATE, fps, len(seq.audio)),
                             visemes=frame_visemes(known, fps, len(seq.audio)))
    jaw_drop = emotion_jaw_drop(seq.emotion, seq.intensity)
    exp = known_lips(exp, known, model.names, fps, aligned is not None, jaw_drop)
    lips = rhubarb_curves(recognised, model.names, fps, len(seq.exp))
    return {
        "flow": (exp, pose), "aligned": aligned is not None,
        "regressor": baseline.predict(seq.audio, seq.beta0, seq.emotion),
        "rhubarb": np.clip(lips + seq.beta0[None], 0.0, 1.0),
    }


def _take_report(face: FaceModel, takes: np.ndarray, poses: np.ndarray, seq: CoeffSequence) -> dict[str, float]:
    """Per-sequence take statistics of the flow: the best, mean and worst take's M-LMD, their
    ratios, and the diversity across takes. Shapes: takes (K, T, D), poses (K, T, 6)."""
    lmd = np.array([landmark_distance(face, take, seq.exp, MOUTH) for take in takes])
    report = {"m_lmd_best_take_mm": float(lmd.min()), "m_lmd_mean_over_best": float(lmd.mean() / lmd.min())}
    if len(takes) > 1:
        diversity = take_diversity(takes, poses, face.names)
        report.update({
            "diversity_expression": diversity.expression, "diversity_brows": diversity.brows,
            "diversity_blink_std": diversity.blink_std, "diversity_pose_degrees": diversity.pose_degrees,
            "diversity_brows_mm": region_spread_mm(face, takes, BROWS),
        })
    return report


def format_table(report: dict[str, Any]) -> str:
    """The systems side by side as a Markdown table, then the flow's take statistics."""
    header = "| system | " + " | ".join(label for _, label, _ in _COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 1)]
    for name in SYSTEMS:
        row = report["systems"][name]
        cells = [fmt.format(row[key]) if key in row and not math.isnan(row[key]) else "–"
                 for key, _, fmt in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    flow = report["systems"]["flow"]
    extra = [f"{k} = {v:.3f}" for k, v in flow.items() if k.startswith(("m_lmd_", "diversity_"))]
    lines.append("")
    settings = report["settings"]
    lines.append(f"{report['sequences']} {settings['split']} sequences ({report['frames']} frames), voices "
                 f"{', '.join(report['voices'])}; flow takes per sequence: {settings['takes']}")
    lines.append("flow takes: " + ", ".join(extra))
    if settings.get("text"):  # reports before it lack it
        lines.append("flow jaw following each line's aligned phones, lips sealed on its /p b m/ and shaped on its "
                     f"/f v r/ ({report['text_not_aligned']} not aligned: heard phones)")
    by_emotion = report.get("closure_by_emotion", {}).get("flow", {})  # reports before it lack it
    if by_emotion:
        lines.append("flow closure by emotion: " + ", ".join(f"{e} {r:.0%}" for e, r in by_emotion.items()))
    for name, paired in report.get("paired_m_lmd", {}).items():  # reports before it lack it
        low, high = paired["ci95"]
        lines.append(f"flow - {name} M-LMD: {paired['mean']:+.3f} mm (95% interval {low:+.3f} to {high:+.3f}), "
                     f"flow closer on {paired['lower_share']:.0%} of sequences")
    return "\n".join(lines)
