"""Stage 2: the coarse-to-fine generator, speech (+ words, speaker, seed frames) to part codes.

    frames (T):  audio features, shifted `lookahead` frames earlier + word embeddings
    packed (T/4): 4 frames -> one step, + speaker embedding                 = cond_fine
    cond_mid (T/8), cond_coarse (T/16): averages of cond_fine
    global stream: MambaStack over cond_coarse, the whole body at the coarse rate
    local streams, coarse -> mid -> fine, every part at once (parts ride in the batch, with a
      part embedding): input = cond_level + global + coarser level's hidden state and codes
      (repeated to this rate) + seed; one pass over the span;
    heads, per level and part: the stream's output + the part's own codes at this level of the
      `own_history` steps before, through a small MLP -> code logits and code latents.

Within a level, each step sees the code its part chose at the step before (teacher codes
shifted in training, the sampled codes at inference): codes drawn independently of each other
mix strokes that turn a frame or two apart, which blurs the timing. With `own_history` above 1
it sees its part's last few codes, so it can tell how far a slow movement has come (the demo
sees one: docs/experiments.md). Only the light head sees them, so the Mamba streams run over a
whole span in one pass and only the head steps: a step costs two small matrix products instead
of a pass through every Mamba layer.

With `hold_speed` above 0 each head has one outcome more than its codebook has codes: a hold,
which keeps the code chosen at the step before. Stage 2 teaches it where the truth's elbows and
wrists are still (`granumamba.model.losses.hold_steps`), so an arm can stay still through a
pause in the speech by keeping one code, which the decoders render as a still arm; without it,
stillness is a run of different codes that the generator has to get right one by one (README,
Metrics).

Every operation is per step or a causal Mamba with a carried state, so generation can run
span by span with the exact result of one pass (`GenerationState`). A level's step sees the
conditioning of its own fine steps, side by side: all of them (the default), so a span must end
on a whole coarse block; or, with `causal`, the `factor` fine steps up to and including its
first one, so a coarse step can be taken as soon as its block's first fine step's speech is in,
and generation can advance by one fine step (4 frames) at a time, which live mode's latency
needs. A causal model's coarse and mid codes thus follow the speech a few fine steps late; the
slow motion they carry does not need the timing of a stroke.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import GeneratorConfig
from .mamba import MambaStack, MambaState
from .quantizer import LEVELS
from .threads import WORKERS, in_threads, worth_threads


@dataclass
class GenerationState:
    """Recurrent state of a generation in progress: Mamba states of every stack, each level's
    last `own_history` chosen code vectors (batch, parts, own_history, C; the latest last) and
    last stream output (batch, parts, 1, d), the global stream's last output (batch, 1, d), the
    last fine conditioning steps that the next span's first steps see (batch, coarse factor - 1,
    d), how many latent steps (at the fine rate) are done, which positions the sampling noise,
    and each level's last chosen code indices (batch, parts), which a hold keeps."""

    global_stream: list[MambaState] | None = None
    local: list[list[MambaState] | None] = field(default_factory=lambda: [None] * len(LEVELS))
    last_codes: list[torch.Tensor | None] = field(default_factory=lambda: [None] * len(LEVELS))
    fine_steps_done: int = 0
    last_h: list[torch.Tensor | None] = field(default_factory=lambda: [None] * len(LEVELS))
    last_global: torch.Tensor | None = None
    cond_tail: torch.Tensor | None = None
    last_indices: list[torch.Tensor | None] = field(default_factory=lambda: [None] * len(LEVELS))  # (batch, parts), a hold's code


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply), on int64 tensors holding values < 2^32."""
    mask = 0xFFFFFFFF
    x = x & mask
    x = ((x >> 16) ^ x) * 0x45D9F3B & mask
    x = ((x >> 16) ^ x) * 0x45D9F3B & mask
    return (x >> 16) ^ x


def position_uniform(rng_seed: int, level: int, positions: torch.Tensor, parts: int, codes: int) -> torch.Tensor:
    """Uniform (0, 1) noise (batch=1, parts, len(positions), codes) that depends only on the random seed
    and each token's absolute position, so chunked and one-pass sampling draw the same numbers.
    (torch's generators cannot jump ahead, hence a counter-based hash.)"""
    p = torch.arange(parts).view(parts, 1, 1)
    t = positions.view(1, -1, 1).long()
    k = torch.arange(codes).view(1, 1, codes)
    x = _mix32(t * codes + k + _mix32(torch.tensor(rng_seed * 7919 + level * 104729 + 1)) + _mix32(p + 17) * 65537)
    x = _mix32(x ^ (rng_seed & 0xFFFFFFFF))
    return ((x.double() + 0.5) / 2**32).float()[None]


@dataclass
class StepSampling:
    """How inference chooses each step's code, as arrays the compiled step loop reads, per level:
    `codebooks` (parts, K, C) float32; `fixed` (batch, parts, L) int64, a code index where a seed
    frame fixes the step's code and -1 elsewhere (None: none fixed); `uniform` (batch, parts, L)
    float32, each step's number for inverse-CDF sampling at temperature 1 / `scale` (one number
    for every level, or a list of one a level; None: the most likely code). With a hold
    outcome, a step holds with the hold's probability at temperature 1 / `hold_scale` and
    otherwise takes a code at 1 / `scale`, so that the temperature that makes the strokes
    livelier does not also break the holds (at equal temperatures, the same as sampling all
    outcomes at once). The loop writes the chosen indices (batch, parts, L) into `indices`."""

    codebooks: list[np.ndarray]
    fixed: list[np.ndarray] | None = None
    uniform: list[np.ndarray] | None = None
    scale: float | list[float] = 1.0
    hold_scale: float = 1.0
    indices: list[torch.Tensor | None] = field(default_factory=lambda: [None] * len(LEVELS))

    def level_scale(self, level: int) -> float:
        return self.scale[level] if isinstance(self.scale, list) else self.scale


@numba.njit(cache=True, nogil=True)
def _affine(x, weight, bias, out):  # pragma: no cover (compiled)
    """out = x @ weight + bias. Loops, not `@`: numba compiles its BLAS binding for seconds on a
    first run, and at a few hundred numbers the loop is as fast."""
    for j in range(weight.shape[1]):
        out[j] = bias[j]
    for c in range(weight.shape[0]):
        xc = x[c]
        for j in range(weight.shape[1]):
            out[j] += xc * weight[c, j]


@numba.njit(cache=True, nogil=True)
def _gelu_(x):  # pragma: no cover (compiled)
    """torch's default (exact, erf) GELU, in place."""
    for j in range(x.shape[0]):
        x[j] = 0.5 * x[j] * (1.0 + math.erf(x[j] * 0.7071067811865476))


@numba.njit(cache=True, nogil=True)
def _likeliest(out, n):  # pragma: no cover (compiled)
    """The index of the largest of out[:n] (the first, on a tie)."""
    k = 0
    for j in range(1, n):
        if out[j] > out[k]:
            k = j
    return k


@numba.njit(cache=True, nogil=True)
def _cumulative(out, n, scale, cdf):  # pragma: no cover (compiled)
    """Fill cdf[:n] with the running sums of exp(out[:n] * scale - top), top being the largest
    exponent (a softmax's numerators, kept from overflowing), and return top."""
    top = out[0] * scale
    for j in range(1, n):
        top = max(top, out[j] * scale)
    total = np.float32(0.0)
    for j in range(n):
        total += np.exp(out[j] * scale - top)
        cdf[j] = total
    return top


@numba.njit(cache=True, nogil=True)
def _step_loop(
    stream,
    last,
    own_weight,
    own_bias,
    mix_weight,
    mix_bias,
    weight,
    bias,
    codebook,
    fixed,
    uniform,
    scale,
    hold_scale,
    logits,
    latents,
    codes,
    chosen,
    previous,
):  # pragma: no cover (compiled; tested through Generator.run against the teacher-forced heads)
    """The heads of `Generator._heads`, a step at a time, each step seeing the codes its part
    chose at the steps before, and the choice (`StepSampling`): for every batch row and part,
    z = h + gelu(gelu(h + own W_own + b_own) W_mix + b_mix); logits, latent = z W_part + b_part,
    `own` the part's last chosen codes side by side, the latest first (`last` opens it). Where
    the logits have one outcome more than the codebook has codes, that last outcome is a hold:
    the step keeps the code chosen at the step before (`previous`, (batch, parts), -1 where there
    is none yet: then the most likely code), and `previous` ends holding each row's last choice.

    Written by hand (numba, already a dependency through librosa): the steps cannot be
    batched, since each sees the code just chosen, and a step is a few products of a few
    hundred numbers, which torch or numpy calls spend most of their time dispatching
    (measured on a 2-core CPU: 227 microseconds a step in torch, 83 in numpy)."""
    batch, parts, steps, d = stream.shape
    codes_k = logits.shape[3]
    book = codebook.shape[1]  # codes_k - book: 1 with a hold outcome, else 0
    a, m, out = np.empty(d, np.float32), np.empty(d, np.float32), np.empty(bias.shape[1], np.float32)
    cdf = np.empty(codes_k, np.float32)
    for b in range(batch):
        for p in range(parts):
            own = np.empty(last.shape[2], np.float32)
            for j in range(own.shape[0]):
                own[j] = last[b, p, j]
            width = codebook.shape[2]
            for s in range(steps):
                h = stream[b, p, s]
                _affine(own, own_weight, own_bias, a)
                for j in range(d):
                    a[j] += h[j]
                _gelu_(a)
                _affine(a, mix_weight, mix_bias, m)
                _gelu_(m)
                for j in range(d):
                    m[j] += h[j]
                _affine(m, weight[p], bias[p], out)
                for j in range(out.shape[0]):
                    if j < codes_k:
                        logits[b, p, s, j] = out[j]
                    else:
                        latents[b, p, s, j - codes_k] = out[j]
                k = 0
                if fixed[b, p, s] >= 0:  # a seed frame fixes the code
                    k = fixed[b, p, s]
                elif uniform.shape[0] == 0:  # the most likely outcome
                    k = _likeliest(out, codes_k)
                else:  # inverse CDF: the first code whose cumulative probability passes the step's number
                    u = uniform[b, p, s]
                    if codes_k > book:  # the hold's probability at its own temperature, on top of the CDF
                        top = _cumulative(out, codes_k, hold_scale, cdf)
                        stay = np.exp(out[book] * hold_scale - top) / cdf[codes_k - 1]
                        if u >= 1 - stay:
                            k = book
                        else:  # a code: the step's number spread again over the codes alone
                            u = u / (1 - stay)
                    if k < book:
                        _cumulative(out, book, scale, cdf)
                        threshold = u * cdf[book - 1]
                        while k < book - 1 and cdf[k] < threshold:
                            k += 1
                if k >= book:  # a hold: the code before, or at the very first step the likeliest
                    k = previous[b, p]
                    if k < 0:
                        k = _likeliest(out, book)
                previous[b, p] = k
                chosen[b, p, s] = k
                for j in range(own.shape[0] - 1, width - 1, -1):  # the older codes move one place on
                    own[j] = own[j - width]
                for j in range(width):
                    own[j] = codebook[p, k, j]
                    codes[b, p, s, j] = own[j]


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig | None = None):
        config = config or GeneratorConfig()
        d_model, factors, parts = config.d_model, tuple(config.factors), config.parts
        codebook_size, latent_dim, frames_per_latent = config.codebook_size, config.latent_dim, config.frames_per_latent
        super().__init__()
        self.parts, self.codebook_size, self.latent_dim = parts, codebook_size, latent_dim
        self.lookahead, self.frames_per_latent, self.factors = config.lookahead, frames_per_latent, factors
        self.causal, self.own_history = config.causal, config.own_history
        # with a hold outcome, the logits' last column (see _step_loop and losses.held_teacher)
        self.hold = config.hold_speed > 0
        self.outcomes = codebook_size + int(self.hold)
        self.audio_in = nn.Sequential(nn.Linear(config.feature_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.word_embedding = nn.Embedding(config.vocab_size, d_model)
        self.speaker_embedding = nn.Embedding(config.num_speakers, d_model)
        self.pack = nn.Linear(frames_per_latent * d_model, d_model)
        # A level's step sees its span's fine latents side by side, in order: averaging them would
        # hide where in the span a word or an onset falls, which is what times a stroke.
        self.level_in = nn.ModuleList(nn.Linear(factor * d_model, d_model) for factor in factors)
        self.part_embedding = nn.Parameter(torch.randn(parts, d_model) * 0.02)
        self.code_in = nn.Linear(latent_dim, d_model)
        self.own_code_in = nn.ModuleList(nn.Linear(config.own_history * latent_dim, d_model) for _ in factors)
        # The autoregressive head: the stream's output and the previous code, mixed nonlinearly.
        self.head_mix = nn.ModuleList(nn.Sequential(nn.GELU(), nn.Linear(d_model, d_model), nn.GELU()) for _ in factors)
        self.seed_in = nn.Linear(latent_dim + 1, d_model)
        self.dropout = nn.Dropout(config.dropout)
        mamba = {"d_state": config.d_state, "expand": config.expand}
        self.global_stream = MambaStack(d_model, config.n_global, **mamba)
        self.local_streams = nn.ModuleList(MambaStack(d_model, config.n_local, **mamba) for _ in factors)
        # Heads per part and level: (parts, d_model, out) weights applied by einsum.
        self.logit_weight = nn.ParameterList(nn.Parameter(torch.randn(parts, d_model, self.outcomes) * d_model**-0.5) for _ in factors)
        self.logit_bias = nn.ParameterList(nn.Parameter(torch.zeros(parts, 1, self.outcomes)) for _ in factors)
        self.latent_weight = nn.ParameterList(nn.Parameter(torch.randn(parts, d_model, latent_dim) * d_model**-0.5) for _ in factors)

    @property
    def frame_multiple(self) -> int:
        return self.frames_per_latent * self.factors[0]

    def shift_lookahead(self, audio: torch.Tensor, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame t sees the speech of frame t + lookahead (gestures lead speech); zeros past the end."""
        k = self.lookahead
        if k == 0:
            return audio, words
        return F.pad(audio[:, k:], (0, 0, 0, k)), F.pad(words[:, k:], (0, k))

    def condition(
        self, audio: torch.Tensor, words: torch.Tensor, speaker: torch.Tensor, use_words: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(batch, T, feature_dim), (batch, T), (batch,) -> cond_fine (batch, T/4, d_model).

        `use_words` (batch,) in {0, 1} drops the word input per sample (training's word dropout).
        """
        batch, frames, _ = audio.shape
        x = self.audio_in(audio)
        w = self.word_embedding(words)
        if use_words is not None:
            w = w * use_words.view(batch, 1, 1).to(w.dtype)
        x = x + w
        x = self.pack(x.reshape(batch, frames // self.frames_per_latent, -1))
        return self.dropout(x + self.speaker_embedding(speaker)[:, None])

    def _heads(self, level: int, h: torch.Tensor, own: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stream output h (batch, parts, L, d) and each step's previous codes of its level, the
        latest first, own (batch, parts, L, own_history * C) -> logits (batch, parts, L, K),
        latents (batch, parts, L, C); with a hold outcome, logits have K + 1 columns, the last the hold."""
        z = h + self.head_mix[level](h + self.own_code_in[level](own))
        logits = torch.einsum("bpld,pdk->bplk", z, self.logit_weight[level]) + self.logit_bias[level]
        latents = torch.einsum("bpld,pdc->bplc", z, self.latent_weight[level])
        return logits, latents

    def _step_weights(self, level: int) -> tuple[np.ndarray, ...]:
        """The heads of `_heads` as float32 arrays for the compiled step loop: own-code input
        (C, d) and bias, mixing layer (d, d) and bias, output (parts, d, K + C) and bias (parts, K + C).
        Kept until a weight changes (an optimiser step or a load bumps the tensors' versions): a
        live session asks for them every fine step."""
        own_in, (_, mix, _) = self.own_code_in[level], self.head_mix[level]
        tensors = (
            own_in.weight,
            own_in.bias,
            mix.weight,
            mix.bias,
            self.logit_weight[level],
            self.latent_weight[level],
            self.logit_bias[level],
        )
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        cache = self.__dict__.setdefault("_step_weight_cache", {})
        if cache.get(level, (None,))[0] != key:
            array = lambda t: np.ascontiguousarray(t.detach().float().cpu().numpy())  # noqa: E731
            weight = torch.cat([self.logit_weight[level], self.latent_weight[level]], dim=2)
            bias = F.pad(self.logit_bias[level][:, 0], (0, self.latent_dim))
            cache[level] = (
                key,
                (array(own_in.weight.t()), array(own_in.bias), array(mix.weight.t()), array(mix.bias), array(weight), array(bias)),
            )
        return cache[level][1]

    def _windows(self, buffer: torch.Tensor, first_step: int, factor: int, steps: range) -> torch.Tensor:
        """Each level step's fine conditioning (batch, len(steps), factor, d): its own fine steps,
        or with `causal` the `factor` fine steps up to its first. `buffer` row 0 is fine step
        `first_step`."""
        shift = factor - 1 if self.causal else 0
        first = torch.arange(steps.start, steps.stop, device=buffer.device) * factor - shift - first_step
        return buffer[:, first[:, None] + torch.arange(factor, device=buffer.device)[None]]

    def _level_input(self, level: int, windows, g, previous, seed_codes) -> torch.Tensor:
        """A level's stream input (batch, parts, L, d): its steps' fine conditioning side by
        side, the global stream, the part, the coarser level's state and codes (`g` and
        `previous` already gathered to this level's steps), the seed flags."""
        batch, length, factor, d = windows.shape
        x = self.level_in[level](windows.reshape(batch, length, factor * d)) + g
        x = x[:, None] + self.part_embedding[None, :, None]
        if previous is not None:
            coarser_h, coarser_codes = previous
            x = x + coarser_h + self.code_in(coarser_codes)
        if seed_codes is not None:
            x = x + self.seed_in(seed_codes)
        return x

    def _teacher_heads(self, level: int, h, last, codes, own_code_keep: float):
        """Training: every step's head sees the teacher codes of the `own_history` steps before
        it (`last`, (batch, parts, own_history, C), before the span's first), all in one pass."""
        history, steps = self.own_history, codes.shape[2]
        before = torch.cat([last, codes[:, :, :-1]], dim=2)  # row r: the code of step r - history
        own = torch.cat([before[:, :, history - 1 - j : history - 1 - j + steps] for j in range(history)], dim=3)
        if own_code_keep < 1 and self.training:
            own = own * (torch.rand(*own.shape[:3], 1, device=own.device) < own_code_keep).to(own.dtype)
        return self._heads(level, h, own)

    def _sampled_heads(self, level: int, h, last, last_indices, sampling: StepSampling):
        """Inference: the head steps through the span, each step seeing the code just chosen
        (`_step_loop`; `last_indices` (batch, parts) or None: the codes chosen just before the
        span, which a hold keeps); the chosen indices go to `sampling.indices[level]`."""
        stream = np.ascontiguousarray(h.detach().float().cpu().numpy())
        batch, parts, steps, _ = stream.shape
        codebook = sampling.codebooks[level]
        logits = np.empty((batch, parts, steps, self.outcomes), np.float32)
        latents = np.empty((batch, parts, steps, self.latent_dim), np.float32)
        codes = np.empty((batch, parts, steps, codebook.shape[2]), np.float32)
        chosen = np.empty((batch, parts, steps), np.int64)
        fixed = sampling.fixed[level] if sampling.fixed is not None else np.full((batch, parts, steps), -1, np.int64)
        uniform = sampling.uniform[level] if sampling.uniform is not None else np.zeros((0, 0, 0), np.float32)
        previous = np.full((batch, parts), -1, np.int64) if last_indices is None else last_indices.numpy().astype(np.int64, copy=True)
        _step_loop(
            stream,
            np.ascontiguousarray(last.flip(2).flatten(2).detach().float().cpu().numpy()),  # the latest first
            *self._step_weights(level),
            codebook,
            fixed,
            uniform,
            np.float32(sampling.level_scale(level)),
            np.float32(sampling.hold_scale),
            logits,
            latents,
            codes,
            chosen,
            previous,
        )
        sampling.indices[level] = torch.from_numpy(chosen)
        return tuple(torch.from_numpy(t).to(h.device, h.dtype) for t in (logits, latents, codes))

    def _local_stream(self, level: int, x: torch.Tensor, state: list[MambaState] | None):
        """A level's stream over its rows (batch x parts, L, d). At inference the rows are
        independent work: they run in groups side by side on the cores (`in_threads`), with the
        same result row by row."""
        stream = self.local_streams[level]
        groups = min(WORKERS, x.shape[0])
        if torch.is_grad_enabled() or groups < 2 or not worth_threads(x.shape[1]):  # a live block's few steps run here
            return stream(x, state)
        rows = torch.arange(x.shape[0]).tensor_split(groups)
        pieces = in_threads(lambda r: stream(x[r], None if state is None else [(c[r], s[r]) for c, s in state]), rows)
        h = torch.cat([piece[0] for piece in pieces])
        layers = zip(*(piece[1] for piece in pieces))  # per layer, each group's (conv, ssm) state
        return h, [(torch.cat([c for c, _ in layer]), torch.cat([s for _, s in layer])) for layer in layers]

    def run(
        self,
        cond_fine: torch.Tensor,
        sampling: StepSampling | None = None,
        seed_codes: list[torch.Tensor] | None = None,
        state: GenerationState | None = None,
        teacher_codes: list[torch.Tensor] | None = None,
        own_code_keep: float = 1.0,
        pass_on: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], GenerationState]:
        """Run the global and local streams over a span of fine steps: whole coarse blocks, or,
        for a `causal` generator, any number of fine steps. Each level takes the steps that
        begin within the span.

        cond_fine: (batch, L_fine, d). Either teacher_codes, per level (batch, parts, L_level, C):
        every step's head sees its level's previous teacher code, all steps in one pass
        (training); or `sampling` (`StepSampling`, inference): each level's head runs step by
        step after its stream's one pass, each step choosing its code from the codebook, the
        chosen indices left in `sampling.indices` for this span. seed_codes: per
        level (batch, parts, L_level, C+1), the last channel 1 where a seed frame fixes the code.
        own_code_keep < 1 drops each step's previous-code input with probability 1 - keep (in
        training mode only). pass_on(level, logits, teacher codes) -> the codes the next finer
        level sees instead of the teacher's (training; `stage2_loss`'s `own_coarser`). Returns
        per level logits, latents, chosen code vectors, and the state after the span.
        """
        if (teacher_codes is None) == (sampling is None):
            raise ValueError("give either teacher_codes or sampling")
        state = state or GenerationState()
        batch, length, d = cond_fine.shape
        first, stop, coarse = state.fine_steps_done, state.fine_steps_done + length, self.factors[0]
        if not self.causal and (first % coarse or stop % coarse):
            raise ValueError(f"this generator advances by whole blocks of {coarse} fine steps")
        tail = state.cond_tail if state.cond_tail is not None else cond_fine.new_zeros(batch, coarse - 1, d)
        buffer = torch.cat([tail, cond_fine], dim=1)  # row 0: fine step first - (coarse - 1)
        begin = first - (coarse - 1)

        def steps(factor: int) -> range:  # the level's steps that begin within the span
            return range(-(-first // factor), -(-stop // factor))

        def gather(last: torch.Tensor | None, new: torch.Tensor, new_steps: range, factor: int, at: range, dim: int):
            """The rows (along `dim`) of a coarser rate, of `factor` fine steps each, that the
            steps beginning at fine steps `at` fall in: from `new` (steps `new_steps`) or the last
            of an earlier span."""
            last = last if last is not None else new.new_zeros(*new.shape[:dim], 1, *new.shape[dim + 1 :])
            rows = torch.arange(at.start, at.stop, at.step, device=new.device) // factor - (new_steps.start - 1)
            return torch.cat([last, new], dim=dim).index_select(dim, rows)

        coarse_steps = steps(coarse)
        if len(coarse_steps):
            g, global_state = self.global_stream(self._windows(buffer, begin, coarse, coarse_steps).mean(2), state.global_stream)
        else:
            g, global_state = buffer.new_zeros(batch, 0, d), state.global_stream
        new_local, new_last, new_h = [], [], []
        all_logits, all_latents, all_codes = [], [], []
        previous = None  # the coarser level: its output and codes, the last of an earlier span first, and its steps
        for level, factor in enumerate(self.factors):
            level_steps = steps(factor)
            at = range(level_steps.start * factor, level_steps.stop * factor, factor)
            last = state.last_codes[level]
            if last is None:
                last = buffer.new_zeros(batch, self.parts, self.own_history, self.latent_dim)
            if len(level_steps):
                coarser = None
                if previous is not None:
                    last_h, h, last_codes, codes, coarser_steps, coarser_factor = previous
                    coarser = (
                        gather(last_h, h, coarser_steps, coarser_factor, at, 2),
                        gather(last_codes, codes, coarser_steps, coarser_factor, at, 2),
                    )
                x = self._level_input(
                    level,
                    self._windows(buffer, begin, factor, level_steps),
                    gather(state.last_global, g, coarse_steps, coarse, at, 1),
                    coarser,
                    None if seed_codes is None else seed_codes[level],
                )
                h, level_state = self._local_stream(level, x.reshape(batch * self.parts, len(level_steps), d), state.local[level])
                h = h.reshape(batch, self.parts, len(level_steps), d)
                if teacher_codes is not None:
                    codes = teacher_codes[level]
                    logits, latents = self._teacher_heads(level, h, last, codes, own_code_keep)
                else:
                    logits, latents, codes = self._sampled_heads(level, h, last, state.last_indices[level], sampling)
            else:  # no step of this level begins in the span
                h, level_state = buffer.new_zeros(batch, self.parts, 0, d), state.local[level]
                logits = buffer.new_zeros(batch, self.parts, 0, self.outcomes)
                latents = codes = buffer.new_zeros(batch, self.parts, 0, self.latent_dim)
                if sampling is not None:
                    sampling.indices[level] = torch.zeros(batch, self.parts, 0, dtype=torch.long)
            last_h = state.last_h[level]
            passed = codes if pass_on is None or teacher_codes is None else pass_on(level, logits, codes)
            previous = (last_h, h, last[:, :, -1:], passed, level_steps, factor)
            new_local.append(level_state)
            new_last.append(torch.cat([last, codes], dim=2)[:, :, -self.own_history :] if len(level_steps) else state.last_codes[level])
            new_h.append(h[:, :, -1:] if len(level_steps) else last_h)
            all_logits.append(logits)
            all_latents.append(latents)
            all_codes.append(codes)
        last_global = g[:, -1:] if len(coarse_steps) else state.last_global
        last_indices = list(state.last_indices)
        if sampling is not None:
            last_indices = [i[:, :, -1] if i.shape[2] else old for i, old in zip(sampling.indices, last_indices)]
        new_state = GenerationState(
            global_state, new_local, new_last, stop, new_h, last_global, buffer[:, buffer.shape[1] - (coarse - 1) :], last_indices
        )
        return all_logits, all_latents, all_codes, new_state
