"""Word timings for a transcript given without them: an estimate, spreading the words over the
recording's speech (the frames above the silence level) in proportion to their length.

Good enough for the model's word input (which marks which word is spoken when, and is trained
with dropout); a forced aligner would do better, and a TextGrid is used as it is when given.
"""

from __future__ import annotations

import numpy as np

from .. import SAMPLE_RATE
from ..audio.features import SILENCE_DB, normalize_loudness
from .textgrid import Word
from .tts import tokenize

HOP = 160  # 10 ms


def estimate_word_timings(transcript: str, audio: np.ndarray) -> tuple[list[Word], str | None]:
    """Words of `transcript` with estimated spans over `audio`; and a warning when the
    transcript looks wrong for the recording (far too many or too few words for the speech)."""
    words = [t for t in tokenize(transcript) if t not in ".,;:!?"]
    if not words:
        return [], None
    level = normalize_loudness(audio)
    frames = level[: level.size // HOP * HOP].reshape(-1, HOP)
    energy_db = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)
    speech = np.flatnonzero(energy_db > SILENCE_DB + 20)
    if speech.size == 0:
        return [], "the recording has no speech to place the transcript on"
    seconds_of_speech = speech.size * HOP / SAMPLE_RATE
    rate = len(words) / seconds_of_speech
    warning = None
    if rate > 7 or rate < 0.7:
        warning = (
            f"the transcript has {len(words)} words for {seconds_of_speech:.1f} s of speech; it may not match the "
            "recording, and the word timings are only estimates"
        )
    weights = np.array([len(w) + 2 for w in words], float)
    bounds = np.concatenate([[0], np.cumsum(weights) / weights.sum() * speech.size]).round().astype(int)
    bounds = np.clip(bounds, 0, speech.size - 1)
    out = []
    for word, a, b in zip(words, bounds[:-1], bounds[1:]):
        start = speech[a] * HOP / SAMPLE_RATE
        end = (speech[max(a, b - 1)] + 1) * HOP / SAMPLE_RATE
        out.append(Word(word, start, max(end, start + 0.01)))
    return out, warning
