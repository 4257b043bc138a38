"""Stage 1: the motion prior, one multi-level VQ-VAE per body part.

A convolutional encoder takes a part's features (batch, T, dims) to a latent at T / 4; the
`MultiRateQuantizer` splits it into coarse (T/16), mid (T/8) and fine (T/4) levels; the decoder
maps the (gain-weighted) sum of the levels back to (batch, T, dims).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import VQConfig
from .quantizer import MultiRateQuantizer, combine


class ResBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.relu(self.conv(F.relu(x))))


class PartVQVAE(nn.Module):
    def __init__(self, in_dim: int, config: VQConfig | None = None):
        super().__init__()
        config = config or VQConfig()
        hidden, latent_dim, downsamples = config.vq_hidden, config.latent_dim, config.downsamples
        self.in_dim, self.latent_dim, self.downsamples = in_dim, latent_dim, downsamples
        enc: list[nn.Module] = [nn.Conv1d(in_dim, hidden, 3, padding=1)]
        for _ in range(downsamples):
            enc += [ResBlock(hidden, 1), ResBlock(hidden, 3), nn.Conv1d(hidden, hidden, 4, stride=2, padding=1)]
        enc += [ResBlock(hidden, 1), nn.ReLU(), nn.Conv1d(hidden, latent_dim, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(latent_dim, hidden, 3, padding=1), ResBlock(hidden, 1)]
        for _ in range(downsamples):
            dec += [
                ResBlock(hidden, 3),
                ResBlock(hidden, 1),
                # Linear, not nearest: nearest doubling leaves a frame-to-frame ripple that the
                # hands' speed shows as false pauses (motion beats that are not in the data).
                nn.Upsample(scale_factor=2, mode="linear", align_corners=False),
                nn.Conv1d(hidden, hidden, 3, padding=1),
            ]
        dec += [nn.ReLU(), nn.Conv1d(hidden, in_dim, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.quantizer = MultiRateQuantizer(latent_dim, config.codebook_size, tuple(config.factors), config.beta, config.dead_after)

    @property
    def frames_per_latent(self) -> int:
        return 2**self.downsamples

    @property
    def frame_multiple(self) -> int:
        """Sequence lengths (frames) must be a multiple of this."""
        return self.frames_per_latent * self.quantizer.stride

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, T, in_dim) -> (batch, T / 4, latent_dim)."""
        if x.shape[1] % self.frame_multiple:
            raise ValueError(f"motion length {x.shape[1]} is not a multiple of {self.frame_multiple} frames")
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(batch, T / 4, latent_dim) -> (batch, T, in_dim)."""
        return self.decoder(latent.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor):
        """Reconstruct x; returns (x_hat, per-level indices, per-level contributions, stats)."""
        contributions, indices, stats = self.quantizer(self.encode(x))
        return self.decode(combine(contributions)), indices, contributions, stats


def prior_loss(
    x: torch.Tensor, x_hat: torch.Tensor, stats: dict[str, torch.Tensor], velocity_weight: float = 1.0, acceleration_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Stage 1's objective: S3 reconstruction + S4 codebook + S5 commitment (beta inside the
    quantiser) = S6, plus velocity and acceleration reconstruction terms."""
    rec = F.mse_loss(x_hat, x)
    vel = F.mse_loss(x_hat.diff(dim=1), x.diff(dim=1))
    acc = F.mse_loss(x_hat.diff(n=2, dim=1), x.diff(n=2, dim=1))
    total = rec + stats["codebook"] + stats["commitment"] + velocity_weight * vel + acceleration_weight * acc
    return {
        "total": total,
        "reconstruction": rec,
        "codebook": stats["codebook"],
        "commitment": stats["commitment"],
        "velocity": vel,
        "acceleration": acc,
    }
