"""GranuMamba: multi-granularity selective state space model for co-speech 3D gesture."""

import threading

__version__ = "0.1.0"

TERMINATED = threading.Event()
"""Set by the CLI when it is told to stop (SIGTERM). Its handler raises SystemExit, but a
library that imports under `except BaseException` (trimesh does) can swallow that: long loops
(rendering) check this and stop at their next step, cleaning up as on any other exit."""

FPS = 30
"""Motion frame rate (BEAT2's smplxflame_30)."""

SAMPLE_RATE = 16000
"""Speech sample rate the features are computed at (BEAT2's wave16k)."""


def num_frames(num_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """Motion frames that cover `num_samples` of audio: floor(samples * fps / rate), in exact
    integer arithmetic so that long audio never drifts against the motion."""
    return (int(num_samples) * fps) // sample_rate


def frame_start_sample(frame: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """First audio sample of motion frame `frame` (exact, no accumulated rounding)."""
    return -((-int(frame) * sample_rate) // fps)
