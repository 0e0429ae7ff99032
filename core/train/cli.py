"""The ``flowvq train`` and ``flowvq corpus`` subcommands:

* ``train coeff --config CONFIG.yaml [--out DIR] [--resume] [--device auto|cpu|cuda]``;
* ``train regressor ...``: the MSE baseline of ``flowvq eval`` (`core.eval.cli`);
* ``train report RUN [--eval REPORT.json]``: loss curves and a summary (`core.train.report`);
* ``corpus build OUT [--voices ...] [--test-voices ...] [--sentences N] [--heldout N] [--repeats R]
  [--seed S] [--workers W] [--no-augment]``: the synthetic emotional-speech corpus (`core.corpus.build`);
* ``corpus toy OUT [--train N] [--val N] [--frames T] [--seed S]``: the synthetic toy dataset
  (`core.train.toy`) that ``configs/coeff-tiny.yaml`` trains on;
* ``corpus from-videos`` and ``corpus import-coeffs``: real data (`core.corpus.cli`).

`add_train_parser` adds them to the ``flowvq`` parser (`core.cli`), whose dispatcher calls
`run_train`. torchrun starts the same command line on every rank::

    torchrun --standalone --nproc_per_node 2 -m core.cli train coeff --config CONFIG.yaml
"""

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from core.corpus.build import CorpusSpec, build_corpus
from core.corpus.cli import add_corpus_parsers
from core.device import DEVICES
from core.eval.cli import add_regressor_parser
from core.face import builtin
from core.train.loop import train_coeff
from core.train.report import add_report_parser
from core.train.toy import write_toy_dataset

__all__ = ["add_train_parser", "run_train", "add_corpus_parser", "run_corpus_toy", "run_corpus_build"]


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` (with its ``coeff`` subcommand) to ``subparsers``; returns the ``train`` parser.
    The parsed namespace carries ``func=run_train``."""
    train = subparsers.add_parser("train", help="train a model from a YAML config")
    kinds = train.add_subparsers(dest="train_command", required=True)
    coeff = kinds.add_parser(
        "coeff", help="train the coefficient flows (ExpFlow, PoseFlow); see docs/training.md"
    )
    coeff.add_argument("--config", type=Path, required=True, metavar="CONFIG.yaml",
                       help="training config, e.g. configs/coeff-tiny.yaml")
    coeff.add_argument("--out", type=Path, help="output folder (default: the config's 'out')")
    coeff.add_argument("--resume", action="store_true",
                       help="continue from the output folder's last checkpoint")
    coeff.add_argument("--device", choices=DEVICES, default="auto",
                       help="auto: cuda when available, else cpu")
    coeff.set_defaults(func=run_train)
    add_regressor_parser(kinds)
    add_report_parser(kinds)
    return train


def run_train(args: argparse.Namespace) -> int:
    """Run the parsed ``train`` command; returns the exit status (user errors raise `FlowVQError`)."""
    train_coeff(args.config, out=args.out, resume=args.resume, device=args.device)
    return 0


def add_corpus_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``corpus`` (with its ``toy`` subcommand) to ``subparsers``; returns the ``corpus`` parser."""
    corpus = subparsers.add_parser("corpus", help="write training datasets")
    kinds = corpus.add_subparsers(dest="corpus_command", required=True)
    toy = kinds.add_parser("toy", help="the synthetic toy task: mouth follows the audio, emotions add offsets")
    toy.add_argument("out", type=Path, help="dataset folder to write")
    toy.add_argument("--train", type=int, default=36, help="training sequences (default %(default)s)")
    toy.add_argument("--val", type=int, default=9, help="validation sequences (default %(default)s)")
    toy.add_argument("--frames", type=int, default=100, help="frames per sequence (default %(default)s)")
    toy.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    toy.set_defaults(func=run_corpus_toy)
    _add_build_parser(kinds)
    add_corpus_parsers(kinds)
    return corpus


def _add_build_parser(kinds: argparse._SubParsersAction) -> None:
    """``corpus build``: the synthetic emotional-speech corpus (`core.corpus.build.CorpusSpec`)."""
    spec = CorpusSpec()
    build = kinds.add_parser("build", help="synthesise the emotional-speech training corpus (TTS + visemes)")
    build.add_argument("out", type=Path, help="new folder to write")
    build.add_argument("--voices", nargs="+", default=list(spec.train_voices),
                       help="training voices (default %(default)s)")
    build.add_argument("--test-voices", nargs="+", default=list(spec.test_voices),
                       help="held-out test voices, never heard in training (default %(default)s)")
    build.add_argument("--sentences", type=int, default=spec.extra_sentences,
                       help="template sentences beside the 40 hand-written ones (default %(default)s)")
    build.add_argument("--heldout", type=int, default=spec.heldout_sentences,
                       help="sentences kept for val and test (default %(default)s)")
    build.add_argument("--repeats", type=int, default=spec.repeats,
                       help="takes of each (voice, sentence, emotion) (default %(default)s)")
    build.add_argument("--seed", type=int, default=spec.seed, help="(default %(default)s)")
    build.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="processes (default: the CPU count, %(default)s)")
    build.add_argument("--no-augment", action="store_true", help="keep the clean TTS audio")
    build.set_defaults(func=run_corpus_build)


def run_corpus_build(args: argparse.Namespace) -> int:
    """Build the corpus and print its size as one JSON line; returns 0."""
    spec = CorpusSpec(
        train_voices=tuple(args.voices), test_voices=tuple(args.test_voices), extra_sentences=args.sentences,
        heldout_sentences=args.heldout, repeats=args.repeats, seed=args.seed, augment=not args.no_augment,
    )
    with tqdm(desc="corpus build", unit="utt", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = build_corpus(args.out, spec, workers=args.workers, progress=progress)
    print(json.dumps({k: summary[k] for k in ("utterances", "hours", "total_hours", "voices")}))
    return 0


def run_corpus_toy(args: argparse.Namespace) -> int:
    """Write the toy dataset on the built-in face model; returns 0."""
    face = builtin()
    write_toy_dataset(args.out, face.names, face.id, args.train, args.val, args.frames, args.seed)
    print(f"wrote {args.train} training and {args.val} validation toy sequences of {args.frames} frames "
          f"to {args.out}")
    return 0
