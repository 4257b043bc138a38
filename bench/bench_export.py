"""Export speed and size: `python -m granumamba export` run as a user runs it (a fresh process,
imports included) on 10 s, 60 s and 600 s of motion, for each format; the built-in body, and
the SMPL-X body where $GRANUMAMBA_SMPLX names a folder with its model file.

    python -m bench.bench_export [--seconds 10 60 600] [--formats .npz .bvh .glb .fbx]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from granumamba.data import save_motion
from granumamba.render.fbx import blender_program

from .common import machine, motion_of, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600])
    parser.add_argument("--formats", nargs="+", default=[".npz", ".bvh", ".glb", ".fbx"])
    args = parser.parse_args()
    bodies = [("built-in", [])]
    if os.environ.get("GRANUMAMBA_SMPLX"):
        bodies.append(("SMPL-X", ["--body", "smplx"]))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seconds in args.seconds:
            npz = Path(folder) / f"take_{seconds:g}.npz"
            motion, source = motion_of(seconds)
            save_motion(npz, motion)
            for body, options in bodies:
                for suffix in args.formats:
                    if suffix in (".npz", ".bvh") and body != "built-in":
                        continue  # no mesh in them: the body changes nothing
                    if suffix == ".fbx" and blender_program() is None:
                        rows.append([f"{seconds:g} s", body, suffix, "Blender not installed", "-", "-"])
                        continue
                    out = Path(folder) / f"out{suffix}"
                    command = [sys.executable, "-m", "granumamba", "export", "--motion", str(npz), "--out", str(out), *options]
                    started = time.perf_counter()
                    subprocess.run(command, check=True, capture_output=True)
                    wall = time.perf_counter() - started
                    size = out.stat().st_size / 1e6
                    rows.append([f"{seconds:g} s", body, suffix, round(wall, 2), round(seconds / wall, 1), round(size, 1)])
                    out.unlink()
    blender = blender_program()
    version = subprocess.run([blender, "--version"], capture_output=True, text=True).stdout.split("\n")[0] if blender else "no Blender"
    table(
        f"export, a fresh process each ({source} tiled; {machine()}; {version})",
        ["motion", "body", "format", "wall s", "x real time", "MB"],
        rows,
    )


if __name__ == "__main__":
    main()
