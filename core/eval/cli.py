"""``flowvq eval`` (the flows against the baselines, `core.eval.run`) and
``flowvq train regressor`` (the MSE baseline, `core.eval.regressor`).

    flowvq eval [--corpus data/corpus] [--weights DIR] [--regressor DIR] [--takes 4]
                [--temperature T] [--pose-temperature T] [--style-temperature T] [--seed 0] [--limit N]
                [--split test|val] [--closures phones|words|off] [--text] [--json] [--out REPORT.json]
    flowvq eval --real DIR [--weights DIR] [--previous DIR] [--seed 0] [--closures phones|words|off]
                [--texts LINES.tsv [--texts-score-only]] [--json] [--out REPORT.json]
    flowvq eval --emotions CLIP [--weights DIR] [--previous DIR] [--json] [--out REPORT.json]

prints the comparison table (``--real``: the flows, the previous weights and a loudness baseline
against real speakers' own lips, `core.eval.real`; ``--emotions``: each emotion's signature
strength, movement and intensity response on one clip, `core.eval.emotions`) (to stderr with ``--json``, which prints the JSON report on stdout) and
writes the report to ``--out`` when given.
"""

import argparse
import json
import sys
from pathlib import Path

from core.coeff.config import CoeffConfig
from core.coeff.weights import default_weights_dir, read_weights_config
from core.eval.emotions import evaluate_emotions, format_emotion_table
from core.eval.real import evaluate_real, format_real_table
from core.eval.regressor import save_regressor, train_regressor
from core.eval.run import EVAL_SPLITS, EvalSettings, evaluate, format_table
from core.errors import FlowVQError
from core.face import builtin
from core.fileio import write_atomic
from core.progress import progress_bar
from core.recognize import HEARING
from core.formats.dataset import load_split

__all__ = ["add_eval_parser", "run_eval", "add_regressor_parser", "run_train_regressor"]


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``eval`` to the ``flowvq`` subparsers; the namespace carries ``func=run_eval``."""
    parser = subparsers.add_parser(
        "eval", help="compare the flows with an MSE regressor and a Rhubarb-style baseline on held-out voices"
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"),
                        help="a corpus from `flowvq corpus build` (default %(default)s)")
    parser.add_argument("--weights", type=Path, help="coefficient flow weights (default: the shipped ones)")
    parser.add_argument("--regressor", type=Path, help="MSE regressor weights (default: the shipped ones)")
    parser.add_argument("--takes", type=int, default=4, help="flow takes per sequence (default %(default)s)")
    parser.add_argument("--temperature", type=float, default=EvalSettings.temperature,
                        help="the flows' expression temperature (default %(default)s)")
    parser.add_argument("--pose-temperature", type=float, default=EvalSettings.pose_temperature,
                        help="the flows' head-motion temperature (default %(default)s)")
    parser.add_argument("--style-temperature", type=float, default=EvalSettings.style_temperature,
                        help="the spread of the flows' take styles (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="first take's seed (default %(default)s)")
    parser.add_argument("--manifold-blend", type=float, default=1.0,
                        help="the flows' manifold projection in [0, 1] (default %(default)s)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N sequences")
    parser.add_argument("--split", choices=EVAL_SPLITS, default=EvalSettings.split,
                        help="test: voices training never heard; val: held-out sentences of the "
                             "training voices, for choosing settings (default %(default)s)")
    parser.add_argument("--closures", choices=HEARING, default=EvalSettings.closures,
                        help="which recogniser's /p b m/ seal the flow takes' lips, as generation does "
                             "(off: the flows alone; default %(default)s)")
    parser.add_argument("--text", action="store_true",
                        help="each sequence's line (the corpus's text), aligned to its audio, seals the flow takes' "
                             "lips on its /p b m/ as `generate --text` does")
    parser.add_argument("--real", type=Path, metavar="DIR",
                        help="instead: score lip gap and closures against real speakers, DIR holding talking-face "
                             "videos or a `flowvq corpus from-videos` dataset")
    parser.add_argument("--texts", type=Path, metavar="FILE",
                        help="with --real: the clips' lines (NAME, a tab, the text, one clip per line), aligned "
                             "and sealing the flow takes' lips on their /p b m/ as `generate --text` does; the "
                             "speakers' closures at those /p b m/ are counted on their own line")
    parser.add_argument("--texts-score-only", action="store_true",
                        help="with --texts: the flows hear the audio only, as without a line; the lines only mark "
                             "the /p b m/ whose closures are counted")
    parser.add_argument("--emotions", type=Path, metavar="CLIP",
                        help="instead: each emotion's signature channels on one take of CLIP at intensity 1 "
                             "and 0.5 (strength, movement over the line, other emotions' channels)")
    parser.add_argument("--previous", type=Path, metavar="DIR",
                        help="with --real or --emotions: other flow weights scored side by side (e.g. the previous default)")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.set_defaults(func=run_eval)
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Run the evaluation (``--real``: `core.eval.real`); returns 0."""
    if args.real is not None:
        if args.texts_score_only and args.texts is None:
            raise FlowVQError("--texts-score-only says how to use the clips' lines: give them with --texts FILE")
        with progress_bar("fit", "video") as progress:
            report = evaluate_real(args.real, weights=args.weights, previous=args.previous, seed=args.seed,
                                   closures=args.closures, texts=args.texts,
                                   texts_used=not args.texts_score_only, progress=progress)
        _emit(args, report, format_real_table(report))
        return 0
    if args.emotions is not None:
        report = evaluate_emotions(args.emotions, weights=args.weights, previous=args.previous)
        _emit(args, report, format_emotion_table(report))
        return 0
    if args.previous is not None:
        raise FlowVQError("--previous compares weights side by side: use it with --real DIR or --emotions CLIP")
    if args.texts is not None:
        raise FlowVQError("--texts gives real clips' lines: use it with --real DIR (the corpus's lines: --text)")
    if args.texts_score_only:
        raise FlowVQError("--texts-score-only changes how --real's --texts are used: give it with --real DIR --texts FILE")
    settings = EvalSettings(takes=args.takes, temperature=args.temperature,
                            pose_temperature=args.pose_temperature,
                            style_temperature=args.style_temperature, seed=args.seed,
                            manifold_blend=args.manifold_blend, limit=args.limit, split=args.split,
                            closures=args.closures, text=args.text)
    with progress_bar("eval", "seq") as progress:
        report = evaluate(args.corpus, settings, weights=args.weights, regressor=args.regressor,
                          progress=progress)
    _emit(args, report, format_table(report))
    return 0


def _emit(args: argparse.Namespace, report: dict, table: str) -> None:
    """Write the JSON report to ``--out`` when given; print the table (to stderr with ``--json``,
    which prints the JSON on stdout)."""
    text = json.dumps(report, indent=1)
    if args.out:
        write_atomic(args.out, lambda path: Path(path).write_text(text))
    print(table, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(text)


def add_regressor_parser(train_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``regressor`` to the ``train`` subparsers; the namespace carries ``func=run_train_regressor``."""
    parser = train_subparsers.add_parser("regressor", help="train the MSE-regressor baseline of `flowvq eval`")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="(default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="folder for regressor.yaml/.safetensors")
    parser.add_argument("--steps", type=int, default=5000, help="(default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    parser.add_argument("--like", type=Path,
                        help="copy the model config of these flow weights (default: the shipped flows)")
    parser.set_defaults(func=run_train_regressor)
    return parser


def run_train_regressor(args: argparse.Namespace) -> int:
    """Train the regressor with the flows' conditioner config and save it; returns 0."""
    config = CoeffConfig.from_dict(read_weights_config(args.like or default_weights_dir())["model"])
    face = builtin()
    model, history = train_regressor(load_split(args.corpus, "train"), config, face, steps=args.steps,
                                     batch_size=args.batch_size, seed=args.seed)
    save_regressor(args.out, model, {"corpus": str(args.corpus), "steps": args.steps,
                                     "batch_size": args.batch_size, "seed": args.seed, "loss": history})
    print(f"train regressor: {args.steps} steps, final MSE {history[-1]:.4f} -> {args.out}")
    return 0
