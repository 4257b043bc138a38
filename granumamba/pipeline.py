"""The generation pipeline: speech (a file or samples, + optional words, speaker, seed motion)
in, BEAT2 motion out. One object, used the same way by the app, the CLI and the study tool.

    pipe = GranuMambaPipeline.from_pretrained("granumamba/granumamba-beat2")   # or a folder
    result = pipe("speech.wav", gains=(1, 1, 1.5), seed=0)
    result.motion.poses  # (T, 165)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import SAMPLE_RATE
from .audio.features import is_silent, speech_features
from .audio.io import AudioError, check_audio, load_audio
from .model.granumamba import GranuMamba, ModelLoadError
from .motion.parts import PART_NAMES, Motion, merge_parts, split_parts
from .text.textgrid import Word

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "granumamba-demo"
DEFAULT_MODEL_ID = "granumamba/granumamba-demo"
GAIN_RANGE = (0.0, 2.0)


@dataclass
class GenerationResult:
    motion: Motion
    audio: np.ndarray  # 16 kHz mono float32, the speech the motion goes with
    words: list[Word] | None
    settings: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


@dataclass
class LoadedModel:
    model: GranuMamba
    source: str  # what was loaded: a repo id, a folder
    fallback_reason: str | None = None  # why the bundled model is used instead of the one asked for


def load_model(name: str | os.PathLike | None = None, allow_fallback: bool = True) -> LoadedModel:
    """Load `name` (Hub repo id or folder; default GRANUMAMBA_MODEL or the default repo id).

    A folder that does not load is an error. A Hub repo that cannot be reached or does not exist
    falls back to the bundled demo checkpoint (when `allow_fallback`), and says why.
    """
    name = str(name or os.environ.get("GRANUMAMBA_MODEL") or DEFAULT_MODEL_ID)
    if os.path.isdir(name) or name.startswith((".", "/", "~")) or os.path.exists(name):
        return LoadedModel(GranuMamba.from_pretrained(os.path.expanduser(name)), name)
    try:
        return LoadedModel(GranuMamba.from_pretrained(name), name)
    except ModelLoadError as err:
        if not allow_fallback:
            raise
        if not (BUNDLED_MODEL / "model.safetensors").is_file():
            raise ModelLoadError(f"{err} The bundled demo checkpoint is missing too ({BUNDLED_MODEL}).") from None
        log.warning("using the bundled demo checkpoint: %s", err)
        return LoadedModel(GranuMamba.from_pretrained(BUNDLED_MODEL), str(BUNDLED_MODEL), str(err))


class GranuMambaPipeline:
    def __init__(self, model: GranuMamba, source: str = "", fallback_reason: str | None = None):
        self.model = model.eval()
        self.source = source
        self.fallback_reason = fallback_reason

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike | None = None, allow_fallback: bool = True) -> GranuMambaPipeline:
        loaded = load_model(name, allow_fallback)
        return cls(loaded.model, loaded.source, loaded.fallback_reason)

    @property
    def speakers(self) -> dict[int, str]:
        """Speaker ids the model was trained on, with display names."""
        names = self.model.config.speaker_names
        return {int(k): v for k, v in names.items()} or {self.model.config.default_speaker: "default"}

    def __call__(
        self,
        audio: str | os.PathLike | np.ndarray,
        words: list[Word] | None = None,
        speaker: int | None = None,
        seed_motion: Motion | None = None,
        gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
        temperature: float = 0.8,
        seed: int = 0,
        max_seconds: float | None = None,
        chunk_frames: int | None = 480,
    ) -> GenerationResult:
        if isinstance(audio, (str, os.PathLike)):
            samples = load_audio(audio, max_seconds=max_seconds)
        else:
            samples = check_audio(audio, "audio", max_seconds)
        if is_silent(samples):
            raise AudioError("the audio is silent: there is no speech to gesture to. Check the recording's level or input.")
        gains = tuple(float(g) for g in gains)
        if len(gains) != 3 or not all(GAIN_RANGE[0] <= g <= GAIN_RANGE[1] for g in gains):
            raise ValueError(f"gains are three numbers (coarse, mid, fine) from {GAIN_RANGE[0]} to {GAIN_RANGE[1]}, got {gains}")
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"temperature goes from 0 to 2, got {temperature}")
        features = torch.from_numpy(speech_features(samples))
        frames = features.shape[0]
        word_ids = torch.from_numpy(self.model.vocab.frame_ids(words, frames)) if words else None
        seed_parts = None
        start_xz = (0.0, 0.0)
        if seed_motion is not None:
            normalizer = self.model.normalizer
            seed_parts = {p: normalizer.normalize(p, x) for p, x in split_parts(seed_motion).items()}
            start_xz = (float(seed_motion.trans[0, 0]), float(seed_motion.trans[0, 2]))
        parts = self.model.generate(features, word_ids, speaker, seed_parts, gains, temperature, seed, chunk_frames)
        normalizer = self.model.normalizer
        motion = merge_parts({p: normalizer.denormalize(p, parts[p]) for p in PART_NAMES}, start_xz)
        motion.betas = np.zeros(300, dtype=np.float32)
        settings = {
            "model": self.source,
            "speaker": self.model.config.default_speaker if speaker is None else int(speaker),
            "gains": {"coarse": gains[0], "mid": gains[1], "fine": gains[2]},
            "temperature": temperature,
            "seed": int(seed),
            "words": len(words) if words else 0,
            "frames": frames,
        }
        return GenerationResult(motion, samples, words, settings)
