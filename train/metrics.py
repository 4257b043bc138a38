"""The field's metrics, each pinned by tests on inputs whose value is known by hand.

- FGD: Frechet distance between Gaussians fitted to motion-autoencoder features of real and
  generated motion (6D rotations of 55 joints, sequences cut to multiples of 32 frames).
- BC / BAS (beat consistency): for every motion beat (a local minimum of an upper-body joint's
  normalised speed after a real movement), exp(-d^2 / 2 sigma^2) with d the distance in seconds
  to the nearest audio onset (librosa), averaged; the first and last 2 s are skipped. 1 = every
  beat on an onset.
- Diversity (L1div): mean L1 distance of joint positions (cm) from their mean pose; 0 for
  constant motion.
- Speech-motion correlation: Pearson correlation between the speech's energy envelope and the
  wrists' speed, both smoothed over half a second; a motion follows its own speech when this is
  clearly higher than against another recording's speech.
- Slider effect: the 3-15 Hz energy of wrists and fingers (what the fine gain should raise) and
  the below-1 Hz energy of spine, neck and shoulders (what the coarse gain should raise), from the
  rotations' spectrum.
- Face: MSE of jaw rotation (axis-angle) and expressions against the ground truth; LVD, the
  mean L1 difference of their frame-to-frame velocities (a vertex-free form of lip vertex
  difference, since FLAME's mesh is not available here).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from scipy.signal import argrelextrema, periodogram

from granumamba import FPS, SAMPLE_RATE
from granumamba.motion import JOINT_INDEX, Motion, joint_positions

UPPER_BEAT_JOINTS = (16, 17, 18, 19, 20, 21)  # shoulders, elbows, wrists
HAND_JOINTS = (JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"], *range(25, 55))  # and the 30 finger joints
POSTURE_JOINTS = tuple(
    JOINT_INDEX[n] for n in ("spine1", "spine2", "spine3", "neck", "left_shoulder", "right_shoulder", "left_collar", "right_collar")
)


def band_energy(poses: np.ndarray, joints, low: float, high: float) -> float:
    """Power of the joints' axis-angle rotations (T, 165) between `low` and `high` Hz, summed over
    their channels (the slider measures: fine gain -> 3-15 Hz of HAND_JOINTS, coarse gain ->
    0.05-1 Hz of POSTURE_JOINTS). A Hann-windowed periodogram: without the window, the jump from
    a clip's last pose back to its first leaks into every band, so a short clip that ends in
    another posture than it starts in shows fast motion that is not there."""
    x = poses.reshape(len(poses), 55, 3)[:, list(joints)].reshape(len(poses), -1)
    freqs, power = periodogram(x, fs=FPS, window="hann", detrend="constant", axis=0)
    band = (freqs >= low) & (freqs < high)
    return float(power[band].sum() * (freqs[1] - freqs[0]))


def motion_positions(motion: Motion) -> np.ndarray:
    """A take's joint positions (T, 55, 3) in metres, which BC and L1div are computed on."""
    return joint_positions(torch.as_tensor(motion.poses), torch.as_tensor(motion.trans, dtype=torch.float32)).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (n, d) and b (m, d)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # nearly singular: regularise, as the field's code does
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real
    return float(max(0.0, ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def audio_onsets(audio: np.ndarray) -> np.ndarray:
    """Onset times (s) of 16 kHz audio, by librosa."""
    import librosa

    return librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, units="time", backtrack=False)


def motion_beats(positions: np.ndarray, joints=UPPER_BEAT_JOINTS, threshold: float = 0.1, order: int = 3) -> list[np.ndarray]:
    """Per joint, the frame times (s) of motion beats: local minima of the joint's speed
    (normalised by its maximum) that follow a movement faster than `threshold`."""
    beats = []
    for j in joints:
        speed = np.linalg.norm(np.diff(positions[:, j], axis=0), axis=-1)
        if speed.max() <= 1e-9:
            beats.append(np.zeros(0))
            continue
        speed = speed / speed.max()
        minima = argrelextrema(speed, np.less, order=order)[0]
        keep = [m for m in minima if speed[max(0, m - 3 * order) : m].max(initial=0) > threshold]
        beats.append((np.array(keep) + 1) / FPS)  # speed[i] spans frames i..i+1
    return beats


def beat_distances(positions: np.ndarray, onsets: np.ndarray, skip: float = 2.0, until: float | None = None) -> np.ndarray:
    """Every motion beat's distance (s) to the nearest audio onset, the first and last `skip`
    seconds left out; empty where there are no onsets or no beats. `until` (s) ends the span
    earlier than the motion does: where the onsets are another, shorter recording's, the motion's
    beats past that recording's end would all count as beats in a pause."""
    return timed_beat_distances(positions, onsets, skip, until)[1]


def timed_beat_distances(
    positions: np.ndarray, onsets: np.ndarray, skip: float = 2.0, until: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`beat_distances` with each beat's time (s): (times, distances)."""
    duration = positions.shape[0] / FPS if until is None else min(until, positions.shape[0] / FPS)
    onsets = np.asarray(onsets)
    if onsets.size == 0:
        return np.zeros(0), np.zeros(0)
    beats = np.concatenate([b[(b >= skip) & (b <= duration - skip)] for b in motion_beats(positions)])
    return beats, (np.abs(onsets[None, :] - beats[:, None]).min(1) if beats.size else np.zeros(0))


def bc_gap_interval(
    first: list[tuple[int, np.ndarray, np.ndarray]],
    second: list[tuple[int, np.ndarray, np.ndarray]],
    sigma: float = 0.3,
    window: float = 4.0,
    draws: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """BC of `first` minus BC of `second` on the same recordings, with a block-bootstrap interval.

    Each side is a list of motions' beats, (recording, times, distances) (`timed_beat_distances`;
    several motions, a model's seeds, may share a recording). The recordings are cut into spans of
    `window` seconds and the spans, the same for both sides, are drawn with replacement `draws`
    times; a span's beats go together, since beats close in time are not independent (a single
    recording's BC is one performance of it, and this says how far another stretch of the same
    speech could move it). Returns the gap, its `level` interval, the number of spans, and
    `window` and `level` themselves."""
    keys: dict[tuple[int, int], int] = {}
    sides = []
    for beats in (first, second):
        spans = [(recording, int(t // window)) for recording, times, _ in beats for t in times]
        scores = np.concatenate([beat_scores(d, sigma) for _, _, d in beats]) if beats else np.zeros(0)
        sides.append(([keys.setdefault(k, len(keys)) for k in spans], scores))
    if not keys or any(len(scores) == 0 for _, scores in sides):
        nan = float("nan")
        return {"bc_gap": nan, "bc_gap_low": nan, "bc_gap_high": nan, "spans": float(len(keys)), "window": window, "level": level}
    sums = [np.bincount(index, scores, len(keys)) for index, scores in sides]
    counts = [np.bincount(index, None, len(keys)) for index, _ in sides]
    drawn = np.random.default_rng(seed).integers(0, len(keys), (draws, len(keys)))
    with np.errstate(invalid="ignore"):  # a draw without any beat of one side: left out below
        gaps = sums[0][drawn].sum(1) / counts[0][drawn].sum(1) - sums[1][drawn].sum(1) / counts[1][drawn].sum(1)
    gaps = gaps[np.isfinite(gaps)]
    tail = (1 - level) / 2 * 100
    return {
        "bc_gap": float(sums[0].sum() / counts[0].sum() - sums[1].sum() / counts[1].sum()),
        "bc_gap_low": float(np.percentile(gaps, tail)),
        "bc_gap_high": float(np.percentile(gaps, 100 - tail)),
        "spans": float(len(keys)),
        "window": window,
        "level": level,
    }


def chance_distances(onsets: np.ndarray, duration: float, skip: float = 2.0, step: float = 0.001) -> np.ndarray:
    """The distances to the nearest onset of times evenly spread (every `step` s) over the span
    that `beat_distances` takes beats from: BC and the far share of beats that fall at random,
    with no timing of their own (the chance level, which depends on how a recording's onsets
    and pauses fall)."""
    return timed_chance_distances(onsets, duration, skip, step)[1]


def timed_chance_distances(onsets: np.ndarray, duration: float, skip: float = 2.0, step: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """`chance_distances` with the times they are taken at: (times, distances)."""
    onsets = np.sort(np.asarray(onsets, dtype=float))
    times = np.arange(skip, duration - skip, step)
    if onsets.size == 0 or times.size == 0:
        return np.zeros(0), np.zeros(0)
    after = np.searchsorted(onsets, times).clip(1, onsets.size) - 1  # the onset at or before, else the first
    nearest = np.minimum(np.abs(times - onsets[after]), np.abs(onsets[np.minimum(after + 1, onsets.size - 1)] - times))
    return times, nearest


def beat_scores(distances: np.ndarray, sigma: float = 0.3) -> np.ndarray:
    """Each beat's share of BC: a Gaussian of its distance (s) to the nearest onset."""
    return np.exp(-(np.asarray(distances) ** 2) / (2 * sigma**2))


def bc_of_distances(distances: np.ndarray, sigma: float = 0.3) -> float:
    """BC from the beats' distances to their nearest onsets (`beat_distances`)."""
    return float(beat_scores(distances, sigma).mean()) if distances.size else float("nan")


def far_share_of_distances(distances: np.ndarray, far: float = 0.3) -> float:
    """The share of beats more than `far` seconds from any onset, from `beat_distances`."""
    return float((distances > far).mean()) if distances.size else float("nan")


def beat_consistency(positions: np.ndarray, onsets: np.ndarray, sigma: float = 0.3, skip: float = 2.0, until: float | None = None) -> float:
    """BC / BAS of joint positions (T, 55, 3) against audio onset times (s) (`until`: see
    `beat_distances`)."""
    return bc_of_distances(beat_distances(positions, onsets, skip, until), sigma)


def far_beat_share(positions: np.ndarray, onsets: np.ndarray, far: float = 0.3, skip: float = 2.0) -> float:
    """The share of motion beats more than `far` seconds from any onset: beats in the speech's
    pauses, which BC scores near zero whatever their timing elsewhere."""
    return far_share_of_distances(beat_distances(positions, onsets, skip), far)


def l1_diversity(positions: np.ndarray) -> float:
    """Mean L1 distance (cm) of each frame's joint positions (T, J, 3) from the mean pose."""
    flat = positions.reshape(positions.shape[0], -1) * 100.0
    return float(np.abs(flat - flat.mean(0)).sum(1).mean())


def face_errors(pred_jaw: np.ndarray, pred_expr: np.ndarray, true_jaw: np.ndarray, true_expr: np.ndarray) -> dict[str, float]:
    """Face MSE and LVD over jaw (T, 3) and expressions (T, 100)."""
    pred = np.concatenate([pred_jaw, pred_expr], axis=1)
    true = np.concatenate([true_jaw, true_expr], axis=1)
    n = min(len(pred), len(true))
    pred, true = pred[:n], true[:n]
    return {"face_mse": float(((pred - true) ** 2).mean()), "lvd": float(np.abs(np.diff(pred, axis=0) - np.diff(true, axis=0)).mean())}


def speech_motion_correlation(audio: np.ndarray, positions: np.ndarray, smooth_seconds: float = 0.5) -> float:
    """Correlation of 16 kHz speech's RMS envelope with the wrists' speed (positions (T, 55, 3)),
    over the frames both cover, each smoothed by a moving average of `smooth_seconds`."""
    from scipy.ndimage import uniform_filter1d

    from granumamba import frame_start_sample

    frames = min(positions.shape[0] - 1, int(audio.shape[0] * FPS / SAMPLE_RATE))
    bounds = [frame_start_sample(i) for i in range(frames + 1)]
    energy = np.array([np.sqrt(np.mean(audio[a:b] ** 2)) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])])
    speed = np.linalg.norm(np.diff(positions[: frames + 1, [20, 21]], axis=0), axis=-1).mean(1)
    width = max(1, int(smooth_seconds * FPS))
    energy, speed = uniform_filter1d(energy, width), uniform_filter1d(speed, width)
    if energy.std() < 1e-12 or speed.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(energy, speed)[0, 1])
