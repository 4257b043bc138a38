"""Rendering speed: 60 s of motion at 512 x 512 with the built-in body, end to end (posing,
drawing, encoding with AAC), with one and with two worker processes.

    python -m bench.bench_render [--seconds 60] [--size 512]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .common import machine, motion_of, table


def main() -> None:
    from granumamba.render.video import render_video

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    motion, source = motion_of(args.seconds)
    frames = motion.num_frames
    audio = np.random.default_rng(0).normal(0, 0.05, frames * 16000 // 30).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            stats = render_video(motion, audio, Path(tmp) / f"w{workers}.mp4", size=args.size, workers=workers)
            rows.append([workers, stats.frames, stats.wall, stats.fps, stats.fps / 30, stats.posing, stats.drawing, stats.encoding])
    table(
        f"Rendering {args.seconds:.0f} s ({frames} frames) of {source} at {args.size} x {args.size}, built-in body ({machine()})",
        [
            "workers",
            "frames",
            "wall s",
            "fps end to end",
            "x real time",
            "posing s (all workers)",
            "drawing s (all workers)",
            "encoding s (main)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
