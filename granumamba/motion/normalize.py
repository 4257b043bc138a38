"""Per-dimension normalisation statistics: computed on the training split, saved with the model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MIN_STD = 1e-2  # a dimension that (almost) never moves, like a foot contact that flips once, is not blown up


class Normalizer:
    """Mean and standard deviation per feature dimension, one pair per named stream."""

    def __init__(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        self.stats = {k: (m.float(), s.float().clamp_min(MIN_STD)) for k, (m, s) in stats.items()}

    @classmethod
    def fit(cls, streams: Iterable[dict[str, torch.Tensor]]) -> Normalizer:
        """Streams: an iterable of {name: (frames, dims)} tensors, e.g. one dict per take.

        Accumulates in float64 (sum, sum of squares) so that a large corpus needs one pass.
        """
        sums: dict[str, list[torch.Tensor]] = {}
        count: dict[str, int] = {}
        for take in streams:
            for name, x in take.items():
                x = x.reshape(-1, x.shape[-1]).double()
                acc = sums.setdefault(name, [torch.zeros(x.shape[-1], dtype=torch.float64)] * 2)
                sums[name] = [acc[0] + x.sum(0), acc[1] + (x * x).sum(0)]
                count[name] = count.get(name, 0) + x.shape[0]
        if not sums:
            raise ValueError("cannot fit normalisation statistics on no data")
        stats = {}
        for name, (total, total_sq) in sums.items():
            mean = total / count[name]
            var = (total_sq / count[name] - mean * mean).clamp_min(0.0)
            stats[name] = (mean, var.sqrt())
        return cls(stats)

    def normalize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats[name]
        return (x - mean.to(x)) / std.to(x)

    def denormalize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats[name]
        return x * std.to(x) + mean.to(x)

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, (mean, std) in self.stats.items():
            out[f"{name}.mean"] = mean.contiguous()
            out[f"{name}.std"] = std.contiguous()
        return out

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> Normalizer:
        names = sorted({k.rsplit(".", 1)[0] for k in tensors})
        try:
            return cls({n: (tensors[f"{n}.mean"], tensors[f"{n}.std"]) for n in names})
        except KeyError as err:
            raise ValueError(f"normalisation statistics incomplete: missing {err}") from None

    def save(self, path: str | Path) -> None:
        save_file(self.state_dict(), str(path))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        return cls.from_state_dict(load_file(str(path)))
