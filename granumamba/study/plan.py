"""A perceptual study's plan (YAML), checked on load.

seed: 0
forms: 2                     # questionnaire versions, each in its own order
layout: single               # single: one video per stimulus; pairs: two conditions side by side
body: mannequin
size: 384
antialias: true              # smooth edges (about half the rendering speed)
attention: {mismatched: 1, catch: 1, max_catch_rating: 2, max_mismatched_rating: 3}
dimensions: [...]            # default: naturalness, synchrony, appropriateness, preference
clips:
  - {id: c1, audio: speech1.wav}
  - {id: c2, text: "Words to speak.", voice: "English (US), male"}
conditions:
  - {name: granumamba, model: assets/granumamba-demo, gains: [1, 1, 1], seed: 0}
  - {name: no_fine, model: assets/granumamba-demo, gains: [1, 1, 0]}
  - {name: ground_truth, npz: {c1: gt/c1.npz, c2: gt/c2.npz}}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MAX_PLAN_BYTES = 1_000_000
MAX_CLIPS, MAX_CONDITIONS, MAX_FORMS, MAX_DIMENSIONS, MAX_SCALE, MAX_TEXT = 500, 20, 100, 12, 11, 500
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # clip ids and condition names become file names

DEFAULT_DIMENSIONS = [
    {
        "name": "naturalness",
        "question": "How natural and human-like is the motion?",
        "scale": ["1 very unnatural", "2", "3", "4", "5 very natural"],
    },
    {
        "name": "synchrony",
        "question": "How well is the gesture timed with the speech?",
        "scale": ["1 not at all", "2", "3", "4", "5 perfectly"],
    },
    {
        "name": "appropriateness",
        "question": "How well does the gesture fit what is said?",
        "scale": ["1 not at all", "2", "3", "4", "5 very well"],
    },
    {
        "name": "preference",
        "question": "Overall, how much do you like this performance?",
        "scale": ["1 not at all", "2", "3", "4", "5 very much"],
    },
]


class PlanError(ValueError):
    """A study plan that cannot be built; the message names the entry."""


@dataclass
class Clip:
    id: str
    audio: Path | None = None
    text: str | None = None
    voice: str | None = None


@dataclass
class Condition:
    name: str
    model: str | None = None
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    seed: int = 0
    temperature: float | None = None  # None: the checkpoint's own, as in the app and the CLI
    speaker: int | None = None
    npz: dict[str, Path] | None = None

    @property
    def settings(self) -> dict:
        if self.npz is not None:
            return {"source": "npz"}
        return {"model": self.model, "gains": list(self.gains), "seed": self.seed, "temperature": self.temperature, "speaker": self.speaker}


@dataclass
class Plan:
    clips: list[Clip]
    conditions: list[Condition]
    seed: int = 0
    forms: int = 2
    layout: str = "single"
    body: str = "mannequin"
    size: int = 384
    dimensions: list[dict] = field(default_factory=lambda: list(DEFAULT_DIMENSIONS))
    attention: dict = field(default_factory=lambda: {"mismatched": 1, "catch": 1, "max_catch_rating": 2, "max_mismatched_rating": 3})
    source: Path | None = None
    antialias: bool = True


class _NoAliasLoader(yaml.SafeLoader):
    """yaml's safe loader without anchors and aliases: a plan never needs them, and nested
    aliases expand a kilobyte into gigabytes ("billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise PlanError(f"line {event.start_mark.line + 1}: the plan uses a YAML alias (*{event.anchor}); write the values out")
        return super().compose_node(parent, index)


def _safe_id(value, what: str) -> str:
    text = str(value)
    if not SAFE_ID.fullmatch(text) or ".." in text:
        raise PlanError(
            f"{what} {text[:80]!r}: use 1 to 64 letters, digits, '_', '-' or '.' (starting with a letter or digit); it names files"
        )
    return text


def _text(value, what: str) -> str:
    text = str(value)
    if len(text) > MAX_TEXT:
        raise PlanError(f"{what} has {len(text)} characters; at most {MAX_TEXT}")
    return text


def _number(value, what: str, low: float, high: float, kind=float):
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise PlanError(f"{what} must be a number from {low} to {high}, got {str(value)[:40]!r}") from None
    if isinstance(number, float) and not math.isfinite(number) or not low <= number <= high:
        raise PlanError(f"{what} must be from {low} to {high}, got {number}")
    return number


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise PlanError(f"{path}: the plan is over {MAX_PLAN_BYTES // 1000} kB; a plan lists clips and conditions, not data")
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PlanError(f"{path}: cannot read the plan ({err})") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: a plan is a mapping of keys (seed, forms, clips, conditions, ...)")
    if len(raw.get("clips") or []) > MAX_CLIPS or len(raw.get("conditions") or []) > MAX_CONDITIONS:
        raise PlanError(f"a plan has at most {MAX_CLIPS} clips and {MAX_CONDITIONS} conditions")
    base = path.parent
    known = {"seed", "forms", "layout", "body", "size", "antialias", "dimensions", "attention", "clips", "conditions"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PlanError(f"{path}: unknown key {unknown[0]!r}; the plan knows {', '.join(sorted(known))}")
    clips = []
    for i, c in enumerate(raw.get("clips") or []):
        if not isinstance(c, dict) or "id" not in c or ("audio" in c) == ("text" in c):
            raise PlanError(f"clips[{i}]: give an id and either audio (a file) or text (to speak)")
        audio = (base / c["audio"]) if "audio" in c else None
        if audio is not None and not audio.is_file():
            raise PlanError(f"clip {c['id']}: no audio file {audio}")
        text = None if c.get("text") is None else _text(c["text"], f"clip {c['id']}: text")
        clips.append(Clip(_safe_id(c["id"], "clip id"), audio, text, c.get("voice")))
    if len({c.id for c in clips}) != len(clips) or not clips:
        raise PlanError("the plan needs clips with distinct ids")
    conditions = []
    for i, c in enumerate(raw.get("conditions") or []):
        if not isinstance(c, dict) or "name" not in c or ("model" in c) == ("npz" in c):
            raise PlanError(f"conditions[{i}]: give a name and either model (repo id or folder) or npz (clip id -> file)")
        npz = None
        if "npz" in c:
            if not isinstance(c["npz"], dict):
                raise PlanError(f"condition {c['name']}: npz maps each clip id to a file")
            npz = {str(k): base / str(v) for k, v in c["npz"].items()}
            missing = [k for k in (clip.id for clip in clips) if k not in npz or not npz[k].is_file()]
            if missing:
                raise PlanError(f"condition {c['name']}: no npz file for clip(s) {', '.join(missing)}")
        model = c.get("model")
        if model is not None and (base / model).exists():
            model = str(base / model)
        name = _safe_id(c["name"], "condition name")
        raw_gains = c.get("gains", (1, 1, 1))
        if not isinstance(raw_gains, (list, tuple)) or len(raw_gains) != 3:
            raise PlanError(f"condition {name}: gains are three numbers (coarse, mid, fine)")
        gains = tuple(_number(g, f"condition {name}: a gain", 0.0, 2.0) for g in raw_gains)
        seed = _number(c.get("seed", 0), f"condition {name}: seed", 0, 2**32 - 1, int)
        temperature = None if c.get("temperature") is None else _number(c["temperature"], f"condition {name}: temperature", 0.0, 2.0)
        speaker = None if c.get("speaker") is None else _number(c["speaker"], f"condition {name}: speaker", 0, 10_000, int)
        conditions.append(Condition(name, None if model is None else str(model), gains, seed, temperature, speaker, npz))
    if len(conditions) < 2 or len({c.name for c in conditions}) != len(conditions):
        raise PlanError("the plan needs at least two conditions with distinct names")
    attention = {**Plan.__dataclass_fields__["attention"].default_factory(), **(raw.get("attention") or {})}
    for key in ("mismatched", "catch"):  # each check uses a clip of its own
        attention[key] = _number(attention[key], f"attention.{key}", 0, len(clips), int)
    dimensions = raw.get("dimensions") or list(DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, list) or not 1 <= len(dimensions) <= MAX_DIMENSIONS:
        raise PlanError(f"dimensions: a list of 1 to {MAX_DIMENSIONS} questions")
    for d in dimensions:
        if not isinstance(d, dict) or not {"name", "question", "scale"} <= set(d) or not isinstance(d["scale"], list):
            raise PlanError(f"dimension {str(d)[:80]!r}: give name, question and a scale of at least two labels")
        if not 2 <= len(d["scale"]) <= MAX_SCALE:
            raise PlanError(f"dimension {str(d['name'])[:40]!r}: a scale has 2 to {MAX_SCALE} labels")
        d["name"] = _safe_id(d["name"], "dimension name")
        d["question"] = _text(d["question"], f"dimension {d['name']}: question")
        d["scale"] = [_text(label, f"dimension {d['name']}: a scale label") for label in d["scale"]]
    for key in ("max_catch_rating", "max_mismatched_rating"):
        attention[key] = _number(attention[key], f"attention.{key}", 1, MAX_SCALE)
    plan = Plan(
        clips,
        conditions,
        _number(raw.get("seed", 0), "seed", 0, 2**32 - 1, int),
        _number(raw.get("forms", 2), "forms", 1, MAX_FORMS, int),
        str(raw.get("layout", "single")),
        str(raw.get("body", "mannequin")),
        _number(raw.get("size", 384), "size", 128, 1080, int),
        dimensions,
        attention,
        path,
        bool(raw.get("antialias", True)),
    )
    if plan.layout not in ("single", "pairs"):
        raise PlanError(f"layout is single or pairs, not {plan.layout!r}")
    return plan
