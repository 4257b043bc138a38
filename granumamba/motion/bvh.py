"""BVH export of BEAT2 motion for animation tools (Blender imports it as it is).

The skeleton is SMPL-X's 55 joints with the project's rest skeleton (T-pose, offsets in
centimetres, +y up); the root carries the translation; every joint rotates in ZXY order;
30 frames per second. Written through bvhio.
"""

from __future__ import annotations

import os

try:
    from pyglm import glm
except ImportError:  # PyGLM < 2.8
    import glm
import numpy as np
import roma
import torch
from bvhio import BvhContainer, BvhJoint, writeBvh
from SpatialTransform import Pose

from .. import FPS
from .parts import Motion
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS

CENTIMETRES = 100.0
ROTATION_CHANNELS = ["Zrotation", "Xrotation", "Yrotation"]


def _end_site(joint: int) -> np.ndarray:
    """A short bone past each leaf joint, so tools draw fingertips, toes, jaw and eyes."""
    name = JOINT_NAMES[joint]
    if name == "jaw":
        return np.array([0.0, -0.04, 0.07])
    if name.endswith("eye"):
        return np.array([0.0, 0.0, 0.02])
    if name.endswith("foot"):
        return np.array([0.0, -0.02, 0.06])
    offset = REST_OFFSETS[joint]
    return offset / (np.linalg.norm(offset) + 1e-9) * 0.02


def write_bvh(path: str | os.PathLike, motion: Motion) -> None:
    frames = motion.num_frames
    quats = roma.rotvec_to_unitquat(torch.as_tensor(motion.poses, dtype=torch.float64).reshape(frames, NUM_JOINTS, 3)).numpy()
    root_positions = (np.asarray(motion.trans, np.float64) + REST_OFFSETS[0]) * CENTIMETRES
    joints: list[BvhJoint] = []
    for j in range(NUM_JOINTS):
        offset = np.zeros(3) if PARENTS[j] < 0 else REST_OFFSETS[j] * CENTIMETRES
        joint = BvhJoint(JOINT_NAMES[j], glm.vec3(*offset.tolist()))
        joint.Channels = (["Xposition", "Yposition", "Zposition"] if j == 0 else []) + ROTATION_CHANNELS
        joint.EndSite = glm.vec3(*(_end_site(j) * CENTIMETRES).tolist())
        x, y, z, w = quats[:, j].T  # roma: (x, y, z, w); glm.quat: (w, x, y, z)
        position = root_positions if j == 0 else np.zeros((frames, 3))
        joint.Keyframes = [Pose(glm.vec3(*position[f].tolist()), glm.quat(w[f], x[f], y[f], z[f])) for f in range(frames)]
        joints.append(joint)
        if PARENTS[j] >= 0:
            joints[PARENTS[j]].Children.append(joint)
    writeBvh(str(path), BvhContainer(joints[0], frames, 1.0 / FPS), percision=6)
