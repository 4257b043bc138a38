"""Speech that sounds like the recordings users upload, made from clean synthetic speech: room
reverberation, background noise at 10 to 30 dB SNR, telephone and laptop-microphone band
limits, a pass through another sample rate (8 to 48 kHz), and loudness from quiet to nearly
clipping. Tempo and pitch are varied where the speech is made (the voice's rate and pitch), so
that the word timings stay exact.

Only the waveform changes: the gesture is planned on the clean speech's timing, so that what
the model learns to follow is the speech, not the noise.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from granumamba import SAMPLE_RATE

RATES = (8000, 11025, 22050, 44100, 48000)


def _room_impulse(rng: np.random.Generator) -> np.ndarray:
    """A synthetic room response: the direct sound, then exponentially decaying noise (RT60 0.15 to 0.8 s)."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    tail = sosfilt(butter(2, rng.uniform(2500, 7000), btype="low", fs=SAMPLE_RATE, output="sos"), tail)
    impulse = tail * rng.uniform(0.1, 0.4) / (np.sqrt(np.sum(tail**2)) + 1e-9)
    impulse[0] = 1.0
    return impulse


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Background: white, pink-ish (room hum and fans) or a murmur of low-passed bursts (voices far off)."""
    kind = rng.integers(3)
    white = rng.normal(0, 1, n)
    if kind == 0:
        return white
    if kind == 1:
        return sosfilt(butter(1, 400, btype="low", fs=SAMPLE_RATE, output="sos"), white) + 0.1 * white
    envelope = np.repeat(rng.uniform(0, 1, n // 1600 + 1), 1600)[:n]
    return sosfilt(butter(4, (200, 3000), btype="band", fs=SAMPLE_RATE, output="sos"), white) * envelope


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """16 kHz mono float32 clean speech -> the same speech as a user might have recorded it."""
    from granumamba.audio.io import resample

    x = audio.astype(np.float64)
    if rng.random() < 0.5:
        x = fftconvolve(x, _room_impulse(rng))[: x.size]
    if rng.random() < 0.75:
        speech_power = np.mean(x[np.abs(x) > 0.01 * np.abs(x).max()] ** 2)
        noise = _noise(rng, x.size)
        snr = rng.uniform(10, 30)
        x = x + noise * np.sqrt(speech_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
    band = rng.random()
    if band < 0.2:  # telephone
        x = sosfilt(butter(4, (300, 3400), btype="band", fs=SAMPLE_RATE, output="sos"), x)
    elif band < 0.4:  # laptop microphone: thin lows, dull highs
        x = sosfilt(butter(2, rng.uniform(120, 250), btype="high", fs=SAMPLE_RATE, output="sos"), x)
        x = sosfilt(butter(2, rng.uniform(4500, 7000), btype="low", fs=SAMPLE_RATE, output="sos"), x)
    if rng.random() < 0.35:  # recorded at another rate, converted to 16 kHz on loading
        import librosa

        rate = int(rng.choice(RATES))
        x = resample(librosa.resample(x.astype(np.float32), orig_sr=SAMPLE_RATE, target_sr=rate, res_type="soxr_hq"), rate)
    peak = np.abs(x).max() + 1e-9
    x = x / peak * 10 ** (rng.uniform(-30, -0.2) / 20)  # quiet to nearly clipping
    return x.astype(np.float32)
