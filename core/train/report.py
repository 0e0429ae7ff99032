"""A training report of a coefficient run: loss curves as a PNG and a short Markdown summary.

    flowvq train report RUN_DIR [--eval REPORT.json] [--out DIR]

reads ``RUN_DIR/history.jsonl`` (`core.train.loop`) and writes ``training.png`` (ExpFlow and
PoseFlow NLL per frame and their consistency losses against the step, train and validation) and
``REPORT.md`` (the run's provenance and the last train and validation losses; with ``--eval``, the
`flowvq eval` table too) to ``--out`` (default: RUN_DIR).
"""

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from core.errors import FlowVQError
from core.eval.run import format_table
from core.fileio import write_atomic
from core.train.loop import HISTORY_FILE, LOSS_KEYS, read_history

__all__ = ["PLOT_FILE", "REPORT_FILE", "plot_history", "write_report", "add_report_parser", "run_report"]

PLOT_FILE = "training.png"
REPORT_FILE = "REPORT.md"
_PANELS = (("exp_nll", "ExpFlow NLL (nats/frame)"), ("pose_nll", "PoseFlow NLL (nats/frame)"),
           ("exp_con", "ExpFlow L_con"), ("pose_con", "PoseFlow L_con"))


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Four panels (`_PANELS`), train and validation curves against the step, saved as a PNG."""
    figure = Figure(figsize=(10, 6.5), layout="constrained")  # no pyplot: no GUI backend, no global state
    axes = figure.subplots(2, 2)
    for axis, (key, title) in zip(axes.ravel(), _PANELS):
        for event, style in (("train", "-"), ("val", "o-")):
            points = [(e["step"], e[key]) for e in history if e["event"] == event]
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, style, label=event, markersize=4)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend()
    write_atomic(path, lambda target: figure.savefig(target, dpi=90, format="png"))


def _last(history: list[dict[str, Any]], event: str) -> dict[str, Any] | None:
    """The last history entry of one kind, or None."""
    entries = [e for e in history if e["event"] == event]
    return entries[-1] if entries else None


def write_report(run_dir: str | Path, out: str | Path | None = None, eval_report: dict | None = None) -> Path:
    """Write ``training.png`` and ``REPORT.md`` for a run; returns the report's path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    history = read_history(run_dir) if (run_dir / HISTORY_FILE).is_file() else []
    if not history:
        raise FlowVQError(f"{run_dir} has no training history; train with `flowvq train coeff` first")
    out.mkdir(parents=True, exist_ok=True)
    plot_history(history, out / PLOT_FILE)
    lines = [f"# Training report: {run_dir.name}", "",
             f"![loss curves]({PLOT_FILE})", "",
             "| event | step | seconds | " + " | ".join(LOSS_KEYS) + " |",
             "|---|---|---|" + "---|" * len(LOSS_KEYS)]
    for event in ("train", "val"):
        entry = _last(history, event)
        if entry:
            values = " | ".join(f"{entry[k]:.3f}" for k in LOSS_KEYS)
            lines.append(f"| last {event} | {entry['step']} | {entry['seconds']:.0f} | {values} |")
    if eval_report is not None:
        lines += ["", "## `flowvq eval` on the held-out voices", "", format_table(eval_report)]
    path = out / REPORT_FILE
    write_atomic(path, lambda target: Path(target).write_text("\n".join(lines) + "\n"))
    return path


def add_report_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``report`` to the ``train`` subparsers; the namespace carries ``func=run_report``."""
    parser = train_subparsers.add_parser("report", help="loss curves (PNG) and a Markdown summary of a run")
    parser.add_argument("run", type=Path, help="a `flowvq train coeff` output folder")
    parser.add_argument("--eval", type=Path, metavar="REPORT.json", help="a `flowvq eval --out` report to include")
    parser.add_argument("--out", type=Path, help="folder for training.png and REPORT.md (default: the run)")
    parser.set_defaults(func=run_report)
    return parser


def run_report(args: argparse.Namespace) -> int:
    """Write the report; returns 0."""
    evaluation = json.loads(args.eval.read_text()) if args.eval else None
    print(f"train report: {write_report(args.run, args.out, evaluation)}")
    return 0
