"""Speech in: loading any common format to 16 kHz mono, and 30 fps features."""

from .features import FEATURE_DIM, is_silent, speech_features
from .io import ACCEPTED, AudioError, load_audio, resample

__all__ = ["ACCEPTED", "FEATURE_DIM", "AudioError", "is_silent", "load_audio", "resample", "speech_features"]
