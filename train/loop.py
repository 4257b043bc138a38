"""One training loop for both stages, readable top to bottom.

Distributed data parallel through torchrun (the same command on one CPU or many GPUs), bf16
autocast on CUDA, gradient clipping, warmup + cosine learning rate, tqdm progress, TensorBoard
logs, atomic checkpoints, and `--resume` that continues a killed run with the same batches and
random numbers, so its losses equal an uninterrupted run's.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate
from tqdm import tqdm

from granumamba.data import GestureWindows

from .config import StageConfig, TrainConfig, training_summary

CHECKPOINT = "checkpoint.pt"


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a single process: the one that writes files."""
    return not dist.is_initialized() or dist.get_rank() == 0


def save_model(model, folder: Path, cfg: TrainConfig) -> None:
    """Write the trained model, its card saying how it was trained (train.config.training_summary),
    from rank 0 only; every rank waits until it is written."""
    if is_main_process():
        model.save_pretrained(folder, model_card_kwargs={"training": training_summary(cfg, model.config.trained_stages)})
    if dist.is_initialized():
        dist.barrier()


def make_dataset(cfg: TrainConfig, split: str, window: int, vocab=None, normalizer=None, without_coarse: bool = False) -> GestureWindows:
    stride = cfg.data.stride if split == "train" else window
    return GestureWindows(
        cfg.data.root,
        split=split,
        speakers=cfg.data.speakers,
        window=window,
        stride=stride,
        cache_dir=cfg.data.cache_dir,
        vocab=vocab,
        normalizer=normalizer,
        without_coarse=without_coarse,
    )


def batch_indices(size: int, batch: int, step: int, seed: int, rank: int, world: int) -> list[int]:
    """The dataset items of `step` for this rank: epochs are seeded permutations, so any step's
    batch can be recomputed on resume without replaying the ones before it."""
    global_batch = batch * world
    per_epoch = max(1, size // global_batch)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    start = position * global_batch + rank * batch
    return [int(order[(start + i) % size]) for i in range(batch)]


def learning_rate(stage: StageConfig, step: int) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_checkpoint(path: Path, **state) -> None:
    """Write atomically: a killed write leaves the previous checkpoint intact."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    # Our own run's file; weights_only refuses anything but tensors and plain containers.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: the checkpoint is damaged or truncated ({str(err)[:120]}); delete it to start the stage anew") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "rng", "step"} <= set(state):
        raise ValueError(f"{path}: not a checkpoint of this trainer (needs model, optimizer, rng, step)")
    return state


def train(
    cfg: TrainConfig,
    stage_name: str,
    model: torch.nn.Module,
    parameters: list[torch.nn.Parameter],
    loss_fn: Callable[[torch.nn.Module, dict], dict[str, torch.Tensor]],
    train_set: GestureWindows,
    val_set: GestureWindows | None,
    run_dir: Path,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    history: list[dict] | None = None,
    on_eval: Callable | None = None,
) -> dict[str, float]:
    """Optimise `parameters` of `model` on `loss_fn(model, batch)["total"]`; returns the last
    logged losses (and appends every logged row, with its step, to `history`). `stop_after`
    ends early after that many steps (a stand-in for a killed run). `on_eval(model, writer, step)`
    runs on rank 0 at each evaluation (e.g. to log a rendered sample)."""
    stage: StageConfig = getattr(cfg, stage_name)
    rank, world, device = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    trained = {id(p) for p in parameters}
    for p in model.parameters():  # what this stage does not train gets no gradient (and DDP no hook)
        p.requires_grad_(id(p) in trained)
    wrapped = DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.AdamW(parameters, lr=stage.lr, weight_decay=stage.weight_decay)
    step = 0
    seed = cfg.stage_seed(stage)  # of this stage's batches (and of its initial weights, seeded by the stage)
    checkpoint = run_dir / CHECKPOINT
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step = int(state["step"])
    else:  # a fresh run, or a resumed one killed before its first checkpoint: the same batches either way
        torch.manual_seed(seed + rank)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
    use_amp = cfg.mixed_precision and device.type == "cuda"
    last: dict[str, float] = {}
    bar = tqdm(total=stage.steps, initial=step, desc=stage_name, disable=not progress or rank != 0, unit="step")
    end = stage.steps if stop_after is None else min(stage.steps, step + stop_after)
    started = time.perf_counter()
    while step < end:
        model.train()
        items = [train_set[i] for i in batch_indices(len(train_set), stage.batch_size, step, seed, rank, world)]
        batch = {k: v.to(device) for k, v in default_collate(items).items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(stage, step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = loss_fn(wrapped, batch)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, stage.grad_clip)
        optimizer.step()
        step += 1
        bar.update(1)
        if step % stage.log_every == 0 or step == end:
            last = {k: float(v.detach()) for k, v in losses.items()}
            last["grad_norm"], last["lr"] = float(grad_norm), optimizer.param_groups[0]["lr"]
            if history is not None:
                history.append({"step": step, **last})
            bar.set_postfix(loss=f"{last['total']:.4f}")
            if writer:
                for k, v in last.items():
                    writer.add_scalar(f"{stage_name}/{k}", v, step)
                writer.add_scalar(f"{stage_name}/steps_per_second", step / (time.perf_counter() - started + 1e-9), step)
        if val_set is not None and len(val_set) and (step % stage.eval_every == 0 or step == stage.steps) and rank == 0:
            val = evaluate_loss(model, loss_fn, val_set, stage.batch_size, device)
            last.update({f"val_{k}": v for k, v in val.items()})
            if writer:
                for k, v in val.items():
                    writer.add_scalar(f"{stage_name}/val_{k}", v, step)
                if on_eval is not None:
                    on_eval(model, writer, step)
        if rank == 0 and (step % stage.checkpoint_every == 0 or step == end):
            save_checkpoint(
                checkpoint,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                rng=torch.get_rng_state(),
                step=step,
                config=str(asdict(cfg)),
            )
    bar.close()
    if writer:
        writer.close()
    return last


@torch.no_grad()
def evaluate_loss(
    model, loss_fn, dataset: GestureWindows, batch_size: int, device: torch.device, max_batches: int = 20
) -> dict[str, float]:
    """Mean losses over (up to max_batches of) a held-out set, in eval mode, with fixed random numbers."""
    model.eval()
    rng = torch.get_rng_state()
    torch.manual_seed(0)
    totals: dict[str, float] = {}
    count = 0
    for start in range(0, min(len(dataset), batch_size * max_batches), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in default_collate(items).items()}
        for k, v in loss_fn(model, batch).items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(items)
        count += len(items)
    torch.set_rng_state(rng)
    return {k: v / max(1, count) for k, v in totals.items()}
