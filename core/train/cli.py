"""The ``flowvq train`` subcommands:

* ``train coeff --config CONFIG.yaml [--out DIR] [--resume] [--device auto|cpu|cuda]``;
* ``train regressor ...``: the MSE baseline of ``flowvq eval`` (`core.eval.cli`);
* ``train report RUN [--eval REPORT.json]``: loss curves and a summary (`core.train.report`);
* ``train codebook ...`` and ``train vqig ...``: the image generator (`core.train.vq`), same options
  as ``train coeff``;

`add_train_parser` adds them to the ``flowvq`` parser (`core.cli`), whose dispatcher calls
`run_train`. torchrun starts the same command line on every rank::

    torchrun --standalone --nproc_per_node 2 -m core.cli train coeff --config CONFIG.yaml
"""

import argparse
from collections.abc import Callable
from pathlib import Path

from core.device import DEVICES
from core.eval.cli import add_regressor_parser
from core.train.loop import train_coeff
from core.train.report import add_report_parser
from core.train.vq import train_codebook, train_vqig

__all__ = ["add_train_parser", "run_train"]


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` (with its subcommands) to ``subparsers``; returns the ``train`` parser. The
    ``coeff``, ``codebook`` and ``vqig`` namespaces carry ``func=run_train`` and their ``trainer``."""
    train = subparsers.add_parser("train", help="train a model from a YAML config")
    kinds = train.add_subparsers(dest="train_command", required=True)
    _add_run_command(kinds, "coeff", "train the coefficient flows (ExpFlow, PoseFlow); see docs/training.md",
                     "configs/coeff-tiny.yaml", train_coeff)
    add_regressor_parser(kinds)
    add_report_parser(kinds)
    _add_run_command(kinds, "codebook", "train the codebook autoencoder (E_h, C, D_h); see docs/vqig.md",
                     "configs/codebook-tiny.yaml", train_codebook)
    _add_run_command(kinds, "vqig", "train the VQ image generator on a trained codebook; see docs/vqig.md",
                     "configs/vqig-tiny.yaml", train_vqig)
    return train


def _add_run_command(
    kinds: argparse._SubParsersAction, name: str, help_text: str, example: str, trainer: Callable[..., Path],
) -> None:
    """A ``train NAME --config CONFIG.yaml [--out DIR] [--resume] [--device ...]`` subcommand that runs
    ``trainer(config, out=, resume=, device=)``."""
    parser = kinds.add_parser(name, help=help_text)
    parser.add_argument("--config", type=Path, required=True, metavar="CONFIG.yaml",
                        help=f"training config, e.g. {example}")
    parser.add_argument("--out", type=Path, help="output folder (default: the config's 'out')")
    parser.add_argument("--resume", action="store_true", help="continue from the output folder's last checkpoint")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when available, else cpu")
    parser.set_defaults(func=run_train, trainer=trainer)


def run_train(args: argparse.Namespace) -> int:
    """Run a parsed ``train coeff|codebook|vqig`` command; returns the exit status (user errors raise
    `FlowVQError`)."""
    args.trainer(args.config, out=args.out, resume=args.resume, device=args.device)
    return 0
