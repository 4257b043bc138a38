"""Generation speed and memory: the demo model at 10, 60, 600 s of speech (streaming and one
pass), the same generator with Transformer layers instead of Mamba, and the BEAT2-size model at
60 and 300 s against the EMAGE figures measured on this kind of machine. Each case runs in a
fresh process so its peak memory is its own; the generation peak is measured from after the
speech features are computed (they hold the whole clip; the model streams).

    python -m bench.bench_generate [--quick]
"""

from __future__ import annotations

import argparse
import os

from .common import machine, run_isolated, table

EMAGE = {60: (5.5, "1.05-1.3 GB"), 300: (31.0, "1.05-1.3 GB")}  # 153 M parameters, random weights, this kind of 2-core machine


def case(model: str, seconds: float, chunk: int = 480, mixer: str = "mamba", busy: bool = False) -> dict:
    extra = ["--busy"] if busy else []
    return run_isolated("bench.gen_case", "--model", model, "--seconds", str(seconds), "--chunk", str(chunk), "--mixer", mixer, *extra)


def cli_case(seconds: float) -> dict:
    """`python -m granumamba generate --audio A --npz B` as a user runs it: a fresh process, the
    default model lookup (no HF_HUB_OFFLINE), wall time and peak memory."""
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    import numpy as np
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        example = Path(__file__).resolve().parents[1] / "assets" / "examples" / "story_uk_male.wav"
        speech, rate = soundfile.read(example, dtype="float32")
        soundfile.write(Path(tmp) / "speech.wav", np.tile(speech, int(seconds * rate / len(speech)) + 1)[: int(seconds * rate)], rate)
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "GRANUMAMBA_MODEL")}
        command = [
            sys.executable,
            "-m",
            "granumamba",
            "generate",
            "--audio",
            str(Path(tmp) / "speech.wav"),
            "--npz",
            str(Path(tmp) / "m.npz"),
        ]
        started = time.perf_counter()
        with open(Path(tmp) / "stderr.txt", "w+") as stderr:
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak (RUSAGE_CHILDREN keeps the largest child's so far)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                stderr.seek(0)
                raise RuntimeError(stderr.read()[-2000:])
        peak = usage.ru_maxrss
    return {"wall_s": wall, "peak_mb": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 600 s and 300 s cases")
    args = parser.parse_args()
    lengths = (10, 60) if args.quick else (10, 60, 600)
    rows = []
    for seconds in lengths:
        for chunk in (480, 0):
            r = case("demo", seconds, chunk)
            rows.append(
                [
                    seconds,
                    "streaming" if chunk else "one pass",
                    r["generate_s"],
                    seconds / r["generate_s"],
                    r["features_s"],
                    round(r["peak_mb"] - r["baseline_mb"]),
                    round(r["feature_peak_mb"]),
                ]
            )
    table(
        f"Demo model, speech features to motion ({machine()})",
        ["speech s", "mode", "generate s", "x real time", "features s", "generation peak MB over start", "feature step peak RSS MB"],
        rows,
    )

    rows = []
    for seconds in (10, 60, 300) if not args.quick else (10, 60):
        m, t = case("demo", seconds, 0), case("demo", seconds, 0, "transformer")
        rows.append(
            [
                seconds,
                m["generate_s"],
                t["generate_s"],
                t["generate_s"] / m["generate_s"],
                round(m["peak_mb"] - m["baseline_mb"]),
                round(t["peak_mb"] - t["baseline_mb"]),
            ]
        )
    table(
        "Mamba against Transformer layers of equal width and depth (demo model, one pass)",
        ["speech s", "Mamba s", "Transformer s", "Transformer / Mamba", "Mamba generation peak MB", "Transformer generation peak MB"],
        rows,
    )

    rows = []
    busy_cases = [("demo", 60), ("beat2", 60)] + ([] if args.quick else [("beat2", 300)])
    for model, seconds in busy_cases:
        quiet, busy = case(model, seconds, 480), case(model, seconds, 480, busy=True)
        rows.append([model, seconds, quiet["generate_s"], busy["generate_s"], busy["generate_s"] / quiet["generate_s"]])
    table(
        "Other work on the machine: streaming, with one core kept busy by another process",
        ["model", "speech s", "generate s (idle machine)", "generate s (one core busy)", "busy / idle"],
        rows,
    )

    rows = []
    for seconds in (67,) if args.quick else (67, 22 * 60):
        r = cli_case(seconds)
        rows.append([seconds, r["wall_s"], round(r["peak_mb"])])
    table(
        "The CLI as a user runs it (python -m granumamba generate --audio A --npz B; default model lookup, no HF_HUB_OFFLINE)",
        ["speech s", "wall s (start to npz written)", "peak RSS MB"],
        rows,
    )

    rows = []
    for seconds in (60,) if args.quick else (60, 300):
        r = case("beat2", seconds, 480)
        emage_s, emage_mem = EMAGE[seconds]
        rows.append(
            [
                seconds,
                f"{r['params_m']:.1f} M",
                r["generate_s"],
                emage_s,
                emage_s / r["generate_s"],
                round(r["peak_mb"]),
                round(r["feature_peak_mb"]),
                emage_mem,
            ]
        )
    table(
        "BEAT2-size model (random weights, streaming) against EMAGE (153 M parameters, measured on this kind of machine)",
        [
            "speech s",
            "parameters",
            "GranuMamba s",
            "EMAGE s",
            "times faster",
            "generation peak RSS MB",
            "feature step peak RSS MB",
            "EMAGE peak",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
