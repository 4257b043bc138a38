"""How a corpus moves, beside a reference take of real capture: the figures the synthetic
corpus is calibrated on, and that generated motion is judged on.

    python -m train.corpus_stats --data data/synth [--split test] [--reference ../shared/data/beat2_sample]

Every figure is in body heights (the mean head-to-ankle height of the take's own forward
kinematics on the project's rest skeleton) or in degrees or seconds, so takes of any skeleton
compare. Wrists are taken relative to the pelvis, so walking and weight shifts do not count
as gesture.

- wrist_speed: mean speed of both wrists (body heights / s);
- slower_wrist_speed: mean speed of whichever wrist moves slower in each frame: whether the
  second hand moves too (people move both most of the time) or waits while the other gestures;
- wrist_spread: median over 3.4 s windows of the wrists' height range (p95 - p5);
- elbow_p10/p50/p90: elbow flexion (degrees, 0 = straight arm) over both arms;
- hand_distance_p10/p50/p90: wrist-to-wrist distance;
- stroke_rate: peaks of a wrist's speed above 0.5 body heights / s, per second;
- hold_seconds: median length of a hold, a stretch of at least 0.2 s where a raised wrist
  (above its rest height) moves under 0.1 body heights / s;
- rest_share: share of frames where both wrists are low (within 0.12 body heights of the
  lowest 5 % of their height) and slow;
- range_<joint>: p95 of each frame's rotation away from the joint's mean rotation (degrees), for the
  spine, neck, head, collars, shoulders, elbows and wrists;
- planted_ankle_speed: horizontal speed of the supporting (lower) ankle, median and p99 (m/s);
- root_speed: mean horizontal speed of the root (the pelvis's travel: weight shifts, steps,
  walking) over 0.5 s averages, so mocap jitter does not count (m/s).

`--features` also prints where the reference's speech sits in the corpus's speech-feature
distribution: per feature, the z-score of the reference's mean against the corpus's frames.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

from granumamba import FPS
from granumamba.data.beat2 import DataError, index_beat2, load_motion
from granumamba.motion import Motion
from granumamba.motion.rotations import axis_angle_to_matrix
from granumamba.motion.skeleton import JOINT_INDEX, NUM_JOINTS, forward_kinematics

WINDOW = 102  # frames (3.4 s) of the wrist-height spread
RANGE_JOINTS = tuple(
    "spine1 spine3 neck head left_collar right_collar left_shoulder right_shoulder left_elbow right_elbow left_wrist right_wrist".split()
)
STROKE_SPEED = 0.5  # body heights / s
HOLD_SPEED = 0.1
HOLD_SECONDS = 0.2
REST_BAND = 0.12  # body heights above the lowest wrist heights that still count as rest
HEADLINE = ("wrist_speed", "wrist_spread")


def _index(name: str) -> int:
    return JOINT_INDEX[name]


def body_positions(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """(T, 22, 3) body joint positions without root translation, and (T, 22, 3, 3) the local
    rotations they came from."""
    poses = torch.as_tensor(motion.poses, dtype=torch.float64).reshape(-1, NUM_JOINTS, 3)[:, :22]
    rotmats = axis_angle_to_matrix(poses)
    return forward_kinematics(rotmats)[0].numpy(), rotmats.numpy()


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def motion_stats(motion: Motion) -> dict[str, float]:
    """The figures of the module docstring for one take."""
    positions, rotmats = body_positions(motion)
    frames = positions.shape[0]
    height = float(np.abs(positions[:, _index("head"), 1] - positions[:, [_index("left_ankle"), _index("right_ankle")], 1].mean(1)).mean())
    pelvis = positions[:, _index("pelvis")]
    wrists = np.stack([positions[:, _index("left_wrist")], positions[:, _index("right_wrist")]], 1) - pelvis[:, None]  # (T, 2, 3)
    wrists = wrists / height
    speed = np.linalg.norm(np.diff(wrists, axis=0), axis=-1) * FPS  # (T-1, 2)
    stats: dict[str, float] = {"seconds": frames / FPS, "wrist_speed": float(speed.mean())}
    stats["slower_wrist_speed"] = float(speed.min(1).mean())
    heights = wrists[..., 1]
    spreads = [
        np.percentile(heights[i : i + WINDOW], 95) - np.percentile(heights[i : i + WINDOW], 5)
        for i in range(0, max(1, frames - WINDOW), WINDOW)
    ]
    stats["wrist_spread"] = float(np.median(spreads))

    elbows = []
    for side in ("left", "right"):
        upper = positions[:, _index(f"{side}_elbow")] - positions[:, _index(f"{side}_shoulder")]
        fore = positions[:, _index(f"{side}_wrist")] - positions[:, _index(f"{side}_elbow")]
        cos = (upper * fore).sum(-1) / (np.linalg.norm(upper, axis=-1) * np.linalg.norm(fore, axis=-1))
        elbows.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    elbows = np.concatenate(elbows)
    distance = np.linalg.norm(wrists[:, 0] - wrists[:, 1], axis=-1)
    for q in (10, 50, 90):
        stats[f"elbow_p{q}"] = float(np.percentile(elbows, q))
        stats[f"hand_distance_p{q}"] = float(np.percentile(distance, q))

    smooth = uniform_filter1d(speed, 5, axis=0)  # 1/6 s: one stroke gives one peak
    peaks = sum(len(find_peaks(smooth[:, k], height=STROKE_SPEED, distance=int(0.2 * FPS))[0]) for k in range(2))
    stats["stroke_rate"] = peaks / (frames / FPS)

    low = np.percentile(heights, 5, axis=0)  # per wrist
    at_rest = heights[1:] < low + REST_BAND  # (T-1, 2)
    slow = smooth < HOLD_SPEED
    holds = [(b - a) / FPS for k in range(2) for a, b in _runs(slow[:, k] & ~at_rest[:, k]) if b - a >= HOLD_SECONDS * FPS]
    stats["hold_seconds"] = float(np.median(holds)) if holds else 0.0
    stats["rest_share"] = float((at_rest & slow).all(1).mean())

    for name in RANGE_JOINTS:
        r = rotmats[:, _index(name)]
        mean = np.linalg.svd(r.mean(0))  # the chordal mean rotation: nearest rotation to the average
        mean = mean[0] @ np.diag([1, 1, np.linalg.det(mean[0] @ mean[2])]) @ mean[2]
        relative = np.einsum("ij,tik->tjk", mean, r)
        angle = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        stats[f"range_{name}"] = float(np.percentile(angle, 95))
    stats.update(planted_ankle_speed(motion))
    stats["root_speed"] = root_speed(motion)
    return stats


def root_speed(motion: Motion, seconds: float = 0.5) -> float:
    """Mean horizontal speed (m/s) of the root translation, averaged over `seconds` first."""
    travel = uniform_filter1d(np.asarray(motion.trans, dtype=np.float64)[:, [0, 2]], max(1, int(seconds * FPS)), axis=0)
    return float(np.linalg.norm(np.diff(travel, axis=0), axis=-1).mean() * FPS) if len(travel) > 1 else 0.0


def planted_ankle_speed(motion: Motion, positions: np.ndarray | None = None) -> dict[str, float]:
    """Median and 99th percentile of the horizontal speed (m/s) of the ankle that carries the
    weight (the lower one) in each frame: a planted foot does not slide. `positions`: the
    motion's joint positions (train.metrics.motion_positions), where the caller has them."""
    from train.metrics import motion_positions

    positions = motion_positions(motion) if positions is None else positions
    ankles = positions[:, [_index("left_ankle"), _index("right_ankle")]]  # (T, 2, 3), with translation
    lower = ankles[..., 1].argmin(1)[1:]
    speed = np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1)[np.arange(len(lower)), lower] * FPS
    return {"planted_ankle_speed_p50": float(np.median(speed)), "planted_ankle_speed_p99": float(np.percentile(speed, 99))}


def feature_zscores(corpus_audio: list[Path], reference_audio: list[Path]) -> dict[str, float]:
    """Per speech feature group, the largest |z| of the reference recordings' mean feature
    against the corpus's distribution (mean and std over all its frames)."""
    from granumamba.audio import load_audio
    from granumamba.audio.features import N_MELS, speech_features

    corpus = np.concatenate([speech_features(load_audio(p)) for p in corpus_audio])
    reference = np.concatenate([speech_features(load_audio(p)) for p in reference_audio])
    z = np.abs(reference.mean(0) - corpus.mean(0)) / (corpus.std(0) + 1e-6)
    groups = {"log_mel": slice(0, N_MELS), "onset": slice(N_MELS, N_MELS + 1), "energy": slice(N_MELS + 1, N_MELS + 2)}
    groups |= {"pitch": slice(N_MELS + 2, N_MELS + 3), "voicing": slice(N_MELS + 3, N_MELS + 4)}
    return {name: float(z[cols].max()) for name, cols in groups.items()}


def mean_stats(motions: list[Motion]) -> dict[str, float]:
    """Per-take figures averaged over takes, weighted by length."""
    per_take = [motion_stats(m) for m in motions]
    weights = np.array([s["seconds"] for s in per_take])
    return {k: float(np.average([s[k] for s in per_take], weights=weights)) for k in per_take[0]} | {"seconds": float(weights.sum())}


def reference_motions(root: Path) -> list[Motion]:
    """Every motion take of a BEAT2-layout folder (audio need not be there)."""
    files = sorted((root / "smplxflame_30").glob("*.npz"))
    if not files:
        raise DataError(f"{root}: no smplxflame_30/*.npz; give a folder in BEAT2's layout.")
    return [load_motion(f) for f in files]


def table(columns: dict[str, dict[str, float]], reference: str | None = None) -> str:
    """A markdown table of figures, one column per source, and each source's ratio to `reference`."""
    names = list(columns)
    keys = [k for k in next(iter(columns.values())) if k != "seconds"]
    header = ["figure", *names] + [f"{n} / {reference}" for n in names if reference and n != reference]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for k in keys:
        row = [k] + [f"{columns[n][k]:.3f}" for n in names]
        if reference:
            base = columns[reference][k]
            row += [f"{columns[n][k] / base:.2f}" if abs(base) > 1e-9 else "-" for n in names if n != reference]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="BEAT2-layout folders or npz files to measure")
    parser.add_argument("--split", default=None, help="only takes of this split (train, val, test)")
    parser.add_argument("--reference", type=Path, default=None, help="a BEAT2-layout folder of real capture to compare with")
    parser.add_argument("--features", action="store_true", help="also: z-scores of the reference's speech features in the corpus's")
    args = parser.parse_args(argv)
    try:
        columns = {}
        for source in args.data:
            if source.suffix == ".npz":
                motions = [load_motion(source)]
            elif (source / "train_test_split.csv").is_file():
                motions = [load_motion(t.motion) for t in index_beat2(source, args.split).takes]
            else:
                motions = reference_motions(source)
            if not motions:
                raise DataError(f"{source}: no takes{f' in split {args.split}' if args.split else ''}.")
            columns[source.name] = mean_stats(motions)
        if args.reference is not None:
            columns = {"reference": mean_stats(reference_motions(args.reference))} | columns
    except (DataError, OSError) as err:
        print(f"corpus_stats: {err}", file=sys.stderr)
        return 2
    print(table(columns, "reference" if args.reference is not None else None))
    if args.features and args.reference is not None:
        corpus_audio = [t.audio for source in args.data if source.is_dir() for t in index_beat2(source, args.split).takes]
        reference_audio = sorted((args.reference / "wave16k").glob("*.wav"))
        if corpus_audio and reference_audio:
            z = feature_zscores(corpus_audio, reference_audio)
            print("\nreference speech features in the corpus's distribution (largest |z| per group):")
            print("\n".join(f"  {k}: {v:.2f}" for k, v in z.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
