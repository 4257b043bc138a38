"""The synthetic corpus: speech (espeak-ng and piper voices, augmented like users' recordings)
with exact word timings, and procedural gesture (train.gesture) in SMPL-X joint space, in
BEAT2's layout, with the three granularity components of each take saved beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from granumamba import SAMPLE_RATE, frame_start_sample, num_frames
from granumamba.audio.features import speech_features
from granumamba.data.beat2 import save_motion, write_npz
from granumamba.motion.parts import Motion
from granumamba.text.textgrid import Word, write_words
from granumamba.text.tts import Voice, piper_available, synthesize

from .augment import augment
from .gesture import GestureStyle, gesture
from .metrics import audio_onsets

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
class SpeakerStyle(GestureStyle):
    """How a synthetic speaker gestures (GestureStyle) and sounds."""

    voice: Voice


_VOICE_NAMES = ("en-us", "en-us+f3", "en-gb", "en-us+m3", "en-gb-x-rp+f2", "en-us+m7", "en-gb-scotland", "en-us+f4")
PIPER_SHARE = 0.4  # of the takes spoken by piper, where it is installed (the rest by the speaker's espeak-ng voice)
# Takes with one or two long silences (1.5 to 5 s), in which the body goes to rest. Off by default:
# a demo trained with 0.4 rested in silence but moved at 0.57 x real capture's wrist speed on real
# speech, against 0.74 x without (measured; see the README), and on real speech life comes first.
PAUSED_SHARE = 0.0
# Most seconds added to the voices' pause between phrases (`--phrase-pause`). Off by default: a
# demo trained with 0.6 (real speech's features sat nearer the corpus's, the largest |z| 1.33
# against 1.73) moved at 0.63 x real capture's wrist speed on real speech, against 0.71 x
# without, and its beats were hardly nearer the onsets (BC 0.948 against 0.947; docs/experiments.md).
PHRASE_PAUSE = 0.0
# How far the speakers use both hands (`--both-hands`, 0 to 1): at 1 they gesture with both in 75
# to 95 % of their units (at 0, 40 to 80 %) and, in an asymmetric unit, the other hand beats small on
# every stroke of the leading one (at 0, on 60 % of them). A corpus made as the demo's has its slower
# hand moving at 0.50 x real capture's slower hand at 0, 0.85 x at 1 (train.corpus_stats; docs/experiments.md).
BOTH_HANDS = 0.0
# Share of phrase boundaries (scaled by each speaker's habit of stepping) at which the speaker
# walks a few steps to another place (`--walk`, train.gesture._walk). Off by default: see
# docs/experiments.md for the demo trained with it.
WALK = 0.0
# Share of each arm's swing the shoulder girdle (the collar joint) takes, the elbow then hanging as
# near its ready posture as the wrist allows (`--girdle`, train.gesture.girdle_turn and arm_ik; 0.33
# is the scapulohumeral rhythm's third). Off by default, as in corpora made before it; the demo's
# corpus takes a third (train/configs/demo.yaml), with which its shoulders turn through 1.3 times
# real capture's range instead of 1.7 and its collars through 0.8 times instead of nearly none.
GIRDLE = 0.0


def speaker_style(speaker: int, both_hands: float = BOTH_HANDS) -> SpeakerStyle:
    """Speaker `speaker`'s style, the same for every take and corpus (`both_hands`: BOTH_HANDS)."""
    rng = np.random.default_rng(10_000 + speaker)
    hand = rng.integers(3)  # 0 right-handed, 1 left-handed, 2 both
    return SpeakerStyle(
        voice=Voice(_VOICE_NAMES[(speaker - 1) % len(_VOICE_NAMES)], int(rng.integers(140, 191)), int(rng.integers(30, 71))),
        amplitude=float(rng.uniform(1.1, 1.6)),
        stroke_gap=float(rng.uniform(0.2, 0.36)),
        left=(0.5, 1.0, 0.9)[hand],
        right=(1.0, 0.5, 0.9)[hand],
        lateral=float(rng.uniform(0.85, 1.3)),
        height=float(rng.uniform(-0.04, 0.08)),
        two_handed=float(rng.uniform(0.4 + 0.35 * both_hands, 0.8 + 0.15 * both_hands)),
        hold=float(rng.uniform(0.15, 0.45)),
        rest=("sides", "clasped", "hip")[int(rng.integers(3))],
        sway=float(rng.uniform(0.6, 1.5)),
        fine=float(rng.uniform(0.6, 1.4)),
        step=float(rng.uniform(0.1, 0.35)),
        other_beats=0.6 + 0.4 * both_hands,
    )


def take_voice(style: SpeakerStyle, rng: np.random.Generator) -> Voice:
    """The speaker's voice with this take's tempo and pitch, or the piper voice for some takes."""
    rate = int(np.clip(style.voice.rate * rng.uniform(0.88, 1.12), 120, 210))
    word_gap = float(rng.uniform(0.0, 0.08))
    if piper_available() and rng.random() < PIPER_SHARE:
        return Voice("", (150, 165, 180)[int(rng.integers(3))], word_gap=word_gap, engine="piper")  # few rates: piper runs once per rate
    return Voice(style.voice.name, rate, int(np.clip(style.voice.pitch + rng.integers(-12, 13), 0, 99)), word_gap=word_gap)


def frame_energy(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) RMS of the audio in each motion frame's exact sample span, scaled to [0, 1]."""
    bounds = [frame_start_sample(i) for i in range(frames + 1)]
    rms = np.array([np.sqrt(np.mean(audio[a:b] ** 2)) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])])
    return rms / (rms.max() + 1e-9)


def frame_pitch(audio: np.ndarray) -> np.ndarray:
    """(frames,) pitch relative to 100 Hz per motion frame, 0 where unvoiced (the model's own pitch feature)."""
    features = speech_features(audio)
    return np.where(features[:, -1] > 0.5, 2.0 ** features[:, -2], 0.0)


def lengthen_phrase_pauses(
    audio: np.ndarray, words: list[Word], phrase_gap: float, rng: np.random.Generator, most: float
) -> tuple[np.ndarray, list[Word]]:
    """Each pause between phrases (a gap of `phrase_gap` s or more between words: the voice's pause
    at a comma or full stop) lengthened by 0 to `most` s of silence, so the takes pause as often and
    as long as people do (a quarter to a second and more between phrases) where a voice's own
    pause is always the same; the gesture holds or retracts in them (train.gesture)."""
    pieces, shifted, cut, offset = [], [], 0, 0.0
    for word, following in zip(words, [*words[1:], None]):
        shifted.append(Word(word.text, word.start + offset, word.end + offset))
        if following is None or following.start - word.end < phrase_gap - 1e-3:
            continue
        at = int(round((word.end + following.start) / 2 * SAMPLE_RATE))  # inside the voice's own silence
        extra = int(rng.uniform(0.0, most) * SAMPLE_RATE)
        pieces += [audio[cut:at], np.zeros(extra, np.float32)]
        cut, offset = at, offset + extra / SAMPLE_RATE
    return np.concatenate([*pieces, audio[cut:]]), shifted


def speak_with_pauses(
    sentences: list[str],
    voice: Voice,
    rng: np.random.Generator,
    paused_share: float = PAUSED_SHARE,
    phrase_pause: float = PHRASE_PAUSE,
) -> tuple[np.ndarray, list[Word]]:
    """The sentences spoken with pauses of people's lengths between phrases (lengthen_phrase_pauses)
    and, in `paused_share` of the takes, split by one or two long silences: people stop talking
    now and then, and the gesture then goes back to rest."""
    groups = [sentences]
    if paused_share > 0 and len(sentences) > 1 and rng.random() < paused_share:
        cuts = sorted(rng.choice(np.arange(1, len(sentences)), size=min(len(sentences) - 1, int(rng.integers(1, 3))), replace=False))
        groups = [sentences[a:b] for a, b in zip([0, *cuts], [*cuts, len(sentences)])]
    pieces, words, offset = [], [], 0.0
    for g, group in enumerate(groups):
        audio, spoken = synthesize("".join(group), voice)
        if phrase_pause > 0:
            audio, spoken = lengthen_phrase_pauses(audio, spoken, voice.phrase_gap, rng, phrase_pause)
        words += [Word(w.text, w.start + offset, w.end + offset) for w in spoken]
        pieces.append(audio)
        offset += audio.size / SAMPLE_RATE
        if g + 1 < len(groups):
            silence = np.zeros(int(rng.uniform(1.5, 5.0) * SAMPLE_RATE), np.float32)
            pieces.append(silence)
            offset += silence.size / SAMPLE_RATE
    return np.concatenate(pieces), words


def make_take(
    out: Path,
    name: str,
    speaker: int,
    seconds: float,
    rng: np.random.Generator,
    augmented: bool = False,
    paused_share: float = PAUSED_SHARE,
    phrase_pause: float = PHRASE_PAUSE,
    walk: float = WALK,
    both_hands: float = BOTH_HANDS,
    girdle: float = GIRDLE,
) -> float:
    """Speak, gesture and write one take in BEAT2's layout; returns its duration in seconds.
    `augmented` takes are saved as a user might have recorded them (train.augment); the
    gesture always follows the clean speech."""
    style = speaker_style(speaker, both_hands)
    voice = take_voice(style, rng)
    sentences: list[str] = []
    while len(" ".join(sentences).split()) < seconds * voice.rate / 60 * 0.8:
        sentences.append(make_sentence(rng))
    audio, words = speak_with_pauses(sentences, voice, rng, paused_share, phrase_pause)
    frames = num_frames(audio.shape[0])
    parts = gesture(words, frame_energy(audio, frames), frame_pitch(audio), audio_onsets(audio), style, rng, walk, girdle)
    poses = parts["base"][None] + parts["coarse"] + parts["mid"] + parts["fine"] + parts["jaw"]
    motion = Motion(poses.reshape(frames, -1).astype(np.float32), parts["trans"], parts["expressions"], np.zeros(300, np.float32))
    if augmented:
        audio = augment(audio, rng)
    soundfile.write(out / "wave16k" / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    save_motion(out / "smplxflame_30" / f"{name}.npz", motion)
    write_words(out / "textgrid" / f"{name}.TextGrid", words, audio.shape[0] / SAMPLE_RATE)
    write_npz(
        out / "components" / f"{name}.npz",
        {k: parts[k].reshape(frames, -1).astype(np.float32) for k in ("coarse", "mid", "fine", "jaw")}
        | {"base": parts["base"].reshape(-1).astype(np.float32)},
    )
    return audio.shape[0] / SAMPLE_RATE
