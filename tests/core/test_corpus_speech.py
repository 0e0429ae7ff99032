"""Tests for core.corpus.speech: real espeak-ng and mbrola with the installed MBROLA voices, and real
libespeak-ng with espeak's own voices; no mocks."""

import shutil

import numpy as np
import pytest

from core.audio import HOP_LENGTH, SAMPLE_RATE
from core.corpus.speech import (
    ESPEAK_ENV, ESPEAK_PHONEMES, ESPEAK_VOICES, MBROLA_ENV, PROSODY_LIMITS, SENTENCES, SILENCE, VOICES, Phone,
    Prosody, SpeechError, SpeechToolsMissingError, Utterance, available_voices, espeak_phone_symbol, format_pho,
    parse_pho, phone_symbols, synthesize,
)
from core.visemes import BILABIALS, PHONE_VISEMES
from core.errors import FlowVQError

SENTENCE = "Bob, please pass the soup."
VOICE_NAMES = list(VOICES)
# Vowel symbols of both SAMPA families (US voices and en1), for energy and F0 checks.
VOWELS = {"i", "I", "E", "{", "A", "O", "V", "U", "u", "@", "EI", "AI", "OI", "@U", "aU",
          "i:", "A:", "O:", "u:", "3:", "Q", "e", "eI", "aI"}

needs_voices = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("mbrola")) or not set(VOICES) <= set(available_voices()),
    reason="espeak-ng / mbrola voices not installed: run `bash scripts/setup_speech.sh`",
)
needs_espeak = pytest.mark.skipif(
    not set(ESPEAK_VOICES) <= set(available_voices()), reason="libespeak-ng or its voice variants not installed"
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


@pytest.mark.parametrize("voice, tolerance", [
    pytest.param("us2", 0.08, marks=needs_voices),
    pytest.param("espeak:en-us+m3", 0.1, marks=needs_espeak),
])
def test_pitch_ratio_raises_the_measured_f0(voice, tolerance):
    text = "Move over, the boat will soon be full."
    low = median_f0(synthesize(text, voice))
    high = median_f0(synthesize(text, voice, Prosody(pitch=1.3)))
    assert high / low == pytest.approx(1.3, abs=tolerance)


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
    with pytest.raises(SpeechError, match="unknown voice 'de1'; choose one of us1, us2, us3, en1, de5"):
        synthesize(SENTENCE, "de1")


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


# ------------------------------------------------------------------------------------ espeak's own voices

ESPEAK_NAMES = list(ESPEAK_VOICES)
ESPEAK_SENTENCES = (SENTENCE, "Pam bought a bamboo fan for a pound.", "Please bring me both blue bowls.")
FRAME = SAMPLE_RATE // 100  # 10 ms



@pytest.fixture(scope="module")
def espeak_spoken() -> dict[tuple[str, str], Utterance]:
    """ESPEAK_SENTENCES in every espeak voice at the default prosody, keyed by (voice, sentence)."""
    return {(voice, text): synthesize(text, voice) for voice in ESPEAK_VOICES for text in ESPEAK_SENTENCES}


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of consecutive 10 ms frames. Shapes: (n,) -> (n // FRAME,)."""
    frames = samples[:len(samples) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    return np.sqrt(np.mean(np.square(frames), axis=1))


@needs_voices
@needs_espeak
def test_espeak_voices_are_listed_after_the_mbrola_voices():
    assert {"espeak:en-us", "espeak:en-us+m3", "espeak:en+f3", "espeak:en-gb-x-rp+m7", "espeak:en+klatt"} <= set(
        ESPEAK_VOICES)
    assert available_voices()[:len(VOICES) + len(ESPEAK_VOICES)] == list(VOICES) + list(ESPEAK_VOICES)


@needs_espeak
@pytest.mark.parametrize("voice", ESPEAK_NAMES)
def test_espeak_voices_speak_every_sentence_with_contiguous_phones_to_the_end(espeak_spoken, voice):
    for text in ESPEAK_SENTENCES:
        utterance = espeak_spoken[voice, text]
        wave, phones = utterance.wave, utterance.phones
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.max(np.abs(wave)) > 0.05
        assert phones[0].start == 0.0 and phones[0].symbol == SILENCE == phones[-1].symbol
        assert all(after.start == before.end for before, after in zip(phones, phones[1:]))
        assert all(phone.duration > 0 for phone in phones)
        assert abs(len(wave) - phones[-1].end * SAMPLE_RATE) <= FRAME
        assert {phone.symbol for phone in phones} <= set(PHONE_VISEMES)
        assert [symbol for symbol, _, _ in parse_pho(utterance.pho)] == [phone.symbol for phone in phones]


@needs_espeak
@pytest.mark.parametrize("voice", ESPEAK_NAMES)
def test_espeak_timings_are_real_quiet_pauses_loud_vowels_and_closed_bilabials(espeak_spoken, voice):
    for text in ESPEAK_SENTENCES:
        utterance = espeak_spoken[voice, text]
        vowels = float(np.median([rms(span(utterance.wave, p)) for p in utterance.phones if p.symbol in VOWELS]))
        pauses = [p for p in utterance.phones if p.symbol == SILENCE and p.duration >= 0.1]
        stops = [p for p in utterance.phones if p.symbol in {"p", "b"}]
        assert stops and bool(pauses) == ("," in text), text  # only a comma makes a long pause
        assert all(rms(span(utterance.wave, p)) < 0.05 * vowels for p in pauses), text
        for stop in stops:  # the lips close within every /p b/: a quiet 10 ms frame (a /b/ keeps a voice bar)
            limit = 0.3 if stop.symbol == "p" else 0.7
            assert frame_rms(span(utterance.wave, stop)).min() < limit * vowels, (text, stop)


@needs_espeak
def test_espeak_same_inputs_give_an_identical_wave_even_after_other_calls(espeak_spoken):
    synthesize(SENTENCE, "espeak:en+klatt", Prosody(rate=1.4, pitch=0.8))
    again = synthesize(SENTENCE, "espeak:en+klatt")
    assert np.array_equal(again.wave, espeak_spoken["espeak:en+klatt", SENTENCE].wave)
    assert again.phones == espeak_spoken["espeak:en+klatt", SENTENCE].phones


@needs_espeak
def test_espeak_a_faster_rate_gives_a_shorter_utterance():
    slow = synthesize(SENTENCE, "espeak:en-us+m3", Prosody(rate=0.8))
    fast = synthesize(SENTENCE, "espeak:en-us+m3", Prosody(rate=1.5))
    assert fast.phones[-1].end < 0.7 * slow.phones[-1].end


@needs_espeak
def test_espeak_volume_half_halves_the_rms(espeak_spoken):
    quiet = synthesize(SENTENCE, "espeak:en+f3", Prosody(volume=0.5))
    assert rms(quiet.wave) / rms(espeak_spoken["espeak:en+f3", SENTENCE].wave) == pytest.approx(0.5, rel=0.01)


@needs_espeak
@pytest.mark.parametrize("voice", ESPEAK_NAMES)
def test_every_espeak_phoneme_of_the_sentences_maps_to_a_viseme_symbol(voice):
    symbols = phone_symbols(voice)
    assert symbols <= set(PHONE_VISEMES)
    assert {SILENCE, "p", "b", "m", "f", "v"} <= symbols
    if ESPEAK_VOICES[voice].accent == "us":
        assert {"A", "i", "u", "r="} <= symbols and not {"i:", "u:", "Q"} & symbols
    else:
        assert {"i:", "u:", "Q", "A:"} <= symbols and not {"r=", "4"} & symbols


def test_espeak_phoneme_tables_name_only_viseme_symbols():
    for table in ESPEAK_PHONEMES.values():
        assert set(table.values()) <= set(PHONE_VISEMES) and BILABIALS & set(table.values())


def test_espeak_mnemonics_map_with_stress_and_pauses_and_refuse_an_unknown_one():
    assert espeak_phone_symbol("'aI", "espeak:en-us") == "AI"
    assert espeak_phone_symbol("aI", "espeak:en+f3") == "aI"
    assert espeak_phone_symbol("_:", "espeak:en+klatt") == SILENCE
    with pytest.raises(SpeechError, match=r"espeak-ng phoneme 'zz' \(voice en-us\+m3\) has no SAMPA symbol"):
        espeak_phone_symbol("zz", "espeak:en-us+m3")
    with pytest.raises(SpeechError, match="'us1' is an MBROLA voice"):
        espeak_phone_symbol("aI", "us1")


def test_an_unknown_espeak_voice_is_refused_with_the_voice_list():
    with pytest.raises(SpeechError, match=r"unknown voice 'espeak:fr'; choose one of us1, .*espeak:en-us\+m3"):
        synthesize(SENTENCE, "espeak:fr")


@needs_espeak
def test_espeak_text_with_nothing_to_say_is_refused():
    with pytest.raises(SpeechError, match="give at least one word"):
        synthesize("...", "espeak:en-us")
