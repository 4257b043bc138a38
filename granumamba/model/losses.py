"""The training losses of both stages, as functions of the model.

- Stage 1 (`stage1_loss`): per part, the seed's S6 objective (S3 reconstruction + S4 codebook +
  S5 beta-weighted commitment) with velocity and acceleration terms; for the upper body also its
  joint positions, velocities and accelerations by forward kinematics (`position_losses`);
  optionally the planted feet's sliding (`foot_contact_loss`) and the coarse split
  (`coarse_split_loss`).
- Stage 2 (`stage2_loss`): cross-entropy on each level's codes + S9's MSE on their latents;
  with a hold outcome (`hold_speed`), the steps where the truth's arms are still are taught as
  holds of the code before (`hold_steps`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import FPS
from ..motion.parts import PART_JOINTS, PART_NAMES, lower_body_feet, upper_body_positions
from ..motion.skeleton import JOINT_INDEX
from .quantizer import LEVELS
from .vqvae import prior_loss

if TYPE_CHECKING:
    from .granumamba import GranuMamba

ARM_JOINTS = tuple(JOINT_INDEX[f"{side}_{joint}"] for side in ("left", "right") for joint in ("elbow", "wrist"))


def stage1_loss(
    model: GranuMamba,
    batch: dict[str, torch.Tensor],
    velocity_weight: float = 1.0,
    acceleration_weight: float = 1.0,
    position_weight: float = 0.0,
    position_velocity_weight: float = 0.0,
    position_acceleration_weight: float = 0.0,
    foot_contact_weight: float = 0.0,
    coarse_split_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Sum over parts of the seed's S6 objective plus velocity and acceleration terms; with
    the position weights, also the upper body's joint positions (cm, by forward kinematics)
    and their frame-to-frame velocities and accelerations, which is where the arms' strokes
    are seen (jitter that the rotation losses let through makes false pauses in the hands'
    speed, and so false motion beats); with the foot-contact weight, the decoded feet's
    sliding where the ground truth has them planted (`foot_contact_loss`); with the coarse
    split weight, the upper part decoded without its coarse level against the motion without
    its slow component (`coarse_split_loss`; the batch's "upper_without_coarse")."""
    position_weights = (position_weight, position_velocity_weight, position_acceleration_weight)
    out: dict[str, torch.Tensor] = {}
    total = None
    for part in PART_NAMES:
        vq = model.vqvae[part]
        x_hat, _, contributions, stats = vq(batch[part])
        losses = prior_loss(batch[part], x_hat, stats, velocity_weight, acceleration_weight)
        if part == "upper" and any(position_weights):
            terms = dict(zip(("position", "position_velocity", "position_acceleration"), position_losses(model, batch[part], x_hat)))
            losses["total"] = losses["total"] + sum(w * v for w, v in zip(position_weights, terms.values()))
            losses.update(terms)
        if coarse_split_weight and f"{part}_without_coarse" in batch:
            losses["coarse_split"] = coarse_split_loss(model, part, contributions, batch[f"{part}_without_coarse"], position_weight)
            losses["total"] = losses["total"] + coarse_split_weight * losses["coarse_split"]
        if part == "lower" and foot_contact_weight:
            losses["foot_contact"] = foot_contact_loss(model, batch[part], x_hat)
            losses["total"] = losses["total"] + foot_contact_weight * losses["foot_contact"]
        total = losses["total"] if total is None else total + losses["total"]
        for k, v in losses.items():
            out[f"{part}/{k}"] = v.detach()
        for k, v in stats.items():
            if k.startswith(("perplexity", "dead")):
                out[f"{part}/{k}"] = v
    out["total"] = total
    return out


def position_losses(model: GranuMamba, x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised upper parts (batch, T, 78) -> MSE of the joint positions (cm), of their
    velocities (cm per frame) and of their accelerations (cm per frame^2)."""
    normalizer = model.normalizer
    true = upper_body_positions(normalizer.denormalize("upper", x)) * 100.0
    pred = upper_body_positions(normalizer.denormalize("upper", x_hat)) * 100.0
    return tuple(F.mse_loss(pred.diff(n=k, dim=1), true.diff(n=k, dim=1)) for k in range(3))  # n=0: the positions


def coarse_split_loss(
    model: GranuMamba, part: str, contributions: list[torch.Tensor], without_coarse: torch.Tensor, position_weight: float = 0.0
) -> torch.Tensor:
    """A part's levels decoded with the coarse gain at 0 against the part's motion without its
    slow component (normalised, batch, T, dims): MSE, plus for the upper part `position_weight`
    times the joint positions' MSE (cm). The coarse slider scales the coarse level before
    decoding, so what is left at gain 0 is what the other levels carry; without this term they
    carried slow posture of their own (livelier corpora: enough that half the coarse level
    cancelled part of it, and the slider dipped from gain 0 to 0.5; docs/experiments.md)."""
    vq = model.vqvae[part]
    decoded = vq.decode(contributions, (0.0,) + (1.0,) * (len(contributions) - 1))
    loss = F.mse_loss(decoded, without_coarse)
    if part == "upper" and position_weight:
        loss = loss + position_weight * position_losses(model, without_coarse, decoded)[0]
    return loss


def foot_contact_loss(model: GranuMamba, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Normalised lower parts (batch, T, 61), true and decoded -> the decoded ankles' and toes'
    mean squared horizontal speed (cm per frame) over the frame pairs where the true part's
    contact channels have that joint planted in both frames. Stage 1's reconstruction of the
    corpus slid planted feet at 1.0 to 1.4 cm/s (median) without it."""
    normalizer = model.normalizer
    planted = normalizer.denormalize("lower", x)[..., len(PART_JOINTS["lower"]) * 6 :][..., :4] > 0.5  # (batch, T, 4)
    planted = planted[:, 1:] & planted[:, :-1]
    feet = lower_body_feet(normalizer.denormalize("lower", x_hat)) * 100.0  # (batch, T, 4, 3), cm
    sliding = feet[:, 1:, :, [0, 2]] - feet[:, :-1, :, [0, 2]]
    return (sliding.pow(2).sum(-1) * planted).sum() / planted.sum().clamp(min=1)


def hold_steps(model: GranuMamba, upper: torch.Tensor) -> list[torch.Tensor]:
    """Normalised upper parts (batch, T, 78) -> per level (batch, L) the steps over which the
    elbows and wrists all move slower than `hold_speed` (m/s, relative to the pelvis: forward
    kinematics of the upper part alone), the move into the step's first frame included; a
    window's first step never (there is no code before it to hold)."""
    positions = upper_body_positions(model.normalizer.denormalize("upper", upper))[..., list(ARM_JOINTS), :]
    speed = F.pad(positions.diff(dim=1).norm(dim=-1).amax(-1) * FPS, (1, 0), value=float("inf"))  # (batch, T): the move into each frame
    batch, frames = speed.shape
    out = []
    for factor in model.config.factors:
        n = model.generator.frames_per_latent * factor
        steps = frames // n
        out.append(speed[:, : steps * n].reshape(batch, steps, n).amax(-1) < model.config.hold_speed)
    return out


def held_teacher(model: GranuMamba, upper: torch.Tensor, indices: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The teacher's codes as a generator with a hold outcome makes them: per level the targets
    (batch, parts, L), the hold outcome (index K) where the upper part's arms are still
    (`hold_steps`), and the indices the steps then carry, each still step the index of the last
    step before it that was not."""
    targets, held = [], []
    upper_part = PART_NAMES.index("upper")
    for level, still in enumerate(hold_steps(model, upper)):
        hold = torch.zeros_like(indices[level], dtype=torch.bool)
        hold[:, upper_part] = still
        position = torch.arange(hold.shape[2], device=hold.device).expand_as(hold)
        source = torch.where(hold, 0, position).cummax(dim=2).values  # the last step at or before that is not a hold
        carried = indices[level].gather(2, source)
        held.append(carried)
        targets.append(torch.where(hold, model.config.codebook_size, carried))
    return targets, held


def stage2_loss(
    model: GranuMamba,
    batch: dict[str, torch.Tensor],
    *,
    word_dropout: float = 0.3,
    seed_probability: float = 0.5,
    latent_weight: float = 1.0,
    own_code_dropout: float = 0.2,
    own_coarser: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Cross-entropy on each level's codes + S9's MSE on each level's code latents, each step
    seeing its level's previous teacher code (dropped with probability `own_code_dropout`, so
    the speech keeps its say).

    `own_coarser`: the share of windows whose finer levels see the codes the coarser level
    samples from its own logits, as at inference, instead of the teacher's. A causal
    generator chooses a coarse code at its block's first fine step, so the teacher's coarse
    code tells the finer levels of motion that the speech they see does not yet say; trained
    on it, they follow the coarse codes rather than the speech."""
    with torch.no_grad():
        indices, codes = model.teacher_codes({p: batch[p] for p in PART_NAMES})
        targets = indices
        if model.generator.hold:
            targets, indices = held_teacher(model, batch["upper"], indices)
            codes = [model.lookup_codes(level, i) for level, i in enumerate(indices)]
    audio, words = model.generator.shift_lookahead(batch["audio"], batch["words"])
    size = audio.shape[0]
    use_words = (torch.rand(size, device=audio.device) >= word_dropout).float()
    cond = model.generator.condition(audio, words, batch["speaker"], use_words)
    seed_codes = None
    if seed_probability > 0:
        seed_codes = model.seed_conditioning(codes, model.frame_multiple, audio.shape[1])
        keep = (torch.rand(size, device=audio.device) < seed_probability).float().view(size, 1, 1, 1)
        seed_codes = [s * keep for s in seed_codes]
    pass_on = None
    if own_coarser > 0:
        own = (torch.rand(size, device=audio.device) < own_coarser).view(size, 1, 1, 1)

        def pass_on(level: int, level_logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
            sampled = torch.distributions.Categorical(logits=level_logits.detach().float()).sample()
            code = sampled < model.config.codebook_size  # a sampled hold passes the teacher's code on
            sampled_codes = model.lookup_codes(level, sampled.clamp(max=model.config.codebook_size - 1)).to(teacher.dtype)
            return torch.where(own & code[..., None], sampled_codes, teacher)

    logits, latents, _, _ = model.generator.run(
        cond, seed_codes=seed_codes, teacher_codes=codes, own_code_keep=1 - own_code_dropout, pass_on=pass_on
    )
    out: dict[str, torch.Tensor] = {}
    total = audio.new_zeros(())
    for level, name in enumerate(LEVELS):
        ce = F.cross_entropy(logits[level].reshape(-1, logits[level].shape[-1]), targets[level].reshape(-1))
        mse = F.mse_loss(latents[level], codes[level])
        accuracy = (logits[level].argmax(-1) == targets[level]).float().mean()
        out[f"ce_{name}"], out[f"mse_{name}"], out[f"accuracy_{name}"] = ce, mse, accuracy.detach()
        total = total + ce + latent_weight * mse
    out["total"] = total
    return out
