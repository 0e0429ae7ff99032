"""Audio augmentation for the synthetic corpus, so that flows trained on clean TTS hold up on real
recordings (design section 5).

Each utterance draws its own chain from the caller's numpy Generator; every step is applied with
its probability in `AUGMENT_PROBABILITY`, in this order:

    reverb      convolution with a synthetic room response (exponentially decaying noise,
                RT60 0.15-0.6 s), mixed 20-60% wet
    band        a 4th-order Butterworth low-pass at 3-7 kHz (telephone, cheap microphones);
                a high-pass at 80-300 Hz with the same probability
    codec       8-bit mu-law companding (telephone codec quantisation)
    noise       white or pink noise at 15-40 dB SNR
    loudness    always: a gain of -18..+6 dB, then a peak limit at 0.99

Pitch and tempo variation come from the corpus's prosody (the voice is synthesised at other rates
and pitches), not from resampling the wave, so the phone timings stay exact.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from core.audio import SAMPLE_RATE

__all__ = ["AUGMENT_PROBABILITY", "Augmentation", "augment_wave"]

AUGMENT_PROBABILITY: dict[str, float] = {"reverb": 0.3, "band": 0.3, "codec": 0.15, "noise": 0.5}
_PEAK = 0.99
_MU = 255.0


@dataclass(frozen=True)
class Augmentation:
    """What `augment_wave` did to one utterance, for the corpus manifest."""

    steps: tuple[str, ...]
    gain_db: float


def _reverb(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mix in the wave convolved with decaying noise. Shapes: (N,) -> (N,)."""
    rt60 = rng.uniform(0.15, 0.6)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    response /= np.sqrt((response**2).sum())
    wet = fftconvolve(wave, response)[: len(wave)]
    mix = rng.uniform(0.2, 0.6)
    return (1.0 - mix) * wave + mix * wet


def _band(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low-pass at 3-7 kHz and high-pass at 80-300 Hz. Shapes: (N,) -> (N,)."""
    low = butter(4, rng.uniform(3000.0, 7000.0), "lowpass", fs=SAMPLE_RATE, output="sos")
    high = butter(4, rng.uniform(80.0, 300.0), "highpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(high, sosfilt(low, wave))


def _codec(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8-bit mu-law encode and decode (deterministic: ``rng`` is not drawn from). Shapes: (N,) -> (N,)."""
    scale = max(float(np.abs(wave).max()), 1e-9)
    x = np.clip(wave / scale, -1.0, 1.0)
    coded = np.sign(x) * np.log1p(_MU * np.abs(x)) / np.log1p(_MU)
    quantised = np.round(coded * 127.0) / 127.0
    return scale * np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(_MU)) / _MU


def _noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add white or pink noise at 15-40 dB SNR. Shapes: (N,) -> (N,)."""
    noise = rng.standard_normal(len(wave))
    if rng.random() < 0.5:  # pink: 1/f power by shaping the spectrum
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
        noise = np.fft.irfft(spectrum, len(wave))
    snr_db = rng.uniform(15.0, 40.0)
    signal_power = float((wave**2).mean())
    noise *= np.sqrt(signal_power / 10 ** (snr_db / 10) / max(float((noise**2).mean()), 1e-20))
    return wave + noise


_STEPS: tuple[tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]], ...] = (
    ("reverb", _reverb), ("band", _band), ("codec", _codec), ("noise", _noise),
)


def augment_wave(wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Augmentation]:
    """One random augmentation chain (see the module docstring).
    Shapes: (N,) float at `SAMPLE_RATE` -> ((N,) float32, what was done)."""
    out = np.asarray(wave, dtype=np.float64)
    steps: list[str] = []
    for name, step in _STEPS:
        if rng.random() < AUGMENT_PROBABILITY[name]:
            out = step(out, rng)
            steps.append(name)
    gain_db = float(rng.uniform(-18.0, 6.0))
    out = out * 10 ** (gain_db / 20)
    peak = float(np.abs(out).max())
    if peak > _PEAK:
        out *= _PEAK / peak
    return out.astype(np.float32), Augmentation(tuple(steps), gain_db)
