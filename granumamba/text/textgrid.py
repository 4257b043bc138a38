"""Praat TextGrids (long and short text formats) to and from word timings, through praatio."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from praatio import textgrid as praat_textgrid
from praatio.utilities.constants import Interval


@dataclass(frozen=True)
class Word:
    """A spoken word and its time span in seconds."""

    text: str
    start: float
    end: float


class TextGridError(ValueError):
    """A TextGrid that cannot be read as word timings."""


def read_words(path: str | os.PathLike, tier: str | None = None) -> list[Word]:
    """Words of the interval tier `tier` (default: "words" if present, else the first interval
    tier), empty intervals dropped, sorted by start time."""
    path = Path(path)
    try:
        grid = praat_textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as err:  # praatio raises a range of parse errors
        raise TextGridError(f"{path.name}: not a readable Praat TextGrid ({err}).") from None
    names = [n for n in grid.tierNames if isinstance(grid.getTier(n), praat_textgrid.IntervalTier)]
    if not names:
        raise TextGridError(f"{path.name}: no interval tier with words.")
    if tier is None:
        tier = "words" if "words" in names else names[0]
    elif tier not in names:
        raise TextGridError(f"{path.name}: no interval tier named {tier!r} (has {', '.join(names)}).")
    words = [Word(e.label.strip(), float(e.start), float(e.end)) for e in grid.getTier(tier).entries]
    return sorted((w for w in words if w.text), key=lambda w: w.start)


def write_words(path: str | os.PathLike, words: list[Word], duration: float, short: bool = False, tier: str = "words") -> None:
    """Write `words` as an interval tier of a TextGrid spanning [0, duration] s."""
    entries = [Interval(w.start, w.end, w.text) for w in words]
    grid = praat_textgrid.Textgrid()
    grid.addTier(praat_textgrid.IntervalTier(tier, entries, 0.0, duration))
    grid.save(str(path), format="short_textgrid" if short else "long_textgrid", includeBlankSpaces=True)
