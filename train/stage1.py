"""Stage 1: train the part VQ-VAEs (motion priors).

    python -m train.stage1 --config train/configs/demo.yaml [key=value ...] [--resume]
    torchrun --nproc_per_node 4 -m train.stage1 --config train/configs/beat2.yaml

Fits the normalisation statistics and the vocabulary on the training split, trains, and writes
<out>/stage1/ (config.json + model.safetensors), which stage 2 starts from.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from granumamba.model import GranuMamba
from granumamba.motion import Normalizer
from granumamba.text import Vocabulary

from .config import ConfigError, TrainConfig, load_config, loss_options
from .loop import is_main_process, make_dataset, save_model, train


def parse(argv: list[str] | None, doc: str) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (train/configs/*.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/<stage>/checkpoint.pt")
    parser.add_argument("--stage1", type=Path, help="stage 2 only: the finished stage 1 folder (default <out>/stage1)")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. stage1.steps=500 data.root=data/synth")
    args = parser.parse_args(argv)
    return args, load_config(args.config, args.overrides)


def run_stage1(
    cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, progress: bool = True, history: list[dict] | None = None
) -> Path:
    torch.manual_seed(cfg.stage_seed(cfg.stage1))  # the model's initial weights
    window = cfg.stage1.window or cfg.data.window
    without_coarse = cfg.stage1.coarse_split_weight > 0  # the corpus's slow component, for the coarse split term
    train_set = make_dataset(cfg, "train", window, without_coarse=without_coarse)
    if len(train_set) == 0:
        raise ConfigError(f"{cfg.data.root}: no training windows of {window} frames (skipped takes: {len(train_set.skipped)}).")
    vocab = Vocabulary.build(train_set.transcripts())
    normalizer = Normalizer.fit(train_set.part_streams())
    speakers = sorted({t.speaker for t in train_set.takes})
    config = replace(
        cfg.model,
        vocab=vocab.words[2:],
        num_speakers=max(cfg.model.num_speakers, speakers[-1] + 1),
        speaker_names={str(s): f"speaker {s}" for s in speakers},
        default_speaker=cfg.model.default_speaker if cfg.model.default_speaker in speakers else speakers[0],
        trained_stages=[],
    )
    model = GranuMamba(config)
    model.set_normalizer(normalizer)
    train_set.normalizer = normalizer
    val_set = make_dataset(cfg, "val", window, normalizer=normalizer, without_coarse=without_coarse)
    run_dir = Path(cfg.out) / "stage1"
    options = loss_options(cfg.stage1)
    last = train(
        cfg,
        "stage1",
        model,
        list(model.vqvae.parameters()),
        lambda m, b: m(b, stage=1, **options),
        train_set,
        val_set,
        run_dir,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
        history=history,
    )
    model.config.trained_stages = [1]
    save_model(model, run_dir, cfg)
    if progress and is_main_process():
        print("stage 1 done:", ", ".join(f"{k}={v:.4g}" for k, v in last.items() if "/" not in k or "reconstruction" in k))
    return run_dir


def cli(argv: list[str] | None, doc: str, name: str, run) -> int:
    """Shared command line of the stages: parse, run(args, cfg) -> output folder, report errors."""
    try:
        args, cfg = parse(argv, doc)
        folder = run(args, cfg)
        if is_main_process():
            print(f"wrote {folder}")
    except (ConfigError, ValueError, OSError) as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, "stage1", lambda args, cfg: run_stage1(cfg, resume=args.resume))


if __name__ == "__main__":
    sys.exit(main())
