"""Make the bundled demo checkpoint from nothing: the synthetic corpus, stage 1, stage 2.

    python -m train.make_demo [--out assets/granumamba-demo] [--minutes 100] [--seed 0] [key=value ...]

Uses train/configs/demo.yaml, whose `corpus` section says what corpus to make; the same seed
gives the same corpus and the same training batches.
Takes under an hour on a 2-core CPU. The result is a Hub-style folder (config.json +
model.safetensors) that the app and the CLI load when no other model is named or reachable,
with the FGD feature autoencoder of the corpus in its `fgd/` folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .config import ConfigError, load_config, training_summary
from .fgd_autoencoder import train_autoencoder
from .make_corpus import TAKE_OPTIONS, add_take_options, make_corpus, take_options
from .stage1 import run_stage1
from .stage2 import run_stage2

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "granumamba-demo")
    parser.add_argument("--config", type=Path, default=ROOT / "train" / "configs" / "demo.yaml")
    parser.add_argument("--minutes", type=float, help="minutes of synthetic speech to train on (default: the config's corpus.minutes)")
    parser.add_argument("--speakers", type=int, help="(default: the config's corpus.speakers)")
    parser.add_argument("--seed", type=int, default=0)
    add_take_options(parser, unset=True)  # the config's corpus section unless given
    parser.add_argument("--resume", action="store_true", help="keep the corpus and continue the stages' checkpoints")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        cfg = load_config(args.config, [f"seed={args.seed}", *args.overrides])
        corpus = Path(cfg.data.root)
        given = {"minutes": args.minutes, "speakers": args.speakers, **take_options(args)}
        options = asdict(cfg.corpus) | {name: value for name, value in given.items() if value is not None}
        if not (args.resume and (corpus / "train_test_split.csv").is_file()):
            make_corpus(corpus, options["minutes"], args.seed, options["speakers"], **{name: options[name] for name in TAKE_OPTIONS})
        print(f"[make_demo] corpus ready in {time.perf_counter() - started:.0f} s")
        stage1_dir = Path(cfg.out) / "stage1"
        if not (args.resume and (stage1_dir / "model.safetensors").is_file()):
            run_stage1(cfg, resume=args.resume)
        print(f"[make_demo] stage 1 done at {time.perf_counter() - started:.0f} s")
        model_dir = run_stage2(cfg, resume=args.resume)
        print(f"[make_demo] stage 2 done at {time.perf_counter() - started:.0f} s")
        train_autoencoder(corpus, Path(cfg.out) / "fgd", seed=args.seed)  # shipped, so that evaluate reports FGD out of the box
        print(f"[make_demo] FGD autoencoder done at {time.perf_counter() - started:.0f} s")
    except (ConfigError, ValueError, OSError) as err:
        print(f"make_demo: {err}", file=sys.stderr)
        return 2
    for source, target in ((model_dir, args.out), (Path(cfg.out) / "fgd", args.out / "fgd")):
        target.mkdir(parents=True, exist_ok=True)
        if target.resolve() != source.resolve():  # `--out` may name the run's own model folder
            for name in ("config.json", "model.safetensors"):
                shutil.copy(source / name, target / name)
    command = shlex.join(["python", "-m", "train.make_demo", *(sys.argv[1:] if argv is None else argv)])
    write_card(args.out, cfg, options, command, None if args.resume else time.perf_counter() - started)
    print(f"[make_demo] wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


def write_card(out: Path, cfg, corpus: dict, command: str, seconds: float | None = None) -> None:
    """The model card (README.md) of the checkpoint at `out`: the command that made it, the
    synthetic corpus's options (`corpus`: make_corpus's, minutes and speakers included), each
    stage's schedule (train.config.training_summary) and, where given, how long it took here.
    The bundled checkpoints' cards name the Hub repos they are published as, others the folder."""
    from granumamba.model import GranuMamba
    from granumamba.pipeline import BUNDLED_LIVE_MODEL, BUNDLED_MODEL, DEFAULT_LIVE_MODEL_ID, DEFAULT_MODEL_ID

    model = GranuMamba.from_pretrained(out)
    published = {BUNDLED_MODEL.resolve(): DEFAULT_MODEL_ID, BUNDLED_LIVE_MODEL.resolve(): DEFAULT_LIVE_MODEL_ID}
    options = ", ".join(f"{name.replace('_', ' ')} {corpus[name]:g}" for name in TAKE_OPTIONS if corpus[name])
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"a {os.cpu_count()}-core CPU"
    took = f" in {seconds / 60:.0f} min on {machine}" if seconds is not None else ""
    training = (
        f"Made from nothing by `{command}`{took}. Its data is the project's synthetic corpus "
        f"(`train/make_corpus.py`, made at `{cfg.data.root}`): {corpus['minutes']:g} minutes of speech from the offline "
        f"text-to-speech voices, as users' microphones and rooms record it, with procedural gesture grounded in gesture "
        f"studies, {corpus['speakers']} speakers"
        + (f" ({options})" if options else "")
        + ". No motion capture went into it.\n\n"
        + training_summary(cfg, model.config.trained_stages)
        + "\n- `fgd/`: the FGD feature encoder of this corpus, with which `python -m train.evaluate` reports FGD"
    )
    model.write_model_card(out, repo_id=published.get(Path(out).resolve(), str(out)), training=training)


if __name__ == "__main__":
    sys.exit(main())
