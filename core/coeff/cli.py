"""``flowvq generate``: audio -> a takes file, through `core.coeff.generator.CoeffGenerator`.

`add_generate_parser` adds the subcommand to the ``flowvq`` subparsers and sets ``func`` to
`run_generate`. Bad input raises a `FlowVQError`, which `core.cli.main` prints as one
``flowvq: error: ...`` line with exit status 2; the takes file is written (atomically) only after
every take was generated, so nothing is written when a command fails.
"""

import argparse
import sys
from pathlib import Path

from core.coeff.generator import (
    CoeffGenerator, GenerateSettings, reference_from_takes, source_from_portrait,
)
from core.coeff.sampler import MAX_INTENSITY, SampleSettings
from core.device import DEVICES
from core.errors import FlowVQError
from core.formats.takes import save_takes
from core.recognize import HEARING

__all__ = ["add_generate_parser", "run_generate"]


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``generate`` to the ``flowvq`` subparsers; returns its parser."""
    defaults = SampleSettings()
    parser = subparsers.add_parser("generate", help="generate expression and head-pose takes from speech audio")
    parser.add_argument("audio", type=Path, help="speech clip (WAV, FLAC, OGG/Vorbis or MP3)")
    parser.add_argument("--out", type=Path, required=True, help="the takes file to write (.json)")
    parser.add_argument("--emotion", default=defaults.emotion,
                        help="emotion class (default %(default)s); with --reference: the class the "
                             "reference is encoded under")
    parser.add_argument("--takes", type=int, default=defaults.takes, help="how many takes (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="take k uses seed + k (default %(default)s)")
    parser.add_argument("--temperature", type=float, default=defaults.temperature,
                        help="expression latent spread in [0, 2] (default %(default)s)")
    parser.add_argument("--pose-temperature", type=float, default=defaults.pose_temperature,
                        help="head-motion latent spread in [0, 2] (default %(default)s)")
    parser.add_argument("--style-temperature", type=float, default=defaults.style_temperature,
                        help="spread of each take's face style (brows, eyes, cheeks, nose) in [0, 2] "
                             "(default %(default)s)")
    parser.add_argument("--intensity", type=float, default=defaults.intensity,
                        help=f"emotion intensity: 0 talk, 1 the emotion's full expression, up to "
                             f"{MAX_INTENSITY:g} exaggerated (default %(default)s)")
    parser.add_argument("--blend", metavar="EMOTION",
                        help="a second emotion mixed into --emotion (e.g. --emotion sad --blend angry)")
    parser.add_argument("--blend-weight", type=float, default=defaults.blend_weight, metavar="W",
                        help="the share of --blend in [0, 1] (0.3: 70%% emotion, 30%% blend; default %(default)s)")
    parser.add_argument("--reference", type=Path, metavar="TAKES",
                        help="a takes file whose expression is transferred (emotion transfer)")
    parser.add_argument("--reference-take", type=int, default=0, metavar="K",
                        help="which take of --reference, 0-based (default %(default)s)")
    parser.add_argument("--source", type=Path, metavar="PORTRAIT",
                        help="portrait whose fitted expression is the source face (default: neutral)")
    parser.add_argument("--no-pose", dest="pose", action="store_false", help="no head motion (pose all zeros)")
    parser.add_argument("--no-blinks", dest="blinks", action="store_false",
                        help="no added blinks (the flows themselves hardly blink; see the README)")
    parser.add_argument("--no-gaze", dest="gaze", action="store_false",
                        help="no added eye movement (saccades, steady against the head's nods; see the README)")
    parser.add_argument("--pose-amount", type=float, default=defaults.pose_amount,
                        help="head-motion scale in [0, 2] (default %(default)s)")
    parser.add_argument("--manifold-blend", type=float, default=defaults.manifold_blend,
                        help="blend towards the latent bank in [0, 1]; 0 for weights without a bank "
                             "(default %(default)s)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--text", help="what the clip says: its phones, aligned to the audio, move the jaw, seal the "
                                     "lips on every /p b m/ and shape them on every /f v r/ (words as spoken; "
                                     "numbers spelled out)")
    text.add_argument("--text-file", type=Path, metavar="FILE", help="the same, read from a UTF-8 text file")
    parser.add_argument("--closures", choices=HEARING, default=GenerateSettings.closures,
                        help="without a text: seal the lips on the /p b m/ and shape them on the /f v r/ a "
                             "speech recogniser hears in the clip: phones (fast), words (slower, fewer false "
                             "closures) or off (default %(default)s)")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the model's)")
    parser.add_argument("--weights", type=Path, metavar="DIR",
                        help="coefficient weights directory (default: the installed default weights)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="(default %(default)s)")
    parser.set_defaults(func=run_generate)
    return parser


def _text(args: argparse.Namespace) -> str | None:
    """``--text``, or the contents of ``--text-file`` (lines joined by spaces), or None."""
    if args.text_file is None:
        return args.text
    try:
        return " ".join(args.text_file.read_text(encoding="utf-8").split())
    except (OSError, UnicodeDecodeError) as err:
        raise FlowVQError(f"cannot read the text file {args.text_file}: {err}") from err


def run_generate(args: argparse.Namespace) -> int:
    """Generate the takes, write ``args.out``, print one line per take; returns 0.

    Raises `FlowVQError` on bad input (see the module docstring), before anything is written.
    """
    generator = CoeffGenerator.load(args.weights, device=args.device)
    reference = (reference_from_takes(args.reference, generator.names, args.reference_take)
                 if args.reference is not None else None)
    source = source_from_portrait(args.source, generator.face) if args.source is not None else None
    settings = GenerateSettings(
        sample=SampleSettings(
            emotion=args.emotion, blend=args.blend, blend_weight=args.blend_weight,
            intensity=args.intensity, temperature=args.temperature,
            pose_temperature=args.pose_temperature, style_temperature=args.style_temperature,
            seed=args.seed, takes=args.takes, pose=args.pose,
            pose_amount=args.pose_amount, manifold_blend=args.manifold_blend, reference=reference,
            blinks=args.blinks, gaze=args.gaze,
        ),
        fps=args.fps,
        source_exp=source,
        text=_text(args),
        closures=args.closures,
    )
    takes = generator.generate(args.audio, settings, note=lambda message: print(f"note: {message}", file=sys.stderr))
    save_takes(args.out, takes)
    for take in takes:
        print(f"take {take.take}: seed {take.seed}, {take.emotion}, {take.frames} frames, "
              f"{take.duration:.2f} s at {take.fps:g} fps")
    print(f"wrote {len(takes)} take(s) to {args.out}")
    return 0
