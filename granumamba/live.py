"""Live generation: speech in as it arrives, pose frames out as soon as the model can give them.

    session = LiveSession(model, sample_rate=48000)
    for piece in microphone:                 # any size, float32 mono at `sample_rate`
        for frames in session.push(piece):   # LiveFrames: the next frames of the motion
            show(frames.motion)
    for frames in session.finish():          # the end of the speech: the last frames
        show(frames.motion)

Every part of the model already runs chunk by chunk with the result of one pass: the speech
features (`StreamingFeatures`), the sampler (`CodeSampler`, its Mamba states carried), the part
decoders (windows with context). So a live session computes exactly what `generate` computes on
the same speech, except where a live path must differ:

- the loudness gain: a recording's gain comes from the whole of it; live speech has no end, so
  the gain is that of the speech heard so far (or one the caller gives: the streaming client
  sends the gain of its file, which makes its codes equal `generate`'s);
- the decoders, for a model that is not `causal`: a block's frames are decoded from the codes up
  to that block, since later codes are not sampled yet. They equal the offline decoding of the
  codes so far, and differ from the decoding of the whole generation in the last frames of each
  block (those decoders reach a few frames ahead), less so the longer the `delay`. A causal
  model's frames never depend on later codes, so its live frames are `generate`'s.

A frame is never changed once given out.

Latency: a causal model (`make_demo model.causal=true`) is sampled a fine step (4 frames,
0.13 s) at a time, as soon as the step's speech is in; any other model (the bundled one) a
coarse block (16 frames, 0.53 s) at a time; plus the look-ahead (frame t sees the speech of
frame t + lookahead: gestures lead speech) and the features' analysis margin (32 ms).
`lookahead` sets a shorter look-ahead than the model's; the model was trained with its own, so
a shorter one shifts the gesture later against the speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import SAMPLE_RATE
from .audio.features import FEATURE_DIM, StreamingFeatures, frames_covered
from .model.granumamba import GranuMamba
from .model.sampler import CodeSampler, SampledCodes
from .motion.parts import Motion
from .pipeline import check_gains, decode_motion

MIN_RATE, MAX_RATE = 8000, 192000
DEFAULT_DELAY = 8  # frames given out behind the sampled codes by a model whose decoders look ahead (see LiveSession)


def default_delay(model: GranuMamba) -> int:
    """Frames given out behind the newest sampled codes: none for a causal model, whose frames
    never depend on later codes; else `DEFAULT_DELAY`, which brings a frame close to what the
    later codes would make it."""
    return 0 if model.config.causal else DEFAULT_DELAY


@dataclass
class LiveFrames:
    """Consecutive frames of a live motion: `first` is the index of the first (frame i answers
    the speech at i / 30 s); `speech_received_s` how much speech the session had when it gave them."""

    first: int
    motion: Motion
    speech_received_s: float

    @property
    def count(self) -> int:
        return self.motion.num_frames


class LiveSession:
    """One live speaker: speech pushed in pieces, pose frames returned block by block."""

    def __init__(
        self,
        model: GranuMamba,
        sample_rate: int = SAMPLE_RATE,
        speaker: int | None = None,
        gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
        temperature: float | None = None,
        seed: int = 0,
        loudness_gain: float | None = None,
        lookahead: int | None = None,
        delay: int | None = None,
    ):
        if not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ValueError(f"sample rate {sample_rate} Hz: give one from {MIN_RATE} to {MAX_RATE} Hz")
        temperature = model.config.temperature if temperature is None else temperature
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"temperature goes from 0 to 2, got {temperature}")
        if loudness_gain is not None and not (np.isfinite(loudness_gain) and 0 < loudness_gain <= 1e4):
            raise ValueError(f"loudness gain {loudness_gain}: give a positive number up to 10000, or none")
        gen = model.generator
        self.lookahead = gen.lookahead if lookahead is None else int(lookahead)
        if not 0 <= self.lookahead <= gen.lookahead:
            raise ValueError(f"look-ahead {lookahead}: give 0 to {gen.lookahead} frames")
        delay = default_delay(model) if delay is None else delay
        if not 0 <= delay <= model.frame_multiple:
            raise ValueError(f"decoding delay {delay}: give 0 to {model.frame_multiple} frames")
        self.delay = int(delay)
        self.model = model.eval()
        self.sample_rate = int(sample_rate)
        self.gains = check_gains(gains)
        self.block = model.step_frames  # frames sampled at a time: a fine step (causal model) or a coarse block
        self.features = StreamingFeatures(loudness_gain)
        self.sampler = CodeSampler(model, speaker, temperature, seed)
        self._resampler = None
        if self.sample_rate != SAMPLE_RATE:
            import soxr  # librosa's own resampler, here in its streaming form

            self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._pending: list[np.ndarray] = []  # 16 kHz speech not yet analysed: it waits until it completes a block
        self._received = 0  # 16 kHz samples received, analysed or pending
        self._skip = self.lookahead  # feature frames still to drop: frame t sees the speech of frame t + lookahead
        self._inputs = np.zeros((0, FEATURE_DIM), np.float32)  # shifted features not yet sampled
        self._codes: list[torch.Tensor] | None = None  # the recent code indices, per level (1, parts, L)
        self._window = 0  # the fine step they start at, a whole coarse block
        self._sampled = 0  # frames whose codes are sampled
        self._start_xz = (0.0, 0.0)
        self.frames_given = 0
        self.finished = False

    @property
    def speech_received_s(self) -> float:
        return self._received / SAMPLE_RATE

    def set_gains(self, gains: tuple[float, float, float]) -> None:
        """New granularity gains, for every frame given from now on."""
        self.gains = check_gains(gains)

    def push(self, samples: np.ndarray) -> list[LiveFrames]:
        """Speech at the session's sample rate (float32 mono, any length) -> the frames it completes."""
        if self.finished:
            raise RuntimeError("this live session has finished")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(samples).all():
            raise ValueError("the speech holds samples that are not finite numbers")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._pending.append(np.clip(samples, -1.0, 1.0))
        self._received += samples.size
        # Analyse only once the speech completes the next block: the rows are the same for any
        # split of the speech, and one analysis a block costs a sixteenth of one a frame.
        wanted = self.features.frames_done + self._skip + max(0, self.block - self._inputs.shape[0])
        if frames_covered(self._received) < wanted:
            return []
        return self._take(self.features.push(self._take_pending()), final=False)

    def _take_pending(self) -> np.ndarray:
        pending, self._pending = self._pending, []
        return np.concatenate(pending) if pending else np.zeros(0, np.float32)

    def finish(self) -> list[LiveFrames]:
        """The speech has ended: the frames still to come, the end treated as `generate` treats it."""
        if self.finished:
            return []
        if self._resampler is not None:
            self._pending.append(np.clip(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1.0, 1.0))
        rows = self.features.push(self._take_pending())
        self.finished = True
        return self._take(np.concatenate([rows, self.features.finish()]), final=True)

    def _take(self, rows: np.ndarray, final: bool) -> list[LiveFrames]:
        drop = min(self._skip, rows.shape[0])
        self._skip -= drop
        self._inputs = np.concatenate([self._inputs, rows[drop:]])
        total = self.features.frames_done if final else None  # at the end: the motion's frame count
        if final:  # as `sample_codes` pads: zeros to whole blocks, and zeros after the end for the look-ahead
            padded = -(-total // self.block) * self.block
            self._inputs = np.pad(self._inputs, ((0, max(0, padded - self._sampled - self._inputs.shape[0])), (0, 0)))
        out = []
        while self._inputs.shape[0] >= self.block and (not final or self._sampled < total):
            self._sample(self._inputs[: self.block])
            self._inputs = self._inputs[self.block :]
            if not final:
                out += self._give(self._sampled - self.delay)
        return out + self._give(total) if final else out

    def _sample(self, inputs: np.ndarray) -> None:
        """One block's codes, kept with the codes the decoder's context reaches back to."""
        indices = self.sampler.span(torch.from_numpy(inputs)[None], torch.zeros(1, self.block, dtype=torch.long))
        self._codes = indices if self._codes is None else [torch.cat([old, new], dim=2) for old, new in zip(self._codes, indices)]
        self._sampled += self.block
        # memory stays flat: whole coarse blocks that no later decoding reaches back to go
        factors, per = self.model.config.factors, self.model.generator.frames_per_latent
        needed = (self.frames_given // per - self.model.decode_overlap) // factors[0] * factors[0]
        if needed > self._window:
            drop = needed - self._window
            self._codes = [c[:, :, drop // f :] for c, f in zip(self._codes, factors)]
            self._window = needed

    def _give(self, stop: int) -> list[LiveFrames]:
        """Frames from the first not given yet to `stop`, decoded from the codes sampled so far."""
        if stop <= self.frames_given:
            return []
        window_start = self._window * self.model.generator.frames_per_latent
        codes = SampledCodes(self._codes, stop - window_start)
        motion = decode_motion(self.model, codes, self.gains, (self.frames_given - window_start, stop - window_start), self._start_xz)
        self._start_xz = (float(motion.trans[-1, 0]), float(motion.trans[-1, 2]))
        frames = LiveFrames(self.frames_given, motion, self.speech_received_s)
        self.frames_given += motion.num_frames
        return [frames]


def join(blocks: list[LiveFrames]) -> Motion:
    """Consecutive live frames as one motion."""
    if not blocks:
        return Motion(np.zeros((0, 165), np.float32), np.zeros((0, 3)), np.zeros((0, 100)))
    return Motion(*(np.concatenate([getattr(b.motion, key) for b in blocks]) for key in ("poses", "trans", "expressions")))
