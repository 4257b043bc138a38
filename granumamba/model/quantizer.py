"""Vector quantisation: one codebook (`VectorQuantizer`) and the multi-rate residual stack
(`MultiRateQuantizer`) that gives each body part its coarse, mid and fine levels.

Losses follow the supplementary material: codebook ||sg[z] - e||^2 (S4) and beta-weighted
commitment ||z - sg[e]||^2 (S5), with the straight-through estimator. Dead codes (unused for
`dead_after` updates) restart at encoder outputs of the current batch; perplexity and dead-code
counts are reported for logging.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Quantized:
    """What a quantiser returns: `quantized` (straight-through), `indices`, the loss terms, health."""

    quantized: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    dead_codes: int


class VectorQuantizer(nn.Module):
    def __init__(self, dim: int, codebook_size: int, beta: float = 0.25, dead_after: int = 200):
        super().__init__()
        self.dim, self.codebook_size, self.beta, self.dead_after = dim, codebook_size, beta, dead_after
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) / dim**0.5)
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))  # saved: resuming restarts the same codes

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (...,) index of the closest code (Euclidean)."""
        flat = z.reshape(-1, self.dim)
        distance = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return distance.argmin(dim=1).reshape(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook)

    def forward(self, z: torch.Tensor) -> Quantized:
        """z (..., dim) -> Quantized with quantized (..., dim) and indices (...)."""
        indices = self.nearest(z.detach())
        codes = self.lookup(indices)
        codebook_loss = F.mse_loss(codes, z.detach())
        commitment_loss = self.beta * F.mse_loss(z, codes.detach())
        quantized = z + (codes - z).detach()  # straight through
        counts = torch.bincount(indices.reshape(-1), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        if self.training:
            self._restart_dead_codes(z.detach().reshape(-1, self.dim), counts)
        dead = int((self.steps_unused >= self.dead_after).sum())
        return Quantized(quantized, indices, codebook_loss, commitment_loss, perplexity, dead)

    @torch.no_grad()
    def _restart_dead_codes(self, z: torch.Tensor, counts: torch.Tensor) -> None:
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        dead = torch.nonzero(self.steps_unused >= self.dead_after).flatten()
        if dead.numel() and z.shape[0]:
            pick = torch.randint(0, z.shape[0], (dead.numel(),), device=z.device)
            self.codebook.data[dead] = z[pick] + 0.01 * torch.randn_like(z[pick]) * z.std()
            self.steps_unused[dead] = 0


LEVELS = ("coarse", "mid", "fine")


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(batch, L, dim) -> (batch, L / factor, dim) by averaging; L must be a multiple of factor."""
    if factor == 1:
        return x
    return x.reshape(x.shape[0], x.shape[1] // factor, factor, x.shape[2]).mean(2)


def upsample(x: torch.Tensor, factor: int, causal: bool = False) -> torch.Tensor:
    """(batch, L, dim) -> (batch, L * factor, dim): linear between token centres (smooth, so a
    coarse level decodes to smooth motion rather than steps), or, `causal`, each token repeated
    over its own span, so that no step sees a later token and none waits for its own (a ramp
    from the token before reached each token's value only at the end of its span, which put the
    strokes a mid token late; the causal decoder smooths the steps)."""
    if factor == 1:
        return x
    if causal:
        return x.repeat_interleave(factor, dim=1)
    return F.interpolate(x.transpose(1, 2), scale_factor=factor, mode="linear", align_corners=False).transpose(1, 2)


class MultiRateQuantizer(nn.Module):
    """Residual quantisation at several temporal rates, coarse first.

    Each level averages what the coarser levels left over `factor` latent steps, quantises it
    with its own codebook and is upsampled back; the latent is the sum of the levels, so each
    level's contribution can be scaled (or removed) on its own before decoding.
    """

    def __init__(
        self, dim: int, codebook_size: int, factors: tuple[int, ...], beta: float = 0.25, dead_after: int = 200, causal: bool = False
    ):
        super().__init__()
        self.causal = causal  # levels upsampled causally (`upsample`)
        if list(factors) != sorted(factors, reverse=True):
            raise ValueError(f"factors go from coarse to fine (decreasing), got {factors}")
        self.factors = tuple(factors)
        self.quantizers = nn.ModuleList(VectorQuantizer(dim, codebook_size, beta, dead_after) for _ in factors)

    @property
    def stride(self) -> int:
        """Latent steps the sequence length must be a multiple of."""
        return self.factors[0]

    def forward(self, z: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]:
        """z (batch, L, dim) -> per-level contributions [(batch, L, dim)], per-level indices
        [(batch, L / factor)], and summed losses with health figures."""
        residual = z
        contributions, indices = [], []
        stats: dict[str, torch.Tensor] = {"codebook": z.new_zeros(()), "commitment": z.new_zeros(())}
        for level, (factor, quantizer) in enumerate(zip(self.factors, self.quantizers)):
            q = quantizer(downsample(residual, factor))
            contribution = upsample(q.quantized, factor, self.causal)
            residual = residual - contribution
            contributions.append(contribution)
            indices.append(q.indices)
            stats["codebook"] = stats["codebook"] + q.codebook_loss
            stats["commitment"] = stats["commitment"] + q.commitment_loss
            stats[f"perplexity_{LEVELS[level]}"] = q.perplexity.detach()
            stats[f"dead_{LEVELS[level]}"] = torch.tensor(float(q.dead_codes))
        return contributions, indices, stats

    def contributions_from_indices(self, indices: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-level indices [(batch, L / factor)] -> per-level contributions [(batch, L, dim)]."""
        return [upsample(q.lookup(i), f, self.causal) for q, i, f in zip(self.quantizers, indices, self.factors)]


def combine(contributions: list[torch.Tensor], gains: tuple[float, ...] | None = None) -> torch.Tensor:
    """The latent to decode: the levels summed, each scaled by its gain (default 1)."""
    gains = gains or (1.0,) * len(contributions)
    if len(gains) != len(contributions):
        raise ValueError(f"{len(gains)} gains for {len(contributions)} levels")
    total = torch.zeros_like(contributions[0])
    for gain, c in zip(gains, contributions):
        if gain != 0.0:  # a gain of 0 removes the level exactly
            total = total + gain * c
    return total
