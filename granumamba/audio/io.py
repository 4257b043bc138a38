"""Load any common speech recording as 16 kHz mono float32.

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis/Opus and MP3; anything else (M4A/AAC, WebM,
video containers) is decoded by the ffmpeg that ships with imageio-ffmpeg. Every failure is an
`AudioError` whose message says what was wrong and what is accepted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from .. import SAMPLE_RATE

ACCEPTED = "WAV, FLAC, OGG, MP3, M4A/AAC, Opus/WebM, AIFF (mono or stereo, 8 to 48 kHz, integer or float samples)"
MIN_SECONDS = 0.5


class AudioError(ValueError):
    """The audio cannot be used; the message says why and what is accepted."""


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _probe_seconds(path: Path) -> float | None:
    try:
        info = soundfile.info(str(path))
    except Exception:
        return None
    return info.frames / info.samplerate if info.samplerate else None


def _decode_ffmpeg(path: Path, max_seconds: float | None) -> np.ndarray:
    cmd = [_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path)]
    if max_seconds is not None:  # decode just past the limit, enough to know it is too long
        cmd += ["-t", f"{max_seconds + 1.0:.3f}"]
    cmd += ["-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        stderr = proc.stderr.decode(errors="replace")
        detail = stderr.strip().splitlines()
        if "does not contain any stream" in stderr or not detail:  # ffmpeg found a file but no sound in it
            reason = "it holds no sound track: a picture, or a video recorded without sound?"
        else:
            reason = detail[-1]
        raise AudioError(f"{path.name}: not a readable audio file ({reason}). Accepted: {ACCEPTED}.")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | os.PathLike, max_seconds: float | None = None) -> np.ndarray:
    """Read `path` as 16 kHz mono float32 in [-1, 1].

    Raises AudioError for a missing, empty, corrupt or non-audio file, audio shorter than
    MIN_SECONDS, or longer than `max_seconds` (checked from the header before decoding where
    the format allows).
    """
    path = Path(path)
    _check_limit(max_seconds)
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; give an audio file. Accepted: {ACCEPTED}.")
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name}: the file is empty. Accepted: {ACCEPTED}.")
    if max_seconds is not None:
        seconds = _probe_seconds(path)
        if seconds is not None and seconds > max_seconds:
            raise AudioError(f"{path.name}: {seconds:.1f} s of audio is over the limit of {max_seconds:.0f} s.")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if rate != SAMPLE_RATE:
            audio = resample(audio, rate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        audio = _decode_ffmpeg(path, max_seconds)
    return check_audio(audio, path.name, max_seconds)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample mono float audio from `rate` to SAMPLE_RATE (soxr, high quality)."""
    import librosa

    if not 4000 <= rate <= 192000:
        raise AudioError(f"sample rate {rate} Hz is not supported. Accepted: {ACCEPTED}.")
    return librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(np.float32)


def _check_limit(max_seconds: float | None) -> None:
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and 0 < max_seconds < float("inf")):
        raise AudioError(f"the length limit must be a positive number of seconds, got {max_seconds!r}")


def check_audio(audio: np.ndarray, name: str = "audio", max_seconds: float | None = None) -> np.ndarray:
    """Validate decoded 16 kHz mono audio: finite, long enough, not over the limit."""
    _check_limit(max_seconds)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    seconds = audio.shape[0] / SAMPLE_RATE
    if audio.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples. Accepted: {ACCEPTED}.")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: the audio holds NaN or infinite samples; re-export it as PCM WAV.")
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: {seconds:.2f} s of audio is too short; give at least {MIN_SECONDS} s of speech.")
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"{name}: {seconds:.1f} s of audio is over the limit of {max_seconds:.0f} s.")
    if audio.min() < -1.0 or audio.max() > 1.0:  # copy only where there is something to clip
        audio = np.clip(audio, -1.0, 1.0)
    return audio
