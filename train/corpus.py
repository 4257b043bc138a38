"""The synthetic corpus: espeak-ng speech with exact word timings and procedural gesture in
SMPL-X joint space, in BEAT2's layout, with three known granularity components.

- coarse: slow posture sway and weight shift, a new target per phrase (below 0.5 Hz);
- mid: beat strokes of arms, wrists and head on each word's stressed peak;
- fine: small finger and wrist motion, 3 to 8 Hz, loudest while speaking.
The jaw follows the speech energy; expressions follow energy and pitch. Each synthetic speaker
has its own style (amplitude, tempo, handedness, resting posture). poses = relaxed pose + coarse
+ mid + fine + jaw, exactly, and the components are saved beside each take.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.interpolate import PchipInterpolator
from scipy.signal import butter, sosfiltfilt

from granumamba import FPS, SAMPLE_RATE, frame_start_sample, num_frames
from granumamba.data.beat2 import save_motion, write_npz
from granumamba.motion.parts import NUM_EXPRESSIONS, Motion
from granumamba.motion.skeleton import JOINT_INDEX, NUM_JOINTS, RELAXED_POSE
from granumamba.text.textgrid import Word, write_words
from granumamba.text.tts import Voice, synthesize

from .metrics import audio_onsets

STANDING_HEIGHT = 1.295  # root translation height that puts the rest skeleton's feet on the floor

_WORDS = {
    "det": "the a this that every some my your our their".split(),
    "adj": (
        "quick bright quiet small large early simple careful strange happy heavy open "
        "gentle clever modern ancient local golden silent distant"
    ).split(),
    "noun": (
        "river city teacher window garden morning story engine market signal question "
        "picture forest letter journey mountain student kitchen message project"
    ).split(),
    "verb": ("finds builds carries opens moves follows changes explains watches remembers answers brings shows turns reaches").split(),
    "adv": "slowly often never really always quickly together again today perhaps".split(),
    "prep": "across behind under near through beside".split(),
}


def make_sentence(rng: np.random.Generator) -> str:
    """A random sentence from the project's own word list and a small grammar."""
    pick = lambda kind: _WORDS[kind][rng.integers(len(_WORDS[kind]))]  # noqa: E731
    words = [pick("det")] + ([pick("adj")] if rng.random() < 0.6 else []) + [pick("noun"), pick("verb"), pick("det")]
    words += [pick("adj")] if rng.random() < 0.4 else []
    words.append(pick("noun"))
    if rng.random() < 0.5:
        words += [pick("prep"), pick("det"), pick("noun")]
    if rng.random() < 0.4:
        words.append(pick("adv"))
    return " ".join(words) + (", " if rng.random() < 0.3 else ". ")


@dataclass(frozen=True)
class SpeakerStyle:
    """How a synthetic speaker gestures and sounds."""

    voice: Voice
    amplitude: float  # stroke size
    stroke_gap: float  # seconds, the shortest time between two beat apexes (the speaker's tempo)
    left: float  # stroke weight of each arm (handedness)
    right: float
    sway: float  # posture variation size
    fine: float  # finger motion size
    rest_shoulder: float  # resting arm elevation offset (rad)
    rest_elbow: float  # resting elbow bend offset (rad)


_VOICE_NAMES = ("en-us", "en-us+f3", "en-gb", "en-us+m3", "en-gb-x-rp+f2", "en-us+m7", "en-gb-scotland", "en-us+f4")


def speaker_style(speaker: int) -> SpeakerStyle:
    rng = np.random.default_rng(10_000 + speaker)
    hand = rng.integers(3)  # 0 right-handed, 1 left-handed, 2 both
    return SpeakerStyle(
        voice=Voice(_VOICE_NAMES[(speaker - 1) % len(_VOICE_NAMES)], int(rng.integers(140, 191)), int(rng.integers(30, 71))),
        amplitude=float(rng.uniform(0.6, 1.4)),
        stroke_gap=float(rng.uniform(0.35, 0.7)),
        left=(0.35, 1.0, 0.8)[hand],
        right=(1.0, 0.35, 0.8)[hand],
        sway=float(rng.uniform(0.6, 1.5)),
        fine=float(rng.uniform(0.6, 1.4)),
        rest_shoulder=float(rng.uniform(-0.15, 0.25)),
        rest_elbow=float(rng.uniform(0.0, 0.5)),
    )


def frame_energy(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) RMS of the audio in each motion frame's exact sample span, scaled to [0, 1]."""
    bounds = [frame_start_sample(i) for i in range(frames + 1)]
    rms = np.array([np.sqrt(np.mean(audio[a:b] ** 2)) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])])
    return rms / (rms.max() + 1e-9)


def _smooth(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    sos = butter(2, cutoff_hz, btype="low", fs=FPS, output="sos")
    return sosfiltfilt(sos, x, axis=0) if x.shape[0] > 15 else x


def _joint(name: str) -> int:
    return JOINT_INDEX[name]


def gesture(
    words: list[Word], energy: np.ndarray, onsets: np.ndarray, style: SpeakerStyle, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Procedural motion for one take. Returns (T, 55, 3) axis-angle components coarse, mid,
    fine, jaw, the base pose, and trans (T, 3) and expressions (T, 100)."""
    frames = energy.shape[0]
    t = np.arange(frames) / FPS
    base = RELAXED_POSE.reshape(NUM_JOINTS, 3).copy()
    base[_joint("left_shoulder"), 2] -= style.rest_shoulder
    base[_joint("right_shoulder"), 2] += style.rest_shoulder
    base[_joint("left_elbow"), 1] -= style.rest_elbow
    base[_joint("right_elbow"), 1] += style.rest_elbow

    # Coarse: a posture target per phrase (words separated by a pause over 0.2 s), eased.
    coarse = np.zeros((frames, NUM_JOINTS, 3))
    shift = np.zeros(frames)
    phrase_starts = [0.0] + [b.start for a, b in zip(words[:-1], words[1:]) if b.start - a.end > 0.2]
    knots = np.zeros((len(phrase_starts), 8))
    for k in range(len(phrase_starts)):
        knots[k] = rng.normal(0.0, 1.0, 8) * style.sway
    idx = np.clip(np.searchsorted(phrase_starts, t, side="right") - 1, 0, len(phrase_starts) - 1)
    targets = _smooth(knots[idx], 0.4)
    coarse[:, _joint("spine1")] = targets[:, 0:3] * (0.04, 0.05, 0.03)
    coarse[:, _joint("spine2")] = targets[:, 0:3] * (0.03, 0.04, 0.02)
    coarse[:, _joint("spine3")] = targets[:, 0:3] * (0.02, 0.03, 0.02)
    coarse[:, _joint("pelvis"), 1] = targets[:, 3] * 0.05
    coarse[:, _joint("neck")] = targets[:, 4:7] * (0.04, 0.06, 0.03)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        coarse[:, _joint(f"{side}_shoulder"), 2] = sign * targets[:, 7] * 0.08
        coarse[:, _joint(f"{side}_elbow"), 1] = sign * np.abs(targets[:, 7]) * 0.12
    shift = targets[:, 3] * 0.025  # weight shift: the hips move sideways, the legs lean with them
    for side in ("left", "right"):
        coarse[:, _joint(f"{side}_hip"), 2] = -shift * 1.2
        coarse[:, _joint(f"{side}_ankle"), 2] = shift * 1.2

    # Mid: beat strokes whose apex (the hand's turning point, where its speed is lowest) falls on
    # the first acoustic onset of a word, at most one per `stroke_gap` (the speaker's tempo). The
    # arms alternate between a raised and a lower extreme (both above rest), one per apex, with a
    # monotone (PCHIP) path between them, so that the only pauses of the stroke motion are the apexes.
    apexes, sizes = [], []
    for word in words:
        inside = onsets[(onsets >= word.start - 0.02) & (onsets < word.end)]
        if inside.size and (not apexes or inside[0] - apexes[-1] >= style.stroke_gap) and inside[0] * FPS < frames - 1:
            a, b = int(word.start * FPS), max(int(word.end * FPS), int(word.start * FPS) + 1)
            apexes.append(float(inside[0]))
            sizes.append(style.amplitude * (0.5 + energy[a:b].mean()) * rng.uniform(0.6, 1.2))
    stroke = np.zeros(frames)
    if apexes:
        knots_t = np.array([0.0, *apexes, (frames - 1) / FPS])
        raised = np.array(sizes)
        lowered = 0.25 * np.minimum(np.append(np.inf, raised[:-1]), np.append(raised[1:], np.inf))  # below both neighbours
        heights = np.where(np.arange(len(apexes)) % 2 == 0, raised, lowered)
        knots_v = np.array([0.0, *heights, 0.0])
        keep = np.concatenate([[True], np.diff(knots_t) > 1e-6])
        stroke = PchipInterpolator(knots_t[keep], knots_v[keep])(t)
    mid = np.zeros((frames, NUM_JOINTS, 3))
    pulse = 1.6 * stroke[:, None]  # forearms up to about a radian at the largest strokes
    for side, sign, weight in (("left", -1.0, style.left), ("right", 1.0, style.right)):
        mid[:, _joint(f"{side}_collar")] += pulse * np.array([0.0, 0.0, sign * 0.08]) * weight
        mid[:, _joint(f"{side}_shoulder")] += pulse * np.array([-0.12, sign * 0.15, sign * 0.25]) * weight
        mid[:, _joint(f"{side}_elbow"), 1:2] += pulse * sign * 0.45 * weight
        mid[:, _joint(f"{side}_wrist"), 2:3] += pulse * sign * 0.2 * weight
    mid[:, _joint("head"), 0:1] += pulse * 0.08
    mid[:, _joint("neck"), 0:1] += pulse * 0.04

    # Fine: band-passed noise on fingers and wrists, loudest while speaking.
    sos = butter(2, (3.0, 8.0), btype="band", fs=FPS, output="sos")
    hands = [_joint(n) for n in ("left_wrist", "right_wrist")] + list(range(25, 55))
    fine = np.zeros((frames, NUM_JOINTS, 3))
    noise = rng.normal(0.0, 1.0, (frames, len(hands), 3))
    envelope = (0.3 + _smooth(energy, 1.0).clip(0, None))[:, None, None]
    if frames > 15:
        noise = sosfiltfilt(sos, noise, axis=0)
    fine[:, hands] = noise * envelope * 0.12 * style.fine
    fine[:, hands[:2]] *= 0.5

    # Jaw opens with the energy; expressions follow energy and pitch-like variation.
    jaw = np.zeros((frames, NUM_JOINTS, 3))
    jaw[:, _joint("jaw"), 0] = 0.35 * _smooth(energy, 6.0).clip(0, None)
    expressions = np.zeros((frames, NUM_EXPRESSIONS))
    expressions[:, 0] = 1.5 * _smooth(energy, 4.0)
    expressions[:, 1] = _smooth(rng.normal(0, 1, frames), 0.5) * 2.0 * energy
    expressions[:, 2:10] = _smooth(rng.normal(0, 0.3, (frames, 8)), 0.3)

    trans = np.zeros((frames, 3))
    trans[:, 0] = shift * 1.6
    trans[:, 1] = STANDING_HEIGHT - np.abs(shift) * 0.05
    return {"base": base, "coarse": coarse, "mid": mid, "fine": fine, "jaw": jaw, "trans": trans, "expressions": expressions}


def make_take(out: Path, name: str, speaker: int, seconds: float, rng: np.random.Generator) -> float:
    """Speak, gesture and write one take in BEAT2's layout; returns its duration in seconds."""
    style = speaker_style(speaker)
    text = ""
    while len(text.split()) < seconds * style.voice.rate / 60 * 0.8:
        text += make_sentence(rng)
    audio, words = synthesize(text, style.voice)
    frames = num_frames(audio.shape[0])
    parts = gesture(words, frame_energy(audio, frames), audio_onsets(audio), style, rng)
    poses = parts["base"][None] + parts["coarse"] + parts["mid"] + parts["fine"] + parts["jaw"]
    motion = Motion(poses.reshape(frames, -1).astype(np.float32), parts["trans"], parts["expressions"], np.zeros(300, np.float32))
    soundfile.write(out / "wave16k" / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    save_motion(out / "smplxflame_30" / f"{name}.npz", motion)
    write_words(out / "textgrid" / f"{name}.TextGrid", words, audio.shape[0] / SAMPLE_RATE)
    write_npz(
        out / "components" / f"{name}.npz",
        {k: parts[k].reshape(frames, -1).astype(np.float32) for k in ("coarse", "mid", "fine", "jaw")}
        | {"base": parts["base"].reshape(-1).astype(np.float32)},
    )
    return audio.shape[0] / SAMPLE_RATE
