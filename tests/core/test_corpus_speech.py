"""Tests for core.corpus.speech: real espeak-ng and mbrola with the installed MBROLA voices, no mocks."""

import shutil

import numpy as np
import pytest

from core.audio import HOP_LENGTH, SAMPLE_RATE
from core.corpus.speech import (
    ESPEAK_ENV, MBROLA_ENV, PROSODY_LIMITS, SENTENCES, SILENCE, VOICES, Phone, Prosody, SpeechError,
    SpeechToolsMissingError, Utterance, available_voices, format_pho, parse_pho, phone_symbols, synthesize,
)
from core.errors import FlowVQError

SENTENCE = "Bob, please pass the soup."
VOICE_NAMES = list(VOICES)
# Vowel symbols of both SAMPA families (US voices and en1), for energy and F0 checks.
VOWELS = {"i", "I", "E", "{", "A", "O", "V", "U", "u", "@", "EI", "AI", "OI", "@U", "aU",
          "i:", "A:", "O:", "u:", "3:", "Q", "e", "eI", "aI"}

needs_voices = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("mbrola")) or sorted(available_voices()) != sorted(VOICES),
    reason="espeak-ng / mbrola voices not installed: run `bash scripts/setup_speech.sh`",
)


@pytest.fixture(scope="module")
def spoken() -> dict[str, Utterance]:
    """SENTENCE in every voice at the default prosody."""
    return {voice: synthesize(SENTENCE, voice) for voice in VOICES}


def span(wave: np.ndarray, phone: Phone) -> np.ndarray:
    """The samples of one phone. Shapes: (N,) -> (n,)."""
    return wave[round(phone.start * SAMPLE_RATE):round(phone.end * SAMPLE_RATE)]


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def median_f0(utterance: Utterance) -> float:
    """Median autocorrelation F0 (Hz) over the middle 30 ms of every vowel of 50 ms or more."""
    estimates = []
    min_lag, max_lag = SAMPLE_RATE // 400, SAMPLE_RATE // 50
    for phone in utterance.phones:
        if phone.symbol not in VOWELS or phone.duration < 0.05:
            continue
        centre, half = round(phone.centre * SAMPLE_RATE), int(0.015 * SAMPLE_RATE)
        frame = utterance.wave[centre - half:centre + half].astype(np.float64)
        frame = frame - frame.mean()
        corr = np.correlate(frame, frame, mode="full")[len(frame) - 1:]
        lag = min_lag + int(np.argmax(corr[min_lag:max_lag]))
        estimates.append(SAMPLE_RATE / lag)
    assert estimates, "no vowel long enough to estimate F0"
    return float(np.median(estimates))


# ------------------------------------------------------------------------------------ the waves

@needs_voices
@pytest.mark.parametrize("voice", VOICE_NAMES)
def test_every_voice_speaks_a_float32_16khz_mono_wave(spoken, voice):
    wave = spoken[voice].wave
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) > SAMPLE_RATE // 2
    assert np.max(np.abs(wave)) > 0.05


@needs_voices
@pytest.mark.parametrize("voice", VOICE_NAMES)
def test_wave_lasts_as_long_as_the_phone_timings_within_one_hop(spoken, voice):
    utterance = spoken[voice]
    assert abs(len(utterance.wave) - utterance.phones[-1].end * SAMPLE_RATE) <= HOP_LENGTH


@needs_voices
@pytest.mark.parametrize("voice", VOICE_NAMES)
def test_phones_are_contiguous_from_zero_and_match_the_pho(spoken, voice):
    phones = spoken[voice].phones
    assert phones[0].start == 0.0
    assert all(after.start == before.end for before, after in zip(phones, phones[1:]))
    assert all(phone.duration > 0 for phone in phones)
    pho = parse_pho(spoken[voice].pho)
    assert [phone.symbol for phone in phones] == [symbol for symbol, _, _ in pho]
    assert phones[-1].end == pytest.approx(sum(duration for _, duration, _ in pho) / 1000)


@needs_voices
@pytest.mark.parametrize("voice", VOICE_NAMES)
def test_pauses_are_quiet_and_vowels_loud(spoken, voice):
    utterance = spoken[voice]
    pauses = [rms(span(utterance.wave, p)) for p in utterance.phones if p.symbol == SILENCE and p.duration >= 0.1]
    vowels = [rms(span(utterance.wave, p)) for p in utterance.phones if p.symbol in VOWELS]
    assert pauses and vowels
    assert max(pauses) < 0.1 * float(np.median(vowels))


@needs_voices
def test_a_faster_rate_gives_a_shorter_utterance():
    slow = synthesize(SENTENCE, "us2", Prosody(rate=0.8))
    fast = synthesize(SENTENCE, "us2", Prosody(rate=1.5))
    assert fast.phones[-1].end < 0.85 * slow.phones[-1].end
    assert len(fast.wave) < 0.85 * len(slow.wave)


@needs_voices
def test_pitch_ratio_raises_the_measured_f0():
    text = "Move over, the boat will soon be full."
    low = median_f0(synthesize(text, "us2"))
    high = median_f0(synthesize(text, "us2", Prosody(pitch=1.3)))
    assert high / low == pytest.approx(1.3, abs=0.08)


@needs_voices
def test_pitch_range_zero_flattens_the_contour_and_wide_range_widens_it(spoken):
    def pitches(utterance: Utterance) -> np.ndarray:
        return np.array([hz for _, _, points in parse_pho(utterance.pho) for _, hz in points])

    natural = pitches(spoken["us1"])
    flat = pitches(synthesize(SENTENCE, "us1", Prosody(pitch_range=0.0)))
    wide = pitches(synthesize(SENTENCE, "us1", Prosody(pitch_range=2.0)))
    assert np.ptp(natural) > 20.0
    assert np.ptp(flat) == 0.0
    assert flat[0] == pytest.approx(natural.mean(), abs=0.01)
    assert np.std(wide) == pytest.approx(2.0 * np.std(natural), rel=0.01)


@needs_voices
def test_volume_half_halves_the_rms(spoken):
    quiet = synthesize(SENTENCE, "en1", Prosody(volume=0.5))
    assert rms(quiet.wave) / rms(spoken["en1"].wave) == pytest.approx(0.5, rel=0.1)


@needs_voices
def test_same_inputs_give_an_identical_wave(spoken):
    again = synthesize(SENTENCE, "us3")
    assert np.array_equal(again.wave, spoken["us3"].wave)
    assert again.phones == spoken["us3"].phones


@needs_voices
@pytest.mark.parametrize("text", ["Who knew the moon could look so huge?", "Stop, you forgot your wallet!"])
def test_us3_speaks_words_whose_espeak_phones_its_database_lacks(text):
    utterance = synthesize(text, "us3")
    symbols = {phone.symbol for phone in utterance.phones}
    assert "O2" not in symbols
    assert abs(len(utterance.wave) - utterance.phones[-1].end * SAMPLE_RATE) <= HOP_LENGTH


# ------------------------------------------------------------------------------------ refusals

@needs_voices
@pytest.mark.parametrize("text", ["", "   \n\t", "..."])
def test_text_with_nothing_to_say_is_refused(text):
    with pytest.raises(SpeechError, match="give at least one word"):
        synthesize(text, "us1")


def test_unknown_voice_is_refused_with_the_voice_list():
    with pytest.raises(SpeechError, match="unknown voice 'fr1'; choose one of us1, us2, us3, en1"):
        synthesize(SENTENCE, "fr1")


@pytest.mark.parametrize("name", list(PROSODY_LIMITS))
@pytest.mark.parametrize("bad", [-1.0, 10.0, float("nan"), True, "fast"])
def test_out_of_range_prosody_is_refused_naming_the_setting(name, bad):
    with pytest.raises(SpeechError, match=f"prosody {name}=.* is out of range; choose a number from"):
        Prosody(**{name: bad})


@needs_voices
@pytest.mark.parametrize("env", [ESPEAK_ENV, MBROLA_ENV])
def test_a_missing_program_raises_tools_missing_with_the_setup_script(monkeypatch, env):
    monkeypatch.setenv(env, "flowvq-no-such-program")
    with pytest.raises(SpeechToolsMissingError) as caught:
        synthesize(SENTENCE, "us1")
    message = str(caught.value)
    assert "'flowvq-no-such-program'" in message and env in message
    assert "bash scripts/setup_speech.sh" in message
    assert isinstance(caught.value, FlowVQError)


@needs_voices
def test_a_failing_program_is_a_speech_error_with_its_exit_status(monkeypatch):
    monkeypatch.setenv(MBROLA_ENV, "false")
    with pytest.raises(SpeechError, match="false failed with exit status 1"):
        synthesize(SENTENCE, "us1")


# ------------------------------------------------------------------------------------ .pho files

def test_format_pho_and_parse_pho_round_trip():
    entries = [("_", 150.0, []), ("b", 65.0, []), ("A", 110.5, [(0.0, 202.0), (13.0, 176.25), (100.0, 99.99)]),
               ("p_h", 94.0, [(50.0, 1 / 3)])]
    assert parse_pho(format_pho(entries)) == entries


def test_parse_pho_skips_comments_and_refuses_a_broken_line():
    assert parse_pho("; comment\n\n_\t50\nA 110 0 200 100 180\n") == [
        ("_", 50.0, []), ("A", 110.0, [(0.0, 200.0), (100.0, 180.0)])]
    with pytest.raises(SpeechError, match="line 2 of the .pho"):
        parse_pho("_ 50\nA 110 0\n")


# ------------------------------------------------------------------------------------ symbols

def test_sentences_are_many_and_rich_in_lip_sounds():
    assert 35 <= len(SENTENCES) == len(set(SENTENCES))
    text = " ".join(SENTENCES).lower()
    for letter, least in [("p", 20), ("b", 20), ("m", 20), ("f", 15), ("v", 10), ("oo", 5)]:
        assert text.count(letter) >= least, letter


@needs_voices
def test_phone_symbols_differ_between_the_us_voices_and_en1():
    inventories = {voice: phone_symbols(voice) for voice in VOICES}
    for voice, symbols in inventories.items():
        print(voice, " ".join(sorted(symbols)))
    assert inventories["us1"] == inventories["us2"]
    assert {"r=", "4", "A", "i", "u"} <= inventories["us1"]
    assert {"i:", "A:", "u:", "O:", "Q", "5"} <= inventories["en1"]
    assert not {"i:", "A:", "u:"} & inventories["us1"]
    assert "O2" not in inventories["us3"]
    for symbols in inventories.values():
        assert {SILENCE, "p", "b", "m", "f", "v"} <= symbols


@needs_voices
@pytest.mark.parametrize("voice", VOICE_NAMES)
def test_every_sentence_synthesises_in_time_with_only_inventory_symbols(voice):
    inventory = phone_symbols(voice)
    for sentence in SENTENCES:
        utterance = synthesize(sentence, voice)
        assert {phone.symbol for phone in utterance.phones} <= inventory
        assert abs(len(utterance.wave) - utterance.phones[-1].end * SAMPLE_RATE) <= HOP_LENGTH, sentence
