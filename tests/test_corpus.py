import hashlib

import numpy as np
import pytest

from granumamba import num_frames
from granumamba.audio import load_audio
from granumamba.data import index_beat2, load_motion
from granumamba.motion import JOINT_INDEX
from granumamba.text import read_words
from train.corpus import speaker_style
from train.make_corpus import make_corpus

from .conftest import demo_corpus_options, need_espeak


def test_corpus_is_in_beat2_layout_with_all_keys_and_aligned_files(synth_corpus):
    import soundfile

    index = index_beat2(synth_corpus)
    assert len(index.takes) >= 8 and not index.skipped
    assert {t.split for t in index.takes} >= {"train", "test"}
    for take in index.takes:
        with np.load(take.motion) as npz:
            assert set(npz.files) == {"poses", "trans", "expressions", "betas", "model", "gender", "mocap_frame_rate"}
            assert int(npz["mocap_frame_rate"]) == 30
        info = soundfile.info(take.audio)
        assert info.samplerate == 16000 and info.channels == 1
        motion = load_motion(take.motion)
        assert motion.num_frames == num_frames(info.frames)
        words = read_words(take.textgrid)
        assert words and words[-1].end <= info.frames / 16000


def test_poses_are_exactly_the_sum_of_the_saved_components(synth_corpus):
    take = index_beat2(synth_corpus).takes[0]
    motion = load_motion(take.motion)
    with np.load(synth_corpus / "components" / f"{take.name}.npz") as c:
        total = c["base"][None] + c["coarse"] + c["mid"] + c["fine"] + c["jaw"]
        assert np.allclose(total, motion.poses, atol=1e-5)

        # each component lives at its own time scale: fine is fast, coarse slow
        def high_freq_share(x):
            spectrum = np.abs(np.fft.rfft(x - x.mean(0), axis=0)) ** 2
            freqs = np.fft.rfftfreq(x.shape[0], 1 / 30)
            return spectrum[freqs > 2.5].sum() / (spectrum.sum() + 1e-12)

        assert high_freq_share(c["fine"]) > 0.8 > 0.2 > high_freq_share(c["coarse"])
        hands = c["fine"].reshape(-1, 55, 3)[:, 25:]
        assert np.abs(hands).mean() > 10 * np.abs(c["coarse"].reshape(-1, 55, 3)[:, 25:]).mean()
        elbows = c["mid"].reshape(-1, 55, 3)[:, [JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]]]
        assert np.abs(elbows).max() > 0.1


def test_beat_stroke_apexes_fall_on_the_speech_onsets(synth_corpus):
    """The strokes' apexes, the hand's turning points, are on acoustic onsets, so the corpus's BC measures timing:
    each take's motion against its own speech scores far above the same motion against
    another take's speech."""
    from train.metrics import audio_onsets, beat_consistency, motion_positions

    takes = index_beat2(synth_corpus).takes
    positions = [motion_positions(load_motion(t.motion)) for t in takes]
    onsets = [audio_onsets(load_audio(t.audio)) for t in takes]
    own = np.nanmean([beat_consistency(p, o, sigma=0.1) for p, o in zip(positions, onsets)])
    other = np.nanmean([beat_consistency(p, onsets[(i + 1) % len(takes)], sigma=0.1) for i, p in enumerate(positions)])
    assert len(takes) >= 4
    # Real capture scores about 0.75 here (the shared take): the corpus's timing is at least as tight.
    assert own > 0.8 and own - other > 0.1, (own, other)


def test_speakers_gesture_in_their_own_styles():
    styles = [speaker_style(s) for s in range(1, 5)]
    assert len({s.voice for s in styles}) == 4
    assert len({(s.left, s.right) for s in styles}) >= 2 or len({round(s.amplitude, 2) for s in styles}) == 4


def test_same_seed_gives_the_same_bytes(tmp_path):
    need_espeak()

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    make_corpus(tmp_path / "a", minutes=0.2, seed=7, speakers=1, take_seconds=6.0, progress=False)
    make_corpus(tmp_path / "b", minutes=0.2, seed=7, speakers=1, take_seconds=6.0, progress=False)
    make_corpus(tmp_path / "c", minutes=0.2, seed=8, speakers=1, take_seconds=6.0, progress=False)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and len(a) >= 5
    assert a != c


@pytest.mark.parametrize("settings", ["plain", "demo"])
def test_corpus_moves_like_real_capture(beat2_sample, tmp_path, settings):
    """Calibrated, not copied: the corpus's wrist speed and height spread, elbow flexion, hand
    distance, stroke rate and hold length lie within 0.7 to 1.5 times the real take's (a corpus
    of its own, four speakers and takes of the demo corpus's length: short takes are mostly
    unit boundaries), with the voices' own pauses and mostly one-handed units, and with the demo
    corpus's settings (train/configs/demo.yaml's corpus section), whose shoulder girdle turns
    with the arms (`girdle`, the scapulohumeral rhythm's third): then the collars', shoulders'
    and elbows' ranges of rotation do too."""
    from train.corpus_stats import mean_stats, reference_motions

    need_espeak()
    options = {}
    if settings == "demo":
        options = demo_corpus_options()
        assert options["girdle"] > 0
    make_corpus(tmp_path, minutes=5, seed=11, speakers=4, take_seconds=40, progress=False, **options)
    corpus = mean_stats([load_motion(t.motion) for t in index_beat2(tmp_path).takes])
    real = mean_stats(reference_motions(beat2_sample))
    keys = ["wrist_speed", "wrist_spread", "elbow_p50", "hand_distance_p50", "stroke_rate", "hold_seconds"]
    if settings == "demo":
        keys += [f"range_{side}_{joint}" for side in ("left", "right") for joint in ("collar", "shoulder", "elbow")]
    for key in keys:
        assert 0.7 <= corpus[key] / real[key] <= 1.5, (key, corpus[key], real[key])


def test_slower_wrist_speed_is_the_speed_of_the_hand_that_moves_less(synth_corpus):
    """`slower_wrist_speed` takes, frame by frame, the slower wrist: under the mean of both on a
    take where both hands move, and 0 for a body whose one arm alone moves."""
    import dataclasses

    from train.corpus_stats import motion_stats

    motion = load_motion(index_beat2(synth_corpus).takes[0].motion)
    stats = motion_stats(motion)
    assert 0 < stats["slower_wrist_speed"] < stats["wrist_speed"]
    poses = motion.poses.reshape(len(motion.poses), -1, 3).copy()
    moving = [JOINT_INDEX[f"right_{name}"] for name in ("collar", "shoulder", "elbow", "wrist")]
    still = [j for j in range(22) if j not in moving]
    poses[:, still] = poses[:1, still]
    one_arm = motion_stats(dataclasses.replace(motion, poses=poses.reshape(len(poses), -1)))
    assert one_arm["slower_wrist_speed"] < 1e-9
    assert one_arm["wrist_speed"] > 0.05


def test_a_foot_that_carries_the_weight_stays_planted(synth_corpus):
    from train.corpus_stats import planted_ankle_speed

    for take in index_beat2(synth_corpus).takes:
        speed = planted_ankle_speed(load_motion(take.motion))
        assert speed["planted_ankle_speed_p99"] < 0.02, (take.name, speed)


def test_real_speech_features_fall_inside_the_corpus_distribution(synth_corpus, beat2_sample):
    """The training speech (espeak-ng and piper, augmented) covers how the real recordings
    sound: every feature's mean over the real wavs is within 2 standard deviations of the corpus's."""
    from train.corpus_stats import feature_zscores

    train = [t.audio for t in index_beat2(synth_corpus, split="train").takes]
    z = feature_zscores(train, sorted((beat2_sample / "wave16k").glob("*.wav")))
    assert max(z.values()) < 2.0, z


def test_augmented_speech_keeps_length_and_timing_and_changes_the_sound():
    from train.augment import augment

    t = np.arange(32000) / 16000
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((500, 1000, 1500, 2000), start=1))  # inside every band limit
    clean = (0.2 * voice * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    outputs = [augment(clean, np.random.default_rng(seed)) for seed in range(12)]
    for out in outputs:
        assert out.shape == clean.shape and out.dtype == np.float32 and np.isfinite(out).all()
        assert np.abs(out).max() <= 1.0
        # the speech is still where it was: the loud half-seconds stay louder than the pauses
        on, off = (np.sin(2 * np.pi * 2 * t) > 0), (np.sin(2 * np.pi * 2 * t) < -0.3)
        assert np.sqrt(np.mean(out[on] ** 2)) > 2 * np.sqrt(np.mean(out[off] ** 2))
    peaks = [np.abs(o).max() for o in outputs]
    assert max(peaks) / min(peaks) > 3  # loudness varies from quiet to loud
    assert sum(np.sqrt(np.mean(o[~on] ** 2)) > 1e-4 for o in outputs) >= 6  # most carry background noise
    assert np.array_equal(augment(clean, np.random.default_rng(3)), outputs[3])


def test_pauses_between_phrases_have_people_s_lengths_and_the_words_keep_their_sounds():
    """The voice's fixed pause at each comma and full stop is lengthened by 0 to `phrase_pause`
    seconds of silence; the gaps between words inside a phrase and every word's sound stay."""
    need_espeak()
    from granumamba.text.tts import Voice
    from train.corpus import make_sentence, speak_with_pauses

    rng = np.random.default_rng(5)
    sentences = [make_sentence(rng) for _ in range(8)]
    voice = Voice()
    fixed, fixed_words = speak_with_pauses(sentences, voice, np.random.default_rng(1), paused_share=0.0, phrase_pause=0.0)
    varied, words = speak_with_pauses(sentences, voice, np.random.default_rng(1), paused_share=0.0, phrase_pause=0.9)
    assert [w.text for w in words] == [w.text for w in fixed_words]
    before = np.array([b.start - a.end for a, b in zip(fixed_words, fixed_words[1:])])
    after = np.array([b.start - a.end for a, b in zip(words, words[1:])])
    phrase = before >= voice.phrase_gap - 1e-3
    assert phrase.sum() >= 7 and np.allclose(after[~phrase], before[~phrase], atol=1e-3)  # inside phrases: as spoken
    added = after[phrase] - before[phrase]
    assert added.min() >= 0 and added.max() <= 0.9 + 1e-3 and added.std() > 0.1  # of varied lengths
    assert np.isclose(varied.size - fixed.size, added.sum() * 16000, atol=len(added) + 1)
    for a, b in zip(fixed_words, words):  # every word's sound moved with it, unchanged
        x, y = int(round(a.start * 16000)), int(round(b.start * 16000))
        n = int((a.end - a.start) * 16000) - 2
        np.testing.assert_allclose(varied[y : y + n], fixed[x : x + n], atol=1e-6)
    for w, following in zip(words, words[1:]):  # and the pauses are silence
        if following.start - w.end > 0.4:
            assert np.abs(varied[int(w.end * 16000) + 2 : int(following.start * 16000) - 2]).max() == 0.0


def test_takes_with_long_silences_have_silent_gaps_and_the_body_rests_in_them(tmp_path):
    """--paused-share: the speech stops for 1.5 to 5 s between sentences, the words keep their
    times, and the arms come to rest in the silence; with the default of 0 nothing changes."""
    need_espeak()
    from granumamba.text.tts import Voice
    from train.corpus import make_sentence, speak_with_pauses

    rng = np.random.default_rng(3)
    sentences = [make_sentence(rng) for _ in range(4)]
    plain, plain_words = speak_with_pauses(sentences, Voice(), np.random.default_rng(0), paused_share=0.0)
    paused, words = speak_with_pauses(sentences, Voice(), np.random.default_rng(0), paused_share=1.0)
    gaps = [b.start - a.end for a, b in zip(words, words[1:])]
    # 1.5 to 5 s of silence, with the voice's lead-in and lead-out (0.3 s each) and last phrase gap around it
    assert 1.5 <= max(gaps) <= 5.0 + 0.6 + 0.33 and max(b.start - a.end for a, b in zip(plain_words, plain_words[1:])) < 1.25
    assert len(words) == len(plain_words) and paused.size > plain.size + 1.4 * 16000
    start = int((words[int(np.argmax(gaps))].end + 0.1) * 16000)
    assert np.abs(paused[start : start + 16000]).max() == 0.0  # the silence is in the audio where the words say

    out = tmp_path / "paused"
    make_corpus(out, minutes=1.5, seed=2, speakers=1, take_seconds=30, progress=False, paused_share=1.0)
    rests, talks = [], []
    for take in index_beat2(out).takes:
        spoken = read_words(take.textgrid)
        poses = load_motion(take.motion).poses.reshape(-1, 55, 3)
        arms = np.abs(np.diff(poses[:, 16:22], axis=0)).sum((1, 2))
        for a, b in zip(spoken, spoken[1:]):
            if b.start - a.end > 3.2:  # settled: after the hold and the retraction, before the next preparation
                rests.append(arms[int((a.end + 2.3) * 30) : int((b.start - 0.8) * 30)].mean())
        talks.append(arms[int(spoken[0].start * 30) : int(spoken[-1].end * 30)].mean())
    assert rests and np.mean(rests) < 0.3 * np.mean(talks), (rests, talks)


@pytest.mark.parametrize(
    "setting",
    [{"walk": 1.5}, {"walk": -0.1}, {"phrase_pause": 2.0}, {"paused_share": 1.5}, {"both_hands": 1.5}, {"girdle": 0.6}, {"minutes": 0}],
)
def test_make_corpus_refuses_settings_out_of_range_before_writing_anything(tmp_path, setting):
    from train.make_corpus import main

    options = {"minutes": 0.2, "seed": 1, "speakers": 1} | setting
    with pytest.raises(ValueError, match=f"{next(iter(setting))} (must be )?(positive|from)"):
        make_corpus(tmp_path / "out", **options, progress=False)
    assert not (tmp_path / "out").exists()
    flag = "--" + next(iter(setting)).replace("_", "-")
    assert main(["--out", str(tmp_path / "cli"), flag, str(setting[next(iter(setting))])]) == 2
    assert not (tmp_path / "cli").exists()
