"""The motion autoencoder whose features FGD compares, trained by the project itself.

    python -m train.fgd_autoencoder --data data/synth --out runs/fgd [--steps 2000]

Input: 6D rotations of all 55 joints (330 numbers a frame), normalised, in sequences of 32
frames; a convolutional encoder down to 1/4 of the frame rate, a mirrored decoder; trained on
reconstruction. Features: the encoder's latent frames. Saved as config.json + model.safetensors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from granumamba.data import index_beat2, load_motion
from granumamba.motion.rotations import axis_angle_to_6d

SEGMENT = 32


def motion_features(poses: np.ndarray) -> torch.Tensor:
    """(T, 165) axis-angle -> (T', 330) 6D rotations with T' the largest multiple of 32 <= T."""
    frames = poses.shape[0] // SEGMENT * SEGMENT
    return axis_angle_to_6d(torch.as_tensor(poses[:frames], dtype=torch.float32).reshape(frames, 55, 3)).reshape(frames, 330)


class MotionAutoencoder(nn.Module):
    def __init__(self, dim: int = 330, hidden: int = 256, latent: int = 128):
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden, "latent": latent}
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv1d(dim, hidden, 3, padding=1),
            act,
            nn.Conv1d(hidden, hidden, 4, 2, 1),
            act,
            nn.Conv1d(hidden, hidden, 4, 2, 1),
            act,
            nn.Conv1d(hidden, latent, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(latent, hidden, 3, padding=1),
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, 2, 1),
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, 2, 1),
            act,
            nn.Conv1d(hidden, dim, 3, padding=1),
        )
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, T, 330) -> (batch, T/4, latent)."""
        return self.encoder(((x - self.mean) / self.std).transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x).transpose(1, 2)).transpose(1, 2) * self.std + self.mean

    @torch.no_grad()
    def features(self, poses: np.ndarray) -> np.ndarray:
        """(T, 165) axis-angle -> (T'/4, latent) features for FGD."""
        x = motion_features(poses)
        if x.shape[0] == 0:
            return np.zeros((0, self.config["latent"]), np.float32)
        return self.encode(x[None])[0].numpy()

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(self.config))

    @classmethod
    def load(cls, folder: str | Path) -> MotionAutoencoder:
        folder = Path(folder)
        try:
            model = cls(**json.loads((folder / "config.json").read_text()))
            model.load_state_dict(load_file(str(folder / "model.safetensors")))
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"{folder}: not a trained FGD autoencoder ({err}); make one with python -m train.fgd_autoencoder") from None
        return model.eval()


def train_autoencoder(
    data: str | Path, out: str | Path, steps: int = 2000, batch: int = 32, seed: int = 0, progress: bool = True
) -> MotionAutoencoder:
    torch.manual_seed(seed)
    takes = index_beat2(data, split="train" if (Path(data) / "train_test_split.csv").is_file() else None).takes
    sequences = [motion_features(load_motion(t.motion).poses) for t in takes]
    sequences = [s for s in sequences if s.shape[0] >= SEGMENT]
    if not sequences:
        raise ValueError(f"{data}: no training take of {SEGMENT} frames or more")
    stacked = torch.cat(sequences)
    model = MotionAutoencoder()
    model.mean.copy_(stacked.mean(0))
    model.std.copy_(stacked.std(0).clamp_min(1e-2))
    windows = [(i, s) for i, seq in enumerate(sequences) for s in range(0, seq.shape[0] - SEGMENT + 1, SEGMENT // 2)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc="fgd autoencoder", disable=not progress):
        pick = torch.randint(len(windows), (batch,), generator=g)
        x = torch.stack([sequences[windows[k][0]][windows[k][1] : windows[k][1] + SEGMENT] for k in pick.tolist()])
        loss = (((model(x) - x) / model.std) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save(out)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="BEAT2-layout folder (its train split)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        train_autoencoder(args.data, args.out, args.steps, seed=args.seed)
    except (ValueError, OSError) as err:
        print(f"fgd_autoencoder: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
