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
from .model.sampler import SampledCodes, decode, sample_codes
from .motion.parts import PART_NAMES, Motion, merge_parts, split_parts
from .text.textgrid import Word

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "granumamba-demo"
DEFAULT_MODEL_ID = "granumamba/granumamba-demo"
# The Live tab's default: a causal model, sampled 4 frames at a time as their speech comes in.
BUNDLED_LIVE_MODEL = BUNDLED_MODEL.parent / "granumamba-live"
DEFAULT_LIVE_MODEL_ID = "granumamba/granumamba-live"
BUNDLED = {
    DEFAULT_MODEL_ID: (BUNDLED_MODEL, "bundled demo checkpoint"),
    DEFAULT_LIVE_MODEL_ID: (BUNDLED_LIVE_MODEL, "bundled live checkpoint"),
}
GAIN_RANGE = (0.0, 2.0)
MERGE_FRAMES = 1800  # frames decoded and converted to axis-angle at a time


@dataclass
class GenerationResult:
    motion: Motion
    audio: np.ndarray  # 16 kHz mono float32, the speech the motion goes with
    words: list[Word] | None
    settings: dict = field(default_factory=dict)
    codes: SampledCodes | None = None  # what was sampled: `GranuMambaPipeline.with_gains` decodes it anew
    start_xz: tuple[float, float] = (0.0, 0.0)

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


@dataclass
class LoadedModel:
    model: GranuMamba
    source: str  # what was loaded: a repo id, a folder
    fallback_reason: str | None = None  # why the bundled model is used instead of the one asked for


HUB_CHECK_SECONDS = 1.5  # how long the availability check waits for the Hub before the bundled model is used
_hub_checks: dict[str, tuple[float, bool]] = {}  # endpoint -> (when, reachable): one check a minute at most


def hub_reachable(timeout: float = HUB_CHECK_SECONDS) -> bool:
    """Whether a TCP connection to the Hub opens within `timeout` seconds (name lookup included).
    False at once under HF_HUB_OFFLINE. One connection, no retries: huggingface_hub's own retries
    with back-off take about 23 s to give up on a machine with no network."""
    import socket
    import threading
    import time
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(constants.ENDPOINT)
    now = time.monotonic()
    cached = _hub_checks.get(constants.ENDPOINT)
    if cached and now - cached[0] < 60:
        return cached[1]
    result = [False]

    def connect() -> None:  # in a thread: a name lookup has no timeout of its own
        try:
            with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    _hub_checks[constants.ENDPOINT] = (now, result[0])
    return result[0]


def display_name(source: str) -> str:
    """What visitors are shown of the weights in use: a repo id, a folder's name, never a server path."""
    path = Path(source)
    for folder, label in BUNDLED.values():
        if path.resolve() == folder:
            return label
    return path.name if os.path.isabs(source) or source.startswith((".", "~")) else source


def load_model(name: str | os.PathLike | None = None, allow_fallback: bool = True) -> LoadedModel:
    """Load `name` (Hub repo id or folder; default GRANUMAMBA_MODEL or the default repo id).

    A folder that does not load is an error. When the Hub cannot be reached (checked in at most
    HUB_CHECK_SECONDS), a repo in the local Hub cache loads from there; otherwise a default repo
    (the demo's, the live model's) falls back to its bundled checkpoint (when `allow_fallback`)
    and says why, and any other repo id is an error that names it, as is a repo id that the
    reachable Hub does not have: a misspelled name never quietly gives the demo model.
    """
    name = str(name or os.environ.get("GRANUMAMBA_MODEL") or DEFAULT_MODEL_ID)
    if os.path.isdir(name) or name.startswith((".", "/", "~")) or os.path.exists(name):
        return LoadedModel(GranuMamba.from_pretrained(os.path.expanduser(name)), name)
    online = hub_reachable()
    try:
        return LoadedModel(GranuMamba.from_pretrained(name, local_files_only=not online), name)
    except ModelLoadError as err:
        if not allow_fallback or name not in BUNDLED:
            if not online:
                raise ModelLoadError(
                    f"{name}: the Hub cannot be reached and this model is not in the local Hub cache. "
                    "Connect to the network, give a model folder, or leave the model out to use the bundled demo checkpoint."
                ) from None
            raise
        folder, label = BUNDLED[name]
        if not (folder / "model.safetensors").is_file():
            raise ModelLoadError(f"{err} The {label} is missing too ({folder}).") from None
        reason = str(err) if online else f"{name}: the Hub cannot be reached and the model is not in the local cache"
        log.warning("using the %s: %s", label, reason)
        return LoadedModel(GranuMamba.from_pretrained(folder), str(folder), reason)


def live_model_name(named: str | os.PathLike | None = None) -> str | None:
    """The Live tab's model: `named`, else GRANUMAMBA_LIVE_MODEL, else the default live repo
    (falling back to the bundled live checkpoint) where that checkpoint is here; None: the app's own."""
    named = named or os.environ.get("GRANUMAMBA_LIVE_MODEL")
    if named:
        return str(named)
    return DEFAULT_LIVE_MODEL_ID if (BUNDLED_LIVE_MODEL / "model.safetensors").is_file() else None


def decode_motion(
    model: GranuMamba, codes: SampledCodes, gains: tuple[float, float, float], frames: tuple[int, int], start_xz: tuple[float, float]
) -> Motion:
    """Frames (start, stop) of the codes' motion, decoded with `gains`, denormalised and merged,
    the root's horizontal path continuing from `start_xz` (the frame before's x and z)."""
    parts = decode(model, codes, gains, frames=frames)
    return merge_parts({p: model.normalizer.denormalize(p, parts[p]) for p in PART_NAMES}, start_xz)


def check_gains(gains) -> tuple[float, float, float]:
    gains = tuple(float(g) for g in gains)
    if len(gains) != 3 or not all(GAIN_RANGE[0] <= g <= GAIN_RANGE[1] for g in gains):
        raise ValueError(f"gains are three numbers (coarse, mid, fine) from {GAIN_RANGE[0]} to {GAIN_RANGE[1]}, got {gains}")
    return gains


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
        temperature: float | None = None,
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
        gains = check_gains(gains)
        temperature = self.model.config.temperature if temperature is None else temperature  # the checkpoint's own
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
        codes = sample_codes(self.model, features, word_ids, speaker, seed_parts, temperature, seed, chunk_frames)
        settings = {
            "model": display_name(self.source),
            "speaker": self.model.config.default_speaker if speaker is None else int(speaker),
            "gains": {"coarse": gains[0], "mid": gains[1], "fine": gains[2]},
            "temperature": temperature,
            "seed": int(seed),
            "words": len(words) if words else 0,
            "frames": frames,
        }
        return GenerationResult(self._motion(codes, gains, start_xz), samples, words, settings, codes, start_xz)

    def _motion(self, codes: SampledCodes, gains: tuple[float, float, float], start_xz: tuple[float, float]) -> Motion:
        """Decoded and merged a minute at a time into preallocated arrays, so that the rotation
        conversions' temporaries do not grow with the length of the speech."""
        frames = codes.frames
        motion = Motion(np.zeros((frames, 165), np.float32), np.zeros((frames, 3)), np.zeros((frames, 100)), np.zeros(300, np.float32))
        step = MERGE_FRAMES // self.model.frame_multiple * self.model.frame_multiple
        for start in range(0, frames, step):
            piece = decode_motion(self.model, codes, gains, (start, start + step), start_xz)
            stop = start + piece.num_frames
            motion.poses[start:stop], motion.trans[start:stop], motion.expressions[start:stop] = piece.poses, piece.trans, piece.expressions
            start_xz = (float(piece.trans[-1, 0]), float(piece.trans[-1, 2]))
        if not (np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all() and np.isfinite(motion.expressions).all()):
            name = display_name(self.source)
            raise ModelLoadError(f"{name}: the model gave non-finite motion; its weights are damaged. Nothing was written.")
        return motion

    def with_gains(self, result: GenerationResult, gains: tuple[float, float, float]) -> GenerationResult:
        """The same generation with other granularity gains: its sampled codes decoded anew, no
        sampling (what a slider change needs). Equal to generating again with these gains."""
        if result.codes is None:
            raise ValueError("this result keeps no sampled codes; generate it with this pipeline")
        gains = check_gains(gains)
        settings = {**result.settings, "gains": {"coarse": gains[0], "mid": gains[1], "fine": gains[2]}}
        motion = self._motion(result.codes, gains, result.start_xz)
        return GenerationResult(motion, result.audio, result.words, settings, result.codes, result.start_xz)
