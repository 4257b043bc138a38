"""The SMPL-X 55-joint kinematic tree, the project's own rest skeleton, forward kinematics.

The rest skeleton is designed here (a 1.75 m adult, metres, +y up, +z forward, +x the body's
left), not taken from SMPL-X model files, so that the project runs without them. Like SMPL-X,
the zero pose is a T-pose: BEAT2's joint rotations are defined relative to it, so any other
rest pose would bend every gesture. `RELAXED_POSE` is the relaxed standing posture as a pose.
The root offset puts the feet on the floor (y = 0) for BEAT2's typical translation (y about 1.29).
"""

from __future__ import annotations

import numpy as np
import torch

from .rotations import axis_angle_to_matrix

NUM_JOINTS = 55

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "jaw",
    "left_eye",
    "right_eye",
) + tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3))

PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    15,
    15,
    15,
) + tuple(
    wrist if k == 0 else 25 + 15 * side + 3 * finger + k - 1 for side, wrist in ((0, 20), (1, 21)) for finger in range(5) for k in range(3)
)

JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

# Offsets of each joint from its parent in the rest (T-)pose; left side only where mirrored.
_LEFT_AND_CENTRE_OFFSETS = {
    "pelvis": (0.0, -0.36, 0.0),
    "left_hip": (0.085, -0.075, -0.005),
    "spine1": (0.0, 0.105, -0.015),
    "left_knee": (0.012, -0.385, 0.005),
    "spine2": (0.0, 0.13, 0.005),
    "left_ankle": (-0.005, -0.4, -0.035),
    "spine3": (0.0, 0.055, 0.02),
    "left_foot": (0.02, -0.055, 0.125),
    "neck": (0.0, 0.215, -0.03),
    "left_collar": (0.07, 0.115, -0.005),
    "head": (0.0, 0.085, 0.045),
    "left_shoulder": (0.115, 0.035, -0.015),
    "left_elbow": (0.26, -0.01, -0.02),
    "left_wrist": (0.25, 0.005, 0.0),
    "jaw": (0.0, -0.015, 0.025),
    "left_eye": (0.032, 0.06, 0.085),
    "left_index1": (0.092, -0.004, 0.026),
    "left_index2": (0.036, -0.002, 0.0),
    "left_index3": (0.024, -0.002, 0.0),
    "left_middle1": (0.097, -0.002, 0.004),
    "left_middle2": (0.04, -0.002, 0.0),
    "left_middle3": (0.027, -0.002, 0.0),
    "left_pinky1": (0.08, -0.008, -0.036),
    "left_pinky2": (0.026, -0.002, 0.0),
    "left_pinky3": (0.019, -0.002, 0.0),
    "left_ring1": (0.09, -0.005, -0.016),
    "left_ring2": (0.036, -0.002, 0.0),
    "left_ring3": (0.025, -0.002, 0.0),
    "left_thumb1": (0.028, -0.018, 0.025),
    "left_thumb2": (0.026, -0.006, 0.022),
    "left_thumb3": (0.022, -0.004, 0.017),
}


def _rest_offsets() -> np.ndarray:
    offsets = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
    for i, name in enumerate(JOINT_NAMES):
        if name in _LEFT_AND_CENTRE_OFFSETS:
            offsets[i] = _LEFT_AND_CENTRE_OFFSETS[name]
        else:  # a right-side joint mirrors its left twin across the sagittal plane
            x, y, z = _LEFT_AND_CENTRE_OFFSETS[name.replace("right_", "left_")]
            offsets[i] = (-x, y, z)
    return offsets


REST_OFFSETS: np.ndarray = _rest_offsets()
"""(55, 3) offset of each joint from its parent in the T-pose; row 0 is the root's offset from `trans`."""


def rest_joint_positions() -> np.ndarray:
    """(55, 3) joint positions of the T-pose with zero translation."""
    positions = np.zeros_like(REST_OFFSETS)
    for i, parent in enumerate(PARENTS):
        positions[i] = REST_OFFSETS[i] + (positions[parent] if parent >= 0 else 0.0)
    return positions


def _relaxed_pose() -> np.ndarray:
    pose = np.zeros((NUM_JOINTS, 3), dtype=np.float32)
    # Arms down by the sides with elbows slightly bent, fingers loosely curled.
    pose[JOINT_INDEX["left_shoulder"]] = (0.0, 0.0, -1.25)
    pose[JOINT_INDEX["right_shoulder"]] = (0.0, 0.0, 1.25)
    pose[JOINT_INDEX["left_elbow"]] = (0.0, -0.25, 0.0)
    pose[JOINT_INDEX["right_elbow"]] = (0.0, 0.25, 0.0)
    for side, sign in (("left", -1.0), ("right", 1.0)):  # curl towards the palm
        for finger in _FINGERS[:4]:
            for k in (1, 2, 3):
                pose[JOINT_INDEX[f"{side}_{finger}{k}"]] = (0.0, 0.0, sign * 0.25)
    return pose.reshape(-1)


RELAXED_POSE: np.ndarray = _relaxed_pose()
"""(165,) axis-angle: standing relaxed, arms down. Starting posture of the synthetic corpus."""


def forward_kinematics(
    rotmats: torch.Tensor, trans: torch.Tensor | None = None, offsets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint positions and orientations.

    rotmats: (..., J, 3, 3) local rotations of the first J joints (55 for all; parents come
    before children, so 22 is the body alone); trans: (..., 3); offsets: (55, 3), default the
    project's rest skeleton. Returns positions (..., J, 3) and global rotations (..., J, 3, 3).
    """
    if offsets is None:
        offsets = torch.as_tensor(REST_OFFSETS, dtype=rotmats.dtype, device=rotmats.device)
    global_rot: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    for i, parent in enumerate(PARENTS[: rotmats.shape[-3]]):
        if parent < 0:
            global_rot.append(rotmats[..., i, :, :])
            root = offsets[i].expand(*rotmats.shape[:-3], 3)
            positions.append(root + trans if trans is not None else root)
        else:
            global_rot.append(global_rot[parent] @ rotmats[..., i, :, :])
            positions.append(positions[parent] + (global_rot[parent] @ offsets[i].unsqueeze(-1)).squeeze(-1))
    return torch.stack(positions, dim=-2), torch.stack(global_rot, dim=-3)


def joint_positions(poses: torch.Tensor, trans: torch.Tensor | None = None) -> torch.Tensor:
    """(..., 165) axis-angle poses (+ (..., 3) translation) -> (..., 55, 3) joint positions."""
    rotmats = axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))
    return forward_kinematics(rotmats, trans)[0]
