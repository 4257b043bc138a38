"""Data: the BEAT2 reader and the windowed training dataset."""

from .beat2 import Beat2Index, DataError, Take, index_beat2, load_motion, save_motion, speaker_of, write_npz
from .dataset import FeatureCache, GestureWindows

__all__ = [
    "Beat2Index",
    "DataError",
    "FeatureCache",
    "GestureWindows",
    "Take",
    "index_beat2",
    "load_motion",
    "save_motion",
    "speaker_of",
    "write_npz",
]
