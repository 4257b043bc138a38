"""Helpers for the benchmarks: a table printer, peak memory of a fresh process, and a take of motion
of any length to time the writers on."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset this process' peak-RSS mark (Linux), so a later reading covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_peak_rss_mb() -> float:
    """The peak RSS since the last reset (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return peak_rss_mb()


def run_isolated(module: str, *args: str) -> dict:
    """Run `python -m module args` in a fresh process that prints one JSON line; returns it
    (a fresh process so that peak memory belongs to that case alone)."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


SHARED_TAKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "beat2_sample" / "smplxflame_30" / "2_scott_0_1_1.npz"


def motion_of(seconds: float):
    """(Motion, where it came from): `seconds` of the shared BEAT2 take where it is here, else of a
    synthetic corpus take (a user's clone), tiled to length."""
    from granumamba.data import load_motion
    from granumamba.motion import Motion

    if SHARED_TAKE.is_file():
        take, source = load_motion(SHARED_TAKE), "the shared BEAT2 take"
    else:
        from train.make_corpus import make_corpus

        with tempfile.TemporaryDirectory() as folder:
            make_corpus(Path(folder), 1.2, seed=0, speakers=1, take_seconds=60, progress=False)
            take, source = load_motion(next((Path(folder) / "smplxflame_30").glob("*.npz"))), "a synthetic corpus take"
    frames = int(seconds * 30)
    reps = -(-frames // take.num_frames)
    tile = lambda a: np.tile(a, (reps, 1))[:frames]  # noqa: E731
    return Motion(tile(take.poses), tile(take.trans), tile(take.expressions)), source
