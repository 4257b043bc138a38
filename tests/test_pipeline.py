"""The trained demo checkpoint through the pipeline: granularity gains do what the sliders say,
each level carries its own component of the synthetic corpus, real speech works."""

import numpy as np
import pytest

from granumamba import SAMPLE_RATE
from granumamba.data import index_beat2, load_motion
from granumamba.motion import JOINT_INDEX
from granumamba.pipeline import BUNDLED_MODEL, GranuMambaPipeline
from train.evaluate import reconstruction
from train.metrics import HAND_JOINTS, POSTURE_JOINTS, band_energy

pytestmark = pytest.mark.skipif(not (BUNDLED_MODEL / "model.safetensors").is_file(), reason="the bundled demo checkpoint is not built")
GAINS = (0.0, 0.5, 1.0, 1.5, 2.0)


@pytest.fixture(scope="module")
def pipe():
    return GranuMambaPipeline.from_pretrained(BUNDLED_MODEL)


SEEDS = range(5)  # one short generation passes a slider's bar or not by chance unless the model makes it hold for all


@pytest.mark.parametrize("seed", SEEDS)
def test_fine_gain_raises_hand_high_frequency_energy_monotonically(pipe, speech_wav, seed):
    energy = [band_energy(pipe(speech_wav, gains=(1, 1, g), seed=seed).motion.poses, HAND_JOINTS, 3.0, 15.0) for g in GAINS]
    assert all(a < b for a, b in zip(energy, energy[1:])), energy
    assert energy[-1] > 2 * energy[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_coarse_gain_raises_slow_posture_variation_monotonically(pipe, speech_wav, seed):
    slow = [band_energy(pipe(speech_wav, gains=(g, 1, 1), seed=seed).motion.poses, POSTURE_JOINTS, 0.05, 1.0) for g in GAINS]
    assert all(a < b for a, b in zip(slow, slow[1:])), slow
    assert slow[-1] > 2 * slow[0]


def test_each_level_carries_its_own_component(pipe, synth_corpus):
    model = pipe.model
    take = index_beat2(synth_corpus, split="test").takes[0]
    motion = load_motion(take.motion)
    frames = motion.num_frames // model.frame_multiple * model.frame_multiple

    def decoded(gains):
        return reconstruction(model, motion, gains).poses

    full = decoded((1, 1, 1))
    fine_part = full - decoded((1, 1, 0))
    coarse_part = full - decoded((0, 1, 1))
    with np.load(synth_corpus / "components" / f"{take.name}.npz") as c:
        components = {k: c[k][:frames] for k in ("coarse", "mid", "fine")}

    def corr(a, b):
        return float(np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1])

    def share(x, low, high):  # of the motion's power, the slider measure's windowed periodogram
        return band_energy(x, range(55), low, high) / band_energy(x, range(55), 0.0, 15.1)

    # the coarse level carries the slow posture component, and none of the finger noise
    # (0.2: the coarse component now also holds the arms' slow path through the gesture space, which
    # stage 1 shares between its coarse and mid levels; it was 0.25 when it held posture sway alone)
    assert corr(coarse_part, components["coarse"]) > 0.2
    assert corr(coarse_part, components["coarse"]) > 5 * abs(corr(coarse_part, components["fine"]))
    # The fine level carries the fast finger and wrist motion as energy (below and in the gain test),
    # not this take's particular noise sample: on the gesture-unit corpus its correlation with the
    # sample is about 0 (it was clearly positive on the beat corpus), so it is no longer asserted.
    # and each level moves at its own time scale
    assert share(fine_part, 3.0, 15.0) > 4 * share(coarse_part, 3.0, 15.0)
    # The fine level's part also holds slow offsets (a handshape kept for a while): 0.36 to 0.55 of its
    # power lies below 1 Hz over this corpus's takes (bundled checkpoint), the coarse part's 0.92 to 0.99.
    assert share(coarse_part, 0.0, 1.0) > 1.5 * share(fine_part, 0.0, 1.0)


def test_motion_beats_follow_the_timing_of_its_own_speech(pipe, paused_corpus):
    """On synthetic speech with people's pauses (a corpus the checkpoint never saw), the generated
    motion's beats sit nearer its own speech's onsets than another take's: BC against its own
    speech, over its ten takes and five seeds, is above BC of the same motion against another
    take's speech."""
    from granumamba.audio import load_audio
    from train.metrics import audio_onsets, beat_consistency, motion_positions

    takes = index_beat2(paused_corpus).takes
    audios = [load_audio(t.audio) for t in takes]
    onsets = [audio_onsets(a) for a in audios]
    durations = [a.shape[0] / SAMPLE_RATE for a in audios]
    margins = []
    for seed in range(5):  # one seed of a few 9 s takes moves the margin by about 0.02 either way
        positions = [motion_positions(pipe(a, seed=seed).motion) for a in audios]
        own = np.mean([beat_consistency(x, onsets[i], sigma=0.1) for i, x in enumerate(positions)])
        # against another take's speech over the seconds both takes cover (`beat_distances`)
        other = np.mean(
            [
                beat_consistency(x, onsets[(i + 1) % len(takes)], sigma=0.1, until=durations[(i + 1) % len(takes)])
                for i, x in enumerate(positions)
            ]
        )
        margins.append(own - other)
    # The bundled checkpoint's mean margin here is 0.024 (every seed above 0), where the demo
    # checkpoint before the hold outcome, timed at chance (README, Metrics), gives 0.004; on these
    # takes without the added pauses both give under 0.02, within one seed's noise.
    assert np.mean(margins) > 0.012, margins


def test_real_speech_of_another_recording_gives_plausible_motion(pipe, beat2_sample):
    wav = beat2_sample / "wave16k" / "2_scott_0_2_2.wav"  # 16-bit PCM, no motion of its own
    result = pipe(wav, seed=0)
    motion = result.motion
    assert motion.num_frames == 62 * 30 and np.isfinite(motion.poses).all()
    from train.metrics import motion_positions

    joints = motion_positions(motion)
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(0)
    assert speed[[JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"]]].mean() > speed[0]  # hands move more than the hips
    assert 1.2 < joints[:, JOINT_INDEX["head"], 1].mean() < 1.9  # standing


def test_same_seed_same_motion_and_streaming_equals_one_pass(pipe, speech_wav):
    a = pipe(speech_wav, seed=4).motion
    b = pipe(speech_wav, seed=4, chunk_frames=None).motion
    c = pipe(speech_wav, seed=5).motion
    assert np.allclose(a.poses, b.poses, atol=1e-5) and not np.allclose(a.poses, c.poses)


def test_new_gains_decode_the_sampled_codes_again_and_equal_a_full_generation(pipe, speech_wav):
    first = pipe(speech_wav, seed=3)
    moved = pipe.with_gains(first, (0.5, 1.0, 2.0))
    again = pipe(speech_wav, seed=3, gains=(0.5, 1.0, 2.0))
    assert np.allclose(moved.motion.poses, again.motion.poses, atol=1e-6)
    assert not np.allclose(moved.motion.poses, first.motion.poses, atol=1e-3)
    assert moved.settings["gains"] == {"coarse": 0.5, "mid": 1.0, "fine": 2.0}


def test_replies_name_the_weights_without_a_server_path(pipe, speech_wav):
    assert pipe(speech_wav, seed=0).settings["model"] == "bundled demo checkpoint"


def test_on_real_speech_it_never_trained_on_the_body_moves_like_real_capture(pipe, beat2_sample):
    """The shared take's recordings (a real speaker, another microphone than the corpus's), at
    default settings: wrist speed and wrist-height spread within 0.7 to 1.6 times the real
    capture's, from the model alone (the pipeline's motion is the decoder's, checked below)."""
    from train.corpus_stats import motion_stats, reference_motions

    real = motion_stats(reference_motions(beat2_sample)[0])
    generated = [
        motion_stats(pipe(wav, seed=seed).motion) for wav in sorted((beat2_sample / "wave16k").glob("*.wav")) for seed in (0, 1, 2)
    ]
    for key in ("wrist_speed", "wrist_spread"):  # over the three recordings and three seeds: one sample is noisy
        ratio = np.mean([g[key] for g in generated]) / real[key]
        assert 0.7 <= ratio <= 1.6, (key, ratio)


def test_real_capture_times_its_beats_to_its_speech_beyond_chance(beat2_sample):
    """What BC at sigma 0.3 asks of the model, shown on the real capture: its beats sit nearer its
    own speech's onsets than beats at random times do on the same recording
    (`chance_distances`). BC is a weak test of timing on fluent speech: onsets fall every 0.2 s,
    so random beats score 0.94 and only the pauses tell. (Another recording is no such baseline:
    against the denser onsets of 2_scott_0_2_2 the capture scores 0.955, above its own 0.952.)"""
    from granumamba.audio import load_audio
    from train.metrics import (
        audio_onsets,
        bc_of_distances,
        beat_distances,
        chance_distances,
        far_share_of_distances,
        motion_positions,
    )

    captured = [w for w in sorted((beat2_sample / "wave16k").glob("*.wav")) if (beat2_sample / "smplxflame_30" / f"{w.stem}.npz").is_file()]
    assert captured
    for wav in captured:
        audio = load_audio(wav)
        onsets = audio_onsets(audio)
        positions = motion_positions(load_motion(beat2_sample / "smplxflame_30" / f"{wav.stem}.npz"))
        distances, chance = beat_distances(positions, onsets), chance_distances(onsets, audio.shape[0] / SAMPLE_RATE)
        assert bc_of_distances(distances) > bc_of_distances(chance) + 0.005
        # it keeps its beats out of the speech's pauses: under half the share that random times give
        assert far_share_of_distances(distances) < 0.5 * far_share_of_distances(chance)


def test_on_real_speech_its_arms_follow_the_loudness_and_its_feet_stay_put(beat2_sample):
    """The real-speech block of `train.evaluate` over the shared recordings, three seeds: the
    correlation of the speech's energy with the arms' speed clearly higher against its own
    recording than against another's; the feet that carry weight slide under 2 cm/s. (BC at
    sigma 0.3 is reported beside the real capture's and the chance level, not asserted: see the
    README's Metrics.)"""
    from train.evaluate import evaluate_real

    real = evaluate_real(BUNDLED_MODEL, beat2_sample, seeds=3)
    model, other = real["model on real speech"], real["model, against another recording's speech"]
    assert model["speech_motion_corr"] > other["speech_motion_corr"] + 0.05, (model["speech_motion_corr"], other["speech_motion_corr"])
    assert model["planted_foot"] < 2.0, model["planted_foot"]
    # the like-for-like row: the model on the one recording that has capture, under the same seeds
    same = real["model on the captured recordings' speech"]
    assert set(same) == {"wrist_speed", "wrist_spread", "bc", "bc_sigma0.1", "far_beats", "speech_motion_corr"}
    assert same["bc"] != model["bc"] and 0 < same["wrist_speed"] < 1
    # the chance level of BC beside them, on all the recordings and on the captured one alone
    chance, chance_captured = (
        real["beats at random times (chance), the same recordings"],
        real["beats at random times (chance), the captured recordings"],
    )
    assert set(chance) == set(chance_captured) == {"bc", "bc_sigma0.1", "far_beats"}
    assert 0.5 < chance["bc"] < 1 and 0 < chance["far_beats"] < 0.2 and chance_captured["bc"] != chance["bc"]
    # its beats follow the speech beyond chance: the recordings' 4-s spans drawn again never undo its lead
    lead = real["the model minus beats at random times, BC"]
    assert 0 < lead["bc_gap_low"] < lead["bc_gap"] < lead["bc_gap_high"], lead
    # the capture's lead over the model on that recording, with the interval its 4-s spans give
    gap = real["real capture minus the model, BC"]
    # (the gap pools the seeds' beats where the rows average the seeds' BCs: the same to within 0.001)
    assert gap["bc_gap"] == pytest.approx(real["real capture"]["bc"] - same["bc"], abs=1e-3)
    assert gap["bc_gap_low"] < gap["bc_gap"] < gap["bc_gap_high"] and gap["spans"] >= 14
