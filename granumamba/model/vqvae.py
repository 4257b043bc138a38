"""Stage 1: the motion prior, one multi-level VQ-VAE per body part.

A convolutional encoder takes a part's features (batch, T, dims) to a latent at T / 4; the
`MultiRateQuantizer` splits it into coarse (T/16), mid (T/8) and fine (T/4) levels; the decoder
maps the (gain-weighted) levels back to (batch, T, dims), in one of two ways:

- joint (`split_decoder` false): one decoder of the levels' sum;
- split (`split_decoder` true): the coarse and mid levels' sum through one decoder whose output
  is low-passed (by default at the mid level's Nyquist rate, 1.9 Hz at 8 frames a mid code and
  30 fps; at `slow_cutoff` Hz where that is set), plus the fine level through a decoder without
  biases. So the motion faster than the cutoff is the fine level's alone, for any codes the
  generator samples (a loss asking for it holds only for the codes it was trained on), and the
  fine decoder, a ReLU network without biases, is positively homogeneous: the fine gain scales
  the fine level's motion exactly.

With `level_bands` as well, each level has a decoder of its own and a frequency band of its own:
the coarse level below its Nyquist rate (0.94 Hz at 16 frames a coarse code; lower at
`coarse_cutoff` where that is set), the mid level from there up to the split decoder's cutoff,
the fine level above it (Gaussian low-passes whose differences add up to the whole band, so
nothing is lost between them). The coarse decoder, like
the fine one, has no biases, so the coarse gain scales the coarse level's motion exactly too, and
what the other levels leave in the slow band is small: the coarse slider then moves the slow
posture by the gain itself (a joint decoder of the coarse and mid levels can decode a lowered coarse
gain to a posture that swings more, not less). With `coarse_context` the mid decoder reads the
coarse codes too, unscaled: what the mid band holds then depends on the posture it starts from,
not on the coarse gain, and the mid gain scales that band exactly.

`causal` decoders see no later latent than a frame's own (live mode). A causal split decoder
has no low-pass: a causal one delays what it smooths (a Gaussian by its radius, 9 frames), and a
model trained with it had to choose each stroke's mid code 0.4 s before the stroke, from speech
it had not heard yet, and barely moved. Its fine gain still scales the fine level exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import FPS
from .configs import ModelLoadError, VQConfig
from .quantizer import MultiRateQuantizer, combine


def gaussian_radius(sigma: float) -> int:
    """Frames either side that `low_pass`'s kernel reaches (three sigmas)."""
    return max(1, round(3 * sigma))


def low_pass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(batch, T, dims) smoothed along time by a Gaussian of `sigma` frames (the edge frames
    repeated). Written here because torch has no 1-D Gaussian filter for sequences
    (torchvision's blurs images); it is one grouped convolution."""
    radius = gaussian_radius(sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).expand(x.shape[-1], 1, -1)
    padded = F.pad(x.transpose(1, 2), (radius, radius), mode="replicate")
    return F.conv1d(padded, kernel, groups=x.shape[-1]).transpose(1, 2)


def _sigma(cutoff: float) -> float:
    """The sigma (frames) of the Gaussian low-pass whose response halves at `cutoff` Hz: the
    response at f is 2^-(f / cutoff)^2."""
    return math.sqrt(2 * math.log(2)) * FPS / (2 * math.pi * cutoff)


class CausalConv1d(nn.Conv1d):
    """A convolution whose output at step t sees inputs up to t only (zeros before the start)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs | {"padding": 0})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, ((self.kernel_size[0] - 1) * self.dilation[0], 0)))


class CausalDoubling(nn.Module):
    """Twice the rate, linear between samples, each output seeing its own sample and the one
    before (nn.Upsample's linear mode looks one sample ahead): out[2i] = (x[i-1] + x[i]) / 2,
    out[2i + 1] = x[i]."""

    scale_factor = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        repeated = x.repeat_interleave(2, dim=2)
        return 0.5 * (repeated + F.pad(repeated, (1, 0), mode="replicate")[..., :-1])


def _conv(channels_in: int, channels_out: int, kernel: int, dilation: int = 1, bias: bool = True, causal: bool = False) -> nn.Conv1d:
    if causal:
        return CausalConv1d(channels_in, channels_out, kernel, dilation=dilation, bias=bias)
    return nn.Conv1d(channels_in, channels_out, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation, bias=bias)


class ResBlock(nn.Module):
    def __init__(self, channels: int, dilation: int, bias: bool = True, causal: bool = False):
        super().__init__()
        self.conv = _conv(channels, channels, 3, dilation, bias, causal)
        self.proj = nn.Conv1d(channels, channels, 1, bias=bias)

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
        self.causal, self.slow_cutoff, self.coarse_cutoff = config.causal, config.slow_cutoff, config.coarse_cutoff
        self.coarse_context = config.coarse_context
        self.decoder = _decoder(latent_dim, hidden, in_dim, downsamples, bias=True, causal=self.causal)
        self.fine_decoder = _decoder(latent_dim, hidden, in_dim, downsamples, False, self.causal) if config.split_decoder else None
        if config.level_bands and (not config.split_decoder or config.causal or len(config.factors) != 3):
            raise ModelLoadError("level_bands needs split_decoder, three levels and a decoder that is not causal (config.json)")
        if config.coarse_context and not config.level_bands:
            raise ModelLoadError("coarse_context needs level_bands (config.json)")
        self.coarse_decoder = _decoder(latent_dim, hidden, in_dim, downsamples, False) if config.level_bands else None
        self.quantizer = MultiRateQuantizer(
            latent_dim, config.codebook_size, tuple(config.factors), config.beta, config.dead_after, causal=self.causal
        )
        if config.level_bands and self.coarse_sigma <= self.slow_sigma:
            raise ModelLoadError("level_bands needs coarse_cutoff below the split decoder's cutoff (config.json)")

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

    @property
    def slow_sigma(self) -> float:
        """The split decoder's low-pass: a Gaussian whose response halves at `slow_cutoff` Hz, or,
        where that is 0, at the mid level's Nyquist rate (8 frames a mid code: 1.9 Hz at 30 fps,
        sigma 3 frames). The response at f is 2^-(f / cutoff)^2."""
        return _sigma(self.slow_cutoff or FPS / (2 * self.frames_per_latent * self.quantizer.factors[-2]))

    @property
    def coarse_sigma(self) -> float:
        """`level_bands`' low-pass of the coarse level: halving at `coarse_cutoff` Hz, or, where
        that is 0, at the coarse level's Nyquist rate (16 frames a coarse code: 0.94 Hz at 30 fps,
        sigma 6 frames)."""
        return _sigma(self.coarse_cutoff or FPS / (2 * self.frames_per_latent * self.quantizer.factors[0]))

    @property
    def reach(self) -> int:
        """Frames either side of a frame (`causal`: before it; none after) that its decoding sees,
        at most, read from the decoders' layers (each convolution's half-width, or causal width,
        times its dilation; one input sample for each doubling's interpolation) and the split
        decoder's low-pass: windowed decoding with this much context is exact."""

        def layers_reach(decoder: nn.Module) -> int:
            rate, frames = self.frames_per_latent, 0  # frames per sample at the layer's rate
            for layer in decoder.modules():
                if isinstance(layer, nn.Conv1d):
                    width = layer.kernel_size[0] - 1 if isinstance(layer, CausalConv1d) else (layer.kernel_size[0] - 1) // 2
                    frames += width * layer.dilation[0] * rate
                elif isinstance(layer, (nn.Upsample, CausalDoubling)):
                    frames += rate
                    rate //= int(layer.scale_factor)
            return frames

        if self.fine_decoder is None:
            return layers_reach(self.decoder)
        if self.coarse_decoder is not None:  # each band's decoder, then its widest low-pass
            coarse, slow = gaussian_radius(self.coarse_sigma), gaussian_radius(self.slow_sigma)
            return max(
                layers_reach(self.coarse_decoder) + coarse, layers_reach(self.decoder) + coarse, layers_reach(self.fine_decoder) + slow
            )
        low_pass_reach = 0 if self.causal else gaussian_radius(self.slow_sigma)
        return max(layers_reach(self.decoder) + low_pass_reach, layers_reach(self.fine_decoder))

    def decode(self, contributions: list[torch.Tensor], gains: tuple[float, ...] | None = None) -> torch.Tensor:
        """Per-level contributions [(batch, T / 4, latent_dim)] (`quantizer`), each scaled by its
        gain (default 1; 0 removes the level exactly) -> (batch, T, in_dim)."""
        if self.fine_decoder is None:
            return self._run(self.decoder, combine(contributions, gains))
        gains = gains or (1.0,) * len(contributions)
        if self.coarse_decoder is not None:
            return self._level_bands(contributions, gains)
        slow = self._run(self.decoder, combine(contributions[:-1], gains[:-1]))
        if not self.causal:  # a causal low-pass delays what it smooths (see the module's docstring)
            slow = low_pass(slow, self.slow_sigma)
        if gains[-1] == 0.0:
            return slow
        return slow + self._run(self.fine_decoder, gains[-1] * contributions[-1])

    def _level_bands(self, contributions: list[torch.Tensor], gains: tuple[float, ...]) -> torch.Tensor:
        """`level_bands`' decoding: each level's own decoder, each output kept to its level's band
        (a gain of 0 skips the level's decoder: its band is then exactly empty). With
        `coarse_context` the mid decoder reads the coarse codes beside its own, unscaled, so the
        strokes keep the shape that the posture they start from gives them at any coarse gain, and
        the mid gain scales its band (scaling its latent would decode the coarse codes alone into
        the stroke band as the mid gain nears 0, and leave nothing at 0 itself)."""
        if len(gains) != 3 or len(contributions) != 3:
            raise ValueError(f"{len(gains)} gains for {len(contributions)} levels; level_bands decodes three")
        bands = ((self.coarse_decoder, None, self.coarse_sigma), (self.decoder, self.coarse_sigma, self.slow_sigma))
        bands += ((self.fine_decoder, self.slow_sigma, None),)
        # (the latent a level's decoder reads, what its band is scaled by afterwards)
        inputs = [(gain * contribution, 1.0) for gain, contribution in zip(gains, contributions)]
        if self.coarse_context:  # the mid decoder's context at full weight whatever the gains; its band scaled by
            inputs[1] = (contributions[0] + contributions[1], gains[1])  # the mid gain, exact and continuous down to 0
        total = None
        for (decoder, below, above), gain, (latent, scale) in zip(bands, gains, inputs):
            if gain == 0.0:
                continue
            y = self._run(decoder, latent)
            band = low_pass(y, above) if above else y
            if below:
                band = band - low_pass(y, below)
            band = scale * band
            total = band if total is None else total + band
        if total is None:  # every gain 0: the mean pose (the features are normalised), no motion
            batch, steps, _ = contributions[0].shape
            total = contributions[0].new_zeros(batch, steps * self.frames_per_latent, self.in_dim)
        return total

    @staticmethod
    def _run(decoder: nn.Module, latent: torch.Tensor) -> torch.Tensor:
        return decoder(latent.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor):
        """Reconstruct x; returns (x_hat, per-level indices, per-level contributions, stats)."""
        contributions, indices, stats = self.quantizer(self.encode(x))
        return self.decode(contributions), indices, contributions, stats


def _decoder(latent_dim: int, hidden: int, out_dim: int, downsamples: int, bias: bool, causal: bool = False) -> nn.Sequential:
    """Latents (batch, latent_dim, L) -> (batch, out_dim, L * 2^downsamples); `causal`: no
    frame sees a later latent than its own (live mode gives each frame out as soon as its
    latent is sampled, and it never changes)."""
    layers: list[nn.Module] = [_conv(latent_dim, hidden, 3, bias=bias, causal=causal), ResBlock(hidden, 1, bias, causal)]
    for _ in range(downsamples):
        layers += [
            ResBlock(hidden, 3, bias, causal),
            ResBlock(hidden, 1, bias, causal),
            # Linear, not nearest: nearest doubling leaves a frame-to-frame ripple that the
            # hands' speed shows as false pauses (motion beats that are not in the data).
            CausalDoubling() if causal else nn.Upsample(scale_factor=2, mode="linear", align_corners=False),
            _conv(hidden, hidden, 3, bias=bias, causal=causal),
        ]
    return nn.Sequential(*layers, nn.ReLU(), _conv(hidden, out_dim, 3, bias=bias, causal=causal))


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
