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

from dataclasses import dataclass, field
from pathlib import Path

import yaml

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
    temperature: float = 0.8
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


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"{path}: cannot read the plan ({err})") from None
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
        clips.append(Clip(str(c["id"]), audio, c.get("text"), c.get("voice")))
    if len({c.id for c in clips}) != len(clips) or not clips:
        raise PlanError("the plan needs clips with distinct ids")
    conditions = []
    for i, c in enumerate(raw.get("conditions") or []):
        if not isinstance(c, dict) or "name" not in c or ("model" in c) == ("npz" in c):
            raise PlanError(f"conditions[{i}]: give a name and either model (repo id or folder) or npz (clip id -> file)")
        npz = None
        if "npz" in c:
            npz = {str(k): base / v for k, v in c["npz"].items()}
            missing = [k for k in (clip.id for clip in clips) if k not in npz or not npz[k].is_file()]
            if missing:
                raise PlanError(f"condition {c['name']}: no npz file for clip(s) {', '.join(missing)}")
        model = c.get("model")
        if model is not None and (base / model).exists():
            model = str(base / model)
        gains = tuple(float(g) for g in c.get("gains", (1, 1, 1)))
        if len(gains) != 3:
            raise PlanError(f"condition {c['name']}: gains are three numbers (coarse, mid, fine)")
        conditions.append(
            Condition(str(c["name"]), model, gains, int(c.get("seed", 0)), float(c.get("temperature", 0.8)), c.get("speaker"), npz)
        )
    if len(conditions) < 2 or len({c.name for c in conditions}) != len(conditions):
        raise PlanError("the plan needs at least two conditions with distinct names")
    plan = Plan(
        clips,
        conditions,
        int(raw.get("seed", 0)),
        int(raw.get("forms", 2)),
        str(raw.get("layout", "single")),
        str(raw.get("body", "mannequin")),
        int(raw.get("size", 384)),
        raw.get("dimensions") or list(DEFAULT_DIMENSIONS),
        {**Plan.__dataclass_fields__["attention"].default_factory(), **(raw.get("attention") or {})},
        path,
        bool(raw.get("antialias", True)),
    )
    if plan.layout not in ("single", "pairs"):
        raise PlanError(f"layout is single or pairs, not {plan.layout!r}")
    if plan.forms < 1:
        raise PlanError("forms must be at least 1")
    for d in plan.dimensions:
        if not isinstance(d, dict) or not {"name", "question", "scale"} <= set(d) or len(d["scale"]) < 2:
            raise PlanError(f"dimension {d!r}: give name, question and a scale of at least two labels")
    return plan
