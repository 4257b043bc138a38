"""The body-part split the model trains on, and its exact inverse back to BEAT2's arrays.

| part  | content (last axis)                                                    | dims |
|-------|------------------------------------------------------------------------|------|
| upper | 13 joints x 6D                                                         | 78   |
| hands | 30 finger joints x 6D                                                  | 180  |
| lower | 9 joints x 6D, 4 foot contacts, root (x velocity, height, z velocity)  | 61   |
| face  | jaw 6D, 100 expressions                                                | 106  |

The root's horizontal translation is stored as a per-frame velocity (so that a window does
not depend on where the speaker stands) and its height absolutely (so it never drifts); the
inverse integrates the velocity from a given start. Eyes (23, 24) are not generated: they come
back as zero rotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .rotations import axis_angle_to_6d, axis_angle_to_matrix, sixd_to_axis_angle, sixd_to_matrix
from .skeleton import NUM_JOINTS, forward_kinematics

PART_JOINTS: dict[str, tuple[int, ...]] = {
    "upper": (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
    "hands": tuple(range(25, 55)),
    "lower": (0, 1, 2, 4, 5, 7, 8, 10, 11),
    "face": (22,),
}
PART_NAMES: tuple[str, ...] = tuple(PART_JOINTS)
BODY_JOINTS = 22  # pelvis to wrists: the first joints of the tree
FOOT_JOINTS = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
NUM_EXPRESSIONS = 100
CONTACT_SPEED = 0.01  # metres per frame under which a foot joint counts as planted

PART_DIMS: dict[str, int] = {
    "upper": 13 * 6,
    "hands": 30 * 6,
    "lower": 9 * 6 + 4 + 3,
    "face": 6 + NUM_EXPRESSIONS,
}


@dataclass
class Motion:
    """BEAT2's arrays for one take. poses (T, 165) axis-angle, trans (T, 3), expressions (T, 100)."""

    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    betas: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])


def foot_contacts(poses: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(T, 165), (T, 3) -> (T, 4) in {0, 1}: ankle and toe of each foot planted (slow)."""
    rotmats = axis_angle_to_matrix(poses.reshape(-1, NUM_JOINTS, 3))
    feet = forward_kinematics(rotmats, trans)[0][:, FOOT_JOINTS]  # (T, 4, 3)
    speed = torch.zeros(feet.shape[:2], dtype=feet.dtype)
    if feet.shape[0] > 1:
        speed[1:] = (feet[1:] - feet[:-1]).norm(dim=-1)
        speed[0] = speed[1]
    return (speed < CONTACT_SPEED).to(poses.dtype)


def upper_body_positions(upper: torch.Tensor) -> torch.Tensor:
    """(..., 78) upper-part 6D rotations -> (..., 22, 3) body joint positions (metres) with the
    pelvis at the origin, unrotated, and the legs at rest: where the upper part alone puts the
    spine, head, shoulders, elbows and wrists (what stage 1's position loss compares)."""
    lead = upper.shape[:-1]
    joints = list(PART_JOINTS["upper"])
    rotmats = torch.eye(3, dtype=upper.dtype, device=upper.device).expand(*lead, BODY_JOINTS, 3, 3).clone()
    rotmats[..., joints, :, :] = sixd_to_matrix(upper.reshape(*lead, len(joints), 6))
    return forward_kinematics(rotmats)[0]  # the body's 22 joints only: fingers and face do not move these


def lower_body_feet(lower: torch.Tensor) -> torch.Tensor:
    """(..., T, 61) lower parts -> (..., T, 4, 3) positions (metres) of the ankles and toes
    (FOOT_JOINTS order), the root's horizontal path integrated from the origin: where the lower
    part alone puts the feet, which is what a foot that carries the weight must keep still."""
    lead = lower.shape[:-1]
    joints = list(PART_JOINTS["lower"])
    rotmats = torch.eye(3, dtype=lower.dtype, device=lower.device).expand(*lead, BODY_JOINTS, 3, 3).clone()
    rotmats[..., joints, :, :] = sixd_to_matrix(lower[..., : len(joints) * 6].reshape(*lead, len(joints), 6))
    root = lower[..., -3:]
    trans = torch.stack([root[..., 0].cumsum(-1), root[..., 1], root[..., 2].cumsum(-1)], dim=-1)
    return forward_kinematics(rotmats, trans)[0][..., list(FOOT_JOINTS), :]


def split_parts(motion: Motion) -> dict[str, torch.Tensor]:
    """BEAT2 arrays -> {part: (T, PART_DIMS[part])} float32 tensors."""
    poses = torch.as_tensor(motion.poses, dtype=torch.float32).reshape(-1, NUM_JOINTS * 3)
    trans = torch.as_tensor(motion.trans, dtype=torch.float32).reshape(-1, 3)
    expressions = torch.as_tensor(motion.expressions, dtype=torch.float32).reshape(-1, NUM_EXPRESSIONS)
    sixd = axis_angle_to_6d(poses.reshape(-1, NUM_JOINTS, 3))  # (T, 55, 6)
    frames = sixd.shape[0]

    def joints_6d(part: str) -> torch.Tensor:
        return sixd[:, list(PART_JOINTS[part])].reshape(frames, -1)

    velocity = torch.zeros_like(trans)
    velocity[1:] = trans[1:] - trans[:-1]
    root = torch.stack([velocity[:, 0], trans[:, 1], velocity[:, 2]], dim=-1)
    return {
        "upper": joints_6d("upper"),
        "hands": joints_6d("hands"),
        "lower": torch.cat([joints_6d("lower"), foot_contacts(poses, trans), root], dim=-1),
        "face": torch.cat([joints_6d("face"), expressions], dim=-1),
    }


def merge_parts(parts: dict[str, torch.Tensor], start_xz: tuple[float, float] = (0.0, 0.0)) -> Motion:
    """The exact inverse of `split_parts` (foot contacts are derived data and dropped).

    Each part is (T, PART_DIMS[part]); the horizontal root path is integrated from `start_xz`
    (the first frame's x and z).
    """
    frames = parts["upper"].shape[0]
    sixd = torch.zeros(frames, NUM_JOINTS, 6, dtype=parts["upper"].dtype)
    sixd[..., 0] = 1.0  # identity rotation for the eyes, which are not generated
    sixd[..., 3] = 1.0
    for part in PART_NAMES:
        count = len(PART_JOINTS[part])
        sixd[:, list(PART_JOINTS[part])] = parts[part][:, : count * 6].reshape(frames, count, 6)
    poses = sixd_to_axis_angle(sixd).reshape(frames, NUM_JOINTS * 3)
    root = parts["lower"][:, -3:]
    trans = torch.stack([torch.cumsum(root[:, 0], 0) + start_xz[0], root[:, 1], torch.cumsum(root[:, 2], 0) + start_xz[1]], dim=-1)
    expressions = parts["face"][:, 6:]
    return Motion(
        poses=poses.detach().cpu().numpy().astype(np.float32),
        trans=trans.detach().cpu().numpy().astype(np.float64),
        expressions=expressions.detach().cpu().numpy().astype(np.float64),
    )


def in_place(motion: Motion) -> Motion:
    """The motion without horizontal root travel: x and z held at the first frame's (height and
    every rotation kept), for tools that move the character themselves."""
    trans = np.array(motion.trans, dtype=np.float64, copy=True)
    trans[:, [0, 2]] = trans[:1, [0, 2]]
    return Motion(motion.poses, trans, motion.expressions, motion.betas)
