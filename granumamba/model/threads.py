"""How generation uses the cores. Generation is many small operations: split over torch's
intra-op threads, each waits at a barrier for all threads, and they stall as soon as another
process takes a core (a 60 s generation measured 20x slower). So generation runs torch on one
intra-op thread (`one_thread`) and uses the other cores for independent work side by side
(`in_threads`: the parts' streams and decoders), which another process on the machine only
slows by its share of the cores."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import threadpoolctl
import torch

_lock = threading.Lock()
_users = 0
_saved = 1
_pool: ThreadPoolExecutor | None = None
WORKERS = max(1, int(os.environ.get("GRANUMAMBA_WORKERS", min(4, os.cpu_count() or 1))))
# Work shorter than this many steps (a live session's 16-frame block) runs in the calling thread:
# handing it to a worker costs more than it saves, and concurrent live sessions already fill the
# cores (measured: 3 sessions fell behind real time with it split, 4 kept up without).
PARALLEL_STEPS = 16


_blas = None  # numpy's BLAS libraries (found once: inspecting the loaded libraries takes about 1 ms)
_blas_limit = None  # their one-thread limit while generation runs


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch, and numpy's BLAS (the heads' step loop), on one thread inside the block
    (restored after the last concurrent user leaves)."""
    global _users, _saved, _blas, _blas_limit
    with _lock:
        if _users == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
            if _blas is None:
                _blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
            _blas_limit = _blas.limit(limits=1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)
                _blas_limit.restore_original_limits()


def worth_threads(steps: int) -> bool:
    """Whether work of `steps` model steps per item is worth handing to worker threads."""
    return WORKERS > 1 and steps >= PARALLEL_STEPS


def _one_intra_op_thread() -> None:
    # A new thread starts with OpenMP's default thread count whatever torch's setting says.
    torch.set_num_threads(1)


def in_threads(function: Callable, items: Iterable) -> list:
    """[function(item) for item in items], the items side by side on up to WORKERS threads
    (torch releases the GIL inside its operations), each on one intra-op thread. Results in
    order; the first error raised. Call it inside `one_thread` (a new worker sets torch's
    thread count, which `one_thread` restores)."""
    global _pool
    items = list(items)
    if WORKERS == 1 or len(items) < 2:
        return [function(item) for item in items]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="granumamba", initializer=_one_intra_op_thread)
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()

    def call(item):  # autograd and inference modes are per thread: carry the caller's
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return function(item)

    return list(_pool.map(call, items))
