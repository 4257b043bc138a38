"""The selective scan (S6) of Mamba: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = C_t h_t + D u_t.

Same arguments and layout as `mamba_ssm.ops.selective_scan_interface.selective_scan_fn`
(u, delta: (batch, d, L); A: (d, n); B, C: (batch, n, L); D: (d,); z: (batch, d, L)), so the two
are interchangeable. `selective_scan_reference` is the specification, one readable step at a
time; `selective_scan` is the fast CPU form used everywhere mamba_ssm's CUDA kernel is not.

Why a loop: on a 2-core CPU a per-frame loop that only updates the state (one fused
multiply-add per frame, states written into a preallocated buffer) and contracts with C once
at the end beat Hillis-Steele and chunked log-space scans (slower, or unstable where dt*A is
large). The loop runs over chunks of the sequence so that memory stays bounded for any length.
Where no gradient is needed (generation), the recurrence and the contraction with C run as one
compiled loop (`_scan_nograd`) that never writes the states out.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F


def _discretize(u, delta, A, B, delta_bias, delta_softplus):
    """Everything in float32 at least (float64 stays float64, for exact comparisons)."""
    work = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta, u.to(work), A.to(work), B.to(work)


def _finish(y, u, D, z, dtype):
    if D is not None:
        y = y + u * D.to(u.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(u.dtype))
    return y.to(dtype)


def selective_scan_reference(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False, initial_state=None
):
    """One step at a time, as the equations read. Returns y (batch, d, L) [, last state (batch, d, n)]."""
    dtype = u.dtype
    delta, u, A, B = _discretize(u, delta, A, B, delta_bias, delta_softplus)
    C = C.to(u.dtype)
    batch, d, length = u.shape
    h = u.new_zeros(batch, d, A.shape[1]) if initial_state is None else initial_state.to(u.dtype)
    ys = []
    for t in range(length):
        dA = torch.exp(delta[:, :, t, None] * A)  # (batch, d, n)
        dBu = delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        h = dA * h + dBu
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, d, 0)
    y = _finish(y, u, D, z, dtype)
    return (y, h) if return_last_state else y


class LinearRecurrence(torch.autograd.Function):
    """states[t] = decay[t] * states[t-1] + inputs[t] along dim 0, from `initial`.

    Written by hand because autograd through a Python loop of small ops costs more than the
    loop itself; the gradient is the same recurrence run backwards:
    g[t] = grad[t] + decay[t+1] * g[t+1]; d inputs = g; d decay[t] = g[t] * states[t-1].
    """

    @staticmethod
    def run(decay: torch.Tensor, states: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """The recurrence in place: `states` holds the inputs and leaves holding the states."""
        steps, decays = states.unbind(0), decay.unbind(0)  # views made once, not per step
        steps[0].addcmul_(decays[0], initial)
        for t in range(1, len(steps)):
            steps[t].addcmul_(decays[t], steps[t - 1])
        return states

    @staticmethod
    def forward(ctx, decay: torch.Tensor, inputs: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        states = LinearRecurrence.run(decay, inputs.clone(), initial)
        ctx.save_for_backward(decay, states, initial)
        return states

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        decay, states, initial = ctx.saved_tensors
        g = grad.clone()
        steps, decays = g.unbind(0), decay.unbind(0)
        for t in range(len(steps) - 2, -1, -1):
            steps[t].addcmul_(decays[t + 1], steps[t + 1])
        previous = torch.cat([initial[None], states[:-1]], dim=0)
        return g * previous, g, decay[0] * g[0]


@numba.njit(cache=True, fastmath=True)
def _exp_nonpositive(x):  # pragma: no cover (compiled)
    """exp(x) for x <= 0 in float32, within 3e-7 relative (two to three ulps): Cody-Waite reduction by ln 2 and Cephes'
    expf polynomial, the power of two put into the exponent bits. Written out so that the
    compiled scan's inner loop vectorizes (a call to the C library's expf would not)."""
    x = max(x, np.float32(-87.0))
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)


@numba.njit(cache=True, fastmath=True, nogil=True)
def _scan_nograd(dt, u, A, B, C, h, y):  # pragma: no cover (compiled; tested through selective_scan)
    """For each step t: h = exp(dt[t] A) * h + dt[t] u[t] B[t]; y[t] = sum over n of h * C[t],
    in place on h (batch, d, n) and y (L, batch, d); dt, u (L, batch, d), A (d, n), B, C
    (L, batch, n); float32.

    Written by hand (numba, already a dependency through librosa): torch runs the recurrence
    as one small operation per step, after writing out every step's exp(dt A) and dt u B, then
    reads every stored state again for the contraction; one compiled loop keeps each state in
    cache and stores none (measured: the scan three times as fast at generation's sizes). It
    releases the GIL, so the parts' streams still run side by side on worker threads."""
    steps, batch, d = dt.shape
    n = A.shape[1]
    for t in range(steps):
        for b in range(batch):
            for i in range(d):
                delta = dt[t, b, i]
                x = delta * u[t, b, i]
                acc = np.float32(0.0)
                for k in range(n):
                    value = _exp_nonpositive(delta * A[i, k]) * h[b, i, k] + x * B[t, b, k]
                    h[b, i, k] = value
                    acc += value * C[t, b, k]
                y[t, b, i] = acc


def selective_scan(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
    chunk: int = 512,
):
    """Same result as `selective_scan_reference`, fast on a CPU, memory bounded by `chunk`."""
    dtype = u.dtype
    delta, u, A, B = _discretize(u, delta, A, B, delta_bias, delta_softplus)
    C = C.to(u.dtype)
    batch, d, length = u.shape
    n = A.shape[1]
    h = u.new_zeros(batch, d, n) if initial_state is None else initial_state.to(u.dtype).clone(memory_format=torch.contiguous_format)
    y = u.new_empty(batch, d, length)
    # No gradient, float32 on a CPU (generation): the compiled loop. A is negative, as Mamba's is.
    compiled = not torch.is_grad_enabled() and u.device.type == "cpu" and u.dtype == torch.float32 and bool((A <= 0).all())
    A_array = A.contiguous().numpy() if compiled else None
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        # Time-major and contiguous, so that each step reads and writes one (batch, d, n) block.
        dt = delta[:, :, start:stop].permute(2, 0, 1).contiguous()  # (L, batch, d)
        ut = u[:, :, start:stop].permute(2, 0, 1).contiguous()
        Bt = B[:, :, start:stop].permute(2, 0, 1).contiguous()  # (L, batch, n)
        Ct = C[:, :, start:stop].permute(2, 0, 1).contiguous()  # (L, batch, n)
        if compiled:  # generation
            out = np.empty(dt.shape, dtype=np.float32)  # (L, batch, d)
            _scan_nograd(dt.numpy(), ut.numpy(), A_array, Bt.numpy(), Ct.numpy(), h.numpy(), out)
            y[:, :, start:stop] = torch.from_numpy(out).permute(1, 2, 0)
            continue
        dA = (dt[..., None] * A).exp_()  # (L, batch, d, n)
        dBu = (dt * ut)[..., None] * Bt[:, :, None, :]
        if torch.is_grad_enabled():
            states = LinearRecurrence.apply(dA, dBu, h)  # (L, batch, d, n)
        else:  # no gradient, not the compiled case (a GPU without mamba_ssm, float64): the states overwrite their inputs
            states = LinearRecurrence.run(dA, dBu, h)
        h = states[-1].clone()
        y[:, :, start:stop] = torch.matmul(states, Ct[..., None])[..., 0].permute(1, 2, 0)
    y = _finish(y, u, D, z, dtype)
    return (y, h) if return_last_state else y
