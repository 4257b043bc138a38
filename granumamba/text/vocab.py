"""Word vocabulary built from training transcripts, and frame-aligned token ids.

Id 0 is "no word" (silence, or no transcript: the model's audio-only path), id 1 is
out-of-vocabulary: a word never seen in training still marks that a word is spoken there.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .. import FPS
from .textgrid import Word

NO_WORD = 0
UNKNOWN = 1
_SPECIAL = ("<none>", "<unk>")


def normalize_word(word: str) -> str:
    """Lower case, letters, digits and inner apostrophes only: "Don't," -> "don't"."""
    return re.sub(r"[^\w']+", "", word.lower()).strip("'_")


class Vocabulary:
    """Maps words to ids. Build with `build`, save beside the model with `save`."""

    def __init__(self, words: Sequence[str]):
        self.words = list(_SPECIAL) + [w for w in words if w not in _SPECIAL]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, transcripts: Iterable[Iterable[str]], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        counts = Counter(normalize_word(w) for words in transcripts for w in words)
        counts.pop("", None)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[: max_size - len(_SPECIAL)] if max_size else ranked)

    def id(self, word: str) -> int:
        token = normalize_word(word)
        return self.index.get(token, UNKNOWN) if token else NO_WORD

    def frame_ids(self, words: Iterable[Word], frames: int) -> np.ndarray:
        """(frames,) int64: the id of the word spoken at each frame's centre, NO_WORD elsewhere."""
        ids = np.full(frames, NO_WORD, dtype=np.int64)
        centres = (np.arange(frames) + 0.5) / FPS
        for word in words:
            ids[(centres >= word.start) & (centres < word.end)] = self.id(word.text)
        return ids

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps({"words": self.words[len(_SPECIAL) :]}, ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8"))["words"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a GranuMamba vocabulary file ({err}).") from None
