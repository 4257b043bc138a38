"""Rotation conversions (axis-angle, matrix, 6D), batched over any leading dimensions.

6D is the first two columns of the rotation matrix (Zhou et al., 2019), the continuous
representation the model trains on; axis-angle is how BEAT2 stores poses.
"""

from __future__ import annotations

import roma
import torch


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix."""
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle with angle in [0, pi]."""
    return roma.rotmat_to_rotvec(rotmat)


def matrix_to_6d(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, column-major (c0x, c1x, c0y, ...)."""
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3), projecting any 6-vector onto a rotation by Gram-Schmidt."""
    return roma.special_gramschmidt(sixd.reshape(*sixd.shape[:-1], 3, 2))


def axis_angle_to_6d(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 6)."""
    return matrix_to_6d(axis_angle_to_matrix(rotvec))


def sixd_to_axis_angle(sixd: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3)."""
    return matrix_to_axis_angle(sixd_to_matrix(sixd))
