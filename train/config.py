"""Training configuration: plain YAML files with `key=value` command-line overrides.

    python -m train.stage1 --config train/configs/demo.yaml stage1.steps=500 data.root=data/synth

Every key is checked against the schema below: an unknown key or a value of the wrong type is
an error that names the key and what it accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from granumamba.model.granumamba import GranuMambaConfig


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key."""


@dataclass
class DataConfig:
    root: str = "data/synth"
    speakers: list[int] | None = None  # None: every speaker
    window: int = 64
    stride: int = 16
    cache_dir: str | None = None  # default: <root>/.granumamba_cache


@dataclass
class CorpusConfig:
    """The synthetic corpus that `train.make_demo` makes at data.root (train.make_corpus's
    options of the same names; its command-line options override these). The defaults are
    make_corpus's own, written out so that the schema does not import the generator (a test
    checks that they agree)."""

    minutes: float = 100.0
    speakers: int = 4
    paused_share: float = 0.0  # share of takes with long silences
    phrase_pause: float = 0.0  # most seconds added to the voices' pauses between phrases
    both_hands: float = 0.0  # how far the speakers use both hands (train.corpus.speaker_style)
    walk: float = 0.0  # share of phrase boundaries where the speaker walks
    girdle: float = 0.0  # share of each arm's swing the collar takes (train.corpus.GIRDLE)


@dataclass
class StageConfig:
    """The schedule every stage has."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 100
    grad_clip: float = 1.0
    log_every: int = 25
    eval_every: int = 250
    checkpoint_every: int = 250
    window: int | None = None  # frames per training window; default data.window
    seed: int | None = None  # this stage's initial weights and batches; default the run's seed


@dataclass
class Stage1Config(StageConfig):
    """Stage 1's schedule and loss weights (granumamba.model.losses.stage1_loss)."""

    velocity_weight: float = 1.0
    acceleration_weight: float = 1.0
    position_weight: float = 0.0  # upper-body joint positions (cm) by forward kinematics
    position_velocity_weight: float = 0.0  # their velocities (cm per frame)
    position_acceleration_weight: float = 0.0  # and accelerations (cm per frame^2)
    foot_contact_weight: float = 0.0  # planted feet's horizontal sliding (cm per frame)^2, lower part
    coarse_split_weight: float = 0.0  # upper part without its coarse level vs the motion without its slow component (synthetic corpora)


@dataclass
class Stage2Config(StageConfig):
    """Stage 2's schedule and loss options (granumamba.model.losses.stage2_loss)."""

    word_dropout: float = 0.3
    seed_probability: float = 0.5
    latent_weight: float = 1.0
    own_code_dropout: float = 0.2  # drops a step's previous-code input (the level's last code)
    own_coarser: float = 0.0  # share of windows whose finer levels see the coarser level's own samples (causal models)


def loss_options(stage: StageConfig) -> dict:
    """A stage's loss options: its own fields beyond the schedule, by name."""
    schedule = {f.name for f in fields(StageConfig)}
    return {f.name: getattr(stage, f.name) for f in fields(stage) if f.name not in schedule}


@dataclass
class TrainConfig:
    out: str = "runs/demo"
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast on CUDA; ignored on CPU
    threads: int | None = None  # torch CPU threads; default: torch's choice
    data: DataConfig = field(default_factory=DataConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: GranuMambaConfig = field(default_factory=GranuMambaConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def stage_seed(self, stage: StageConfig) -> int:
        """The seed of a stage's initial weights and batches: its own, else the run's."""
        return self.seed if stage.seed is None else stage.seed


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = get_origin(kind)
    args = get_args(kind)
    if kind is Any:
        return value
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or kind is tuple) else items
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if args and type(None) in args:  # Optional[...] (X | None)
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {kind}")


def _build(cls, values: dict, prefix: str = ""):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]}; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if is_dataclass(kind):
            kwargs[name] = _build(kind, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, kind, f"{prefix}{name}")
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {k} is not a section")
    node[keys[-1]] = value


def training_summary(cfg: TrainConfig, stages: list[int]) -> str:
    """Markdown lines for a model card (granumamba.model.card): the data and each trained
    stage's schedule, from the run's config."""
    speakers = "every speaker" if cfg.data.speakers is None else "speakers " + ", ".join(str(s) for s in cfg.data.speakers)
    lines = [f"- data: `{cfg.data.root}` ({speakers}), windows of {cfg.data.window} frames; seed {cfg.seed}"]
    for number, stage in ((1, cfg.stage1), (2, cfg.stage2)):
        if number in stages:
            window = stage.window or cfg.data.window
            lines.append(
                f"- stage {number}: {stage.steps} steps of {stage.batch_size} windows of {window} frames, learning rate {stage.lr:g}, "
                f"seed {cfg.stage_seed(stage)}" + "".join(f", {name} {value:g}" for name, value in loss_options(stage).items())
            )
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read the YAML file (if any), apply `key.sub=value` overrides (values parsed as YAML)."""
    tree: dict = {}
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read the config ({err})") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: write key=value, e.g. stage1.steps=500")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    cfg = _build(TrainConfig, tree)
    for name in ("stage1", "stage2"):
        stage = getattr(cfg, name)
        for key in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(stage, key) < 1:
                raise ConfigError(f"{name}.{key} must be at least 1, got {getattr(stage, key)}")
        if not (0 < stage.lr < 1) or stage.warmup < 0 or (stage.window is not None and stage.window < 16):
            raise ConfigError(f"{name}: lr must be between 0 and 1, warmup not negative, window at least 16 frames")
    try:  # the model's own checks of types and sizes
        GranuMambaConfig.from_dict(asdict(cfg.model) | {"factors": list(cfg.model.factors)})
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    return cfg
