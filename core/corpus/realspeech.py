"""Real recorded speech with its transcripts, for the corpus (`flowvq corpus build --real-speech`).

A speech manifest is a UTF-8 TSV file with a header row naming at least the columns ``audio`` (a
path relative to the manifest), ``text`` (what is said) and ``speaker`` (who says it; speakers are
kept apart across splits), optionally ``emotion`` (one of `core.emotions.EMOTIONS`; default "talk").
Each line is force-aligned to its recording (`core.align.align_text`, PocketSphinx's bundled English
model); lines that cannot be read or aligned (unknown words, digits, a transcript that fits the
audio poorly) are dropped and listed with the reason. The corpus then animates an aligned line the
way it animates a synthetic one: the same viseme curves from the phone timings, emotion style,
blinks, head motion and augmentation (`core.corpus.build.render_item`).
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from core.align import align_text
from core.audio import SAMPLE_RATE, load_audio
from core.emotions import EMOTIONS, TALK
from core.errors import FlowVQError

__all__ = ["REQUIRED_COLUMNS", "SpeechManifestError", "SpeechLine", "AlignedLine", "read_speech_manifest",
           "align_lines"]

REQUIRED_COLUMNS: tuple[str, ...] = ("audio", "text", "speaker")


class SpeechManifestError(FlowVQError):
    """A speech manifest that cannot be read: missing file or columns, empty fields, unknown emotion."""
    code = "speech_manifest"


@dataclass(frozen=True)
class SpeechLine:
    """One recorded line: its audio file, transcript, speaker and emotion label."""

    audio: Path
    text: str
    speaker: str
    emotion: str = TALK


@dataclass(frozen=True)
class AlignedLine:
    """A line with its aligned phones [(SAMPA symbol, start s, end s)] and its length in seconds."""

    line: SpeechLine
    phones: tuple[tuple[str, float, float], ...]
    seconds: float


def read_speech_manifest(path: str | Path) -> list[SpeechLine]:
    """The lines of a speech manifest (module docstring), in file order; raises
    `SpeechManifestError` naming the row of a bad line."""
    path = Path(path)
    if not path.is_file():
        raise SpeechManifestError(f"speech manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpeechManifestError(f"{path}: the header lacks the column(s) {', '.join(missing)} "
                                      f"(tab-separated; needs {', '.join(REQUIRED_COLUMNS)}, optionally emotion)")
        lines = [_line(path, row, number) for number, row in enumerate(reader, 2)]
    if not lines:
        raise SpeechManifestError(f"{path} lists no lines")
    return lines


def _line(manifest: Path, row: dict[str, str | None], number: int) -> SpeechLine:
    """One manifest row as a `SpeechLine`, its audio path resolved against the manifest's folder."""
    values = {key: (row.get(key) or "").strip() for key in (*REQUIRED_COLUMNS, "emotion")}
    empty = [key for key in REQUIRED_COLUMNS if not values[key]]
    if empty:
        raise SpeechManifestError(f"{manifest}, row {number}: empty {', '.join(empty)}")
    emotion = values["emotion"] or TALK
    if emotion not in EMOTIONS:
        raise SpeechManifestError(f"{manifest}, row {number}: unknown emotion {emotion!r}; known: {', '.join(EMOTIONS)}")
    return SpeechLine(manifest.parent / values["audio"], values["text"], values["speaker"], emotion)


def align_lines(lines: list[SpeechLine]) -> tuple[list[AlignedLine], list[dict[str, str]]]:
    """Read and align every line; returns (the aligned lines, the dropped ones as {"audio",
    "speaker", "reason"})."""
    aligned, dropped = [], []
    for line in lines:
        try:
            wave = load_audio(line.audio)
            phones = tuple(align_text(wave, line.text))
        except FlowVQError as err:
            dropped.append({"audio": str(line.audio), "speaker": line.speaker, "reason": str(err)})
            continue
        aligned.append(AlignedLine(line, phones, len(wave) / SAMPLE_RATE))
    return aligned, dropped
