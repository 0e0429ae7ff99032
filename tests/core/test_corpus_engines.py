"""Tests for core.corpus.engines: real Festival, Flite, RHVoice and SVOX Pico voices, aligned by real
PocketSphinx; no mocks. A voice whose program or data is missing is skipped (`scripts/setup_speech.sh`)."""

import numpy as np
import pytest

from core.audio import SAMPLE_RATE
from core.corpus.engines import ENGINE_PROGRAMS, ENGINE_VOICES, installed_engine_voices
from core.corpus.speech import (
    SILENCE, Phone, Prosody, SpeechError, SpeechToolsMissingError, Utterance, available_voices, parse_pho,
    phone_symbols, synthesize,
)
from core.visemes import PHONE_VISEMES
from core.errors import FlowVQError
from tests.core.test_corpus_speech import VOWELS, rms, span

SENTENCE = "Bob, please pass the soup."
# The dictionary phones of SENTENCE, as the alignment places them between its pauses.
SENTENCE_PHONES = ["b", "A", "b", "p", "l", "i", "z", "p", "{", "s", "D", "@", "s", "u", "p"]
INSTALLED = installed_engine_voices()
FRAME = SAMPLE_RATE // 100  # 10 ms


def installed(voice: str):
    """`voice` as a test parameter, skipped when its program or data is not installed."""
    return pytest.param(voice, marks=pytest.mark.skipif(
        voice not in INSTALLED, reason=f"{voice} not installed: run `bash scripts/setup_speech.sh`"))


VOICE_PARAMS = [installed(voice) for voice in ENGINE_VOICES]
# One voice per engine for the checks that exercise an engine's option rather than a voice.
ENGINE_PARAMS = {engine: installed(next(name for name, info in ENGINE_VOICES.items() if info.engine == engine))
                 for engine in ENGINE_PROGRAMS}
# Voices whose engine maps Prosody.pitch (Festival's HTS voice does not: module docstring).
PITCH_PARAMS = [installed(voice) for voice in ("festival:kal_diphone", "flite:awb", "rhvoice:alan", "pico:en-US")]


@pytest.fixture(scope="module")
def spoken() -> dict[str, Utterance]:
    """SENTENCE in every installed engine voice at the default prosody."""
    return {voice: synthesize(SENTENCE, voice) for voice in INSTALLED}


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of consecutive 10 ms frames. Shapes: (n,) -> (n // FRAME,)."""
    frames = samples[:len(samples) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    return np.sqrt(np.mean(np.square(frames), axis=1))


def median_vowel_rms(utterance: Utterance) -> float:
    return float(np.median([rms(span(utterance.wave, p)) for p in utterance.phones if p.symbol in VOWELS]))


def median_f0(utterance: Utterance) -> float:
    """Median autocorrelation F0 (Hz, 70..400) of 30 ms windows every 10 ms inside the vowels: many
    windows, and no lag long enough for the subharmonic errors of a few low-pitched vowels."""
    estimates = []
    min_lag, max_lag, half = SAMPLE_RATE // 400, SAMPLE_RATE // 70, 3 * FRAME // 2
    for phone in utterance.phones:
        if phone.symbol not in VOWELS:
            continue
        for centre in range(round(phone.start * SAMPLE_RATE) + half, round(phone.end * SAMPLE_RATE) - half, FRAME):
            window = utterance.wave[centre - half:centre + half].astype(np.float64)
            window = window - window.mean()
            corr = np.correlate(window, window, mode="full")[len(window) - 1:]
            estimates.append(SAMPLE_RATE / (min_lag + int(np.argmax(corr[min_lag:max_lag]))))
    assert len(estimates) >= 10, "too few vowel windows to estimate F0"
    return float(np.median(estimates))


# ------------------------------------------------------------------------------------ listing

def test_installed_engine_voices_are_listed_after_the_other_voices_in_table_order():
    assert INSTALLED == [voice for voice in ENGINE_VOICES if voice in INSTALLED]
    voices = available_voices()
    assert voices[len(voices) - len(INSTALLED):] == INSTALLED
    assert not {voice for voice in voices[:len(voices) - len(INSTALLED)] if ":" in voice} & set(ENGINE_VOICES)


# ------------------------------------------------------------------------------------ the waves and phones

@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_every_engine_voice_speaks_a_float32_16khz_mono_wave(spoken, voice):
    wave = spoken[voice].wave
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) > SAMPLE_RATE // 2
    assert 0.05 < np.max(np.abs(wave)) <= 1.0


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_aligned_phones_are_contiguous_from_zero_to_the_end_of_the_wave(spoken, voice):
    utterance = spoken[voice]
    phones = utterance.phones
    assert phones[0].start == 0.0
    assert all(after.start == before.end for before, after in zip(phones, phones[1:]))
    assert all(phone.duration > 0 for phone in phones)
    assert phones[-1].end == pytest.approx(len(utterance.wave) / SAMPLE_RATE, abs=1e-9)
    assert not any(before.symbol == SILENCE == after.symbol for before, after in zip(phones, phones[1:]))
    assert [phone.symbol for phone in phones if phone.symbol != SILENCE] == SENTENCE_PHONES
    assert [symbol for symbol, _, _ in parse_pho(utterance.pho)] == [phone.symbol for phone in phones]
    assert {phone.symbol for phone in phones} <= phone_symbols(voice, [SENTENCE]) <= set(PHONE_VISEMES)


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_pauses_are_quiet_and_vowels_loud(spoken, voice):
    """Inside every aligned pause of 100 ms or more (three 10 ms alignment frames off each edge, where
    a stop's release or an onset may fall: rhvoice:bdl's final /p/ bursts 30 ms after its aligned end)
    the wave is quiet; the vowels are about as loud as the utterance or louder. Some voices make no
    such pause in SENTENCE (flite:rms, rhvoice:lyubov run straight on)."""
    utterance = spoken[voice]
    vowels = median_vowel_rms(utterance)
    pauses = [Phone(SILENCE, p.start + 0.03, p.end - 0.03)
              for p in utterance.phones if p.symbol == SILENCE and p.duration >= 0.1]
    assert all(rms(span(utterance.wave, pause)) < 0.1 * vowels for pause in pauses), pauses
    assert vowels > 0.8 * rms(utterance.wave)


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_the_lips_close_within_every_aligned_bilabial(spoken, voice):
    utterance = spoken[voice]
    vowels = median_vowel_rms(utterance)
    bilabials = [p for p in utterance.phones if p.symbol in {"p", "b", "m"}]
    assert len(bilabials) == 5
    for phone in bilabials:  # a quiet 10 ms frame in every /p b m/ (a /b/ or /m/ keeps a voice bar)
        limit = 0.3 if phone.symbol == "p" else 0.7
        assert frame_rms(span(utterance.wave, phone)).min() < limit * vowels, phone


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_same_inputs_give_an_identical_wave(spoken, voice):
    again = synthesize(SENTENCE, voice)
    assert np.array_equal(again.wave, spoken[voice].wave)
    assert again.phones == spoken[voice].phones


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_a_faster_rate_gives_a_shorter_utterance(spoken, voice):
    def speech_seconds(utterance: Utterance) -> float:
        words = [p for p in utterance.phones if p.symbol != SILENCE]
        return words[-1].end - words[0].start

    fast = synthesize(SENTENCE, voice, Prosody(rate=1.5))
    assert len(fast.wave) < 0.85 * len(spoken[voice].wave)
    assert speech_seconds(fast) < 0.85 * speech_seconds(spoken[voice])


@pytest.mark.parametrize("voice", PITCH_PARAMS)
def test_pitch_ratio_raises_the_measured_f0(spoken, voice):
    high = median_f0(synthesize(SENTENCE, voice, Prosody(pitch=1.3)))
    assert high / median_f0(spoken[voice]) == pytest.approx(1.3, abs=0.1)


@pytest.mark.parametrize("voice", ENGINE_PARAMS.values(), ids=ENGINE_PARAMS.keys())
def test_volume_half_halves_the_rms(spoken, voice):
    quiet = synthesize(SENTENCE, voice, Prosody(volume=0.5))
    assert rms(quiet.wave) / rms(spoken[voice].wave) == pytest.approx(0.5, rel=0.01)
    assert quiet.phones == spoken[voice].phones


# ------------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("engine, voice", [pytest.param(e, *p.values, marks=p.marks) for e, p in ENGINE_PARAMS.items()])
def test_a_missing_program_raises_tools_missing_with_the_setup_script(monkeypatch, engine, voice):
    env, _ = ENGINE_PROGRAMS[engine]
    monkeypatch.setenv(env, "flowvq-no-such-program")
    with pytest.raises(SpeechToolsMissingError) as caught:
        synthesize(SENTENCE, voice)
    message = str(caught.value)
    assert "'flowvq-no-such-program'" in message and env in message
    assert "bash scripts/setup_speech.sh" in message
    assert isinstance(caught.value, FlowVQError)
    assert not {name for name in installed_engine_voices() if ENGINE_VOICES[name].engine == engine}


@pytest.mark.parametrize("engine, voice", [pytest.param(e, *p.values, marks=p.marks) for e, p in ENGINE_PARAMS.items()])
def test_a_failing_program_is_a_speech_error_with_its_exit_status(monkeypatch, engine, voice):
    monkeypatch.setenv(ENGINE_PROGRAMS[engine][0], "false")
    with pytest.raises(SpeechError, match="false failed with exit status 1"):
        synthesize(SENTENCE, voice)


def test_an_unknown_engine_voice_is_refused_with_the_voice_list():
    with pytest.raises(SpeechError, match=r"unknown voice 'flite:kal'; choose one of us1, .*flite:slt, .*pico:en-GB"):
        synthesize(SENTENCE, "flite:kal")


@pytest.mark.parametrize("voice", [installed("pico:en-US")])
def test_text_with_nothing_to_say_is_refused(voice):
    with pytest.raises(SpeechError, match="give at least one word"):
        synthesize("...", voice)


@pytest.mark.parametrize("voice", [installed("rhvoice:slt")])
def test_a_word_the_aligner_does_not_know_is_a_speech_error_naming_it(voice):
    with pytest.raises(SpeechError, match="does not align: not in the pronouncing dictionary: blorptastic"):
        synthesize("Bob ate a blorptastic pie.", voice)
