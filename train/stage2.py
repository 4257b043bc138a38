"""Stage 2: train the coarse-to-fine generator on a finished stage 1.

    python -m train.stage2 --config train/configs/demo.yaml [--stage1 DIR] [key=value ...] [--resume]

Reads <out>/stage1 (or --stage1), freezes its VQ-VAEs and statistics, trains the generator and
writes the complete model to <out>/model (config.json + model.safetensors).
"""

from __future__ import annotations

import sys
from dataclasses import fields, replace
from pathlib import Path

import torch

from granumamba.model import GranuMamba
from granumamba.model.configs import GeneratorSizes, VQConfig

from .config import ConfigError, TrainConfig, loss_options
from .loop import is_main_process, make_dataset, save_model, train
from .metrics import audio_onsets, beat_consistency, l1_diversity, motion_positions
from .stage1 import cli

# Built from the modules' own configs: a field added to either is checked or carried over by name.
STAGE1_FIELDS = (*(f.name for f in fields(VQConfig) if f.name != "dead_after"), "feature_dim")
GENERATOR_FIELDS = tuple(f.name for f in fields(GeneratorSizes))
SERVED_FIELDS = ("temperature", "hold_temperature", "level_temperature")  # how the model samples when served


def load_stage1(cfg: TrainConfig, stage1_dir: Path) -> GranuMamba:
    """The stage 1 model, rebuilt with this config's generator sizes; a missing, unfinished or
    mismatched stage 1 is a clear error."""
    if not (stage1_dir / "model.safetensors").is_file():
        raise ConfigError(f"{stage1_dir}: no finished stage 1 here; run python -m train.stage1 with the same config first.")
    stage1 = GranuMamba.from_pretrained(stage1_dir, motion_priors_only=True)
    if 1 not in stage1.config.trained_stages:
        raise ConfigError(f"{stage1_dir}: this model has not finished stage 1 (trained stages: {stage1.config.trained_stages}).")
    mismatched = [f for f in STAGE1_FIELDS if getattr(stage1.config, f) != getattr(cfg.model, f)]
    if mismatched:
        detail = ", ".join(f"{f}: stage 1 has {getattr(stage1.config, f)}, config says {getattr(cfg.model, f)}" for f in mismatched)
        raise ConfigError(f"{stage1_dir}: stage 1 does not match this config ({detail}).")
    # the generator's sizes, and the temperatures the model is served at, are stage 2's to set
    return stage1.with_new_generator(replace(stage1.config, **{f: getattr(cfg.model, f) for f in (*GENERATOR_FIELDS, *SERVED_FIELDS)}))


def run_stage2(
    cfg: TrainConfig,
    stage1_dir: Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    history: list[dict] | None = None,
) -> Path:
    torch.manual_seed(cfg.stage_seed(cfg.stage2))  # the generator's initial weights
    model = load_stage1(cfg, stage1_dir or Path(cfg.out) / "stage1")  # the loop freezes all but the generator
    window = cfg.stage2.window or cfg.data.window
    if window % model.frame_multiple:
        raise ConfigError(f"stage2.window ({window}) must be a multiple of {model.frame_multiple} frames")
    normalizer = model.normalizer
    train_set = make_dataset(cfg, "train", window, vocab=model.vocab, normalizer=normalizer)
    val_set = make_dataset(cfg, "val", window, vocab=model.vocab, normalizer=normalizer)
    if len(train_set) == 0:
        raise ConfigError(f"{cfg.data.root}: no training windows of {window} frames.")
    options = loss_options(cfg.stage2)

    def loss(m, batch):
        m.vqvae.eval() if hasattr(m, "vqvae") else m.module.vqvae.eval()  # frozen: no dead-code restarts
        return m(batch, stage=2, **options)

    def log_sample(m, writer, step):
        """The first validation take generated from its speech: its metrics (BC at sigma 0.3 and
        0.1 s against its own onsets, L1div), and a rendered sample where a renderer is installed."""
        from granumamba.pipeline import GranuMambaPipeline

        take = (val_set.takes or train_set.takes)[0]
        was_training = m.training
        result = GranuMambaPipeline(m)(take.audio, seed=0)
        m.train(was_training)
        positions = motion_positions(result.motion)
        onsets = audio_onsets(result.audio)
        for sigma in (0.3, 0.1):
            writer.add_scalar(f"stage2/sample_bc_sigma{sigma}", beat_consistency(positions, onsets, sigma=sigma), step)
        writer.add_scalar("stage2/sample_l1div", l1_diversity(positions), step)
        try:
            from granumamba.render.video import render_stills

            frames = result.motion.num_frames
            image = render_stills(result.motion, [frames // 4, frames // 2, 3 * frames // 4], size=256)
            writer.add_image("stage2/sample", image, step, dataformats="HWC")
        except (ImportError, OSError, RuntimeError, ValueError) as err:  # no renderer here: the scalars are enough
            writer.add_text("stage2/sample", f"no rendered sample: {err}", step)

    run_dir = Path(cfg.out) / "stage2"
    last = train(
        cfg,
        "stage2",
        model,
        [p for p in model.generator.parameters()],
        loss,
        train_set,
        val_set,
        run_dir,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
        history=history,
        on_eval=log_sample,
    )
    model.config.trained_stages = [1, 2]
    out = Path(cfg.out) / "model"
    save_model(model, out, cfg)
    if progress and is_main_process():
        print("stage 2 done:", ", ".join(f"{k}={v:.4g}" for k, v in last.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, "stage2", lambda args, cfg: run_stage2(cfg, args.stage1, resume=args.resume))


if __name__ == "__main__":
    sys.exit(main())
