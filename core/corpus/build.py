"""`flowvq corpus build`: the synthetic emotional-speech corpus in the coefficient training layout.

Every utterance is one (voice, sentence, emotion, repeat):

    text      `core.corpus.speech.SENTENCES` plus seeded `core.corpus.text.template_sentences`
    voice     a speech voice; the emotion's prosody (`performance.prosody_values`) sets its rate,
              pitch, pitch range and loudness
    audio     the synthesised wave through `core.corpus.augment.augment_wave` (reverb, band limits,
              codec, noise, loudness), then the normalised log-mel features at the corpus fps
    exp       clip(visemes(phones) + emotion expression + blinks + beta0, 0, 1): the lip shapes
              follow the exact phone timings; the expression (`performance.emotion_curves`) is the
              emotion's apex x intensity moving with the line; intensity is drawn from
              `CorpusSpec.intensity` (from subtle to full) and stored with the sequence
    pose      `performance.head_motion` driven by the clean wave's per-frame loudness
    beta0     `performance.resting_expression`: a random source face's resting expression
    phones    each frame's viseme class from the exact phones (`core.visemes.frame_visemes`), and
    heard     the same from the phones the recogniser hears in the augmented wave
              (`core.recognize.recognize_phones`), for a model with phone input

Real recorded lines (``CorpusSpec.real_speech``, a speech manifest, `core.corpus.realspeech`) join
as extra utterances: their own audio and force-aligned phones instead of a synthetic voice's, each
line ``real_repeats`` times (its own augmentation, resting face, blinks and head motion each time),
labelled with the manifest's emotion (default "talk"), in train, or in val for the speakers of
``real_val_speakers``; lines that cannot be aligned are dropped and listed in ``corpus.json``.

Splits are by voice and by text: train = the training voices on the training sentences, val = the
training voices on the held-out sentences, test = the test voices (never heard in training) on the
held-out sentences. Everything derives from `CorpusSpec.seed`: the same spec writes the same corpus
on any machine with the same speech programs (each utterance seeds its own generator from
(seed, voice, sentence, emotion, repeat), so the worker count does not matter).

The output folder holds the dataset of `core.formats.dataset` (meta.json, train/ val/ test/ NAME.npz),
``audio/NAME.wav`` (the augmented 16 kHz wave each sequence's features came from) and
``corpus.json``: the spec, the size (utterances and hours per split) and one record per sequence
(split, voice, text, emotion, intensity, prosody, augmentation, phones as [symbol, start, end]).
`add_phones` (``flowvq corpus phones``) writes the phones and heard classes into a corpus built
before they were part of it.
"""

import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import DEFAULT_FPS, FRAME_FEATURES, SAMPLE_RATE, load_audio, n_video_frames, wave_features
from core.corpus.augment import augment_wave
from core.blinks import blink_curves
from core.corpus.realspeech import AlignedLine, align_lines, read_speech_manifest
from core.corpus.performance import emotion_curves, head_motion, prosody_values, resting_expression
from core.corpus.speech import FOREIGN_VOICES, SENTENCES, Prosody, available_voices, synthesize
from core.corpus.text import template_sentences
from core.recognize import RecognitionError, recognize_phones
from core.visemes import frame_visemes, hold_lip_consonants, seal_bilabials, viseme_curves
from core.emotions import EMOTIONS
from core.errors import FlowVQError
from core.expression import frame_energy
from core.face import builtin
from core.fileio import write_atomic
from core.formats.dataset import (
    CoeffSequence, DatasetMeta, read_meta, read_sequence, wave_file, write_meta, write_sequence, write_wave,
)

__all__ = [
    "CORPUS_FILE", "CorpusError", "CorpusSpec", "CorpusItem", "plan_corpus",
    "render_item", "build_corpus", "read_manifest", "heard_visemes", "add_phones",
]

CORPUS_FILE = "corpus.json"
CORPUS_FORMAT = "flowvq-corpus"


class CorpusError(FlowVQError):
    """A corpus specification or output folder that cannot be used."""
    code = "corpus"


@dataclass(frozen=True)
class CorpusSpec:
    """What `build_corpus` writes. Voices are `core.corpus.speech` voice names; ``extra_sentences``
    template sentences join the 40 hand-written ones; ``heldout_sentences`` of all sentences (a
    seeded choice) are kept for val and test; every (voice, sentence) is spoken once per emotion and
    repeat; ``intensity`` is the uniform range of the emotion style's strength."""

    train_voices: tuple[str, ...] = (
        "us1", "us2", "en1", *FOREIGN_VOICES,
        "espeak:en-us", "espeak:en-us+m3", "espeak:en+f3", "espeak:en-gb-x-rp+m7", "espeak:en+klatt",
        "espeak:en-us+f4", "espeak:en+f5", "espeak:en-us+m1", "espeak:en+m2", "espeak:en-us+m5",
    )
    test_voices: tuple[str, ...] = ("us3", "espeak:en-us+f2")
    extra_sentences: int = 60
    heldout_sentences: int = 15
    emotions: tuple[str, ...] = EMOTIONS
    repeats: int = 1
    intensity: tuple[float, float] = (0.1, 1.0)
    fps: float = DEFAULT_FPS
    augment: bool = True
    seed: int = 0
    real_speech: str | None = None
    real_val_speakers: tuple[str, ...] = ()
    real_repeats: int = 3

    def check(self) -> None:
        """Raise `CorpusError` for voices that are unknown, missing or in both splits, unknown
        emotions, or counts and ranges out of bounds."""
        installed = set(available_voices())
        for voice in self.train_voices + self.test_voices:
            if voice not in installed:
                raise CorpusError(
                    f"voice {voice!r} is not installed (installed: {', '.join(sorted(installed)) or 'none'}); "
                    "run `bash scripts/setup_speech.sh`"
                )
        shared = set(self.train_voices) & set(self.test_voices)
        if shared:
            raise CorpusError(f"voices {sorted(shared)} are in both the training and the test voices")
        if not self.train_voices:
            raise CorpusError("the corpus needs at least one training voice")
        unknown = [e for e in self.emotions if e not in EMOTIONS]
        if unknown or not self.emotions:
            raise CorpusError(f"unknown or no emotions {unknown}; known: {', '.join(EMOTIONS)}")
        total = len(SENTENCES) + self.extra_sentences
        if self.extra_sentences < 0 or not 0 <= self.heldout_sentences < total:
            raise CorpusError(
                f"need extra_sentences >= 0 and 0 <= heldout_sentences < {total} sentences in all"
            )
        if self.repeats < 1:
            raise CorpusError(f"repeats must be >= 1, got {self.repeats}")
        low, high = self.intensity
        if not 0.0 <= low <= high <= 1.0:
            raise CorpusError(f"intensity must be a range inside [0, 1], got {self.intensity}")
        if not 1.0 <= self.fps <= 240.0:
            raise CorpusError(f"fps must be in [1, 240], got {self.fps}")
        if self.real_repeats < 1:
            raise CorpusError(f"real_repeats must be >= 1, got {self.real_repeats}")
        if self.real_val_speakers and self.real_speech is None:
            raise CorpusError("real_val_speakers names speakers of a speech manifest: give real_speech too")


@dataclass(frozen=True)
class CorpusItem:
    """One utterance to render: its sequence name, split, voice, text, emotion and its own seed; for
    a real recorded line also its audio file and aligned phones (its voice is ``real:SPEAKER``)."""

    name: str
    split: str
    voice: str
    text: str
    emotion: str
    seed: int
    audio: str | None = None  # a real recording (then ``phones`` are its aligned phones)
    phones: tuple[tuple[str, float, float], ...] = ()


def _sentences(spec: CorpusSpec) -> tuple[list[str], list[str]]:
    """(training sentences, held-out sentences), both in a seeded order."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0xC0]))
    extra = [s for s in template_sentences(spec.extra_sentences + len(SENTENCES), rng) if s not in SENTENCES]
    sentences = list(SENTENCES) + extra[: spec.extra_sentences]
    order = rng.permutation(len(sentences))
    held = set(order[: spec.heldout_sentences].tolist())
    return ([s for i, s in enumerate(sentences) if i not in held],
            [s for i, s in enumerate(sentences) if i in held])


def plan_corpus(spec: CorpusSpec, lines: Sequence[AlignedLine] = ()) -> list[CorpusItem]:
    """Every utterance of the corpus, in a fixed order (see the module docstring for the splits);
    ``lines`` are the aligned real lines of ``spec.real_speech``, which come last."""
    train_text, held_text = _sentences(spec)
    everything = train_text + held_text
    plan = [("train", v, train_text) for v in spec.train_voices]
    plan += [("val", v, held_text) for v in spec.train_voices]
    plan += [("test", v, held_text) for v in spec.test_voices]
    voices = list(spec.train_voices + spec.test_voices)
    items = []
    for split, voice, texts in plan:
        for text in texts:
            sentence = everything.index(text)
            for emotion in spec.emotions:
                for repeat in range(spec.repeats):
                    key = [spec.seed, voices.index(voice), sentence, EMOTIONS.index(emotion), repeat]
                    seed = int(np.random.SeedSequence(key).generate_state(1)[0])
                    name = f"{_safe(voice)}_{sentence:03d}_{emotion}_{repeat}"
                    items.append(CorpusItem(name, split, voice, text, emotion, seed))
    return items + _real_items(spec, lines)


def _safe(label: str) -> str:
    """A voice or speaker name as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in label)


def _real_items(spec: CorpusSpec, lines: Sequence[AlignedLine]) -> list[CorpusItem]:
    """The real lines, ``spec.real_repeats`` times each, seeded by (seed, line number, repeat)."""
    items = []
    for number, aligned in enumerate(lines):
        line = aligned.line
        split = "val" if line.speaker in spec.real_val_speakers else "train"
        for repeat in range(spec.real_repeats):
            seed = int(np.random.SeedSequence([spec.seed, 0x5EA1, number, repeat]).generate_state(1)[0])
            items.append(CorpusItem(f"real-{_safe(line.speaker)}_{number:04d}_{line.emotion}_{repeat}", split,
                                    f"real:{line.speaker}", line.text, line.emotion, seed, str(line.audio),
                                    aligned.phones))
    return items


def render_item(
    item: CorpusItem, names: Sequence[str], spec: CorpusSpec
) -> tuple[CoeffSequence, np.ndarray, dict[str, Any]]:
    """Synthesise and animate one utterance. Shapes: -> (the sequence, the (N,) float32 wave its
    audio features came from, its manifest record)."""
    rng = np.random.default_rng(item.seed)
    if item.audio is not None:
        clean, phones, prosody = load_audio(item.audio), list(item.phones), None
    else:
        prosody = Prosody(**prosody_values(item.emotion, rng))
        utterance = synthesize(item.text, item.voice, prosody)
        clean, phones = utterance.wave, [(p.symbol, p.start, p.end) for p in utterance.phones]
    frames = n_video_frames(len(clean), spec.fps)
    if spec.augment:
        wave, augmentation = augment_wave(clean, rng)
        steps = list(augmentation.steps) + [f"gain {augmentation.gain_db:+.1f} dB"]
    else:
        wave, steps = clean, []
    audio = wave_features(wave, spec.fps, frames)
    intensity = float(rng.uniform(*spec.intensity))
    beta0 = resting_expression(names, rng)
    energy = frame_energy(clean, SAMPLE_RATE, spec.fps, frames)
    exp = (viseme_curves(phones, names, spec.fps, frames)
           + emotion_curves(names, item.emotion, intensity, phones, energy, spec.fps, rng)
           + blink_curves(names, item.emotion, frames, spec.fps, rng) + beta0[None, :])
    hold_lip_consonants(exp, names, phones, spec.fps)  # the emotion's style must not part the /f v r/ lips
    seal_bilabials(exp, names, phones, spec.fps)  # nor the sealed ones
    pose = head_motion(energy, item.emotion, spec.fps, rng)
    sequence = CoeffSequence(item.name, np.clip(exp, 0.0, 1.0), pose, audio, item.emotion, beta0,
                             round(intensity, 4), phones=frame_visemes(phones, spec.fps, frames),
                             heard=heard_visemes(wave, spec.fps, frames))
    record = {
        "name": item.name, "split": item.split, "voice": item.voice, "text": item.text,
        "emotion": item.emotion, "intensity": round(intensity, 4),
        "prosody": {k: round(v, 4) for k, v in asdict(prosody).items()} if prosody else None,
        "augmentation": steps, **({"audio_source": item.audio} if item.audio else {}),
        "seconds": round(len(wave) / SAMPLE_RATE, 4),
        "phones": [[s, round(a, 4), round(b, 4)] for s, a, b in phones],
    }
    return sequence, wave, record


def heard_visemes(wave: np.ndarray, fps: float, frames: int) -> np.ndarray | None:
    """Each frame's viseme class from the phones the recogniser hears in ``wave``; None when it
    cannot take the clip. Shapes: wave (N,) at 16 kHz -> (frames,) uint8."""
    try:
        return frame_visemes(recognize_phones(wave), fps, frames)
    except RecognitionError:
        return None


def _add_item_phones(root: Path, record: dict[str, Any], meta: DatasetMeta) -> None:
    """Write one manifest record's sequence again with its phones and heard classes."""
    sequence = read_sequence(root / record["split"] / f"{record['name']}.npz", meta)
    if sequence.phones is None:
        sequence.phones = frame_visemes([tuple(p) for p in record["phones"]], meta.fps, sequence.frames)
    if sequence.heard is None:
        wave = load_audio(wave_file(root, record["name"]))
        sequence.heard = heard_visemes(wave, meta.fps, sequence.frames)
    write_sequence(root, record["split"], sequence)


def add_phones(
    root: str | Path, *, workers: int = 1, progress: Callable[[int, int], None] | None = None
) -> int:
    """Give every sequence of the corpus at ``root`` that lacks them its phones (from the
    manifest's exact phones) and heard classes (recognised in its audio/NAME.wav), in place;
    returns the number of sequences. ``progress(done, total)`` after each."""
    root = Path(root)
    manifest = read_manifest(root)
    records = manifest["sequences"]
    add = partial(_add_item_phones, root, meta=read_meta(root))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool:
        for done, _ in enumerate(pool.map(add, records) if pool else map(add, records), 1):
            if progress:
                progress(done, len(records))
    return len(records)


def _write_item(root: Path, item: CorpusItem, names: tuple[str, ...], spec: CorpusSpec) -> dict[str, Any]:
    """Render one item and write its NAME.npz and audio/NAME.wav; returns its manifest record."""
    sequence, wave, record = render_item(item, names, spec)
    write_wave(root, item.name, wave)
    write_sequence(root, item.split, sequence)
    return record


def _check_output(root: Path) -> None:
    """Refuse an output folder that already holds files (a corpus is never written over)."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise CorpusError(f"{root} already exists and is not an empty folder; choose a new output folder")


def build_corpus(
    out: str | Path,
    spec: CorpusSpec = CorpusSpec(),
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the corpus of ``spec`` to the new folder ``out``; returns the summary also stored in
    ``corpus.json`` ({"utterances": {split: n}, "hours": {split: h}, ...}). ``progress(done, total)``
    is called after each utterance."""
    spec.check()
    root = Path(out)
    _check_output(root)
    face = builtin()
    write_meta(root, DatasetMeta(fps=spec.fps, face_model=face.id, names=face.names, audio_width=FRAME_FEATURES))
    lines, dropped = align_lines(read_speech_manifest(spec.real_speech)) if spec.real_speech else ([], [])
    items = plan_corpus(spec, lines)
    render = partial(_write_item, root, names=face.names, spec=spec)
    records = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else nullcontext() as pool:
        for done, record in enumerate(pool.map(render, items) if pool else map(render, items), 1):
            records.append(record)
            if progress:
                progress(done, len(items))
    summary = _summary(spec, records)
    if spec.real_speech:
        summary["real_speech"] = _real_summary(spec, lines, dropped)
    manifest = {"format": CORPUS_FORMAT, "version": 1, **summary, "sequences": records}
    write_atomic(root / CORPUS_FILE, lambda path: Path(path).write_text(json.dumps(manifest, indent=1)))
    return summary


def _summary(spec: CorpusSpec, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec, the voices per split, and utterances and hours per split."""
    splits = ("train", "val", "test")
    seconds = {s: sum(r["seconds"] for r in records if r["split"] == s) for s in splits}
    return {
        "spec": asdict(spec),
        "voices": {"train": list(spec.train_voices), "val": list(spec.train_voices),
                   "test": list(spec.test_voices)},
        "utterances": {s: sum(r["split"] == s for r in records) for s in splits},
        "hours": {s: round(seconds[s] / 3600.0, 4) for s in splits},
        "total_hours": round(math.fsum(seconds.values()) / 3600.0, 4),
    }


def _real_summary(spec: CorpusSpec, lines: Sequence[AlignedLine], dropped: list[dict[str, str]]) -> dict[str, Any]:
    """The real lines: how many were listed, aligned and dropped (with why), and the aligned
    minutes per speaker in each split (before the ``real_repeats`` copies)."""
    minutes: dict[str, dict[str, float]] = {"train": {}, "val": {}}
    for aligned in lines:
        split = "val" if aligned.line.speaker in spec.real_val_speakers else "train"
        speakers = minutes[split]
        speakers[aligned.line.speaker] = round(speakers.get(aligned.line.speaker, 0.0) + aligned.seconds / 60, 3)
    return {"manifest": spec.real_speech, "lines": len(lines) + len(dropped), "aligned": len(lines),
            "dropped": dropped, "minutes": minutes}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``corpus.json`` of a built corpus, with a `CorpusError` naming the file when it is missing
    or not a corpus manifest."""
    path = Path(root) / CORPUS_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CorpusError(f"{path} does not exist; build the corpus with `flowvq corpus build`") from None
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path} is not readable JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != CORPUS_FORMAT:
        raise CorpusError(f"{path} is not a {CORPUS_FORMAT} manifest")
    return manifest
