"""Build a study: motions for every clip and condition, anonymised stimulus videos rendered
alike (body, camera per clip, size, loudness), attention checks, forms in balanced random
orders, an answer key, and a static questionnaire page per form.

Resumable: motions and videos already on disk are kept, and the assignment of ids and orders
depends only on the plan and its seed.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import num_frames
from ..audio.features import normalize_loudness
from ..audio.io import load_audio
from ..data.beat2 import load_motion, save_motion
from ..motion.parts import Motion
from ..motion.skeleton import RELAXED_POSE
from ..text.tts import VOICES, synthesize
from .page import write_form_page
from .plan import Plan

KEY_FIELDS = ("stimulus_id", "kind", "clip", "condition", "audio_clip", "left", "right", "settings")


@dataclass
class Stimulus:
    stimulus_id: str
    kind: str  # stimulus, pair, mismatched, catch
    clip: str  # whose motion
    condition: str  # condition name ("left|right" for pairs, "catch" for catch trials)
    audio_clip: str  # whose speech (differs from clip only for mismatched checks)
    left: str = ""
    right: str = ""
    settings: str = ""


def _conform(motion: Motion, frames: int) -> Motion:
    """Trim or hold the last frame to `frames`; centre the path horizontally (one camera fits all)."""

    def fit(x):
        x = np.asarray(x)[:frames]
        return np.concatenate([x, np.repeat(x[-1:], frames - x.shape[0], axis=0)]) if x.shape[0] < frames else x

    trans = fit(motion.trans).astype(np.float64).copy()
    trans[:, [0, 2]] -= trans[:, [0, 2]].mean(axis=0)
    return Motion(fit(motion.poses).astype(np.float32), trans, fit(motion.expressions), motion.betas)


def _stimuli(plan: Plan, rng: np.random.Generator) -> list[Stimulus]:
    ids = iter(f"s{v:08x}" for v in rng.choice(2**32, size=10_000, replace=False))
    items: list[Stimulus] = []
    names = [c.name for c in plan.conditions]
    settings = {c.name: json.dumps(c.settings) for c in plan.conditions}
    for clip in plan.clips:
        if plan.layout == "single":
            items += [Stimulus(next(ids), "stimulus", clip.id, n, clip.id, settings=settings[n]) for n in names]
        else:
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    left, right = (names[i], names[j]) if rng.random() < 0.5 else (names[j], names[i])
                    items.append(Stimulus(next(ids), "pair", clip.id, f"{left}|{right}", clip.id, left, right))
    model_condition = next((c.name for c in plan.conditions if c.npz is None), names[0])
    clips = [c.id for c in plan.clips]
    for _ in range(int(plan.attention.get("mismatched", 0))):
        if len(clips) < 2:
            break
        a, b = rng.choice(len(clips), size=2, replace=False)
        items.append(Stimulus(next(ids), "mismatched", clips[a], model_condition, clips[b], settings=settings[model_condition]))
    for _ in range(int(plan.attention.get("catch", 0))):
        clip = clips[int(rng.integers(len(clips)))]
        items.append(Stimulus(next(ids), "catch", clip, "catch", clip, settings=json.dumps({"motion": "motionless"})))
    return items


def form_orders(plan: Plan, stimuli: list[Stimulus]) -> list[list[str]]:
    """Per form, the stimulus ids in order. Blocks of one clip each, in a random clip order per
    form; inside block b of form f the conditions follow rotation (b + f) of one random base
    order (a Latin square), so each condition takes each position in a block equally often.
    Attention checks go between blocks, at the same places in every form."""
    rng = np.random.default_rng([plan.seed, 1])
    regular = [s for s in stimuli if s.kind in ("stimulus", "pair")]
    checks = [s for s in stimuli if s.kind not in ("stimulus", "pair")]
    slots = sorted({(s.condition) for s in regular}, key=[s.condition for s in regular].index)
    base = [slots[i] for i in rng.permutation(len(slots))]
    check_after = sorted(rng.choice(len(plan.clips), size=len(checks), replace=len(checks) > len(plan.clips)))
    orders = []
    for form in range(plan.forms):
        clip_order = [plan.clips[i].id for i in np.random.default_rng([plan.seed, 2, form]).permutation(len(plan.clips))]
        order: list[str] = []
        pending = list(checks)
        for block, clip in enumerate(clip_order):
            shift = (block + form) % len(base)
            for condition in base[shift:] + base[:shift]:
                order += [s.stimulus_id for s in regular if s.clip == clip and s.condition == condition]
            while pending and check_after[len(checks) - len(pending)] == block:
                order.append(pending.pop(0).stimulus_id)
        orders.append(order)
    return orders


def _write_csv(path: Path, rows: list[dict], fields) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def build_study(plan: Plan, out: str | os.PathLike, workers: int | None = None, progress: bool = True) -> dict:
    """Build (or finish building) the study in `out`; returns the manifest."""
    from ..pipeline import GranuMambaPipeline
    from ..render.video import render_video

    out = Path(out)
    for sub in ("videos", "motions", "audio", "forms"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(plan.seed)
    stimuli = _stimuli(plan, rng)
    orders = form_orders(plan, stimuli)

    # Speech, at one loudness for all clips.
    audio: dict[str, np.ndarray] = {}
    words: dict[str, list] = {}
    for clip in plan.clips:
        if clip.audio is not None:
            samples, clip_words = load_audio(clip.audio), None
        else:
            samples, clip_words = synthesize(clip.text, VOICES.get(clip.voice) if clip.voice else None)
        audio[clip.id], words[clip.id] = normalize_loudness(samples), clip_words

    # Motions for every clip and condition (cached on disk).
    pipes: dict[str, GranuMambaPipeline] = {}
    motions: dict[tuple[str, str], Motion] = {}
    for clip in plan.clips:
        frames = num_frames(audio[clip.id].shape[0])
        for cond in plan.conditions:
            cached = out / "motions" / f"{clip.id}__{cond.name}.npz"
            if cached.is_file():
                motion = load_motion(cached)
            elif cond.npz is not None:
                motion = load_motion(cond.npz[clip.id])
            else:
                if cond.model not in pipes:
                    pipes[cond.model] = GranuMambaPipeline.from_pretrained(cond.model)
                motion = pipes[cond.model](
                    audio[clip.id],
                    words=words[clip.id],
                    speaker=cond.speaker,
                    gains=cond.gains,
                    temperature=cond.temperature,
                    seed=cond.seed,
                ).motion
            motion = _conform(motion, frames)
            if not cached.is_file():
                save_motion(cached, motion)
            motions[(clip.id, cond.name)] = motion
        still = RELAXED_POSE[None].repeat(frames, 0)
        motions[(clip.id, "catch")] = Motion(still.astype(np.float32), np.tile([0.0, 1.295, 0.0], (frames, 1)), np.zeros((frames, 100)))

    todo = [s for s in stimuli if not (out / "videos" / f"{s.stimulus_id}.mp4").is_file()]
    for s in tqdm(todo, desc="stimuli", unit="video", disable=not progress):
        camera = [motions[(s.clip, c.name)] for c in plan.conditions]
        speech = audio[s.audio_clip]
        frames = min(num_frames(speech.shape[0]), motions[(s.clip, plan.conditions[0].name)].num_frames)
        if s.kind == "pair":
            shown, labels = [motions[(s.clip, s.left)], motions[(s.clip, s.right)]], ["A", "B"]
        else:
            shown, labels = [motions[(s.clip, s.condition)]], None
        shown = [_conform(m, frames) for m in shown]
        render_video(
            shown,
            speech,
            out / "videos" / f"{s.stimulus_id}.mp4",
            body=plan.body,
            size=plan.size,
            labels=labels,
            workers=workers,
            camera_motions=[_conform(m, frames) for m in camera],
            antialias=plan.antialias,
        )

    _write_csv(out / "answer_key.csv", [asdict(s) for s in stimuli], KEY_FIELDS)
    for form, order in enumerate(orders, start=1):
        folder = out / "forms" / f"form_{form}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_csv(
            folder / "items.csv",
            [{"position": i + 1, "stimulus_id": sid, "video": f"videos/{sid}.mp4"} for i, sid in enumerate(order)],
            ("position", "stimulus_id", "video"),
        )
        write_form_page(folder / "index.html", form, order, plan.dimensions, video_prefix="../../videos/")
    manifest = {
        "plan": str(plan.source) if plan.source else None,
        "seed": plan.seed,
        "layout": plan.layout,
        "body": plan.body,
        "size": plan.size,
        "dimensions": plan.dimensions,
        "attention": plan.attention,
        "conditions": [c.name for c in plan.conditions],
        "clips": [c.id for c in plan.clips],
        "stimuli": len(stimuli),
        "forms": {f"form_{i + 1}": o for i, o in enumerate(orders)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
