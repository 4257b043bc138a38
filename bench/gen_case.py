"""One generation case in a fresh process (for peak memory): prints a JSON line.

python -m bench.gen_case --model DIR|demo|beat2 --seconds 60 [--chunk 480|0] [--mixer mamba|transformer] [--busy]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

from granumamba.audio import speech_features
from granumamba.model import GranuMamba
from granumamba.pipeline import BUNDLED_MODEL

from .common import current_peak_rss_mb, reset_peak_rss

SIZES = {
    "demo": None,  # the bundled checkpoint
    "beat2": dict(vq_hidden=256, latent_dim=128, codebook_size=512, d_model=256, n_global=4, n_local=4, num_speakers=31),
}


class CachedTransformerLayer(nn.Module):
    """A pre-norm Transformer encoder layer that keeps its past keys (normalised inputs), so it
    runs step by step like a Mamba layer carrying its state. (nn.TransformerEncoderLayer has
    no key-value cache, hence this one.)"""

    def __init__(self, d_model: int, heads: int = 4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x, past=None):
        h = self.norm1(x)
        keys = h if past is None else torch.cat([past, h], dim=1)
        offset = keys.shape[1] - x.shape[1]
        # query i sees keys up to offset + i
        mask = torch.ones(x.shape[1], keys.shape[1], dtype=torch.bool).triu(offset + 1)
        x = x + self.attention(h, keys, keys, attn_mask=mask, need_weights=False)[0]
        return x + self.feed_forward(self.norm2(x)), keys


class TransformerStack(nn.Module):
    """Drop-in for MambaStack with causal Transformer layers of the same width and depth; its
    state is each layer's key cache, which grows with the sequence (a Mamba state does not)."""

    def __init__(self, d_model: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(CachedTransformerLayer(d_model) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, state=None):
        new_state = []
        for i, layer in enumerate(self.layers):
            x, keys = layer(x, None if state is None else state[i])
            new_state.append(keys)
        return self.norm(x), new_state

    def step(self, x, state=None):
        y, state = self.forward(x[:, None], state)
        return y[:, 0], state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--chunk", type=int, default=480, help="frames per streaming chunk; 0 = one pass")
    parser.add_argument("--mixer", choices=("mamba", "transformer"), default="mamba")
    parser.add_argument("--features", action="store_true", help="include speech feature extraction in the timing")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another process while timing")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model in SIZES and SIZES[args.model] is not None:
        model = GranuMamba(SIZES[args.model]).eval()
    else:
        model = GranuMamba.from_pretrained(BUNDLED_MODEL if args.model == "demo" else args.model)
    if args.mixer == "transformer":
        gen = model.generator
        d = gen.pack.out_features
        gen.global_stream = TransformerStack(d, len(gen.global_stream.layers))
        gen.local_streams = nn.ModuleList(TransformerStack(d, len(s.layers)) for s in gen.local_streams)
        model.eval()
    samples = int(args.seconds * 16000)
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.1, samples) * (1 + np.sin(np.arange(samples) / 16000 * 2 * np.pi * 2))).astype(np.float32)
    speech_features(audio[:16000])  # librosa's first call compiles and imports: not part of the figure
    started = time.perf_counter()
    features = torch.from_numpy(speech_features(audio))
    feature_s = time.perf_counter() - started
    feature_peak = current_peak_rss_mb()
    model.generate(features[:160], rng_seed=0)  # warm up
    del audio
    gc.collect()
    reset_peak_rss()
    baseline = current_peak_rss_mb()
    generate_s = float("inf")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None  # other work on the machine
    with torch.inference_mode():
        for _ in range(3):  # best of three: the machine's other work only ever adds time
            started = time.perf_counter()
            model.generate(features, rng_seed=0, chunk_frames=args.chunk or None)
            generate_s = min(generate_s, time.perf_counter() - started)
    if busy is not None:
        busy.kill()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "features_s": feature_s,
                "generate_s": generate_s,
                "peak_mb": current_peak_rss_mb(),
                "baseline_mb": baseline,
                "feature_peak_mb": feature_peak,
                "params_m": params,
            }
        )
    )


if __name__ == "__main__":
    main()
