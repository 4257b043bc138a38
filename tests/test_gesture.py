"""The procedural gesture generator: inverse kinematics that reaches, strokes on the onsets,
units that rest in silence, speaker styles that differ."""

import numpy as np
import torch

from granumamba import FPS
from granumamba.motion import JOINT_INDEX, joint_positions
from granumamba.text.textgrid import Word
from train.corpus import speaker_style
from train.gesture import CHEST, RHYTHM, SIDES, arm_ik, gesture, girdle_turn, rest_position, two_bone_ik


def test_two_bone_ik_puts_the_wrist_on_reachable_targets():
    from granumamba.motion.skeleton import REST_OFFSETS

    rng = np.random.default_rng(0)
    upper, lower = REST_OFFSETS[JOINT_INDEX["left_elbow"]], REST_OFFSETS[JOINT_INDEX["left_wrist"]]
    directions = rng.normal(size=(50, 3))
    targets = directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(0.15, 0.45, (50, 1))
    shoulder, elbow = two_bone_ik(targets, upper, lower, np.array([0.5, -1.0, -0.3]), np.array([0.0, -1.0, 0.0]))
    reached = np.einsum("tij,j->ti", shoulder, upper) + np.einsum("tij,tjk,k->ti", shoulder, elbow, lower)
    assert np.abs(reached - targets).max() < 1e-6
    # the elbow bends one way only: forwards, never backwards
    assert (np.einsum("tij,j->ti", elbow, lower)[:, 2] >= -1e-9).all()


def test_arm_ik_reaches_the_wrist_and_keeps_the_arm_nearer_its_ready_posture_than_a_fixed_pole():
    """The elbow's place on its circle is chosen, frame by frame, nearest the ready posture: the
    wrist is reached exactly, the elbow bends forwards only, and over a path that sweeps across the
    gesture space the shoulder stays nearer its ready rotation, and the elbow lower, than with the
    fixed default pole."""
    from scipy.spatial.transform import Rotation

    from granumamba.motion.skeleton import REST_OFFSETS
    from train.gesture import _arm_pole, ready_shoulder

    t = np.arange(300) / FPS
    # the left wrist from its shoulder: across the body and out, up and down, near and far (within reach)
    target = np.stack([0.1 * np.sin(0.9 * t) - 0.02, 0.08 * np.sin(1.7 * t + 1) - 0.2, 0.07 * np.sin(1.3 * t + 2) + 0.25], -1)
    wrist = target + CHEST + REST_OFFSETS[JOINT_INDEX["left_collar"]] + REST_OFFSETS[JOINT_INDEX["left_shoulder"]]  # pelvis-relative
    upper, lower = REST_OFFSETS[JOINT_INDEX["left_elbow"]], REST_OFFSETS[JOINT_INDEX["left_wrist"]]
    shoulder, elbow = arm_ik(target, wrist, "left")
    reached = np.einsum("tij,j->ti", shoulder, upper) + np.einsum("tij,tjk,k->ti", shoulder, elbow, lower)
    assert np.abs(reached - target).max() < 1e-6
    assert (np.einsum("tij,j->ti", elbow, lower)[:, 2] >= -1e-9).all()
    fixed, _ = two_bone_ik(target, upper, lower, _arm_pole(wrist, "left"), np.array([0.0, -1.0, 0.0]))

    def away(rotations):
        return Rotation.from_matrix(np.swapaxes(ready_shoulder("left"), -1, -2) @ rotations).magnitude().mean()

    assert away(shoulder) < 0.9 * away(fixed), (away(shoulder), away(fixed))
    assert (shoulder @ upper)[:, 1].mean() < (fixed @ upper)[:, 1].mean() - 0.005  # the elbow hangs lower


def test_the_collar_takes_its_share_of_the_arms_swing():
    """The shoulder girdle turns with the arm: not at all for a hanging arm, its share of the
    swing for a raised one (by default RHYTHM, the scapulohumeral rhythm's third), lifting the
    shoulder when the arm is raised sideways or up."""
    from scipy.spatial.transform import Rotation

    from granumamba.motion.skeleton import REST_OFFSETS

    for side, s in SIDES.items():
        shoulder_at = REST_OFFSETS[JOINT_INDEX[f"{side}_collar"]] + REST_OFFSETS[JOINT_INDEX[f"{side}_shoulder"]]
        directions = np.array([[0.0, -1.0, 0.0], [s, 0.0, 0.0], [0.0, 0.0, 1.0], [s * 0.5, 0.5, 0.7]])
        turn = girdle_turn(shoulder_at + 0.4 * directions, side)
        swing = np.degrees(np.arccos(directions @ [0.0, -1.0, 0.0] / np.linalg.norm(directions, axis=1)))
        np.testing.assert_allclose(np.degrees(np.linalg.norm(turn, axis=1)), RHYTHM * swing, atol=1e-6)
        lifted = Rotation.from_rotvec(turn).apply(REST_OFFSETS[JOINT_INDEX[f"{side}_shoulder"]])
        assert np.allclose(lifted[0], REST_OFFSETS[JOINT_INDEX[f"{side}_shoulder"]])
        assert (lifted[[1, 3], 1] > REST_OFFSETS[JOINT_INDEX[f"{side}_shoulder"]][1] + 0.02).all()  # raised sideways or up


def _speech(seconds: float, pause_after: float | None = None) -> tuple[list[Word], np.ndarray, np.ndarray, np.ndarray]:
    words, t = [], 0.3
    while t < seconds:
        if pause_after is not None and pause_after <= t < pause_after + 4.0:
            t = pause_after + 4.0
        words.append(Word("word", t, t + 0.28))
        t += 0.36
    return _signals(words, seconds + 0.5)


def _signals(words: list[Word], seconds: float) -> tuple[list[Word], np.ndarray, np.ndarray, np.ndarray]:
    """The words with their per-frame energy and pitch over `seconds`, and their onsets."""
    energy = np.zeros(int(seconds * FPS))
    for w in words:
        energy[int(w.start * FPS) : int(w.end * FPS)] = 0.7
    pitch = np.where(energy > 0, 1.3, 0.0)
    onsets = np.array([w.start + 0.01 for w in words])
    return words, energy, pitch, onsets


def _poses(parts) -> np.ndarray:
    """(T, 165) poses: the gesture's components summed, as the corpus saves them."""
    poses = parts["base"][None] + parts["coarse"] + parts["mid"] + parts["fine"] + parts["jaw"]
    return poses.reshape(len(poses), -1)


def _wrists(parts) -> np.ndarray:
    positions = joint_positions(torch.as_tensor(_poses(parts), dtype=torch.float32)).numpy()
    return positions[:, [JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"]]] - positions[:, [0]]


def test_hands_gesture_while_speaking_and_rest_in_a_long_silence():
    style = speaker_style(1)
    words, energy, pitch, onsets = _speech(12.0, pause_after=4.0)
    wrists = _wrists(gesture(words, energy, pitch, onsets, style, np.random.default_rng(0)))
    speed = np.linalg.norm(np.diff(wrists, axis=0), axis=-1).mean(1) * FPS
    t = np.arange(len(speed)) / FPS
    talking = speed[(t > 1.0) & (t < 4.0)].mean()
    silent = speed[(t > 6.3) & (t < 7.2)].mean()  # inside the 4 s pause: after the hold and the retraction, before the next preparation
    assert talking > 0.2 and silent < 0.1 * talking, (talking, silent)
    # in the silence both hands are back at the speaker's rest pose
    middle = int(6.8 * FPS)
    for k, side in enumerate(SIDES):
        assert np.linalg.norm(wrists[middle, k] - rest_position(style, side)) < 0.08


def test_louder_and_higher_words_get_larger_strokes_and_nods():
    from train.gesture import plan_apexes

    style = speaker_style(2)
    words, energy, pitch, onsets = _speech(20.0)
    stressed_starts = {w.start for w in words[::3]}
    for w in words[::3]:  # every third word louder and higher than the rest
        energy[int(w.start * FPS) : int(w.end * FPS)] = 1.0
        pitch[int(w.start * FPS) : int(w.end * FPS)] = 1.6
    apexes = plan_apexes(words, onsets, energy, pitch, style, np.random.default_rng(1))
    on_stress = [a for a in apexes if any(abs(a.t - s) < 0.05 for s in stressed_starts)]
    plain = [a for a in apexes if a not in on_stress]
    assert len(on_stress) >= 5 and len(plain) >= 5
    assert np.mean([a.size for a in on_stress]) > 1.3 * np.mean([a.size for a in plain])
    assert all(a.stressed for a in on_stress) and not any(a.stressed for a in plain)


def test_the_gesture_space_is_in_front_of_the_torso():
    words, energy, pitch, onsets = _speech(20.0)
    wrists = _wrists(gesture(words, energy, pitch, onsets, speaker_style(3), np.random.default_rng(2)))
    assert np.percentile(wrists[..., 2], 50) > 0.05  # forward of the pelvis
    assert np.percentile(wrists[..., 1], 90) < CHEST[1] + 0.3  # rarely above the shoulders


def _speech_in_phrases(seconds: float, pause: float = 0.45) -> tuple[list[Word], np.ndarray, np.ndarray, np.ndarray]:
    """Words in phrases of five with a `pause` s pause between them (phrase boundaries)."""
    words, t = [], 0.3
    while t < seconds:
        for _ in range(5):
            words.append(Word("word", t, t + 0.28))
            t += 0.36
        t += pause
    return _signals(words, seconds + 1.0)


def test_a_speaker_who_walks_travels_on_planted_feet():
    """With `walk`, the speaker walks a few steps to another place at phrase boundaries: the
    root travels (twice as fast as without, over 0.3 m away), the ankle that carries the weight stays put,
    the legs reach the feet (no straight leg short of its foot: the feet are where the plan puts
    them), and without it the speaker stays near one place."""
    from granumamba.motion import Motion
    from train.corpus_stats import root_speed

    style = speaker_style(2)
    words, energy, pitch, onsets = _speech_in_phrases(30.0)
    moved = {}
    for walk in (0.0, 1.0):
        parts = gesture(words, energy, pitch, onsets, style, np.random.default_rng(4), walk=walk)
        poses = _poses(parts)
        trans = parts["trans"]
        motion = Motion(poses.astype(np.float32), trans, np.zeros((len(poses), 100), np.float32), np.zeros(300, np.float32))
        moved[walk] = root_speed(motion), np.ptp(trans[:, [0, 2]], axis=0).max()
        positions = joint_positions(torch.as_tensor(poses, dtype=torch.float32), torch.as_tensor(trans, dtype=torch.float32)).numpy()
        ankles = positions[:, [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]]]
        lower = ankles[..., 1].argmin(1)
        carrying = ankles[np.arange(len(ankles)), lower]
        same = lower[1:] == lower[:-1]  # the weight on the same foot from one frame to the next
        slide = np.linalg.norm(np.diff(carrying[:, [0, 2]], axis=0), axis=-1)[same] * FPS
        assert np.percentile(slide, 99) < 0.02, (walk, np.percentile(slide, 99))
        height = carrying[:, 1]  # on the floor: a leg short of its foot (out of reach) would lift it
        assert np.ptp(height) < 0.006, (walk, np.ptp(height))
    assert moved[1.0][0] > 2 * moved[0.0][0], moved  # root speed
    assert moved[1.0][1] > 0.3 > moved[0.0][1], moved  # the farthest it gets from where it started, one way


def test_a_walker_travels_on_through_each_stride():
    """Over a walk the body carries on between steps, as a walker's centre of mass does, instead
    of stopping whenever both feet are down: from the middle of a walk's first step to the middle
    of its last, the root's horizontal speed rises and falls once, never dipping under half of
    the speeds on both sides of the dip (a walk: steps that follow each other within half a
    second)."""
    from scipy.ndimage import label

    words, energy, pitch, onsets = _speech_in_phrases(30.0)
    parts = gesture(words, energy, pitch, onsets, speaker_style(2), np.random.default_rng(4), walk=1.0)
    poses = torch.as_tensor(_poses(parts), dtype=torch.float32)
    positions = joint_positions(poses, torch.as_tensor(parts["trans"], dtype=torch.float32)).numpy()
    ankles = positions[:, [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]], 1]
    lifted = (ankles - ankles.min(0) > 0.01).any(1)
    steps, count = label(lifted)
    runs = [np.flatnonzero(steps == k) for k in range(1, count + 1)]
    walks, current = [], [runs[0]]
    for run in runs[1:]:
        if run[0] - current[-1][-1] < FPS // 2:
            current.append(run)
        else:
            walks.append(current)
            current = [run]
    walks = [(int(w[0].mean()), int(w[-1].mean())) for w in walks + [current] if len(w) > 1]
    assert len(walks) >= 3, walks
    speed = np.linalg.norm(np.diff(parts["trans"][:, [0, 2]], axis=0), axis=-1) * FPS
    for lo, hi in walks:
        walk = speed[lo:hi]
        before, after = np.maximum.accumulate(walk), np.maximum.accumulate(walk[::-1])[::-1]
        assert (walk >= 0.5 * np.minimum(before, after)).all(), (lo / FPS, walk.round(2))  # no valley


def test_speakers_who_use_both_hands_move_the_slower_hand_more_and_keep_the_rest_of_their_style():
    """`both_hands` (train.corpus.speaker_style): the speaker gestures with both hands in more of
    the units and the other hand beats along in asymmetric ones, so the hand that moves less
    moves more; every other trait of the speaker is as at 0, and 0 is the corpus's default."""
    from dataclasses import asdict

    words, energy, pitch, onsets = _speech_in_phrases(60.0, pause=1.2)  # a gesture unit a phrase
    slower = {}
    for both in (0.0, 1.0):
        speeds = []
        for speaker in (1, 2, 3, 4):
            style = speaker_style(speaker, both)
            if both:
                plain = speaker_style(speaker)
                assert style.two_handed >= 0.75 > plain.two_handed - 0.05 and style.other_beats == 1.0 > plain.other_beats
                assert {k: v for k, v in asdict(style).items() if k not in ("two_handed", "other_beats")} == {
                    k: v for k, v in asdict(plain).items() if k not in ("two_handed", "other_beats")
                }
            wrists = _wrists(gesture(words, energy, pitch, onsets, style, np.random.default_rng(speaker)))
            speeds.append(np.linalg.norm(np.diff(wrists, axis=0), axis=-1).min(-1).mean() * FPS)
        slower[both] = float(np.mean(speeds))
    assert slower[1.0] > 1.2 * slower[0.0], slower
