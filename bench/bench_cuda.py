"""The CUDA path on a GPU machine: mamba_ssm's selective-scan kernel against the project's own
scan (the same numbers? how much faster?), the Mamba block both ways from one state dict, and a
stage-2 training step of the demo and BEAT2 model sizes.

    python -m bench.bench_cuda          # needs a CUDA GPU; mamba_ssm (requirements-gpu.txt) for the kernel rows
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from granumamba.model import GranuMamba
from granumamba.model.mamba import Mamba, cuda_kernels_available
from granumamba.model.scan import selective_scan
from granumamba.motion.parts import PART_DIMS, PART_NAMES
from train.config import load_config

from .common import table

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"

D_STATE = 16
DEVICE = "cuda"


def cuda_ms(fn, repeats: int = 10) -> float:
    """Mean of `repeats` calls after two warm-ups, timed with CUDA events."""
    for _ in range(2):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / repeats


def scan_rows(kernel) -> list[list]:
    rows = []
    for batch, d_inner, length in ((1, 256, 300), (1, 256, 1800), (1, 256, 9000), (16, 256, 128), (64, 512, 512)):
        g = torch.Generator(device=DEVICE).manual_seed(0)
        u = torch.randn(batch, d_inner, length, device=DEVICE, generator=g)
        delta = torch.randn(batch, d_inner, length, device=DEVICE, generator=g) * 0.5
        A = -torch.rand(d_inner, D_STATE, device=DEVICE, generator=g) * 4
        B = torch.randn(batch, D_STATE, length, device=DEVICE, generator=g)
        C = torch.randn(batch, D_STATE, length, device=DEVICE, generator=g)
        D = torch.randn(d_inner, device=DEVICE, generator=g)
        z = torch.randn(batch, d_inner, length, device=DEVICE, generator=g)
        bias = torch.randn(d_inner, device=DEVICE, generator=g) * 0.1
        args = (u, delta, A, B, C, D, z, bias, True, True)
        ours_y, ours_h = selective_scan(*args)
        row = [f"{batch} x {d_inner} x {length}", cuda_ms(lambda: selective_scan(*args))]
        if kernel is None:
            rows.append(row + ["not installed", "", "", ""])
            continue
        theirs_y, theirs_h = kernel(*args)
        scale = ours_y.abs().max().item()
        kernel_ms = cuda_ms(lambda: kernel(*args))
        row += [
            kernel_ms,
            row[1] / kernel_ms,
            (ours_y - theirs_y).abs().max().item() / scale,
            (ours_h - theirs_h).abs().max().item() / ours_h.abs().max().item(),
        ]
        rows.append(row)
    return rows


def block_rows() -> list[list]:
    try:
        from mamba_ssm.modules.mamba_simple import Mamba as CudaMamba
    except ImportError:
        return []
    rows = []
    for d_model, length in ((128, 1800), (256, 1800)):
        torch.manual_seed(0)
        ours = Mamba(d_model).to(DEVICE)
        theirs = CudaMamba(d_model).to(DEVICE)
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(4, length, d_model, device=DEVICE)
        with torch.no_grad():
            mine = ours(x, ours.initial_state(4))[0]  # a given state always takes the project's scan
            fast = ours(x)[0]  # no state: mamba_ssm's kernel
            reference = theirs(x)
            scale = reference.abs().max().item()
            rows.append(
                [
                    f"4 x {length} x {d_model}",
                    cuda_ms(lambda: ours(x, ours.initial_state(4))),
                    cuda_ms(lambda: ours(x)),
                    cuda_ms(lambda: theirs(x)),
                    (mine - reference).abs().max().item() / scale,
                    (fast - reference).abs().max().item() / scale,
                ]
            )
    return rows


def training_rows() -> list[list]:
    rows = []
    for name, config_file, batch_size in (("demo", "demo.yaml", 16), ("BEAT2", "beat2.yaml", 128)):
        torch.manual_seed(0)
        model = GranuMamba(load_config(CONFIGS / config_file).model).to(DEVICE).train()
        params = [p for n, p in model.named_parameters() if n.startswith("generator.")]
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        window = 128
        batch = {p: torch.randn(batch_size, window, PART_DIMS[p], device=DEVICE) for p in PART_NAMES}
        batch["audio"] = torch.randn(batch_size, window, model.config.feature_dim, device=DEVICE)
        batch["words"] = torch.zeros(batch_size, window, dtype=torch.long, device=DEVICE)
        batch["speaker"] = torch.zeros(batch_size, dtype=torch.long, device=DEVICE)

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(batch, stage=2)["total"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        rows.append([name, f"{batch_size} x {window}", cuda_ms(step, repeats=20), sum(p.numel() for p in params) / 1e6])
    return rows


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_cuda needs a CUDA GPU (this machine has none).")
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as kernel
    except ImportError:
        kernel = None
    where = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, mamba_ssm kernels: {cuda_kernels_available()}"
    table(
        f"Selective scan on CUDA, fp32, d_state {D_STATE} ({where}); ms, mean of 10; errors relative to the largest value",
        ["batch x d_inner x frames", "project scan", "mamba_ssm kernel", "kernel speed-up", "max error y", "max error state"],
        scan_rows(kernel),
    )
    rows = block_rows()
    if rows:
        table(
            "Mamba block on CUDA, project module against mamba_ssm's from one state dict; ms, mean of 10",
            ["batch x frames x d_model", "project scan", "project module, kernel path", "mamba_ssm Mamba"]
            + ["error (scan)", "error (kernel path)"],
            rows,
        )
    table(
        "Stage-2 training step on CUDA (forward + backward + AdamW, bf16 autocast); ms, mean of 20",
        ["model", "batch x frames", "ms per step", "generator M parameters"],
        training_rows(),
    )


if __name__ == "__main__":
    main()
