import json
import os
import shlex

import numpy as np
import pytest
import torch

from granumamba.pipeline import BUNDLED_LIVE_MODEL, BUNDLED_MODEL
from train.config import ConfigError, load_config
from train.gesture import RHYTHM
from train.loop import CHECKPOINT, batch_indices, save_checkpoint
from train.stage1 import run_stage1
from train.stage2 import run_stage2

TINY = [
    "model.vq_hidden=16",
    "model.latent_dim=8",
    "model.codebook_size=16",
    "model.d_model=16",
    "model.n_global=1",
    "model.n_local=1",
    "model.d_state=4",
    "data.window=32",
    "data.stride=16",
    "threads=1",
    "stage1.steps=6",
    "stage1.batch_size=4",
    "stage1.log_every=1",
    "stage1.eval_every=3",
    "stage1.checkpoint_every=100",
    "stage1.warmup=2",
    "stage2.steps=4",
    "stage2.batch_size=2",
    "stage2.window=32",
    "stage2.log_every=1",
    "stage2.eval_every=100",
    "stage2.warmup=1",
]


def tiny_config(corpus, out, *extra):
    return load_config(None, [f"data.root={corpus}", f"out={out}", f"data.cache_dir={out}/cache", *TINY, *extra])


def test_config_rejects_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown key stage1.stepz"):
        load_config(None, ["stage1.stepz=3"])
    with pytest.raises(ConfigError, match="stage1.steps: expected a whole number"):
        load_config(None, ["stage1.steps=3.5"])
    with pytest.raises(ConfigError, match="mixed_precision: expected true or false"):
        load_config(None, ["mixed_precision=maybe"])
    with pytest.raises(ConfigError, match="write key=value"):
        load_config(None, ["stage1.steps"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  d_model: [1, 2]\n")
    with pytest.raises(ConfigError, match="model.d_model"):
        load_config(bad)
    for name in ("demo.yaml", "beat2.yaml"):  # the shipped configs load
        cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "train", "configs", name))
        assert cfg.stage2.window % 16 == 0


def test_make_demo_makes_the_corpus_its_config_names_unless_told_otherwise(tmp_path, monkeypatch):
    """make_demo's corpus comes from the config's `corpus` section (the shipped demo's: people's
    pauses between phrases, both hands in most units; the live model's: long silences), each command-line option
    overriding its own setting only."""
    from train import make_demo

    made = []

    def fake_corpus(out, minutes, seed, speakers, **options):
        made.append({"minutes": minutes, "speakers": speakers, **options})
        raise ValueError("stop here")  # the stages are not what this test is about

    monkeypatch.setattr(make_demo, "make_corpus", fake_corpus)
    configs = os.path.join(os.path.dirname(__file__), "..", "train", "configs")
    out = [f"data.root={tmp_path / 'corpus'}", f"out={tmp_path / 'run'}", "--out", str(tmp_path / "model")]
    assert make_demo.main(out) == 2
    assert make_demo.main(["--phrase-pause", "0.2", "--both-hands", "0.5", "--minutes", "3", *out]) == 2
    assert make_demo.main(["--config", os.path.join(configs, "live.yaml"), *out]) == 2
    assert made[0] == {
        "minutes": 100.0,
        "speakers": 4,
        "paused_share": 0.0,
        "phrase_pause": 0.6,
        "walk": 0.0,
        "both_hands": 1.0,
        "girdle": RHYTHM,
    }
    assert made[1] == made[0] | {"phrase_pause": 0.2, "both_hands": 0.5, "minutes": 3.0}

    def take_options(made_with: dict) -> dict:  # all but the corpus's size
        return {k: v for k, v in made_with.items() if k not in ("minutes", "speakers")}

    assert take_options(made[2]) == take_options(made[0]) | {"paused_share": 0.4}
    assert not (tmp_path / "model").exists()  # nothing written when a step fails


@pytest.mark.parametrize("config, checkpoint", [("demo.yaml", BUNDLED_MODEL), ("live.yaml", BUNDLED_LIVE_MODEL)])
def test_each_bundled_checkpoint_has_every_model_setting_its_config_names(config, checkpoint):
    """make_demo with a shipped config makes the checkpoint shipped beside it, not another: every
    model setting the config names (sizes, the hold outcome, the served temperatures) is the one
    in the bundled config.json."""
    import yaml

    with open(os.path.join(os.path.dirname(__file__), "..", "train", "configs", config)) as f:
        named = yaml.safe_load(f)["model"]
    bundled = json.loads((checkpoint / "config.json").read_text())
    assert named and {key: bundled.get(key) for key in named} == named


@pytest.mark.parametrize("config, checkpoint", [("demo.yaml", BUNDLED_MODEL), ("live.yaml", BUNDLED_LIVE_MODEL)])
def test_each_bundled_checkpoint_s_card_describes_its_weights_and_the_config_that_makes_them(config, checkpoint):
    """The bundled checkpoints' model cards (README.md, what the Hub shows) are in step with them:
    the card's description is what the bundled weights and config.json give today, its training
    section names the command and every stage schedule of the config that makes them."""
    from huggingface_hub import ModelCard

    from granumamba.model import GranuMamba
    from granumamba.model.card import model_card
    from granumamba.pipeline import DEFAULT_LIVE_MODEL_ID, DEFAULT_MODEL_ID
    from train.config import training_summary

    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.library_name == "granumamba" and card.data.license == "apache-2.0"
    model = GranuMamba.from_pretrained(checkpoint)
    repo_id = DEFAULT_MODEL_ID if checkpoint == BUNDLED_MODEL else DEFAULT_LIVE_MODEL_ID
    described, training = card.text.split("## Training")
    assert described == model_card(model, repo_id).text.split("## Training")[0]
    made_with = load_config(os.path.join(os.path.dirname(__file__), "..", "train", "configs", config), ["seed=0"])
    for line in training_summary(made_with, model.config.trained_stages).splitlines():
        assert line in training, line
    assert "python -m train.make_demo" in training and (config == "demo.yaml" or f"train/configs/{config}" in training)


def test_the_config_schema_s_corpus_defaults_are_the_generator_s():
    """A config without a `corpus` section makes the corpus `make_corpus` makes by default: the
    schema names its defaults itself (it does not import the generator), so they are checked here."""
    import dataclasses

    from train.config import CorpusConfig
    from train.make_corpus import TAKE_OPTIONS

    schema = {f.name: f.default for f in dataclasses.fields(CorpusConfig)}
    assert set(TAKE_OPTIONS) <= set(schema)
    assert {name: schema[name] for name in TAKE_OPTIONS} == {name: default for name, (default, _) in TAKE_OPTIONS.items()}


@pytest.mark.parametrize("own_folder", [False, True], ids=["elsewhere", "the run's own model folder"])
def test_make_demo_writes_the_model_and_its_fgd_autoencoder_to_out(tmp_path, monkeypatch, own_folder):
    """The trained model and the corpus's FGD autoencoder land in `--out`, also when `--out` is
    the folder stage 2 wrote the model to (it once failed there, copying a file onto itself)."""
    from train import make_demo

    run = tmp_path / "run"

    def written(folder, text):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            (folder / name).write_text(f"{text} {name}")
        return folder

    monkeypatch.setattr(make_demo, "make_corpus", lambda out, *a, **k: out.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(make_demo, "run_stage1", lambda cfg, resume=False: written(run / "stage1", "stage 1"))
    monkeypatch.setattr(make_demo, "run_stage2", lambda cfg, resume=False: written(run / "model", "model"))
    monkeypatch.setattr(make_demo, "train_autoencoder", lambda corpus, out, seed=0: written(out, "fgd"))
    cards = []
    monkeypatch.setattr(make_demo, "write_card", lambda folder, cfg, corpus, command, seconds: cards.append((folder, command)))
    out = run / "model" if own_folder else tmp_path / "shipped"
    argv = [f"data.root={tmp_path / 'corpus'}", f"out={run}", "--out", str(out)]
    assert make_demo.main(argv) == 0
    assert (out / "model.safetensors").read_text() == "model model.safetensors"
    assert (out / "fgd" / "config.json").read_text() == "fgd config.json"
    assert cards == [(out, shlex.join(["python", "-m", "train.make_demo", *argv]))]  # the card says how to make it again


def test_batches_depend_only_on_the_step():
    a = [batch_indices(50, 8, step, seed=1, rank=0, world=1) for step in range(12)]
    b = [batch_indices(50, 8, step, seed=1, rank=0, world=1) for step in range(12)]
    assert a == b and a[0] != a[1]
    ranks = [set(batch_indices(64, 8, 3, seed=1, rank=r, world=2)) for r in range(2)]
    assert not ranks[0] & ranks[1]  # ranks see different items


def test_resumed_training_gives_the_same_losses_as_an_uninterrupted_run(synth_corpus, tmp_path):
    whole: list = []
    run_stage1(tiny_config(synth_corpus, tmp_path / "a"), progress=False, history=whole)
    first: list = []
    cfg = tiny_config(synth_corpus, tmp_path / "b")
    run_stage1(cfg, stop_after=3, progress=False, history=first)  # "killed" after step 3
    assert (tmp_path / "b" / "stage1" / CHECKPOINT).is_file()
    rest: list = []
    run_stage1(cfg, resume=True, progress=False, history=rest)
    assert [h["step"] for h in first + rest] == [h["step"] for h in whole] == list(range(1, 7))
    for a, b in zip(whole, first + rest):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6, abs=1e-7), a["step"]
    # `--resume` of a run killed before its first checkpoint (make_demo --resume keeps a corpus
    # and starts the stages) trains on the same batches as a fresh run
    early: list = []
    run_stage1(tiny_config(synth_corpus, tmp_path / "c"), resume=True, progress=False, history=early)
    assert [h["total"] for h in early] == pytest.approx([h["total"] for h in whole], rel=1e-6, abs=1e-7)
    # and stage 2 runs on the result, writing a loadable model
    out = run_stage2(cfg, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["trained_stages"] == [1, 2] and (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()  # its card: each stage's schedule, from the run's config
    assert f"- stage 1: {cfg.stage1.steps} steps of {cfg.stage1.batch_size} windows" in card
    assert f"- stage 2: {cfg.stage2.steps} steps of {cfg.stage2.batch_size} windows" in card and f"`{cfg.data.root}`" in card
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for stage in ("stage1", "stage2"):
        events = EventAccumulator(str(tmp_path / "b" / stage / "tensorboard"))
        events.Reload()
        tags[stage] = set(events.Tags()["scalars"])
    assert {
        "stage1/upper/reconstruction",
        "stage1/upper/perplexity_fine",
        "stage1/upper/dead_fine",
        "stage1/val_total",
        "stage1/lr",
    } <= tags["stage1"]
    assert {"stage2/ce_mid", "stage2/val_total", "stage2/sample_bc_sigma0.3", "stage2/sample_bc_sigma0.1", "stage2/sample_l1div"} <= tags[
        "stage2"
    ]


def test_both_stages_train_data_parallel_under_torchrun(synth_corpus, tmp_path):
    """Two processes (gloo on a CPU): each rank trains on its own share of every batch, and the
    gradients are averaged across ranks, so both take the same steps (same gradient norm)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    overrides = [f"data.root={synth_corpus}", f"out={tmp_path}", f"data.cache_dir={tmp_path}/cache", *TINY]
    scratch = tmp_path / "tmp"  # torchrun's own log folders land here, not in the system's temp
    scratch.mkdir()
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", TMPDIR=str(scratch))
    for stage in ("1", "2"):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        command += [str(root / "tests" / "ddp_worker.py"), str(tmp_path), stage, *overrides]
        proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        ranks = [json.loads((tmp_path / f"rank{r}-stage{stage}.json").read_text()) for r in (0, 1)]
        steps = int([o for o in TINY if o.startswith(f"stage{stage}.steps=")][0].split("=")[1])
        assert [h["step"] for h in ranks[0]] == [h["step"] for h in ranks[1]] == list(range(1, steps + 1))
        for a, b in zip(*ranks):
            assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
        assert any(abs(a["total"] - b["total"]) > 1e-6 for a, b in zip(*ranks))  # different data on each rank
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["trained_stages"] == [1, 2]


def test_stage2_refuses_a_missing_or_mismatched_stage1(synth_corpus, tmp_path):
    cfg = tiny_config(synth_corpus, tmp_path / "x")
    with pytest.raises(ConfigError, match="no finished stage 1"):
        run_stage2(cfg, progress=False)
    run_stage1(tiny_config(synth_corpus, tmp_path / "x", "stage1.steps=1"), progress=False)
    with pytest.raises(ConfigError, match="codebook_size: stage 1 has 16, config says 32"):
        run_stage2(tiny_config(synth_corpus, tmp_path / "x", "model.codebook_size=32"), progress=False)
    # the generator's sizes and the temperatures it is served at are stage 2's own: stage 1's
    # untrained generator and its config's served settings are not read
    served = ["model.temperature=1.4", "model.hold_temperature=0.3", "model.level_temperature=[1.2, 1.0, 0.5]"]
    out = run_stage2(tiny_config(synth_corpus, tmp_path / "x", "model.d_model=24", "stage2.steps=1", *served), progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["d_model"] == 24
    assert (config["temperature"], config["hold_temperature"], config["level_temperature"]) == (1.4, 0.3, [1.2, 1.0, 0.5])


def test_an_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, step=1, weights=torch.ones(3))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, step=2, weights=torch.zeros(3))
    monkeypatch.undo()
    state = torch.load(path, weights_only=True)
    assert state["step"] == 1 and torch.equal(state["weights"], torch.ones(3))


def test_a_corpus_with_a_broken_take_still_trains(synth_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(synth_corpus, corpus)
    broken = sorted((corpus / "smplxflame_30").glob("*.npz"))[0]
    broken.write_bytes(b"not a zip")
    cfg = tiny_config(corpus, tmp_path / "r", "stage1.steps=1")
    out = run_stage1(cfg, progress=False)
    assert (out / "model.safetensors").is_file()
    assert np.isfinite(json.loads((out / "config.json").read_text())["latent_dim"])


def test_fgd_autoencoder_and_evaluation_commands_write_the_metrics_table(demo_kind_corpus, tmp_path, capsys):
    from granumamba.pipeline import BUNDLED_MODEL
    from train import evaluate, fgd_autoencoder

    if not (BUNDLED_MODEL / "model.safetensors").is_file():
        pytest.skip("the bundled demo checkpoint is not built")
    assert fgd_autoencoder.main(["--data", str(demo_kind_corpus), "--out", str(tmp_path / "fgd"), "--steps", "20"]) == 0
    out = tmp_path / "metrics.json"
    argv = ["--model", str(BUNDLED_MODEL), "--data", str(demo_kind_corpus), "--fgd", str(tmp_path / "fgd"), "--out", str(out)]
    argv += ["--untrained", "--reconstruction", "--sigma", "0.3", "0.1"]
    assert evaluate.main(argv) == 0
    rows = json.loads(out.read_text())
    assert list(rows) == [
        "ground truth",
        "ground truth, another take's speech",
        "beats at random times (chance)",
        "stage 1 reconstruction (the ground truth's own codes)",
        "model",
        "untrained",
        "untrained generator (trained stage 1)",
        "takes (of 2) where the model's BC is above the untrained's",
        "takes (of 2) where the model's BC is above the untrained generator (trained stage 1)'s",
    ]
    wins = [rows.pop(name) for name in list(rows)[-2:]]
    assert all(set(w) == {"bc", "bc_sigma0.1"} and all(v in (0, 1, 2) for v in w.values()) for w in wins)
    chance = rows.pop("beats at random times (chance)")
    assert (
        set(chance) == {"bc", "bc_sigma0.1", "far_beats"} and chance["bc"] < rows["ground truth"]["bc"]
    )  # the truth's strokes land on onsets
    truth = rows["ground truth"]
    assert truth["fgd"] == 0 and truth["face_mse"] == 0 and truth["diversity"] > 0 and 0 < truth["bc"] <= 1
    assert all(0 < row["bc_sigma0.1"] < row["bc"] for row in rows.values())  # a tighter tolerance only lowers each beat's weight
    assert rows["model"]["fgd"] > 0 and rows["untrained"]["fgd"] > rows["model"]["fgd"]
    rebuilt = rows["stage 1 reconstruction (the ground truth's own codes)"]
    assert rebuilt["fgd"] < rows["model"]["fgd"] and rebuilt["face_mse"] < rows["model"]["face_mse"]  # the priors' best
    table = capsys.readouterr().out
    assert "| model |" in table and "BC, σ = 0.1 s" in table
    assert evaluate.main(["--model", str(BUNDLED_MODEL), "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert evaluate.main([*argv[:6], "--sigma", "0.3", "0"]) == 2
    assert "sigma must be positive" in capsys.readouterr().err


def test_a_stage_s_own_seed_sets_its_weights_and_batches_alone(synth_corpus, tmp_path):
    """`stage2.seed` seeds stage 2's initial weights and batches in place of the run's seed:
    the same stage seed gives the same generator, another gives another, and stage 1 (on the
    run's seed) is untouched."""
    from safetensors.torch import load_file

    cfg = tiny_config(synth_corpus, tmp_path / "s")
    assert cfg.stage_seed(cfg.stage1) == cfg.stage_seed(cfg.stage2) == cfg.seed
    run_stage1(cfg, progress=False)

    def generator_weights(*extra):
        out = run_stage2(tiny_config(synth_corpus, tmp_path / "s", "stage2.steps=2", *extra), progress=False)
        return {k: v for k, v in load_file(out / "model.safetensors").items() if k.startswith("generator.")}

    own = tiny_config(synth_corpus, tmp_path / "s", "stage2.seed=5")
    assert own.stage_seed(own.stage2) == 5 and own.stage_seed(own.stage1) == own.seed
    a, b, default = generator_weights("stage2.seed=5"), generator_weights("stage2.seed=5"), generator_weights()
    assert a and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], default[k]) for k in a)
