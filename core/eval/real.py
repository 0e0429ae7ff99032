"""`flowvq eval --real DIR`: takes generated from real speakers' audio against their own lips.

The reference is the speaker: every video under DIR goes through the ``from-videos`` path
(`core.corpus.videos.video_clip`: FaceMesh on every frame, the built-in face model fitted to it,
the audio features of its own track at the model's frame rate), or DIR is a dataset that
``flowvq corpus from-videos`` wrote (every split is read; the speech from its audio/ folder). The
inner-lip gap of the fitted face in millimetres (`core.face.measure.lip_gap` on the
expression-only mesh) is the real lip gap. Measured on the 13 dev clips of docs/real-speech.md, it
correlates at 0.97-1.00 per clip with the inner-lip opening read straight off the FaceMesh
landmarks (mean of five upper/lower inner-lip point distances over the inner mouth width), so the
fit adds no lag or smoothing the scores would see.

Systems, each given the clip's audio features and the speaker's resting face β₀:

    flow        the coefficient flows (``--weights``, default the shipped ones), take ``seed``,
                emotion "talk", the sampler's default temperatures, the lips sealed on the
                bilabials ``closures`` hears in the clip, as generation does
                (`core.coeff.text.seal_lips`; "off": the flows alone); a model with phone input
                reads those phones' visemes. A clip whose line ``texts`` gives (``--texts FILE``:
                lines of NAME, a tab, the text) gets the line's aligned phones instead, its jaw
                following them and its lips sealed on them as ``generate --text`` does
                (`core.coeff.text.line_lips`); a line that cannot be aligned falls back to the
                heard phones and is counted
    previous    other flow weights (``--previous DIR``), the same way, when given
    loudness    a loudness -> jaw baseline (`loudness_jaw`): the per-frame mean of the clip's
                normalised log-mel features, mapped linearly from its 10th percentile (jaw shut) to
                its 95th (jaw at `LOUDNESS_JAW_MAX`), mouthClose 0

Metrics per clip (`lip_scores`):

- **gap correlation**: Pearson correlation of the system's lip gap with the real one at the best
  offset within ±`MAX_OFFSET_FRAMES` frames (the fit and the audio may be a frame or two apart);
- **closures**: of the speaker's short closures (runs of 1-10 frames with the real gap below the
  speaker's closed level, `real_closed_level`), the share during which, give or take
  `CLOSURE_TOLERANCE_FRAMES` frames, the system's gap drops below `CLOSED_GAP_MM` (sealed lips on
  the built-in face);
- **closed while open**: of the system's closures (runs below `CLOSED_GAP_MM`), the share with no
  real closed frame within ±`CLOSURE_TOLERANCE_FRAMES` frames;
- **bilabial closures** (clips with an aligned line only): of the speaker's short closures at the
  line's aligned /p b m/ (a run overlapping a frame of one, `bilabial_frames`), how many the system
  catches as above. The speaker's short closures also count dips at other phones (/r/, /n/, /T/,
  close vowels, ...) whose lips part; this count keeps the ones a lip-sync must seal.
  ``texts_used=False`` (``--texts-score-only``) leaves the flows hearing the audio only, the lines
  marking only the /p b m/ to count.

The speaker's closed level is relative, not 2 mm: the face model fitted to FaceMesh seldom seals
its inner lips (on the dev clips a speaker's closed lips measure 1-7 mm, their resting frames
included), so a frame counts as closed when its gap lies in the lowest `REAL_CLOSED_FRACTION` of
the clip's range, from its 2nd to its 95th percentile. On GRID clips with known text, the aligned
/b/ of each one falls in such a dip.

Clips without a short closure score NaN on closures (skipped in means), and a system without a
closure NaN on "closed while open". ``wins`` counts the clips where a system beats the loudness
baseline on correlation.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.coeff.model import CoeffModel
from core.audio import load_audio
from core.coeff.sampler import SampleSettings, sample_takes
from core.coeff.text import known_lips, line_phones
from core.coeff.weights import load_weights
from core.corpus.videos import find_videos, video_clip
from core.errors import FlowVQError
from core.eval.metrics import CLOSED_GAP_MM, vertex_sequence
from core.face import builtin
from core.face.measure import lip_gap
from core.face.model import FaceModel
from core.formats.dataset import SPLITS, CoeffSequence, DatasetError, load_split, read_meta, wave_file
from core.recognize import heard_phones
from core.visemes import BILABIALS, frame_visemes

__all__ = [
    "MAX_OFFSET_FRAMES", "SHORT_CLOSURE_FRAMES", "CLOSURE_TOLERANCE_FRAMES", "LOUDNESS_JAW_MAX",
    "REAL_CLOSED_FRACTION", "real_closed_level",
    "RealEvalError", "LipScores", "gap_track_mm", "closure_runs", "best_offset_correlation",
    "bilabial_frames", "lip_scores", "loudness_jaw", "real_clips", "read_lines", "evaluate_real", "format_real_table",
]

MAX_OFFSET_FRAMES = 3
SHORT_CLOSURE_FRAMES: tuple[int, int] = (1, 10)
CLOSURE_TOLERANCE_FRAMES = 2
LOUDNESS_JAW_MAX = 0.5  # about a wide vowel's jaw in the corpus's visemes
REAL_CLOSED_FRACTION = 0.2
_REAL_RANGE_PERCENTILES: tuple[float, float] = (2.0, 95.0)
_LOUDNESS_PERCENTILES: tuple[float, float] = (10.0, 95.0)


class RealEvalError(FlowVQError):
    """A real-speaker folder that cannot be evaluated (no videos, none readable, wrong frame rate)."""
    code = "real_eval"


@dataclass(frozen=True)
class LipScores:
    """One system on one clip: see the module docstring (NaN where a share has nothing to count)."""

    gap_correlation: float
    offset_frames: int
    closures: float
    closed_while_open: float
    real_closures: int
    take_closures: int
    real_bilabial_closures: int = 0
    bilabial_closures_caught: int = 0


def gap_track_mm(face: FaceModel, exp: np.ndarray) -> np.ndarray:
    """The inner-lip gap of every frame's expression-only mesh, millimetres. Shapes: exp (T, D) -> (T,)."""
    return 1000.0 * np.array([lip_gap(face, mesh) for mesh in vertex_sequence(face, exp)])


def closure_runs(gap_mm: np.ndarray, closed_mm: float = CLOSED_GAP_MM) -> list[tuple[int, int]]:
    """Runs of consecutive frames with the gap below ``closed_mm``, as [start, end) frame pairs.
    Shapes: gap_mm (T,)."""
    closed = np.concatenate([[False], np.asarray(gap_mm) < closed_mm, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def best_offset_correlation(real: np.ndarray, take: np.ndarray, max_offset: int = MAX_OFFSET_FRAMES) -> tuple[float, int]:
    """The highest Pearson correlation of ``take`` shifted by -max_offset..max_offset frames against
    ``real`` (positive: the take lags), over the frames both cover, and that offset; NaN when either
    is constant. Shapes: real, take (T,)."""
    best, best_offset = float("nan"), 0
    for offset in range(-max_offset, max_offset + 1):
        a, b = (real[: len(real) - offset], take[offset:]) if offset >= 0 else (real[-offset:], take[: len(take) + offset])
        if len(a) < 3 or a.std() == 0 or b.std() == 0:
            continue
        value = float(np.corrcoef(a, b)[0, 1])
        if np.isnan(best) or value > best:
            best, best_offset = value, offset
    return best, best_offset


def _near(runs: list[tuple[int, int]], closed: np.ndarray, tolerance: int) -> list[bool]:
    """For each run, whether ``closed`` has a True frame within the run widened by ``tolerance``."""
    return [bool(closed[max(0, start - tolerance): end + tolerance].any()) for start, end in runs]


def real_closed_level(real_mm: np.ndarray) -> float:
    """The gap below which the speaker's fitted lips count as closed (module docstring), mm.
    Shapes: real_mm (T,)."""
    low, high = np.percentile(real_mm, _REAL_RANGE_PERCENTILES)
    return float(low + REAL_CLOSED_FRACTION * (high - low))


def bilabial_frames(phones: Sequence[tuple[str, float, float]], fps: float, frames: int) -> np.ndarray:
    """Whether each frame's span [t / fps, (t + 1) / fps) overlaps a /p b m/ (`BILABIALS`) of ``phones``.
    Shapes: -> (frames,) bool."""
    marked = np.zeros(frames, bool)
    for symbol, start, end in phones:
        if symbol in BILABIALS:
            marked[max(0, int(np.floor(start * fps))): max(0, int(np.ceil(end * fps)))] = True
    return marked


def lip_scores(
    real_mm: np.ndarray, take_mm: np.ndarray, take_closed_mm: float = CLOSED_GAP_MM, bilabials: np.ndarray | None = None
) -> LipScores:
    """A take's lip gap against the speaker's (module docstring); ``bilabials`` marks the frames of
    a line's aligned /p b m/ (`bilabial_frames`; None: no line). Shapes: real_mm, take_mm, bilabials (T,)."""
    if real_mm.shape != take_mm.shape:
        raise RealEvalError(f"real and generated gaps differ in length: {real_mm.shape} vs {take_mm.shape}")
    correlation, offset = best_offset_correlation(real_mm, take_mm)
    real_closed = real_closed_level(real_mm)
    shortest, longest = SHORT_CLOSURE_FRAMES
    real_runs = [r for r in closure_runs(real_mm, real_closed) if shortest <= r[1] - r[0] <= longest]
    take_runs = closure_runs(take_mm, take_closed_mm)
    caught = _near(real_runs, take_mm < take_closed_mm, CLOSURE_TOLERANCE_FRAMES)
    supported = _near(take_runs, real_mm < real_closed, CLOSURE_TOLERANCE_FRAMES)
    at_bilabials = [hit for hit, (start, end) in zip(caught, real_runs)
                    if bilabials is not None and bilabials[start:end].any()]
    return LipScores(
        gap_correlation=correlation, offset_frames=offset,
        closures=float(np.mean(caught)) if caught else float("nan"),
        closed_while_open=float(1.0 - np.mean(supported)) if supported else float("nan"),
        real_closures=len(real_runs), take_closures=len(take_runs),
        real_bilabial_closures=len(at_bilabials), bilabial_closures_caught=sum(at_bilabials),
    )


def loudness_jaw(audio: np.ndarray, beta0: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The loudness baseline's expression: β₀ with jawOpen following loudness and mouthClose 0.
    Shapes: audio (T, F) normalised features, beta0 (D,) -> (T, D)."""
    loudness = audio.mean(axis=1)
    low, high = np.percentile(loudness, _LOUDNESS_PERCENTILES)
    jaw = LOUDNESS_JAW_MAX * np.clip((loudness - low) / max(high - low, 1e-6), 0.0, 1.0)
    exp = np.repeat(beta0[None].astype(np.float32), len(audio), axis=0)
    exp[:, names.index("jawOpen")] = jaw
    exp[:, names.index("mouthClose")] = 0.0
    return exp


RealClip = tuple[CoeffSequence, np.ndarray | None]  # a fitted clip and its 16 kHz speech (None: not stored)


def real_clips(folder: str | Path, fps: float, progress: Callable[[int, int], None] | None = None) -> list[RealClip]:
    """The real clips of ``folder`` at ``fps`` with their speech: a ``from-videos`` dataset (every
    split; the speech None for a clip without audio/NAME.wav) or videos, fitted here. A video that
    cannot be used is skipped; raises `RealEvalError` when none can."""
    folder = Path(folder)
    if (folder / "meta.json").is_file():
        meta = read_meta(folder)
        if abs(meta.fps - fps) > 1e-6:
            raise RealEvalError(f"{folder} is at {meta.fps} fps but the flows run at {fps} fps; "
                                f"rebuild it with `flowvq corpus from-videos --fps {fps:g}`")
        sequences = [seq for split in SPLITS for seq in load_split(folder, split, required=False)]
        if not sequences:
            raise RealEvalError(f"{folder} holds no sequences")
        return [(seq, _stored_speech(folder, seq.name)) for seq in sorted(sequences, key=lambda seq: seq.name)]
    try:
        videos = find_videos(folder)
    except DatasetError as err:
        raise RealEvalError(f"{err}; nor is it a dataset (meta.json) from `flowvq corpus from-videos`") from err
    clips, failures = [], []
    for done, path in enumerate(videos, 1):
        try:
            clips.append(video_clip(path, path.relative_to(folder).with_suffix("").as_posix(), fps=fps))
        except FlowVQError as err:
            failures.append(f"{path.name}: {err}")
        if progress:
            progress(done, len(videos))
    if not clips:
        raise RealEvalError(f"no video under {folder} could be used: " + "; ".join(failures))
    return clips


def _stored_speech(folder: Path, name: str) -> np.ndarray | None:
    """A dataset sequence's 16 kHz speech from its audio/ folder, None when it has none."""
    path = wave_file(folder, name)
    return load_audio(path) if path.is_file() else None


@dataclass(frozen=True)
class _System:
    """A named way to turn a clip, the phones known in it and whether they are its aligned line's
    (else heard in it) into an expression take. Shapes: make(seq, phones, line) -> (T, D)."""

    name: str
    make: Callable[[CoeffSequence, Sequence[tuple[str, float, float]], bool], np.ndarray]


def _flow_system(name: str, model: CoeffModel, seed: int) -> _System:
    """A flow model's first take at the sampler's defaults, emotion talk, no head motion, reading the
    visemes of the clip's aligned line or, without one, of the phones heard in it (with phone input),
    its lips sealed on their bilabials and, on a line, its jaw following the line (`line_lips`)."""
    settings = SampleSettings(seed=seed, pose=False, manifold_blend=SampleSettings.manifold_blend if len(model.bank) else 0.0)
    fps = model.config.fps

    def make(seq: CoeffSequence, known: Sequence[tuple[str, float, float]], line: bool) -> np.ndarray:
        takes = sample_takes(model, seq.audio, seq.beta0, settings,
                             visemes=frame_visemes(known, fps, len(seq.audio)))[0]  # (1, T, D)
        return known_lips(takes, known, model.names, fps, line)[0]

    return _System(name, make)


def read_lines(path: str | Path, names: list[str]) -> dict[str, str]:
    """The clips' lines from a text file of ``NAME<tab>TEXT`` lines (blank lines and ``#`` comments
    skipped); `RealEvalError` for a file that cannot be read, a line without a tab or a name that is
    not one of ``names``."""
    try:
        rows = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RealEvalError(f"cannot read the clips' lines from {path}: {err}") from err
    lines = {}
    for number, row in enumerate(rows, 1):
        if not row.strip() or row.startswith("#"):
            continue
        name, tab, text = row.partition("\t")
        if not tab or not text.strip():
            raise RealEvalError(f"{path} line {number}: write the clip's name, a tab, then what it says")
        if name not in names:
            raise RealEvalError(f"{path} line {number}: no clip is named {name!r}; the clips: {', '.join(sorted(names))}")
        lines[name] = text.strip()
    return lines


def _check_speech(clips: list[RealClip], listening: bool) -> None:
    """Refuse clips without their speech when the closures or the lines must be heard in it."""
    missing = [seq.name for seq, wave in clips if wave is None]
    if listening and missing:
        raise RealEvalError(f"{len(missing)} clip(s) have no speech stored ({missing[0]}, ...): rebuild the dataset "
                            "with `flowvq corpus from-videos` (it writes audio/NAME.wav), point --real at the "
                            "videos, or score the flows alone with --closures off and no --texts")


def evaluate_real(
    folder: str | Path,
    *,
    weights: str | Path | None = None,
    previous: str | Path | None = None,
    seed: int = 0,
    closures: str = "phones",
    texts: str | Path | None = None,
    texts_used: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score the systems on every real clip of ``folder``; returns the JSON report
    (``clips``: per clip and system the `LipScores` and whether its line was aligned; ``means``: per
    system the means over clips; ``wins``: clips where the system's correlation beats the loudness
    baseline's; ``texts``: clips given a line, ``text_not_aligned``: those whose line could not be
    aligned; ``texts_used``: whether the flows took the aligned lines (False: they heard the audio
    only); ``bilabials``: per system the speakers' short closures at aligned /p b m/ and how many
    were caught, summed over clips)."""
    face = builtin()
    model = load_weights(weights, face)
    systems = [_flow_system("flow", model, seed)]
    if previous is not None:
        systems.append(_flow_system("previous", load_weights(previous, face), seed))
    systems.append(_System("loudness", lambda seq, phones, line: loudness_jaw(seq.audio, seq.beta0, face.names)))
    clips = real_clips(folder, model.config.fps, progress)
    lines = read_lines(texts, [seq.name for seq, _ in clips]) if texts is not None else {}
    _check_speech(clips, closures != "off" or bool(lines))
    per_clip = []
    for seq, wave in clips:
        real_mm = gap_track_mm(face, seq.exp)
        aligned = line_phones(wave, lines.get(seq.name))  # once, for every flow system; heard only without it
        line = aligned is not None and texts_used
        known = aligned if line else heard_phones(wave, closures)
        marked = None if aligned is None else bilabial_frames(aligned, model.config.fps, len(real_mm))
        scores = {s.name: asdict(lip_scores(real_mm, gap_track_mm(face, s.make(seq, known, line)), bilabials=marked))
                  for s in systems}
        per_clip.append({"clip": seq.name, "seconds": len(seq.exp) / model.config.fps,
                         "real_gap_p95_mm": float(np.percentile(real_mm, 95)), "text": aligned is not None,
                         "systems": scores})
    names = [s.name for s in systems]
    return {
        "folder": str(folder), "weights": str(weights or "shipped"), "previous": str(previous) if previous else None,
        "seed": seed, "closures": closures, "texts": len(lines), "texts_used": texts_used,
        "text_not_aligned": sum(not c["text"] for c in per_clip if c["clip"] in lines), "fps": model.config.fps, "closed_gap_mm": CLOSED_GAP_MM, "clips": per_clip,
        "means": {name: _means([c["systems"][name] for c in per_clip]) for name in names},
        "wins": {name: sum(c["systems"][name]["gap_correlation"] > c["systems"]["loudness"]["gap_correlation"]
                           for c in per_clip) for name in names if name != "loudness"},
        "bilabials": {name: {key: sum(c["systems"][name][key] for c in per_clip)
                             for key in ("real_bilabial_closures", "bilabial_closures_caught")} for name in names},
    }


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric means over clips, NaN entries skipped (NaN when every clip's is NaN)."""
    keys = ("gap_correlation", "closures", "closed_while_open")
    return {key: float(np.nanmean(values)) if np.isfinite(values := np.array([r[key] for r in rows])).any()
            else float("nan") for key in keys}


def _cell(value: float, percent: bool) -> str:
    """A table cell: a share as a percentage, a correlation with two decimals, NaN as a dash."""
    if np.isnan(value):
        return "–"
    return f"{value:.0%}" if percent else f"{value:.2f}"


def format_real_table(report: dict[str, Any]) -> str:
    """Per clip and system: gap correlation, closures caught, closures made while open; then the
    means and the wins against the loudness baseline, as a Markdown table."""
    names = list(report["means"])
    header = "| clip | s | " + " | ".join(f"{n} corr | {n} closures | {n} closed open" for n in names) + " |"
    lines = [header, "|" + "---|" * (2 + 3 * len(names))]
    for clip in report["clips"]:
        cells = []
        for name in names:
            row = clip["systems"][name]
            cells += [_cell(row["gap_correlation"], False),
                      f"{_cell(row['closures'], True)} of {row['real_closures']}",
                      f"{_cell(row['closed_while_open'], True)} of {row['take_closures']}"]
        lines.append(f"| {clip['clip']} | {clip['seconds']:.1f} | " + " | ".join(cells) + " |")
    means = [c for n in names for c in (_cell(report["means"][n]["gap_correlation"], False),
                                         _cell(report["means"][n]["closures"], True),
                                         _cell(report["means"][n]["closed_while_open"], True))]
    lines.append("| **mean** | | " + " | ".join(means) + " |")
    lines.append("")
    lines.append(f"{len(report['clips'])} clips; takes closed below {report['closed_gap_mm']:g} mm, speakers in the lowest "
                 f"{REAL_CLOSED_FRACTION:.0%} of their range; correlation at the best "
                 f"offset within ±{MAX_OFFSET_FRAMES} frames; closures of 1-10 frames caught within "
                 f"±{CLOSURE_TOLERANCE_FRAMES} frames; "
                 + ("the flows alone (closures off)" if report["closures"] == "off"
                    else "the flows' lips sealed on the /p b m/ and shaped on the /f v r/ that "
                         f"{report['closures']} recognition hears"))
    if report.get("texts"):  # reports before it lack it
        aligned = report["texts"] - report["text_not_aligned"]
        lines.append(f"{aligned} clips' aligned lines "
                     + ("set the flows' jaw and seal their lips" if report.get("texts_used", True)
                        else "mark the /p b m/ scored below; the flows hear the audio only")
                     + f" ({report['text_not_aligned']} of {report['texts']} given could not be aligned)")
        if "bilabials" in report:
            counts = [(name, row["bilabial_closures_caught"], row["real_bilabial_closures"])
                      for name, row in report["bilabials"].items()]
            shares = [f"{name} {caught} of {total} ({_cell(caught / total if total else float('nan'), True)})"
                      for name, caught, total in counts]
            lines.append("speakers' short closures at those lines' /p b m/ caught: " + ", ".join(shares))
    lines += [f"{name} beats loudness on correlation in {wins} of {len(report['clips'])} clips"
              for name, wins in report["wins"].items()]
    return "\n".join(lines)
