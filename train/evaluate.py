"""Evaluate a model on a BEAT2-layout split with the field's metrics (train/metrics.py).

    python -m train.evaluate --model DIR --data DIR --split test --out metrics.json --fgd runs/fgd [--ablations] [--untrained]
        [--reconstruction] [--sigma 0.3 [0.1 ...]]

Rows: the ground truth (its own BC and diversity; FGD 0 by definition), the ground truth's BC
against another take's speech over the seconds both cover, BC's chance level (beats at random
times against each take's own speech), the model, and with
--ablations the model without its coarse level, without its fine level, and without word input;
with --untrained the same architecture with random weights (and the trained statistics), and
the trained stage 1 with a random generator (what stage 2 adds), and for each of those two a row
counting the takes where the model's BC is above theirs; with --reconstruction stage 1's
reconstruction of the ground truth from its own codes (what the motion priors can carry).
BC is computed at the first --sigma ("bc") and at any further ones ("bc_sigma<value>").
With --seeds N the generated rows are over N random seeds from --seed on, and the take counts
compare each take's mean BC over them (one sample of a take is noisy).

--real DIR adds a block on real recordings (a BEAT2-layout folder; audio-only takes are enough):
the model generates from each recording at default settings (under --real-seeds seeds, 3 unless
told, its figures the mean), and its wrist speed and wrist
height spread (train.corpus_stats, body heights) are compared with the folder's real capture;
BC against the recording's own speech and against another recording's (over the seconds both
recordings cover); BC's chance level on these recordings (beats falling at random times); and
the correlation of the speech's energy with the arms' speed, for its own recording and for
another. Where only some recordings have capture, rows give the model and the chance level on
those recordings alone: BC depends on the recording (how densely its onsets fall, where its
pauses are), so those rows are the ones to set beside the capture's.

--conditions (with --real) adds the model on those recordings as other microphones and rooms
record them and as higher, lower, faster and slower voices speak them (train/conditions.py: a
telephone line, a 24 kbit/s MP3, a quiet microphone, pink noise at 10 dB SNR, an echoing room,
the pitch four semitones up and down, the tempo 1.25 and 0.8 times; made with ffmpeg, not with
the training augmentation), each set beside the clean recordings: how much of the motion
survives the recording.

FGD uses --fgd, else the FGD autoencoder shipped in the model folder (`fgd/`), where there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from granumamba import SAMPLE_RATE
from granumamba.audio.io import load_audio
from granumamba.data import index_beat2, load_motion
from granumamba.model import GranuMamba
from granumamba.motion.parts import Motion, merge_parts, split_parts
from granumamba.pipeline import GranuMambaPipeline
from granumamba.text import read_words

from .corpus_stats import mean_stats, motion_stats, planted_ankle_speed
from .fgd_autoencoder import MotionAutoencoder
from .metrics import (
    audio_onsets,
    bc_gap_interval,
    bc_of_distances,
    beat_consistency,
    beat_distances,
    chance_distances,
    face_errors,
    far_share_of_distances,
    frechet_distance,
    l1_diversity,
    motion_positions,
    speech_motion_correlation,
    timed_beat_distances,
    timed_chance_distances,
)


def reconstruction(model: GranuMamba, motion: Motion, gains: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Motion:
    """A take through stage 1 alone: encoded to its own codes and decoded with `gains` on coarse,
    mid, fine (what the motion priors can carry at best), cut to a multiple of the model's frame
    block."""
    frames = motion.num_frames // model.frame_multiple * model.frame_multiple
    normalizer = model.normalizer
    parts = {p: normalizer.normalize(p, x[:frames]) for p, x in split_parts(motion).items()}
    decoded = {p: normalizer.denormalize(p, x) for p, x in model.reconstruct(parts, gains).items()}
    return merge_parts(decoded, (float(motion.trans[0, 0]), float(motion.trans[0, 2])))


def bc_column(k: int, sigma: float) -> str:
    """The column of the k-th --sigma: "bc" for the first, "bc_sigma<value>" for the others."""
    return "bc" if k == 0 else f"bc_sigma{sigma:g}"


def take_bcs(positions: list[np.ndarray], onsets: list[np.ndarray], sigma: float) -> np.ndarray:
    return np.array([beat_consistency(p, o, sigma=sigma) for p, o in zip(positions, onsets)])


def bc_columns(
    positions: list[np.ndarray], onsets: list[np.ndarray], sigmas: tuple[float, ...], far: bool = False, until: list[float] | None = None
) -> dict[str, float]:
    """BC at each sigma, mean over takes; with `far`, also "far_beats": the share of motion beats
    over 0.3 s from any onset (in the speech's pauses). Each take's beats are found once.
    `until`: per take, the seconds of speech the onsets cover, where they are another
    recording's (`beat_distances`)."""
    distances = [beat_distances(p, o, until=u) for p, o, u in zip(positions, onsets, until or [None] * len(positions))]
    return distance_columns(distances, sigmas, far)


def chance_columns(onsets: list[np.ndarray], durations: list[float], sigmas: tuple[float, ...]) -> dict[str, float]:
    """`bc_columns` for beats that fall at random times (`chance_distances`): the BC that motion
    with no timing of its own scores against these recordings."""
    return distance_columns([chance_distances(o, d) for o, d in zip(onsets, durations)], sigmas, far=True)


def distance_columns(distances: list[np.ndarray], sigmas: tuple[float, ...], far: bool) -> dict[str, float]:
    columns = {}
    for k, sigma in enumerate(sigmas):
        bc = np.array([bc_of_distances(d, sigma) for d in distances])
        columns[bc_column(k, sigma)] = float(np.nanmean(bc)) if not np.all(np.isnan(bc)) else float("nan")
    if far:
        columns["far_beats"] = float(np.nanmean([far_share_of_distances(d) for d in distances]))
    return columns


def bc_wins(positions: list[np.ndarray], others: list[np.ndarray], onsets: list[np.ndarray], sigmas: tuple[float, ...]) -> dict[str, float]:
    """In the BC columns: on how many takes the first motions' BC is above the others' (a paired
    count, which says more than the two means do whether a margin is real). `positions` and
    `others` may hold several runs of the takes in turn (one per random seed): each take's BC is
    then the mean over its runs."""

    def per_take(motions: list[np.ndarray], sigma: float) -> np.ndarray:
        return take_bcs(motions, onsets * (len(motions) // len(onsets)), sigma).reshape(-1, len(onsets)).mean(0)

    return {bc_column(k, s): float(np.sum(per_take(positions, s) > per_take(others, s))) for k, s in enumerate(sigmas)}


def planted_foot_cm_s(motions: list[Motion], positions: list[np.ndarray]) -> float:
    """The supporting ankle's median horizontal speed (cm/s), averaged over takes."""
    return float(np.mean([planted_ankle_speed(m, p)["planted_ankle_speed_p50"] for m, p in zip(motions, positions)]) * 100)


def score(
    motions: list[Motion],
    truths: list[Motion],
    onsets: list[np.ndarray],
    fgd_model: MotionAutoencoder | None,
    sigmas: tuple[float, ...] = (0.3,),
    positions: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """The metrics of `motions` against `truths`; `positions`: the motions' joint positions, where
    the caller has them already."""
    positions = positions if positions is not None else [motion_positions(m) for m in motions]
    out = bc_columns(positions, onsets, sigmas)
    out["diversity"] = float(np.mean([l1_diversity(p) for p in positions]))
    out["planted_foot"] = planted_foot_cm_s(motions, positions)
    face = [face_errors(m.poses[:, 66:69], m.expressions, t.poses[:, 66:69], t.expressions) for m, t in zip(motions, truths)]
    out.update({k: float(np.mean([f[k] for f in face])) for k in face[0]})
    if fgd_model is not None:
        real = np.concatenate([fgd_model.features(t.poses) for t in truths])
        fake = np.concatenate([fgd_model.features(m.poses) for m in motions])
        out["fgd"] = frechet_distance(real, fake)
    return out


def evaluate(
    model_dir,
    data,
    split: str = "test",
    fgd_dir=None,
    ablations: bool = False,
    untrained: bool = False,
    seed: int = 0,
    max_takes: int | None = None,
    sigma: float | tuple[float, ...] = 0.3,
    reconstructions: bool = False,
    temperature: float | None = None,
    seeds: int = 1,
) -> dict[str, dict[str, float]]:
    """The split's table (see the module's docstring); the generated rows' figures are over
    `seeds` random seeds from `seed` on (each take once per seed)."""
    sigmas = (sigma,) if isinstance(sigma, (int, float)) else tuple(sigma)
    if not sigmas or min(sigmas) <= 0:
        raise ValueError(f"BC's sigma must be positive seconds, got {list(sigmas)}")
    if seeds < 1:
        raise ValueError(f"the evaluation needs at least one seed, got {seeds}")
    pipe = GranuMambaPipeline.from_pretrained(model_dir, allow_fallback=False)
    takes = index_beat2(data, split=split if (Path(data) / "train_test_split.csv").is_file() else None).takes[:max_takes]
    if not takes:
        raise ValueError(f"{data}: no takes in split {split!r}")
    if fgd_dir is None and (Path(model_dir) / "fgd" / "model.safetensors").is_file():
        fgd_dir = Path(model_dir) / "fgd"
    fgd_model = MotionAutoencoder.load(fgd_dir) if fgd_dir else None
    audios = [load_audio(t.audio) for t in takes]
    words = [read_words(t.textgrid) if t.textgrid else None for t in takes]
    truths = [load_motion(t.motion) for t in takes]
    onsets = [audio_onsets(a) for a in audios]
    settings = {"model": {}}
    if ablations:
        settings.update(
            {
                "no coarse level": {"gains": (0.0, 1.0, 1.0)},
                "no fine level": {"gains": (1.0, 1.0, 0.0)},
                "no word input": {"no_words": True},
            }
        )
    truth_positions = [motion_positions(t) for t in truths]
    results = {"ground truth": score(truths, truths, onsets, fgd_model, sigmas, truth_positions)}
    if fgd_model is not None:
        results["ground truth"]["fgd"] = 0.0
    durations = [a.shape[0] / SAMPLE_RATE for a in audios]
    if len(takes) > 1:  # each take's motion against the next take's speech
        results["ground truth, another take's speech"] = bc_columns(
            truth_positions, onsets[1:] + onsets[:1], sigmas, until=durations[1:] + durations[:1]
        )
    results["beats at random times (chance)"] = chance_columns(onsets, durations, sigmas)
    runs = [(name, pipe, options) for name, options in settings.items()]
    if untrained:
        torch.manual_seed(seed)
        random_model = GranuMamba(pipe.model.config)
        random_model.set_normalizer(pipe.model.normalizer)
        runs.append(("untrained", GranuMambaPipeline(random_model, "untrained"), {}))
        runs.append(("untrained generator (trained stage 1)", GranuMambaPipeline(pipe.model.with_new_generator(), "stage 1 only"), {}))
    if reconstructions:
        rebuilt = [reconstruction(pipe.model, t) for t in truths]
        cut = [Motion(t.poses[: r.num_frames], t.trans[: r.num_frames], t.expressions[: r.num_frames]) for t, r in zip(truths, rebuilt)]
        results["stage 1 reconstruction (the ground truth's own codes)"] = score(rebuilt, cut, onsets, fgd_model, sigmas)
    positions: dict[str, list[np.ndarray]] = {}
    for name, p, options in runs:
        motions = []
        for rng_seed in range(seed, seed + seeds):
            for take, audio, w, truth in zip(takes, audios, words, truths):
                result = p(
                    audio,
                    words=None if options.get("no_words") else w,
                    speaker=take.speaker,
                    gains=options.get("gains", (1.0, 1.0, 1.0)),
                    seed=rng_seed,
                    temperature=temperature,
                )
                frames = min(result.motion.num_frames, truth.num_frames)
                motions.append(Motion(result.motion.poses[:frames], result.motion.trans[:frames], result.motion.expressions[:frames]))
        positions[name] = [motion_positions(m) for m in motions]
        results[name] = score(
            motions,
            [
                Motion(t.poses[: m.num_frames], t.trans[: m.num_frames], t.expressions[: m.num_frames])
                for t, m in zip(truths * seeds, motions)
            ],
            onsets * seeds,
            fgd_model,
            sigmas,
            positions[name],
        )
    if untrained:
        for name in ("untrained", "untrained generator (trained stage 1)"):
            row = f"takes (of {len(takes)}) where the model's BC is above the {name}'s"
            results[row] = bc_wins(positions["model"], positions[name], onsets, sigmas)
    return results


def _recordings_and_model(model_dir, real: Path, seeds: int, block: str, least: int = 1, why: str = ""):
    """A real-speech block's inputs: the folder's wave16k/*.wav (at least `least`), the model
    without a fallback, each recording's audio and onsets."""
    wavs = sorted((real / "wave16k").glob("*.wav"))
    if len(wavs) < least:
        raise ValueError(f"{real}: {block} needs at least {least} recording{'s' * (least > 1)} in wave16k/{why}")
    if seeds < 1:
        raise ValueError(f"{block} needs at least one seed, got {seeds}")
    pipe = GranuMambaPipeline.from_pretrained(model_dir, allow_fallback=False)
    audios = [load_audio(w) for w in wavs]
    return wavs, pipe, audios, [audio_onsets(a) for a in audios]


def evaluate_real(
    model_dir,
    real,
    seed: int = 0,
    sigmas: tuple[float, ...] = (0.3, 0.1),
    temperature: float | None = None,
    seeds: int = 3,
) -> dict[str, dict[str, float]]:
    """The model on real recordings (a BEAT2-layout folder's wave16k/*.wav) at default settings,
    beside the folder's real capture (smplxflame_30/*.npz): rows of wrist speed and spread, BC
    against the own and another recording's speech, and the speech-motion correlation. The
    model's figures are means over `seeds` random seeds from `seed` on (one sample is noisy)."""
    real = Path(real)
    block, why = "the real-speech block", " (own against another's speech)"
    wavs, pipe, audios, onsets = _recordings_and_model(model_dir, real, seeds, block, least=2, why=why)
    # every recording under each seed in turn; each compared with the next recording's speech too
    motions = [pipe(a, seed=r, temperature=temperature).motion for r in range(seed, seed + seeds) for a in audios]
    positions = [motion_positions(m) for m in motions]
    run_audios, run_onsets = audios * seeds, onsets * seeds
    others, other_onsets = (audios[1:] + audios[:1]) * seeds, (onsets[1:] + onsets[:1]) * seeds
    durations = [a.shape[0] / SAMPLE_RATE for a in audios]
    other_durations = (durations[1:] + durations[:1]) * seeds
    results = {}
    captures = sorted((real / "smplxflame_30").glob("*.npz"))
    if captures:
        truths = {c.stem: load_motion(c) for c in captures}
        row = mean_stats(list(truths.values()))
        truth_positions, truth_onsets, truth_beats = [], [], []
        for k, (wav, audio, o) in enumerate(zip(wavs, audios, onsets)):
            if wav.stem in truths:
                truth_positions.append(motion_positions(truths[wav.stem]))
                truth_onsets.append((o, audio))
                truth_beats.append((k, *timed_beat_distances(truth_positions[-1], o)))
        capture = {
            "wrist_speed": row["wrist_speed"],
            "wrist_spread": row["wrist_spread"],
            "planted_foot": row["planted_ankle_speed_p50"] * 100,
        }
        if truth_positions:
            capture |= bc_columns(truth_positions, [o for o, _ in truth_onsets], sigmas, far=True)
            capture["speech_motion_corr"] = float(
                np.mean([speech_motion_correlation(a, p) for (_, a), p in zip(truth_onsets, truth_positions)])
            )
        results["real capture"] = capture
    per_take = [motion_stats(m) for m in motions]
    own_corr = [speech_motion_correlation(a, p) for a, p in zip(run_audios, positions)]
    results["model on real speech"] = {
        "wrist_speed": float(np.mean([s["wrist_speed"] for s in per_take])),
        "wrist_spread": float(np.mean([s["wrist_spread"] for s in per_take])),
        "planted_foot": float(np.mean([s["planted_ankle_speed_p50"] for s in per_take]) * 100),
        **bc_columns(positions, run_onsets, sigmas, far=True),
        "speech_motion_corr": float(np.mean(own_corr)),
    }
    results["beats at random times (chance), the same recordings"] = chance_columns(onsets, durations, sigmas)
    # how sure the model's lead over chance is: the recordings' spans drawn again (metrics.bc_gap_interval)
    model_beats = [(k % len(wavs), *timed_beat_distances(p, o)) for k, (p, o) in enumerate(zip(positions, run_onsets))]
    chance_beats = [(k, *timed_chance_distances(o, d)) for k, (o, d) in enumerate(zip(onsets, durations))]
    results["the model minus beats at random times, BC"] = bc_gap_interval(model_beats, chance_beats, sigma=sigmas[0], seed=seed)
    results["model, against another recording's speech"] = {
        **bc_columns(positions, other_onsets, sigmas, far=True, until=other_durations),
        "speech_motion_corr": float(np.mean([speech_motion_correlation(a, p) for a, p in zip(others, positions)])),
    }
    if captures:
        # BC depends on how densely a recording's onsets fall (its pauses above all), so the
        # like-for-like comparison with the capture is the model on that same recording
        captured = [k for k, w in enumerate(wavs * seeds) if w.stem in truths]
        if captured and len(captured) < len(motions):
            results["model on the captured recordings' speech"] = {
                "wrist_speed": float(np.mean([per_take[k]["wrist_speed"] for k in captured])),
                "wrist_spread": float(np.mean([per_take[k]["wrist_spread"] for k in captured])),
                **bc_columns([positions[k] for k in captured], [run_onsets[k] for k in captured], sigmas, far=True),
                "speech_motion_corr": float(np.mean([own_corr[k] for k in captured])),
            }
        if captured:  # how sure the capture's lead (or lag) over the model is, from these recordings alone
            captured_beats = [model_beats[k] for k in captured]
            results["real capture minus the model, BC"] = bc_gap_interval(truth_beats, captured_beats, sigma=sigmas[0], seed=seed)
        captured_wavs = [k for k, w in enumerate(wavs) if w.stem in truths]
        if captured_wavs and len(captured_wavs) < len(wavs):
            results["beats at random times (chance), the captured recordings"] = chance_columns(
                [onsets[k] for k in captured_wavs], [durations[k] for k in captured_wavs], sigmas
            )
    return results


def evaluate_conditions(
    model_dir,
    real,
    seed: int = 0,
    sigmas: tuple[float, ...] = (0.3, 0.1),
    temperature: float | None = None,
    seeds: int = 3,
    conditions: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """The model on a BEAT2-layout folder's recordings (wave16k/*.wav) as they are and as each of
    `conditions` (train.conditions, all by default) records them, at default settings over
    `seeds` seeds: per condition the wrist speed and spread, their ratio to the clean
    recordings', BC against the clean recordings' onsets (the microphone does not move when the
    words fall) and the correlation of the clean speech's energy with the arms' speed; for the
    conditions that move the words (train.conditions.RETIMED), the recorded speech's own."""
    from .conditions import CONDITIONS, RETIMED, record

    _, pipe, audios, onsets = _recordings_and_model(model_dir, Path(real), seeds, "the recording-conditions block")
    results: dict[str, dict[str, float]] = {}
    for condition in ["clean", *(conditions or CONDITIONS)]:
        recorded = audios if condition == "clean" else [record(a, condition, seed=k) for k, a in enumerate(audios)]
        heard, heard_onsets = (recorded, [audio_onsets(r) for r in recorded]) if condition in RETIMED else (audios, onsets)
        motions = [pipe(r, seed=s, temperature=temperature).motion for s in range(seed, seed + seeds) for r in recorded]
        positions = [motion_positions(m) for m in motions]
        stats = [motion_stats(m) for m in motions]
        row = {
            "wrist_speed": float(np.mean([st["wrist_speed"] for st in stats])),
            "wrist_spread": float(np.mean([st["wrist_spread"] for st in stats])),
            **bc_columns(positions, heard_onsets * seeds, sigmas, far=True),
            "speech_motion_corr": float(np.mean([speech_motion_correlation(a, p) for a, p in zip(heard * seeds, positions)])),
            # BC of beats at random times against the same onsets: a faster talker's denser onsets score higher by chance
            "chance_bc": chance_columns(heard_onsets, [h.shape[0] / SAMPLE_RATE for h in heard], sigmas[:1])[bc_column(0, sigmas[0])],
        }
        clean = results.get("clean", row)
        row["wrist_speed_ratio"] = row["wrist_speed"] / clean["wrist_speed"]
        row["wrist_spread_ratio"] = row["wrist_spread"] / clean["wrist_spread"]
        results[condition] = row
    return results


def _speech_table(results: dict[str, dict[str, float]], first: str, columns: list[str], titles: list[str]) -> str:
    """The real-speech tables: the given columns, then BC at each sigma, the far beats and the
    speech-motion correlation."""
    bcs = sorted({k for r in results.values() for k in r if k.startswith("bc")})
    columns = [*columns, *bcs, "far_beats", "speech_motion_corr"]
    titles = [*titles, *(("BC, σ = " + k.removeprefix("bc_sigma") + " s") if k != "bc" else "BC" for k in bcs)]
    titles += ["beats over 0.3 s from any onset", "speech energy ~ arm speed r"]
    lines = [f"| {first} | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3g}" if c in row else "-" for c in columns) + " |")
    return "\n".join(lines)


def real_table(results: dict[str, dict[str, float]]) -> str:
    titles = ["wrist speed (body heights/s)", "wrist spread (body heights)", "planted foot (cm/s)"]
    rows = {name: row for name, row in results.items() if "bc_gap" not in row}
    table = _speech_table(rows, "real speech", ["wrist_speed", "wrist_spread", "planted_foot"], titles)
    for name, row in results.items():
        if "bc_gap" in row:
            table += (
                f"\n\n{name} (the first σ): {row['bc_gap']:+.4f}, {row['level'] * 100:g} % interval {row['bc_gap_low']:+.4f} to "
                f"{row['bc_gap_high']:+.4f} ({row['spans']:.0f} spans of {row['window']:g} s drawn again, the same for both)"
            )
    return table


def conditions_table(results: dict[str, dict[str, float]]) -> str:
    columns = ["wrist_speed", "wrist_speed_ratio", "wrist_spread", "wrist_spread_ratio", "chance_bc"]
    return _speech_table(results, "recorded", columns, ["wrist speed", "x clean", "wrist spread", "x clean", "BC of random times"])


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    extra = sorted(
        {k for row in results.values() for k in row if k.startswith("bc_sigma")}, key=lambda k: -float(k.removeprefix("bc_sigma"))
    )
    columns = ["fgd", "bc", *extra, "diversity", "face_mse", "lvd", "planted_foot"]
    titles = ["FGD ↓", "BC ↑", *(f"BC, σ = {k.removeprefix('bc_sigma')} s ↑" for k in extra), "L1div", "face MSE ↓", "LVD ↓"]
    titles += ["planted foot, cm/s ↓"]
    lines = ["| | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4g}" if c in row else "-" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("metrics.json"))
    parser.add_argument("--fgd", type=Path, help="trained FGD autoencoder folder (python -m train.fgd_autoencoder)")
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--untrained", action="store_true")
    parser.add_argument("--reconstruction", action="store_true", help="add stage 1's reconstruction of the ground truth from its own codes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="random seeds (from --seed on) the split's generated rows are over")
    parser.add_argument("--temperature", type=float, help="sampling temperature of every generated row (default: each model's own)")
    parser.add_argument("--real", type=Path, help="a BEAT2-layout folder of real recordings (and capture) for the real-speech block")
    parser.add_argument("--real-seeds", type=int, default=3, help="random seeds (from --seed on) the real-speech block averages over")
    parser.add_argument("--no-split", action="store_true", help="only the real-speech block (with --real)")
    parser.add_argument(
        "--conditions",
        action="store_true",
        help="with --real: the same recordings through a phone line, an MP3, quiet or noisy microphones, a room; pitched, faster, slower",
    )
    parser.add_argument(
        "--sigma",
        type=float,
        nargs="+",
        default=[0.3],
        help="BC's tolerance in seconds (the field uses 0.3; 0.1 is stricter); several give several columns",
    )
    args = parser.parse_args(argv)
    if args.data is None and not (args.no_split and args.real):
        parser.error("--data is needed (or --no-split with --real)")
    if args.conditions and not args.real:
        parser.error("--conditions needs --real (the recordings to record again)")
    try:
        results, real, conditions = {}, {}, {}
        if not args.no_split:
            options = {
                "seed": args.seed,
                "sigma": tuple(args.sigma),
                "reconstructions": args.reconstruction,
                "temperature": args.temperature,
                "seeds": args.seeds,
            }
            results = evaluate(args.model, args.data, args.split, args.fgd, args.ablations, args.untrained, **options)
        if args.real:
            sigmas = tuple(args.sigma) if len(args.sigma) > 1 else (0.3, 0.1)
            real = evaluate_real(args.model, args.real, args.seed, sigmas, args.temperature, args.real_seeds)
            if args.conditions:
                conditions = evaluate_conditions(args.model, args.real, args.seed, sigmas, args.temperature, args.real_seeds)
    except (ValueError, OSError) as err:
        print(f"evaluate: {err}", file=sys.stderr)
        return 2
    extra = ({"real speech": real} if real else {}) | ({"recording conditions": conditions} if conditions else {})
    args.out.write_text(json.dumps(results | extra, indent=1))
    if results:
        print(markdown_table(results))
    if real:
        print(("\n" if results else "") + real_table(real))
    if conditions:
        print("\n" + conditions_table(conditions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
