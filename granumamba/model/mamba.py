"""The Mamba block, weight-compatible with `mamba_ssm.modules.mamba_simple.Mamba`.

Same constructor arguments, parameter names and shapes (in_proj, conv1d, x_proj, dt_proj, A_log,
D, out_proj), so a state_dict moves between the two unchanged. On CUDA with mamba_ssm installed
the fused selective-scan kernel runs; everywhere else the project's scan (`scan.py`).
`forward` takes and returns the recurrent state (conv state, ssm state), so a long sequence can
be processed chunk by chunk with exactly the result of one pass, in constant memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .scan import selective_scan

try:  # the GPU fast path, where installed (requirements-gpu.txt)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan
except ImportError:  # pragma: no cover - CPU machines
    _cuda_selective_scan = None

MambaState = tuple[torch.Tensor, torch.Tensor]
"""(conv state (batch, d_inner, d_conv): the last d_conv inputs of the convolution,
ssm state (batch, d_inner, d_state)), as mamba_ssm's inference cache lays them out."""


def cuda_kernels_available() -> bool:
    return _cuda_selective_scan is not None and torch.cuda.is_available()


class Mamba(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
    ):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path = use_fast_path
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # As mamba_ssm: dt_proj keeps the variance; softplus(dt bias) spans [dt_min, dt_max].
        std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise ValueError(f"dt_init must be 'random' or 'constant', not {dt_init!r}")
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        # S4D-real initialisation of A, kept as log for positivity.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def initial_state(self, batch: int) -> MambaState:
        weight = self.in_proj.weight
        return (
            weight.new_zeros(batch, self.d_inner, self.d_conv),
            weight.new_zeros(batch, self.d_inner, self.d_state, dtype=torch.float32),
        )

    def forward(self, hidden_states: torch.Tensor, state: MambaState | None = None) -> tuple[torch.Tensor, MambaState]:
        """hidden_states (batch, L, d_model) -> (batch, L, d_model), and the state after the last step."""
        batch, length, _ = hidden_states.shape
        conv_state, ssm_state = state if state is not None else self.initial_state(batch)
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (batch, 2 * d_inner, L)
        x, z = xz.chunk(2, dim=1)
        # Causal depthwise convolution continuing from the carried inputs.
        x_full = torch.cat([conv_state[:, :, 1:].to(x.dtype), x], dim=2)
        new_conv_state = (
            x_full[:, :, -self.d_conv :] if x_full.shape[2] >= self.d_conv else F.pad(x_full, (self.d_conv - x_full.shape[2], 0))
        )
        x = F.silu(F.conv1d(x_full, self.conv1d.weight, self.conv1d.bias, groups=self.d_inner))
        x_dbl = self.x_proj(x.transpose(1, 2))  # (batch, L, dt_rank + 2n)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (batch, d_inner, L), bias added in the scan
        B, C = B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()
        A = -torch.exp(self.A_log.float())
        scan = selective_scan
        if self.use_fast_path and x.is_cuda and cuda_kernels_available() and state is None:
            scan = _cuda_selective_scan  # its kernel starts from a zero state
        y, last_state = scan(
            x,
            dt,
            A,
            B,
            C,
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            return_last_state=True,
            **({} if scan is _cuda_selective_scan else {"initial_state": ssm_state}),
        )
        return self.out_proj(y.transpose(1, 2)), (new_conv_state, last_state)

    def step(self, hidden_state: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One frame: (batch, d_model) -> (batch, d_model), carrying the state. The recurrence
        written out for a single frame, as mamba_ssm's `Mamba.step`: a length-1 `forward` would
        pay for the convolution and the chunked scan's set-up on every frame."""
        conv_state, ssm_state = state
        x, z = self.in_proj(hidden_state).chunk(2, dim=-1)  # (batch, d_inner) each
        conv_state = torch.cat([conv_state[:, :, 1:], x[:, :, None].to(conv_state.dtype)], dim=2)
        x = (conv_state * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        work = torch.promote_types(hidden_state.dtype, torch.float32)  # as the scan: float32 at least
        dt = F.softplus(F.linear(dt, self.dt_proj.weight, self.dt_proj.bias)).to(work)  # (batch, d_inner)
        x, B, C = x.to(work), B.to(work), C.to(work)
        A = -torch.exp(self.A_log.to(work))
        ssm_state = ssm_state.to(work) * torch.exp(dt[:, :, None] * A) + (dt * x)[:, :, None] * B[:, None, :]
        y = (ssm_state * C[:, None, :]).sum(-1) + self.D.to(work) * x
        y = (y * F.silu(z.to(work))).to(hidden_state.dtype)
        return self.out_proj(y), (conv_state, ssm_state)


class MambaLayer(nn.Module):
    """Pre-norm residual Mamba layer, as in Mamba's language models: x + Mamba(LayerNorm(x))."""

    def __init__(self, d_model: int, **mamba_kwargs):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = Mamba(d_model, **mamba_kwargs)

    def forward(self, x: torch.Tensor, state: MambaState | None = None) -> tuple[torch.Tensor, MambaState]:
        y, state = self.mixer(self.norm(x), state)
        return x + y, state

    def step(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class MambaStack(nn.Module):
    """Layers of `MambaLayer` with a final norm; the state is one (conv, ssm) pair per layer."""

    def __init__(self, d_model: int, n_layers: int, **mamba_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(MambaLayer(d_model, **mamba_kwargs) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, state: list[MambaState] | None = None) -> tuple[torch.Tensor, list[MambaState]]:
        new_state = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[i])
            new_state.append(s)
        return self.norm(x), new_state

    def step(self, x: torch.Tensor, state: list[MambaState] | None = None) -> tuple[torch.Tensor, list[MambaState]]:
        """One frame (batch, d_model), from `state` (None: the start); the same numbers as
        `forward` over the frames one at a time."""
        if state is None:
            state = [layer.mixer.initial_state(x.shape[0]) for layer in self.layers]
        new_state = []
        for layer, s in zip(self.layers, state):
            x, s = layer.step(x, s)
            new_state.append(s)
        return self.norm(x), new_state
