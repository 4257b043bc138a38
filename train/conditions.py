"""Real recordings as users make them: the same speech through a telephone line, a low-bitrate
MP3, a quiet or a noisy microphone, an echoing room; spoken four semitones higher or lower (a
voice pitched like another speaker's, the words where they were) and a quarter faster or a fifth
slower (a quicker or a slower talker, RETIMED: the words move). `train.evaluate --conditions`
generates from each version and sets the motion beside the one from the clean recording.

The versions are made with ffmpeg's filters and encoders, not with `train/augment.py` (the
training corpus's recording conditions), so that the check does not test the augmentation
against itself.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from granumamba import SAMPLE_RATE
from granumamba.audio.io import _ffmpeg_exe, load_audio


def _pitch_filter(semitones: float) -> str:
    """ffmpeg filters that shift the pitch by `semitones` and keep the timing: played faster by
    the pitch's ratio (asetrate), then stretched back to its length (atempo), as any ffmpeg
    build can (rubberband is not in every one)."""
    ratio = 2 ** (semitones / 12)
    return f"asetrate={SAMPLE_RATE * ratio:.0f},aresample={SAMPLE_RATE},atempo={1 / ratio:.6f}"


# conditions that move the words in time, by their tempo: their motion is set against their own
# speech's onsets and loudness, the others' against the clean recording's
RETIMED = {"faster speech (1.25 x)": 1.25, "slower speech (0.8 x)": 0.8}

# name -> (ffmpeg audio filter, encoder arguments, file suffix)
CONDITIONS: dict[str, tuple[str, list[str], str]] = {
    "telephone (8 kHz, 300 to 3400 Hz)": ("highpass=f=300,lowpass=f=3400,aresample=8000", ["-c:a", "pcm_s16le"], ".wav"),
    "MP3 at 24 kbit/s": ("anull", ["-c:a", "libmp3lame", "-b:a", "24k"], ".mp3"),
    "quiet (-30 dB)": ("volume=-30dB", ["-c:a", "pcm_s16le"], ".wav"),
    "noisy (pink noise at 10 dB SNR)": ("anull", ["-c:a", "pcm_s16le"], ".wav"),
    "echoing room": ("aecho=0.8:0.6:23|47|83|131:0.5|0.35|0.25|0.15", ["-c:a", "pcm_s16le"], ".wav"),
    "a higher voice (+4 semitones)": (_pitch_filter(4), ["-c:a", "pcm_s16le"], ".wav"),
    "a lower voice (-4 semitones)": (_pitch_filter(-4), ["-c:a", "pcm_s16le"], ".wav"),
    **{name: (f"atempo={rate}", ["-c:a", "pcm_s16le"], ".wav") for name, rate in RETIMED.items()},
}
NOISE = "noisy (pink noise at 10 dB SNR)"


def record(audio: np.ndarray, condition: str, seed: int = 0) -> np.ndarray:
    """16 kHz speech -> the same speech as `condition` records it, read back as the app reads
    any upload (`load_audio`: 16 kHz mono float32)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown recording condition {condition!r}; known: {', '.join(CONDITIONS)}")
    filters, encoder, suffix = CONDITIONS[condition]
    with tempfile.TemporaryDirectory(prefix="granumamba-conditions-") as tmp:
        clean, out = Path(tmp) / "clean.wav", Path(tmp) / f"recorded{suffix}"
        if condition == NOISE:
            audio = audio + _pink_noise(audio, Path(tmp) / "noise.wav", seed, snr_db=10.0)
        soundfile.write(clean, audio, SAMPLE_RATE, subtype="FLOAT")
        command = [_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(clean), "-af", filters, *encoder, str(out)]
        subprocess.run(command, check=True, capture_output=True)
        return load_audio(out)


def _pink_noise(audio: np.ndarray, path: Path, seed: int, snr_db: float) -> np.ndarray:
    """ffmpeg's pink noise as long as `audio`, scaled to lie `snr_db` under its power."""
    seconds = audio.shape[0] / SAMPLE_RATE
    source = f"anoisesrc=color=pink:sample_rate={SAMPLE_RATE}:duration={seconds:.4f}:seed={seed}"
    command = [_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, str(path)]
    subprocess.run(command, check=True, capture_output=True)
    noise = np.zeros_like(audio)
    read = soundfile.read(path, dtype="float32")[0][: audio.shape[0]]
    noise[: read.shape[0]] = read
    return noise * np.sqrt(np.mean(audio**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
