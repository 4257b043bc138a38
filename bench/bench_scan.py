"""Selective scan and Mamba block speed on this machine: the project's scan (generation's
compiled loop, and training's torch loop with autograd on) against the readable per-step
reference (a naive loop) and against mambapy's pure-PyTorch scan if installed.

    python -m bench.bench_scan
"""

from __future__ import annotations

import time

import torch

from granumamba.model.mamba import Mamba
from granumamba.model.scan import selective_scan, selective_scan_reference

from .common import machine, table

D_MODEL, D_STATE = 128, 16


def timed(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    torch.manual_seed(0)
    block = Mamba(D_MODEL, d_state=D_STATE).eval()
    d = block.d_inner
    try:
        import mambapy.mamba as mambapy_mamba
        from mambapy.pscan import pscan  # noqa: F401
    except ImportError:
        mambapy_mamba = None
    rows = []
    with torch.no_grad():
        for length in (300, 1800, 9000):
            u, delta = torch.randn(1, d, length), torch.randn(1, d, length)
            A, B, C = -torch.rand(d, D_STATE), torch.randn(1, D_STATE, length), torch.randn(1, D_STATE, length)
            ours = timed(lambda: selective_scan(u, delta, A, B, C, delta_softplus=True))
            u_grad = u.clone().requires_grad_()
            with torch.enable_grad():  # training's path: the forward pass, ready for backward
                training = timed(lambda: selective_scan(u_grad, delta, A, B, C, delta_softplus=True))
            naive = timed(lambda: selective_scan_reference(u, delta, A, B, C, delta_softplus=True), repeats=1)
            x = torch.randn(1, length, D_MODEL)
            ours_block = timed(lambda: block(x))
            row = [length, ours, training, naive, naive / ours, ours_block]
            if mambapy_mamba is not None:
                config = mambapy_mamba.MambaConfig(d_model=D_MODEL, n_layers=1, d_state=D_STATE, pscan=True)
                theirs = mambapy_mamba.MambaBlock(config).eval()
                row += [timed(lambda: theirs(x))]
            else:
                row += ["not installed"]
            rows.append(row)
    table(
        f"Selective scan, batch 1, d_inner {d}, d_state {D_STATE} ({machine()}); times in ms, best of 3",
        [
            "frames",
            "scan (ours, generation)",
            "scan (ours, training)",
            "per-step reference",
            "speed-up (generation)",
            "Mamba block (ours)",
            "mambapy block",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
