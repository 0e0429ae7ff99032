"""The ``flowvq corpus`` subcommands that import real data into the training layout:

* ``corpus from-videos DIR --out OUT [--fps F] [--emotion E] [--val-fraction V] [--test-fraction T]
  [--seed S]``: talking-head videos, fitted frame by frame (`core.corpus.videos.from_videos`);
* ``corpus import-coeffs DIR --format d3d|sadtalker --out OUT [--audio-dir A] [--fps F] [--emotion E]
  [--val-fraction V] [--test-fraction T] [--seed S] [--bfm BFM_model_front.mat]``: MEAD/HDTF
  Deep3DFaceRecon or SadTalker coefficient files with their audio (`core.corpus.readers.import_coeffs`).

Each prints one progress line per file to stderr and, at the end, one JSON line to stdout:
``{"sequences": {split: n}, "hours": {split: h}, "fps": F, "failures": [{"file", "reason"}]}``.
`add_corpus_parsers` adds them to the ``corpus`` subparsers of ``flowvq`` (`core.train.cli`).
"""

import argparse
import sys
from pathlib import Path

from core.corpus.readers import COEFF_FORMATS, DEFAULT_FPS, import_coeffs
from core.corpus.videos import from_videos
from core.emotions import EMOTIONS

__all__ = ["add_corpus_parsers", "run_from_videos", "run_import_coeffs"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The options both importers share: output, emotion label and the split."""
    parser.add_argument("--out", type=Path, required=True, help="new (or empty) dataset folder to write")
    parser.add_argument("--emotion", choices=EMOTIONS,
                        help="one label for every file (default: MEAD's emotion from each path, else 'talk')")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="(default %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default %(default)s)")


def add_corpus_parsers(corpus_subparsers: argparse._SubParsersAction) -> None:
    """Add ``from-videos`` and ``import-coeffs`` to the ``corpus`` subparsers; each parsed
    namespace carries ``func`` (`run_from_videos` or `run_import_coeffs`)."""
    videos = corpus_subparsers.add_parser(
        "from-videos", help="fit the built-in face model to every frame of real talking-head videos"
    )
    videos.add_argument("dir", type=Path,
                        help="folder of .mp4/.mov/.mkv/.avi/.webm videos (searched recursively)")
    videos.add_argument("--fps", type=float, help="dataset frame rate (default: the first video's)")
    _add_common(videos)
    videos.set_defaults(func=run_from_videos)

    coeffs = corpus_subparsers.add_parser(
        "import-coeffs", help="MEAD/HDTF Deep3DFaceRecon (257) or SadTalker (70) coefficients on the BFM"
    )
    coeffs.add_argument("dir", type=Path, help="folder of coefficient files (searched recursively)")
    coeffs.add_argument("--format", choices=COEFF_FORMATS, required=True,
                        help="d3d: (T, 257) .mat key 'coeff' or .npy; "
                             "sadtalker: (T, 70) .mat key 'coeff_3dmm' or .npy")
    coeffs.add_argument("--audio-dir", type=Path,
                        help="where the audio lives when not beside each coefficient file (same name, "
                             ".wav/.flac/.mp3/.m4a)")
    coeffs.add_argument("--fps", type=float, default=DEFAULT_FPS,
                        help="frame rate of the coefficient rows (default %(default)s)")
    coeffs.add_argument("--bfm", type=Path, metavar="BFM_model_front.mat",
                        help="take the face-model id and names from this BFM file (checks it loads)")
    _add_common(coeffs)
    coeffs.set_defaults(func=run_import_coeffs)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_from_videos(args: argparse.Namespace) -> int:
    """Run ``corpus from-videos``; prints the JSON summary and returns 0 (user errors raise)."""
    summary = from_videos(args.dir, args.out, fps=args.fps, emotion=args.emotion,
                          val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                          seed=args.seed, progress=_progress)
    print(summary.to_json())
    return 0


def run_import_coeffs(args: argparse.Namespace) -> int:
    """Run ``corpus import-coeffs``; prints the JSON summary and returns 0 (user errors raise)."""
    summary = import_coeffs(args.dir, args.out, format=args.format, audio_dir=args.audio_dir, fps=args.fps,
                            emotion=args.emotion, val_fraction=args.val_fraction,
                            test_fraction=args.test_fraction, seed=args.seed, bfm_path=args.bfm,
                            progress=_progress)
    print(summary.to_json())
    return 0
