"""Data benchmark: corpus generation, feature extraction, dataset throughput (cold and warm cache).

python -m bench.bench_data [--minutes 5]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from granumamba.audio import load_audio, speech_features
from granumamba.data import GestureWindows
from train.make_corpus import make_corpus

from .common import machine, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="granumamba-bench-"))
    try:
        started = time.perf_counter()
        make_corpus(tmp / "corpus", args.minutes, seed=0, speakers=4, progress=False)
        corpus_s = time.perf_counter() - started
        wavs = sorted((tmp / "corpus" / "wave16k").glob("*.wav"))
        audio = [load_audio(w) for w in wavs]
        seconds = sum(a.shape[0] for a in audio) / 16000
        started = time.perf_counter()
        for a in audio:
            speech_features(a)
        feature_s = time.perf_counter() - started
        rows = [
            [
                "corpus generation",
                f"{seconds / 60:.1f} min of speech",
                f"{corpus_s:.1f} s",
                f"{seconds / corpus_s:.1f} min of corpus per min",
            ],
            [
                "feature extraction",
                f"{seconds / 60:.1f} min of audio",
                f"{feature_s:.2f} s",
                f"{seconds / 3600 / (feature_s / 60):.1f} h of audio per min",
            ],
        ]
        for label in ("cold cache", "warm cache"):
            started = time.perf_counter()
            ds = GestureWindows(tmp / "corpus", split="train", window=64, stride=16, cache_dir=tmp / "cache")
            build = time.perf_counter() - started
            started = time.perf_counter()
            order = np.random.default_rng(0).permutation(len(ds))
            for i in order:
                ds[int(i)]
            read = time.perf_counter() - started
            rows.append(
                [
                    f"dataset, {label}",
                    f"{len(ds)} windows of 64",
                    f"{build:.2f} s index + {read:.2f} s reads",
                    f"{len(ds) / (build + read):.0f} windows/s (reads alone {len(ds) / read:.0f}/s)",
                ]
            )
        table(f"Data ({machine()})", ["step", "input", "time", "speed"], rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
