"""Motion representation: rotations, the SMPL-X skeleton, body parts, normalisation."""

from .normalize import Normalizer
from .parts import PART_DIMS, PART_JOINTS, PART_NAMES, Motion, merge_parts, split_parts, upper_body_positions
from .rotations import (
    axis_angle_to_6d,
    axis_angle_to_matrix,
    matrix_to_6d,
    matrix_to_axis_angle,
    sixd_to_axis_angle,
    sixd_to_matrix,
)
from .skeleton import (
    JOINT_INDEX,
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    RELAXED_POSE,
    REST_OFFSETS,
    forward_kinematics,
    joint_positions,
    rest_joint_positions,
)

__all__ = [
    "JOINT_INDEX",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PARENTS",
    "PART_DIMS",
    "PART_JOINTS",
    "PART_NAMES",
    "RELAXED_POSE",
    "REST_OFFSETS",
    "Motion",
    "Normalizer",
    "axis_angle_to_6d",
    "axis_angle_to_matrix",
    "forward_kinematics",
    "joint_positions",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "merge_parts",
    "rest_joint_positions",
    "sixd_to_axis_angle",
    "sixd_to_matrix",
    "split_parts",
    "upper_body_positions",
]
