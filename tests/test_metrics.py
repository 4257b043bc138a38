import numpy as np
import pytest

from train.metrics import (
    bc_gap_interval,
    bc_of_distances,
    beat_consistency,
    beat_distances,
    chance_distances,
    face_errors,
    far_beat_share,
    far_share_of_distances,
    frechet_distance,
    l1_diversity,
    motion_beats,
    timed_beat_distances,
    timed_chance_distances,
)


def test_fgd_is_zero_for_identical_sets_and_the_closed_form_for_a_shifted_gaussian():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    # same covariance: the distance is exactly the squared shift of the means
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-6)
    # N(0, I) against N(0, 4 I) in d dims: d * (1 + 4 - 2 * 2) = d, sampled
    b = rng.normal(size=(200_000, 4))
    c = rng.normal(size=(200_000, 4)) * 2
    assert frechet_distance(b, c) == pytest.approx(4.0, rel=0.03)


def beat_motion(beat_times, seconds=10.0):
    """Wrists swinging so that their speed has a minimum exactly at each beat time."""
    frames = int(seconds * 30)
    t = np.arange(frames) / 30
    positions = np.zeros((frames, 55, 3))
    # displacement whose speed is |t - nearest beat|-shaped: minima at the beats
    x = np.zeros(frames)
    for i in range(1, frames):
        d = np.min(np.abs(beat_times - t[i]))
        x[i] = x[i - 1] + 0.01 * min(d, 0.4)
    for j in (16, 17, 18, 19, 20, 21):
        positions[:, j, 0] = x
    return positions


def test_motion_beats_on_the_onsets_give_bc_one_and_off_beat_gives_less():
    onsets = np.arange(2.5, 8.0, 0.8)
    assert beat_consistency(beat_motion(onsets), onsets, sigma=0.1) == pytest.approx(1.0, abs=1e-6)
    shifted = beat_consistency(beat_motion(onsets + 0.2), onsets, sigma=0.1)
    assert shifted == pytest.approx(np.exp(-(0.2**2) / (2 * 0.1**2)), abs=0.05)
    beats = motion_beats(beat_motion(onsets))[0]
    assert np.abs(beats[(beats > 2) & (beats < 8)] - onsets[:, None]).min(axis=0).max() < 1 / 30 + 1e-9


def test_far_beat_share_counts_the_beats_in_the_speechs_pauses():
    onsets = np.arange(2.5, 8.0, 0.4)
    beats = np.array([2.5, 3.3, 4.1, 4.9, 5.3, 5.7, 6.5, 7.3])  # each on an onset
    spoken = onsets[(onsets < 5.0) | (onsets > 6.0)]  # the same speech pausing from 5.0 to 6.0 s
    positions = beat_motion(beats)
    assert far_beat_share(positions, onsets) == 0.0
    share = far_beat_share(positions, spoken)  # 5.3 and 5.7 lie 0.4 s from the nearest onset
    found = motion_beats(positions)[0]
    found = found[(found >= 2) & (found <= 8)]
    assert share == pytest.approx(np.isclose(found[:, None], [5.3, 5.7], atol=0.04).any(1).mean())
    assert 0 < share < 0.5
    assert beat_consistency(positions, spoken, sigma=0.3) < beat_consistency(positions, onsets, sigma=0.3)
    assert np.isnan(far_beat_share(positions, np.zeros(0)))


def test_chance_level_is_bc_of_times_spread_evenly_between_the_onsets():
    """Onsets every 0.4 s with a 1.2 s pause: random times lie uniformly 0 to 0.2 s from the
    nearest onset in the speech, 0 to 0.6 s in the pause (closed forms by scipy's erf)."""
    from scipy.special import erf

    onsets = np.concatenate([np.arange(0.0, 6.01, 0.4), np.arange(7.2, 14.01, 0.4)])
    distances = chance_distances(onsets, duration=14.0)  # 2 to 12 s; the pause 6.0 to 7.2 s
    sigma = 0.3

    def mean_bc(half_gap):  # the mean of exp(-d^2 / 2 sigma^2) for d uniform on [0, half_gap]
        return sigma * np.sqrt(np.pi / 2) * erf(half_gap / (sigma * np.sqrt(2))) / half_gap

    expected = (8.8 * mean_bc(0.2) + 1.2 * mean_bc(0.6)) / 10.0
    assert bc_of_distances(distances, sigma) == pytest.approx(expected, abs=1e-3)
    assert far_share_of_distances(distances) == pytest.approx(0.6 / 10.0, abs=1e-3)  # over 0.3 s: the pause's middle 0.6 s
    assert chance_distances(np.zeros(0), 14.0).size == 0 and chance_distances(onsets, 3.0).size == 0


def test_bc_against_a_shorter_recording_counts_only_the_seconds_it_covers():
    """Beats at random times over 30 s against onsets that end at 20 s (another, shorter
    recording): taken until 20 s, BC is the chance level of those onsets; taken to the end of
    the motion, the last 8 s of beats all count as far from any onset."""
    rng = np.random.default_rng(3)
    positions = beat_motion(np.sort(rng.uniform(0, 30, 60)), seconds=30.0)
    onsets = np.sort(rng.uniform(0, 20, 120))
    chance = bc_of_distances(chance_distances(onsets, 20.0), 0.3)
    assert beat_consistency(positions, onsets, until=20.0) == pytest.approx(chance, abs=0.03)
    assert beat_consistency(positions, onsets) < chance - 0.15


def test_diversity_is_zero_for_constant_motion_and_scales_with_spread():
    still = np.ones((100, 55, 3))
    assert l1_diversity(still) == 0.0
    moving = np.zeros((2, 55, 3))
    moving[1, 0, 0] = 0.1  # one joint 10 cm apart in one of two frames: |±5 cm| each
    assert l1_diversity(moving) == pytest.approx(5.0)


def test_face_errors_known_values():
    jaw, expr = np.zeros((10, 3)), np.zeros((10, 100))
    out = face_errors(jaw, expr, jaw, expr)
    assert out == {"face_mse": 0.0, "lvd": 0.0}
    shifted = face_errors(jaw + 1.0, expr, jaw, expr)
    assert shifted["face_mse"] == pytest.approx(3 / 103) and shifted["lvd"] == 0.0  # a constant offset has no velocity error


def test_paired_bc_wins_count_the_takes_where_the_beats_are_closer():
    from train.evaluate import bc_wins

    onsets = [np.arange(2.5, 8.0, 0.8), np.arange(2.3, 8.0, 0.7), np.arange(2.6, 8.0, 0.9)]
    on_beat = [beat_motion(o) for o in onsets]
    late = [beat_motion(o + 0.2) for o in onsets]
    assert bc_wins(on_beat, late, onsets, (0.3, 0.1)) == {"bc": 3.0, "bc_sigma0.1": 3.0}
    assert bc_wins(late, on_beat, onsets, (0.3,)) == {"bc": 0.0}
    mixed = [on_beat[0], late[1], on_beat[2]]
    assert bc_wins(mixed, late, onsets, (0.1,)) == {"bc": 2.0}  # ties are no win
    # two runs of the takes (two random seeds): each take compares its mean over the runs
    assert bc_wins(on_beat + late, late + late, onsets, (0.1,)) == {"bc": 3.0}
    assert bc_wins(mixed + late, late + late, onsets, (0.1,)) == {"bc": 2.0}
    assert bc_wins(on_beat + late, on_beat + on_beat, onsets, (0.1,)) == {"bc": 0.0}


def test_the_bc_gap_interval_tells_a_real_lead_from_a_recordings_chance():
    """Block bootstrap over spans of the recordings: beats on the onsets against beats 0.3 s
    off give BC 1 against exp(-1/2), an interval tight round the gap; two motions whose beats
    fall alike give a gap near 0 and an interval that holds 0; beats of one recording never
    stand for another's."""
    rng = np.random.default_rng(1)
    on = [(r, np.sort(rng.uniform(2, 60, 200)), np.zeros(200)) for r in range(2)]
    off = [(r, np.sort(rng.uniform(2, 60, 200)), np.full(200, 0.3)) for r in range(2)]
    lead = bc_gap_interval(on, off, sigma=0.3, draws=2000)
    assert lead["bc_gap"] == pytest.approx(1 - np.exp(-0.5)) and lead["spans"] == 2 * 15
    assert lead["bc_gap_low"] == pytest.approx(lead["bc_gap"]) and lead["bc_gap_high"] == pytest.approx(lead["bc_gap"])
    alike = [[(r, np.sort(rng.uniform(2, 60, 300)), rng.uniform(0, 0.5, 300)) for r in range(2)] for _ in range(2)]
    chance = bc_gap_interval(*alike, draws=2000)
    assert abs(chance["bc_gap"]) < 0.05 and chance["bc_gap_low"] < 0 < chance["bc_gap_high"] < 0.1
    # a model's seeds (several motions of one recording) pool their beats
    seeds = bc_gap_interval(on, [off[0], off[0], off[1]], draws=500)
    assert seeds["bc_gap"] == pytest.approx(lead["bc_gap"])
    # each beat's time beside its distance, the distance as beat_distances gives it
    onsets = np.arange(2.5, 9.0, 0.8)
    motion = beat_motion(onsets + 0.1)
    times, distances = timed_beat_distances(motion, onsets)
    assert times.size > 0 and np.array_equal(distances, beat_distances(motion, onsets))
    assert np.allclose(distances, np.abs(onsets[None] - times[:, None]).min(1))
    times, distances = timed_chance_distances(onsets, 11.0)
    assert np.array_equal(distances, chance_distances(onsets, 11.0)) and times[0] == 2.0 and times[-1] < 9.0
    assert np.allclose(distances, np.abs(onsets[None] - times[:, None]).min(1))


def test_band_energy_sees_fast_motion_and_not_a_clip_that_ends_elsewhere_than_it_starts():
    """A wrist that turns slowly from one posture to another over a 5 s clip has no 3-15 Hz
    motion; a 5 Hz tremor on top of it has, and the measure finds the tremor's power whether
    the clip ends where it starts or not (an unwindowed spectrum reads the jump from the last
    frame back to the first as fast motion)."""
    from granumamba.motion import JOINT_INDEX
    from train.metrics import HAND_JOINTS, band_energy

    t = np.arange(150) / 30.0
    poses = np.zeros((150, 165))
    wrist = 3 * JOINT_INDEX["left_wrist"]
    turn = poses.copy()
    turn[:, wrist] = 0.8 * t / t[-1]  # 0 to 0.8 rad
    tremor = np.zeros_like(poses)
    tremor[:, wrist] = 0.05 * np.sin(2 * np.pi * 5.0 * t)
    fast = band_energy(tremor, HAND_JOINTS, 3.0, 15.0)
    assert fast == pytest.approx(0.05**2 / 2, rel=0.1)  # a sine's power: amplitude^2 / 2
    assert band_energy(turn, HAND_JOINTS, 3.0, 15.0) < 0.01 * fast
    assert band_energy(turn + tremor, HAND_JOINTS, 3.0, 15.0) == pytest.approx(fast, rel=0.1)
    assert band_energy(turn, HAND_JOINTS, 0.05, 1.0) > 100 * band_energy(tremor, HAND_JOINTS, 0.05, 1.0)


def test_root_speed_is_the_travel_speed_and_ignores_jitter_and_height():
    """corpus_stats.root_speed: a root walking 0.3 m/s along x reads 0.3 whatever its frame-to-frame
    jitter of a few mm or its bobbing up and down; a root that only jitters reads near 0."""
    from granumamba.motion import Motion
    from train.corpus_stats import root_speed

    rng = np.random.default_rng(0)
    frames = 300
    t = np.arange(frames) / 30
    jitter = rng.normal(0, 0.002, (frames, 3))
    walk = np.stack([0.3 * t, 1.0 + 0.05 * np.sin(4 * t), np.zeros(frames)], 1) + jitter
    blank = dict(poses=np.zeros((frames, 165)), expressions=np.zeros((frames, 100)))
    assert root_speed(Motion(trans=walk, **blank)) == pytest.approx(0.3, rel=0.05)
    assert root_speed(Motion(trans=jitter, **blank)) < 0.02
    assert root_speed(Motion(trans=np.zeros((1, 3)), poses=np.zeros((1, 165)), expressions=np.zeros((1, 100)))) == 0.0
