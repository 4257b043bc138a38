"""How a motion is sampled: speech features in, each level's code indices out; and how codes
become a motion, with the granularity gains. Kept apart so that a slider change decodes the
codes already sampled instead of sampling anew.

    codes = sample_codes(model, features, rng_seed=0)  # the expensive part, once
    parts = decode(model, codes, gains=(1, 1, 1.5))     # cheap, per slider position
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..motion.parts import PART_NAMES
from .generator import GenerationState, StepSampling, position_uniform
from .quantizer import LEVELS
from .threads import in_threads, one_thread, worth_threads


@dataclass
class SampledCodes:
    """Per level, the code indices (1, parts, L_level) of one generation, and its frame count."""

    indices: list[torch.Tensor]
    frames: int


def model_device(model) -> torch.device:
    """Where the model's weights are: generation takes its inputs there (the heads' step loop
    runs on the CPU whatever the device, see `Generator._sampled_heads`)."""
    return next(model.parameters()).device


def codebook_arrays(model) -> list[np.ndarray]:
    """Each level's codebooks, the parts' side by side (parts, K, C), as the float32 arrays
    that the compiled step loop (`StepSampling`) reads."""
    every_code = torch.arange(model.config.codebook_size, device=model_device(model)).expand(1, len(PART_NAMES), -1)
    return [np.ascontiguousarray(model.lookup_codes(level, every_code)[0].detach().float().cpu().numpy()) for level in range(len(LEVELS))]


class CodeSampler:
    """Samples a generation's codes span by span, carrying the recurrent state: a whole
    recording in spans of a fixed length (`sample_codes`), or live speech a 16-frame block at
    a time as it arrives. Any split of the same features gives the same codes.

    Each span's features are already shifted by the look-ahead (`Generator.shift_lookahead`).
    seed_indices / seed_codes: the codes of seed frames and their conditioning, per level over
    the whole generation (`sample_codes` makes them).
    """

    def __init__(self, model, speaker: int | None = None, temperature: float = 1.0, rng_seed: int = 0, seed_indices=None, seed_codes=None):
        config = model.config
        self.model, self.temperature, self.rng_seed = model, temperature, rng_seed
        self.speaker = torch.tensor([config.default_speaker if speaker is None else speaker], device=model_device(model))
        if not 0 <= int(self.speaker) < config.num_speakers:
            raise ValueError(f"speaker {int(self.speaker)} is out of range 0..{config.num_speakers - 1}")
        self.seed_codes = seed_codes
        self._seed_indices = None if seed_indices is None else [i.detach().cpu().numpy() for i in seed_indices]
        self._codebooks = codebook_arrays(model)
        self.state = GenerationState()

    @torch.no_grad()
    def span(self, audio: torch.Tensor, words: torch.Tensor) -> list[torch.Tensor]:
        """(1, L, feature_dim) shifted features and (1, L) word ids, L a multiple of
        `model.step_frames` (a whole block, or a causal model's fine step) -> per level the code
        indices (1, parts, L_level) of the steps that begin in the span."""
        gen, factors = self.model.generator, self.model.config.factors
        frames = audio.shape[1]
        if frames % self.model.step_frames:
            raise ValueError(f"a span is a multiple of {self.model.step_frames} frames, not {frames}")
        done = self.state.fine_steps_done
        offsets = [-(-done // f) for f in factors]
        steps = [-(-(done + frames // gen.frames_per_latent) // f) - o for f, o in zip(factors, offsets)]
        uniform = None  # the span's sampling noise: one number per part and step, drawn for all steps at once
        if self.temperature > 0:
            uniform = [
                np.ascontiguousarray(position_uniform(self.rng_seed, level, torch.arange(o, o + n), len(PART_NAMES), 1)[..., 0].numpy())
                for level, (o, n) in enumerate(zip(offsets, steps))
            ]
        fixed = None
        if self._seed_indices is not None:  # seed frames fix their codes
            fixed = [np.full((1, len(PART_NAMES), n), -1, np.int64) for n in steps]
            for f, seeded, o, n in zip(fixed, self._seed_indices, offsets, steps):
                within = seeded[:, :, o : o + n]
                f[:, :, : within.shape[2]] = within
        scale = [1.0 / max(t, 1e-6) for t in self.model.config.level_temperatures(self.temperature)]
        hold_scale = 1.0 / self.model.config.hold_temperature
        sampling = StepSampling(self._codebooks, fixed, uniform, scale, hold_scale)
        span_seed = None if self.seed_codes is None else [s[:, :, o : o + n] for s, o, n in zip(self.seed_codes, offsets, steps)]
        with one_thread():
            device = self.speaker.device
            cond = gen.condition(audio.float().to(device), words.long().to(device), self.speaker)
            _, _, _, self.state = gen.run(cond, sampling, span_seed, self.state)
        return sampling.indices


@torch.no_grad()
def sample_codes(
    model,
    audio: torch.Tensor,
    words: torch.Tensor | None = None,
    speaker: int | None = None,
    seed_parts: dict[str, torch.Tensor] | None = None,
    temperature: float = 1.0,
    rng_seed: int = 0,
    chunk_frames: int | None = 480,
) -> SampledCodes:
    """Speech features (T, feature_dim) -> every level's codes, coarse to fine.

    words: (T,) vocabulary ids (zeros: audio only). seed_parts: normalised parts of seed frames
    {part: (S, dims)}, whose codes open the sequence. temperature 0 takes the most likely code;
    the sampling noise depends only on `rng_seed` and each code's position. chunk_frames (a multiple
    of 16) streams the generation in memory that does not grow with T; None runs one pass. Both
    give the same codes.
    """
    gen, factors = model.generator, model.config.factors
    # 1. Pad the speech to whole 16-frame blocks and shift it by the look-ahead.
    frames = audio.shape[0]
    multiple = model.frame_multiple
    padded = -(-frames // multiple) * multiple
    audio = F.pad(audio.float(), (0, 0, 0, padded - frames))[None]
    words = torch.zeros(1, padded, dtype=torch.long) if words is None else F.pad(words.long(), (0, padded - frames))[None]
    audio, words = gen.shift_lookahead(audio, words)
    # 2. Seed frames: their codes, and the conditioning that marks them.
    seed_indices = seed_codes = None
    if seed_parts is not None:
        seed_frames = next(iter(seed_parts.values())).shape[0] // multiple * multiple
        if seed_frames == 0:
            raise ValueError(f"seed motion needs at least {multiple} frames")
        seed_frames = min(seed_frames, padded)
        device = model_device(model)
        seed_indices, codes = model.teacher_codes({p: x[None, :seed_frames].float().to(device) for p, x in seed_parts.items()})
        full = [F.pad(c, (0, 0, 0, padded // (gen.frames_per_latent * f) - c.shape[2])) for c, f in zip(codes, factors)]
        seed_codes = model.seed_conditioning(full, seed_frames, padded)
    sampler = CodeSampler(model, speaker, temperature, rng_seed, seed_indices, seed_codes)
    # 3. Span by span, with the recurrent state carried: the streams in one pass, the heads step by step.
    chunk = padded if chunk_frames is None else max(multiple, chunk_frames // multiple * multiple)
    spans = [sampler.span(audio[:, start : start + chunk], words[:, start : start + chunk]) for start in range(0, padded, chunk)]
    return SampledCodes([torch.cat(level, dim=2) for level in zip(*spans)], frames)


@torch.no_grad()
def decode(
    model,
    codes: SampledCodes,
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
    overlap: int | None = None,
    frames: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Codes -> normalised parts {part: (T, dims)}, each level scaled by its gain (coarse, mid,
    fine) before decoding, in windows so that memory does not grow with length. `frames`
    (start, stop) decodes only those frames: the same as the whole decoded and cut."""
    start, stop = (0, codes.frames) if frames is None else (frames[0], min(frames[1], codes.frames))
    per = model.generator.frames_per_latent
    span = (start // per, -(-stop // model.frame_multiple) * model.frame_multiple // per)
    cut = start - span[0] * per

    device = model_device(model)

    def part(p: int) -> torch.Tensor:
        decoded = model.decode_part(PART_NAMES[p], [i[:, p].to(device) for i in codes.indices], gains, overlap, span=span)
        return decoded[cut : cut + stop - start]

    with one_thread():  # the parts' decoders are independent: side by side on the cores, when long enough to pay
        parts = range(len(PART_NAMES))
        coarse_steps = (span[1] - span[0]) // model.config.factors[0]
        decoded = in_threads(part, parts) if worth_threads(coarse_steps) else [part(p) for p in parts]
    return dict(zip(PART_NAMES, decoded))


def compile_kernels() -> None:
    """Compile the generation's numba loops (the scan, the heads' step loop) into numba's cache,
    by generating a few frames with a tiny random model: a first generation otherwise spends
    about 3 s compiling them. `scripts/setup.sh` runs it once after installing."""
    from .granumamba import GranuMamba

    model = GranuMamba({"vq_hidden": 16, "latent_dim": 8, "codebook_size": 8, "d_model": 16, "n_global": 1, "n_local": 1}).eval()
    for temperature in (1.0, 0.0):  # sampled and most likely codes
        model.generate(torch.zeros(model.frame_multiple, model.config.feature_dim), temperature=temperature)
