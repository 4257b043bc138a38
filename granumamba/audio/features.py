"""Speech features at exactly 30 fps, one row per motion frame.

Features are computed at 100 Hz (hop 160 samples at 16 kHz) and pooled into motion frames by
each frame's exact sample span ([i/30, (i+1)/30) s), so that an hour of audio stays aligned
with the motion to the sample; a 533-sample hop would drift 0.19 s over five minutes.

Columns (FEATURE_DIM = N_MELS + 4): log-mel (N_MELS), onset strength, energy (dB), log pitch
(relative to 100 Hz, 0 where unvoiced), voicing (0 or 1). The waveform is loudness-normalised
first, so recordings made at different gains give comparable features.
"""

from __future__ import annotations

import numpy as np

from .. import FPS, SAMPLE_RATE, num_frames

HOP = 160  # 100 Hz analysis
N_FFT = 1024
N_MELS = 64
FEATURE_DIM = N_MELS + 4
TARGET_RMS_DB = -23.0
SILENCE_DB = -55.0  # frame energy under this (after normalisation) counts as silence
FEATURE_VERSION = 2  # bump when any of the above changes: it keys the feature cache


def loudness_gain(audio: np.ndarray) -> float:
    """The gain that puts the speech (frames within 40 dB of the loudest) at TARGET_RMS_DB."""
    frame_rms = np.sqrt(np.mean(_frames(audio, 400) ** 2, axis=1) + 1e-12) if audio.size >= 400 else np.array([0.0])
    peak = frame_rms.max()
    if peak < 1e-5:  # silence: nothing to normalise
        return 1.0
    speech = frame_rms[frame_rms > peak * 0.01]
    return float(10 ** (TARGET_RMS_DB / 20) / np.sqrt(np.mean(speech**2)))


def normalize_loudness(audio: np.ndarray) -> np.ndarray:
    """Scale so that the speech sits at TARGET_RMS_DB (see loudness_gain)."""
    return np.clip(audio * loudness_gain(audio), -1.0, 1.0).astype(np.float32)


def _frames(audio: np.ndarray, size: int) -> np.ndarray:
    usable = (audio.size // size) * size
    return audio[:usable].reshape(-1, size)


def pool_to_motion_frames(values: np.ndarray, num_motion_frames: int, reduce: str = "mean") -> np.ndarray:
    """(n, dims) at 100 Hz (frame j centred at j/100 s) -> (num_motion_frames, dims) at 30 fps."""
    # First 100 Hz frame of motion frame i: ceil(i * 100 / 30), in exact integer arithmetic.
    rate = SAMPLE_RATE // HOP
    starts = -((-np.arange(num_motion_frames + 1) * rate) // FPS)
    starts = np.minimum(starts, values.shape[0] - 1)
    if reduce == "max":
        out = np.maximum.reduceat(values, starts[:-1], axis=0)
    else:
        # reduceat gives values[start] for an empty span, so dividing by at least 1 is right.
        out = np.add.reduceat(values, starts[:-1], axis=0) / np.maximum(np.diff(starts), 1)[:, None]
    return out.astype(np.float32)


CHUNK = 480_000  # samples analysed at a time (30 s): a multiple of 1600, so chunks meet on motion frames
MARGIN = 7 * HOP  # context on each side of a chunk, more than any analysis window reaches


def _analysis_rows(segment: np.ndarray) -> np.ndarray:
    """Loudness-normalised samples -> (n, FEATURE_DIM) rows at 100 Hz, row k centred at sample k * HOP."""
    import librosa

    power = np.abs(librosa.stft(segment, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=N_MELS, fmin=40, fmax=7600)
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None) / 20.0  # (mels, n)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=1.0, amin=1e-10), sr=SAMPLE_RATE)
    energy_db = 10 * np.log10(np.mean(power, axis=0) / (N_FFT / 2) + 1e-10)
    f0 = librosa.yin(segment, fmin=65, fmax=500, sr=SAMPLE_RATE, frame_length=N_FFT, hop_length=HOP, center=True)
    voiced = (energy_db > SILENCE_DB + 15).astype(np.float32)
    log_pitch = np.log2(np.clip(f0, 65, 500) / 100.0) * voiced
    n = min(log_mel.shape[1], onset.shape[0], energy_db.shape[0], f0.shape[0])
    return np.concatenate(
        [log_mel[:, :n].T, (onset[:n] / 10.0)[:, None], (energy_db[:n] / 20.0)[:, None], log_pitch[:n, None], voiced[:n, None]],
        axis=1,
    ).astype(np.float32)


def speech_features(audio: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """16 kHz mono float32 -> (num_frames(len(audio)), FEATURE_DIM) float32.

    The analysis runs over `chunk` samples at a time with MARGIN samples of context each side,
    so memory does not grow with the recording's length beyond the features themselves; the
    rows equal one pass over the whole recording.
    """
    audio = np.asarray(audio, dtype=np.float32)
    frames = num_frames(audio.shape[0])
    gain = loudness_gain(audio)
    if chunk % (SAMPLE_RATE * 3 // FPS) or chunk % HOP:
        raise ValueError(f"chunk {chunk} must be a multiple of 1600 samples")
    pieces = []
    for start in range(0, audio.shape[0], chunk):
        lo, hi = max(0, start - MARGIN), min(audio.shape[0], start + chunk + MARGIN)
        segment = np.clip(audio[lo:hi] * gain, -1.0, 1.0)
        if hi == audio.shape[0]:
            segment = np.pad(segment, (0, N_FFT))  # the last motion frames see real analysis windows
        rows = _analysis_rows(segment)
        first = (start - lo) // HOP
        last = None if hi == audio.shape[0] else first + chunk // HOP
        pieces.append(rows[first:last])
        if hi == audio.shape[0]:
            break
    rows = np.concatenate(pieces)
    pooled = pool_to_motion_frames(rows, frames)
    pooled[:, N_MELS] = pool_to_motion_frames(rows[:, N_MELS : N_MELS + 1], frames, reduce="max")[:, 0]
    return pooled


def is_silent(audio: np.ndarray) -> bool:
    """True where no 25 ms frame of the recording rises above SILENCE_DB (dB full scale)."""
    if audio.size < 400:
        return True
    rms = np.sqrt(np.mean(_frames(np.asarray(audio, dtype=np.float32), 400) ** 2, axis=1))
    return bool(20 * np.log10(rms.max() + 1e-12) < SILENCE_DB)
