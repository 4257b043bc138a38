"""Offline text-to-speech with exact word timings.

espeak-ng (GPL) runs as a separate program, so the project stays Apache-2.0. espeak-ng does not
report word times on its command line, so each word is synthesised on its own and the words are
joined with short gaps (longer at punctuation): the timings are then exact by construction.
piper, where installed (`piper` on PATH with a voice model), is the better-sounding engine and is
driven the same way.
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: `name` as `espeak-ng --voices` lists it, optionally with a variant
    (`en-us+f3`); rate in words per minute; pitch 0 to 99."""

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    word_gap: float = 0.06
    phrase_gap: float = 0.32


VOICES: dict[str, Voice] = {
    "English (US), male": Voice("en-us", 160, 45),
    "English (US), female": Voice("en-us+f3", 165, 60),
    "English (UK), male": Voice("en-gb", 155, 40),
    "English (UK), female": Voice("en-gb-x-rp+f2", 160, 62),
}


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=4096)
def _spoken_word(word: str, voice: Voice) -> np.ndarray:
    """One word spoken alone, silence trimmed; cached, since corpora repeat words."""
    return _trim(_espeak(word, voice))


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
        raise SpeechError(f"voice {voice.name!r} produced no speech for this text; try another voice or language.")
    pieces.append(np.zeros(int(lead_in * SAMPLE_RATE), np.float32))
    return np.concatenate(pieces), words
