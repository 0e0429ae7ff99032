"""The ``flowvq corpus`` subcommands that write training datasets:

* ``corpus toy OUT [--train N] [--val N] [--frames T] [--seed S]``: the synthetic toy dataset
  (`core.corpus.toy`) that ``configs/coeff-tiny.yaml`` trains on;
* ``corpus build OUT [--voices ...] [--test-voices ...] [--sentences N] [--heldout N] [--repeats R]
  [--seed S] [--workers W] [--no-augment] [--real-speech MANIFEST.tsv [--real-val-speakers S ...]
  [--real-repeats R]]``: the emotional-speech corpus (`core.corpus.build`), synthetic voices and
  optionally real recorded lines (`core.corpus.realspeech`); prints its size as one JSON line;
* ``corpus phones DIR [--workers W]``: writes each frame's viseme classes (exact and heard phones)
  into a corpus built before they were part of it (`core.corpus.build.add_phones`);

* ``corpus from-videos DIR --out OUT [--fps F] [--channels all|mouth] [--emotion E] [--val-fraction V]
  [--test-fraction T] [--seed S]``: talking-head videos, fitted frame by frame
  (`core.corpus.videos.from_videos`; ``mouth``: the mouth's movement from rest, to train beside the corpus);
* ``corpus import-coeffs DIR --format d3d|sadtalker --out OUT [--audio-dir A] [--fps F] [--emotion E]
  [--val-fraction V] [--test-fraction T] [--seed S] [--bfm BFM_model_front.mat]``: MEAD/HDTF
  Deep3DFaceRecon or SadTalker coefficient files with their audio (`core.corpus.readers.import_coeffs`).

The importers print one progress line per file to stderr and, at the end, one JSON line to stdout:
``{"sequences": {split: n}, "hours": {split: h}, "fps": F, "failures": [{"file", "reason"}]}``.
`add_corpus_parser` adds ``corpus`` with all of them to the ``flowvq`` parser (`core.cli`).
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from core.audio import DEFAULT_FPS
from core.corpus.build import CorpusSpec, add_phones, build_corpus
from core.corpus.toy import write_toy_dataset
from core.corpus.readers import COEFF_FORMATS, import_coeffs
from core.corpus.videos import FIT_CHANNELS, VIDEO_SUFFIXES, from_videos
from core.emotions import EMOTIONS
from core.face import builtin
from core.progress import progress_bar

__all__ = ["add_corpus_parser", "add_corpus_parsers", "run_corpus_toy", "run_corpus_build", "run_corpus_phones", "run_from_videos",
           "run_import_coeffs"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The options both importers share: output, emotion label and the split."""
    parser.add_argument("--out", type=Path, required=True, help="new (or empty) dataset folder to write")
    parser.add_argument("--emotion", choices=EMOTIONS,
                        help="one label for every file (default: MEAD's emotion from each path, else 'talk')")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="(default %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default %(default)s)")


def add_corpus_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``corpus`` (``toy`` and `add_corpus_parsers`'s subcommands) to ``subparsers``; returns it."""
    corpus = subparsers.add_parser("corpus", help="write training datasets")
    kinds = corpus.add_subparsers(dest="corpus_command", required=True)
    toy = kinds.add_parser("toy", help="the synthetic toy task: mouth follows the audio, emotions add offsets")
    toy.add_argument("out", type=Path, help="dataset folder to write")
    toy.add_argument("--train", type=int, default=36, help="training sequences (default %(default)s)")
    toy.add_argument("--val", type=int, default=9, help="validation sequences (default %(default)s)")
    toy.add_argument("--frames", type=int, default=100, help="frames per sequence (default %(default)s)")
    toy.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    toy.set_defaults(func=run_corpus_toy)
    add_corpus_parsers(kinds)
    return corpus


def run_corpus_toy(args: argparse.Namespace) -> int:
    """Write the toy dataset on the built-in face model; returns 0."""
    face = builtin()
    write_toy_dataset(args.out, face.names, face.id, args.train, args.val, args.frames, args.seed)
    print(f"wrote {args.train} training and {args.val} validation toy sequences of {args.frames} frames "
          f"to {args.out}")
    return 0


def add_corpus_parsers(corpus_subparsers: argparse._SubParsersAction) -> None:
    """Add ``build``, ``phones``, ``from-videos`` and ``import-coeffs`` to the ``corpus`` subparsers; each
    parsed namespace carries ``func`` (`run_corpus_build`, `run_corpus_phones`, `run_from_videos` or
    `run_import_coeffs`)."""
    _add_build_parser(corpus_subparsers)
    phones = corpus_subparsers.add_parser(
        "phones", help="add each frame's viseme classes (exact and heard phones) to a corpus built without them")
    phones.add_argument("dir", type=Path, help="a folder written by `flowvq corpus build`")
    phones.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes (default: the CPU count, %(default)s)")
    phones.set_defaults(func=run_corpus_phones)
    videos = corpus_subparsers.add_parser(
        "from-videos", help="fit the built-in face model to every frame of real talking-head videos"
    )
    videos.add_argument("dir", type=Path,
                        help=f"folder of {'/'.join(VIDEO_SUFFIXES)} videos (searched recursively)")
    videos.add_argument("--fps", type=float, help="dataset frame rate (default: the first video's)")
    videos.add_argument("--channels", choices=FIT_CHANNELS, default="all",
                        help="all: every expression channel as fitted; mouth: only the channels the corpus's "
                             "visemes move, as their movement from the speaker's rest, to train beside "
                             "`corpus build`'s corpus (default %(default)s)")
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
                          seed=args.seed, channels=args.channels, progress=_progress)
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
    build.add_argument("--real-speech", type=Path, metavar="MANIFEST",
                       help="also real recorded lines: a TSV with audio, text, speaker (and emotion) columns, "
                            "force-aligned (core.corpus.realspeech)")
    build.add_argument("--real-val-speakers", nargs="+", default=[], metavar="SPEAKER",
                       help="speakers of the manifest kept for val, never trained on")
    build.add_argument("--real-repeats", type=int, default=spec.real_repeats,
                       help="augmented copies of each real line (default %(default)s)")
    build.set_defaults(func=run_corpus_build)


def _brief(key: str, value: Any) -> Any:
    """A summary entry for the one-line print: the real lines' dropped list as a count."""
    if key == "real_speech":
        return {**value, "dropped": len(value["dropped"])}
    return value


def run_corpus_build(args: argparse.Namespace) -> int:
    """Build the corpus and print its size as one JSON line; returns 0."""
    spec = CorpusSpec(
        train_voices=tuple(args.voices), test_voices=tuple(args.test_voices), extra_sentences=args.sentences,
        heldout_sentences=args.heldout, repeats=args.repeats, seed=args.seed, augment=not args.no_augment,
        real_speech=str(args.real_speech) if args.real_speech else None,
        real_val_speakers=tuple(args.real_val_speakers), real_repeats=args.real_repeats,
    )
    with progress_bar("corpus build", "utt") as progress:
        summary = build_corpus(args.out, spec, workers=args.workers, progress=progress)
    keys = ("utterances", "hours", "total_hours", "voices", "real_speech")
    print(json.dumps({k: _brief(k, summary[k]) for k in keys if k in summary}))
    return 0


def run_corpus_phones(args: argparse.Namespace) -> int:
    """Add the phones to a built corpus and print the number of sequences as one JSON line; returns 0."""
    with progress_bar("corpus phones", "utt") as progress:
        count = add_phones(args.dir, workers=args.workers, progress=progress)
    print(json.dumps({"sequences": count}))
    return 0
