"""The ``flowvq train codebook`` and ``flowvq train vqig`` subcommands (`core.vq.train`)::

    flowvq train codebook --config configs/codebook-tiny.yaml [--out DIR] [--resume] [--device auto|cpu|cuda]
    flowvq train vqig --config configs/vqig-tiny.yaml [--out DIR] [--resume] [--device auto|cpu|cuda]

torchrun starts the same command line on every rank::

    torchrun --standalone --nproc_per_node 2 -m core.cli train vqig --config configs/vqig-paper-512.yaml
"""

import argparse
from collections.abc import Callable
from pathlib import Path

from core.device import DEVICES
from core.vq.train import train_codebook, train_vqig

__all__ = ["add_vq_train_parsers", "run_train_codebook", "run_train_vqig"]


def _add_command(train_subparsers: argparse._SubParsersAction, name: str, help_text: str, example: str,
                 func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    parser = train_subparsers.add_parser(name, help=help_text)
    parser.add_argument("--config", type=Path, required=True, metavar="CONFIG.yaml",
                        help=f"training config, e.g. {example}")
    parser.add_argument("--out", type=Path, help="output folder (default: the config's 'out')")
    parser.add_argument("--resume", action="store_true", help="continue from the output folder's last checkpoint")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: cuda when available, else cpu")
    parser.set_defaults(func=func)
    return parser


def add_vq_train_parsers(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``codebook`` and ``vqig`` to the ``train`` subparsers; each namespace carries its ``func``."""
    _add_command(train_subparsers, "codebook", "train the codebook autoencoder (E_h, C, D_h); see docs/vqig.md",
                 "configs/codebook-tiny.yaml", run_train_codebook)
    _add_command(train_subparsers, "vqig", "train the VQ image generator on a trained codebook; see docs/vqig.md",
                 "configs/vqig-tiny.yaml", run_train_vqig)


def run_train_codebook(args: argparse.Namespace) -> int:
    """Run ``train codebook``; returns 0 (user errors raise `core.errors.FlowVQError`)."""
    train_codebook(args.config, out=args.out, resume=args.resume, device=args.device)
    return 0


def run_train_vqig(args: argparse.Namespace) -> int:
    """Run ``train vqig``; returns 0 (user errors raise `core.errors.FlowVQError`)."""
    train_vqig(args.config, out=args.out, resume=args.resume, device=args.device)
    return 0
