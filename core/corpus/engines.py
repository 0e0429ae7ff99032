"""More synthetic voices from four speech engines, with phone timings from forced alignment.

Every voice here is named "<engine>:<voice>" (`ENGINE_VOICES`). The engine renders the text to a WAV
file in a temporary folder, `core.audio.load_audio` reads it (resampled to 16 kHz), and the phones are
`core.align.align_text` on that wave and the text: PocketSphinx places the pronouncing dictionary's
phones of every word in the audio (10 ms frames, American SAMPA as `core.align.ARPABET_TO_SAMPA` writes
it, whatever the voice's accent), with `SILENCE` around and between the words, contiguous from 0 s to
the end of the wave. So, unlike the MBROLA and espeak voices, the timings are measured on the audio, not
the ones it was rendered with. A text the aligner refuses (a word missing from its dictionary, a poor
fit) is a `SpeechError` carrying the aligner's reason.

The engines, and how `Prosody` maps onto each (1.0 is always the voice's own):

    Festival   text2wave -eval '(voice_<voice>)' -eval '<prosody>' -o out.wav text.txt
               Diphone voices (kal, ked, rab, don): rate divides the voice's Duration_Stretch; pitch
               multiplies the target_f0_mean of its linear-regression intonation (int_lr_params) and
               pitch * pitch_range its target_f0_std. The HTS voice (cmu_us_slt_arctic_hts): rate is
               hts_engine's speed (-r); pitch and pitch_range cannot be mapped (Festival's HTS module
               ignores hts_engine's half-tone shift -fm), so they are left at the voice's own.
    Flite      flite -voice <voice> -f text.txt -o out.wav --setf duration_stretch=<d> --setf f0_shift=<p>
               rate divides the voice's own duration_stretch (1.1 for kal16, 1 for the others); pitch
               is f0_shift, a ratio on every F0 value; pitch_range cannot be mapped.
    RHVoice    RHVoice-test -p <voice> -i text.txt -o out.wav -r <rate %> -t <pitch %>
               rate and pitch in whole percent of the voice's own; pitch_range cannot be mapped.
    SVOX Pico  pico2wave -l <language> -w out.wav "<speed level='<rate %>'><pitch level='<pitch %>'>text…"
               rate and pitch through Pico's speed and pitch markup, in whole percent (the markup is
               always written, so rate 1.0 is the same rendering path as any other). Pico's speed is
               not proportional: level 150 makes the utterance about a fifth shorter, not a third.
               pitch_range cannot be mapped. The text is XML-escaped.

Volume is a gain on the loaded samples for every engine (clipped to [-1, 1]), applied after the
alignment so that it never moves a phone; no engine's own volume option is used. All four engines are
deterministic: the same text, voice and prosody give the same bytes.

The programs are `text2wave`, `flite`, `RHVoice-test` and `pico2wave` on PATH, or those named by the
environment variables in `ENGINE_PROGRAMS`; `bash scripts/setup_speech.sh` installs them with the voices.
Festival, Flite and RHVoice silently fall back to another voice when the one asked for is missing, so a
voice counts as installed only when its data is on disk (Flite's are built in: when `flite -lv` lists it).
"""

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from core.align import ARPABET_TO_SAMPA, SILENCE, AlignmentError, align_text, pronunciations, words_of
from core.audio import load_audio
from core.corpus.speechtools import (
    SETUP_HINT, PhoEntry, Prosody, SpeechError, SpeechToolsMissingError, find_tool, run_tool,
)

__all__ = [
    "ENGINE_PROGRAMS", "ENGINE_VOICES", "EngineVoice",
    "installed_engine_voices", "render_engine", "aligner_symbols",
]

# engine -> (environment variable naming the program, its default name on PATH)
ENGINE_PROGRAMS: dict[str, tuple[str, str]] = {
    "festival": ("FLOWVQ_TEXT2WAVE", "text2wave"),
    "flite": ("FLOWVQ_FLITE", "flite"),
    "rhvoice": ("FLOWVQ_RHVOICE", "RHVoice-test"),
    "pico": ("FLOWVQ_PICO2WAVE", "pico2wave"),
}
_FESTIVAL_VOICES = Path("/usr/share/festival/voices")
_RHVOICE_VOICES = Path("/usr/share/RHVoice/voices")
_PICO_LANGUAGES = Path("/usr/share/pico/lang")


@dataclass(frozen=True)
class EngineVoice:
    """A voice of one of the engines in `ENGINE_PROGRAMS`.

    name: the voice as the engine's program takes it; data: the file or folder that must exist for
    the voice to be installed (None: built into the program); duration_stretch: Flite's own
    duration_stretch for the voice, which `--setf` replaces; hts: a Festival HTS voice (else diphone).
    """

    engine: str
    name: str
    data: Path | None
    sex: str
    duration_stretch: float = 1.0
    hts: bool = False


def _festival(name: str, accent: str, sex: str, hts: bool = False) -> tuple[str, EngineVoice]:
    """A Festival voice in /usr/share/festival/voices/<accent>/<name>."""
    return f"festival:{name}", EngineVoice("festival", name, _FESTIVAL_VOICES / accent / name, sex, hts=hts)


ENGINE_VOICES: dict[str, EngineVoice] = dict([
    _festival("cmu_us_slt_arctic_hts", "us", "female", hts=True),
    _festival("kal_diphone", "english", "male"),
    _festival("ked_diphone", "english", "male"),
    _festival("rab_diphone", "english", "male"),
    _festival("don_diphone", "english", "male"),
    # awb_time speaks only clock times; kal is kal16 at 8 kHz.
    ("flite:slt", EngineVoice("flite", "slt", None, "female")),
    ("flite:awb", EngineVoice("flite", "awb", None, "male")),
    ("flite:rms", EngineVoice("flite", "rms", None, "male")),
    ("flite:kal16", EngineVoice("flite", "kal16", None, "male", duration_stretch=1.1)),
    # evgeniy-eng and lyubov are Russian speakers' English voices.
    *((f"rhvoice:{name}", EngineVoice("rhvoice", name, _RHVOICE_VOICES / name, sex)) for name, sex in [
        ("alan", "male"), ("bdl", "male"), ("clb", "female"), ("slt", "female"),
        ("evgeniy-eng", "male"), ("lyubov", "female")]),
    *((f"pico:{language}", EngineVoice("pico", language, _PICO_LANGUAGES / f"{language}_ta.bin", "female"))
      for language in ("en-US", "en-GB")),
])


# ---------------------------------------------------------------------------------------------
# Which voices are installed
# ---------------------------------------------------------------------------------------------

def _program(engine: str) -> str:
    """The path of the engine's program; `SpeechToolsMissingError` (with the setup hint) when missing."""
    return find_tool(*ENGINE_PROGRAMS[engine])


def _flite_voices(flite: str) -> frozenset[str]:
    """The voices built into this flite (`flite -lv`: "Voices available: kal awb_time ...")."""
    return frozenset(run_tool([flite, "-lv"]).partition(":")[2].split())


def _has_voice(program: str, info: EngineVoice) -> bool:
    """Whether the voice's data is installed for the engine's program."""
    if info.data is None:
        return info.name in _flite_voices(program)
    return info.data.exists()


def installed_engine_voices() -> list[str]:
    """The names in `ENGINE_VOICES` whose program and voice data are installed, in table order (an
    engine whose program is missing or fails to list its voices has none)."""
    names = set()
    for engine in ENGINE_PROGRAMS:
        try:
            program = _program(engine)
            names |= {name for name, info in ENGINE_VOICES.items()
                      if info.engine == engine and _has_voice(program, info)}
        except SpeechError:
            continue
    return [name for name in ENGINE_VOICES if name in names]


# ---------------------------------------------------------------------------------------------
# The engines' commands
# ---------------------------------------------------------------------------------------------

def _percent(ratio: float) -> str:
    """A prosody ratio as whole percent: 1.25 -> '125'."""
    return str(round(100 * ratio))


def _festival_prosody(info: EngineVoice, prosody: Prosody) -> str:
    """The Scheme that applies `prosody` after the voice is selected (module docstring)."""
    if info.hts:
        return f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {prosody.rate!r}))))'
    f0_mean = f"(* {prosody.pitch!r} (cadr (assoc 'target_f0_mean int_lr_params)))"
    f0_std = f"(* {prosody.pitch * prosody.pitch_range!r} (cadr (assoc 'target_f0_std int_lr_params)))"
    return (
        f"(begin (Parameter.set 'Duration_Stretch (/ (Parameter.get 'Duration_Stretch) {prosody.rate!r}))"
        f" (set! int_lr_params (list (list 'target_f0_mean {f0_mean}) (list 'target_f0_std {f0_std})"
        " (assoc 'model_f0_mean int_lr_params) (assoc 'model_f0_std int_lr_params))))"
    )


def _command(program: str, info: EngineVoice, prosody: Prosody, text: str, folder: Path) -> list[str]:
    """The command line that renders `text` to folder/speech.wav (a text file is written for engines
    that read one)."""
    wav, text_file = folder / "speech.wav", folder / "text.txt"
    text_file.write_text(text + "\n")
    if info.engine == "festival":
        return [program, "-eval", f"(voice_{info.name})", "-eval", _festival_prosody(info, prosody),
                "-o", str(wav), str(text_file)]
    if info.engine == "flite":
        return [program, "-voice", info.name, "-f", str(text_file), "-o", str(wav),
                "--setf", f"duration_stretch={info.duration_stretch / prosody.rate!r}",
                "--setf", f"f0_shift={prosody.pitch!r}"]
    if info.engine == "rhvoice":
        return [program, "-p", info.name, "-i", str(text_file), "-o", str(wav),
                "-r", _percent(prosody.rate), "-t", _percent(prosody.pitch)]
    markup = (f"<speed level='{_percent(prosody.rate)}'><pitch level='{_percent(prosody.pitch)}'>"
              f"{escape(text)}</pitch></speed>")
    return [program, "-l", info.name, "-w", str(wav), markup]


def _render_wave(info: EngineVoice, text: str, prosody: Prosody) -> np.ndarray:
    """The engine's rendering of `text`, before the volume gain. Shapes: -> (N,) float32 at
    `SAMPLE_RATE` in [-1, 1]. Raises `SpeechToolsMissingError` for a missing program or voice, `SpeechError`
    for a failing program or one that writes no audio."""
    program = _program(info.engine)
    if not _has_voice(program, info):
        where = f"no data at {info.data}" if info.data else f"{Path(program).name} -lv does not list it"
        raise SpeechToolsMissingError(
            f"the {info.engine} voice '{info.name}' is not installed ({where}); {SETUP_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix=f"flowvq-{info.engine}-") as folder:
        command = _command(program, info, prosody, text, Path(folder))
        run_tool(command)
        wav = Path(folder) / "speech.wav"
        if not wav.is_file() or wav.stat().st_size <= 44:
            raise SpeechError(f"{Path(program).name} wrote no audio for {text!r} with voice '{info.name}'")
        return load_audio(wav)


# ---------------------------------------------------------------------------------------------
# Timings by forced alignment
# ---------------------------------------------------------------------------------------------

def _aligned_entries(aligned: Sequence[tuple[str, float, float]]) -> list[PhoEntry]:
    """Aligned (symbol, start s, end s) -> .pho entries (symbol, duration ms, no pitch points), empty
    spans dropped and neighbouring pauses merged into one."""
    entries: list[PhoEntry] = []
    for symbol, start, end in aligned:
        duration = round(1000.0 * (end - start), 4)  # whole samples: 1/16 ms
        if duration <= 0:
            continue
        if entries and symbol == SILENCE == entries[-1][0]:
            entries[-1] = (SILENCE, entries[-1][1] + duration, [])
        else:
            entries.append((symbol, duration, []))
    return entries


def render_engine(text: str, info: EngineVoice, prosody: Prosody) -> tuple[np.ndarray, list[PhoEntry]]:
    """Speak `text` with an engine voice and align the text to it (module docstring).

    The text is aligned to the wave before the volume gain, so the volume never moves a phone.
    Shapes: -> wave (N,) float32 at `SAMPLE_RATE` (gain applied, clipped to [-1, 1]), .pho entries whose
    durations (ms) add up to 1000 N / SAMPLE_RATE. Raises `SpeechError` for text without words or that
    the aligner refuses, and as `_render_wave` does."""
    try:
        words_of(text)
    except AlignmentError as err:
        raise SpeechError(f"the text {text!r} has nothing to pronounce ({err}); give at least one word") from err
    wave = _render_wave(info, text, prosody)
    try:
        aligned = align_text(wave, text)
    except AlignmentError as err:
        raise SpeechError(
            f"voice '{info.engine}:{info.name}' said {text!r}, but the text does not align: {err}"
        ) from err
    return np.clip(wave * np.float32(prosody.volume), -1.0, 1.0), _aligned_entries(aligned)


def aligner_symbols(sentences: Sequence[str]) -> frozenset[str]:
    """Every phone symbol the alignment can give an engine voice over `sentences`: `SILENCE` and the
    SAMPA of every pronunciation ("word", "word(2)", ...) of their words in the aligner's dictionary.
    Raises `SpeechError` naming a word the dictionary lacks."""
    symbols = {SILENCE}
    for word in {word for sentence in sentences for word in words_of(sentence)}:
        found = pronunciations(word)
        if not found:
            raise SpeechError(f"{word!r} is not in the aligner's pronouncing dictionary; spell it as it sounds")
        symbols |= {ARPABET_TO_SAMPA[phone] for pronunciation in found for phone in pronunciation.split()}
    return frozenset(symbols)
