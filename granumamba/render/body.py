"""Bodies that turn BEAT2 motion into a triangle mesh per frame.

`Mannequin` is the project's own license-free body: pieces (capsules, ellipsoids, boxes) on the
SMPL-X kinematic tree and the project's rest skeleton, with a torso, hands with all 30 finger
joints, feet, and a head with a jaw that opens. It is one mesh with linear-blend skin weights on
the 55 joints: near a joint a limb's surface blends the two bones that meet there, so elbows,
knees, wrists and knuckles bend smoothly instead of folding rigid pieces into each other. The
offscreen renderer skins it on the CPU (`mesh`), the glTF export carries the same weights for
Blender, game engines and the 3D view.

`SMPLXBody` is the real SMPL-X mesh through the `smplx` package, for users with the model files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from ..motion.parts import Motion
from ..motion.rotations import axis_angle_to_matrix
from ..motion.skeleton import (
    JOINT_INDEX,
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    REST_OFFSETS,
    forward_kinematics,
    rest_joint_positions,
)

SKIN = np.array([0.86, 0.68, 0.55])
LEFT_TINT = np.array([0.35, 0.55, 0.85])  # the body's left side reads bluish, the right warm
RIGHT_TINT = np.array([0.90, 0.45, 0.30])
TORSO = np.array([0.30, 0.36, 0.46])
DARK = np.array([0.15, 0.13, 0.13])


@dataclass
class SkinnedMesh:
    """A body in its bind pose (every joint rotation zero) with its skin, as glTF stores it:
    vertices, normals, colours (V, 4), faces, up to four joints and weights per vertex (V, 4),
    and the joints' bind positions (55, 3), root translation excluded."""

    vertices: np.ndarray
    normals: np.ndarray
    colours: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    joint_positions: np.ndarray
    name: str


def _four(joints: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, k) influences -> the four strongest per vertex, weights summing to 1 (glTF's limit)."""
    order = np.argsort(-weights, axis=1)[:, :4]
    joints, weights = np.take_along_axis(joints, order, 1), np.take_along_axis(weights, order, 1)
    pad = 4 - joints.shape[1]
    joints, weights = np.pad(joints, ((0, 0), (0, pad))), np.pad(weights, ((0, 0), (0, pad)))
    weights = weights / weights.sum(1, keepdims=True)
    return np.where(weights > 0, joints, 0).astype(np.uint16), weights.astype(np.float32)


@dataclass
class FrameMesh:
    vertices: np.ndarray  # (V, 3) float32
    normals: np.ndarray  # (V, 3) float32


def _tint(name: str, base: np.ndarray) -> np.ndarray:
    if name.startswith("left_"):
        return 0.55 * base + 0.45 * LEFT_TINT
    if name.startswith("right_"):
        return 0.55 * base + 0.45 * RIGHT_TINT
    return base


def _segment(start: np.ndarray, end: np.ndarray, radius: float, sections: int = 16) -> trimesh.Trimesh:
    """A capsule from start to end (in the owning joint's frame)."""
    direction = end - start
    length = float(np.linalg.norm(direction))
    mesh = trimesh.creation.capsule(height=max(length, 1e-4), radius=radius, count=[sections, sections])
    mesh.apply_translation([0, 0, length / 2])  # capsule along +z from 0 to length
    if length > 1e-6:
        mesh.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], direction / length))
    mesh.apply_translation(start)
    return mesh


def _ellipsoid(centre, radii, subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    mesh.apply_scale(radii)
    mesh.apply_translation(centre)
    return mesh


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


BLEND = 0.3  # of a bone's length, each side of a joint, over which two bones' influences cross


def _bone_weights(points: np.ndarray, joint: int, child: int | None, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin weights of a piece's rest-pose vertices (V, 3) -> joints (V, 3), weights (V, 3).

    A bone piece (from `joint` to its `child`) blends into the child's bone near the child joint
    and into the bone above (`joint`'s parent) near `joint`, half and half at each joint, so the
    two pieces that meet at a joint deform alike there. Other pieces follow `joint` alone."""
    count = len(points)
    joints = np.tile([joint, joint, joint], (count, 1))
    weights = np.zeros((count, 3), np.float32)
    weights[:, 0] = 1.0
    if child is None:
        return joints, weights
    start, end = rest[joint], rest[child]
    axis = end - start
    t = (points - start) @ axis / max(float(axis @ axis), 1e-12)  # 0 at `joint`, 1 at the child
    to_child = _smoothstep((t - (1 - BLEND)) / (2 * BLEND))
    parent = PARENTS[joint]
    to_parent = _smoothstep(((BLEND) - t) / (2 * BLEND)) if parent >= 0 else np.zeros(count)
    joints[:, 1], joints[:, 2] = child, max(parent, 0)
    weights[:, 1], weights[:, 2] = to_child, to_parent
    weights[:, 0] = 1.0 - to_child - to_parent
    order = np.argsort(-weights, axis=1)  # the strongest influence first
    return np.take_along_axis(joints, order, 1), np.take_along_axis(weights, order, 1)


def _box(centre, extents) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(centre)
    return mesh


class Mannequin:
    """The built-in body. `mesh(rotmats, trans)` poses it; faces and colours are fixed."""

    name = "mannequin"

    def __init__(self):
        pieces: list[tuple] = []  # (joint it follows, mesh in joint frame, colour[, the bone's child joint])
        offsets = REST_OFFSETS
        radius = {
            "spine1": 0.12,
            "spine2": 0.125,
            "spine3": 0.13,
            "neck": 0.055,
            "left_hip": 0.09,
            "left_knee": 0.07,
            "left_ankle": 0.055,
            "left_collar": 0.06,
            "left_shoulder": 0.06,
            "left_elbow": 0.047,
            "left_wrist": 0.04,
        }
        for j in range(1, NUM_JOINTS):
            name = JOINT_NAMES[j]
            parent = PARENTS[j]
            if name in ("jaw", "left_eye", "right_eye") or name.startswith(("left_foot", "right_foot")):
                continue
            key = name.replace("right_", "left_")
            if "thumb" in name or "index" in name or "middle" in name or "ring" in name or "pinky" in name:
                r = 0.0105 if name.endswith("1") else 0.0095
                start = np.zeros(3) if not name.endswith("1") else offsets[j] * 0.35
                pieces.append((parent, _segment(start, offsets[j], r, 8), _tint(name, SKIN), j))
                if name.endswith("3"):  # fingertip: carry the last segment on past the joint
                    tip = offsets[j] / np.linalg.norm(offsets[j]) * 0.022
                    pieces.append((j, _segment(np.zeros(3), tip, 0.0088, 8), _tint(name, SKIN)))
                continue
            r = radius.get(key, 0.05)
            colour = TORSO if name.startswith("spine") or name in ("neck",) or key in ("left_hip", "left_collar") else _tint(name, SKIN)
            if key in ("left_hip",):
                colour = TORSO
            pieces.append((parent, _segment(np.zeros(3), offsets[j], r), colour, j))
        pelvis = JOINT_INDEX["pelvis"]
        pieces.append((pelvis, _ellipsoid([0, 0.02, -0.01], [0.17, 0.11, 0.12]), TORSO))
        chest = JOINT_INDEX["spine3"]
        pieces.append((chest, _ellipsoid([0, 0.1, 0.0], [0.18, 0.13, 0.11]), TORSO))
        head = JOINT_INDEX["head"]
        pieces.append((head, _ellipsoid([0, 0.09, 0.02], [0.085, 0.11, 0.1], 3), SKIN))
        pieces.append((head, _segment(np.array([0, 0.075, 0.1]), np.array([0, 0.05, 0.128]), 0.012, 6), SKIN))  # nose
        for side in (-1, 1):
            pieces.append((head, _ellipsoid([0.032 * side, 0.1, 0.098], [0.011, 0.009, 0.006], 1), DARK))  # eyes
        jaw = JOINT_INDEX["jaw"]
        pieces.append((jaw, _ellipsoid([0, -0.025, 0.06], [0.06, 0.03, 0.065], 2), SKIN * 0.92))  # lower jaw, opens
        pieces.append((head, _ellipsoid([0, 0.025, 0.088], [0.035, 0.012, 0.02], 1), DARK * 2))  # mouth cavity behind the jaw
        for side in ("left", "right"):
            wrist = JOINT_INDEX[f"{side}_wrist"]
            sign = 1 if side == "left" else -1
            pieces.append((wrist, _box([sign * 0.05, -0.005, 0.0], [0.09, 0.025, 0.08]), _tint(f"{side}_", SKIN)))
            ankle = JOINT_INDEX[f"{side}_ankle"]
            foot = JOINT_INDEX[f"{side}_foot"]
            pieces.append((ankle, _box(offsets[foot] * 0.5 + [0, -0.02, 0.0], [0.09, 0.06, 0.2]), TORSO * 0.6))
        vertices, faces, joint_of, colours, normals, skin_joints, skin_weights = [], [], [], [], [], [], []
        count = 0
        rest = rest_joint_positions()
        for joint, mesh, colour, *child in pieces:
            local = np.asarray(mesh.vertices, dtype=np.float32)
            vertices.append(local)
            normals.append(np.asarray(mesh.vertex_normals, dtype=np.float32))
            faces.append(np.asarray(mesh.faces) + count)
            joint_of.append(np.full(len(local), joint))
            colours.append(np.tile(np.append(colour, 1.0), (len(local), 1)))
            influence, weight = _bone_weights(local + rest[joint], joint, child[0] if child else None, rest)
            skin_joints.append(influence)
            skin_weights.append(weight)
            count += len(local)
        self.local_vertices = np.concatenate(vertices)  # in the frame of the joint each vertex mostly follows
        self.local_normals = np.concatenate(normals)
        self.faces = np.concatenate(faces).astype(np.int32)
        self.joint_of = np.concatenate(joint_of)
        self.colours = np.concatenate(colours).astype(np.float32)
        self.rest_positions = rest
        self.rest_vertices = (self.local_vertices + rest[self.joint_of]).astype(np.float32)  # the bind pose (rest rotations are identity)
        self.skin_joints = np.concatenate(skin_joints).astype(np.int64)  # (V, 3): the joints each vertex follows
        self.skin_weights = np.concatenate(skin_weights).astype(np.float32)  # (V, 3), summing to 1
        # the vertices that do not simply follow the joint they are placed on: near a joint
        self._blended = np.flatnonzero((self.skin_weights[:, 0] < 1.0) | (self.skin_joints[:, 0] != self.joint_of))

    def mesh(self, rotations: np.ndarray, positions: np.ndarray) -> FrameMesh:
        """Global joint rotations (55, 3, 3) and positions (55, 3) of one frame -> its mesh, by
        linear blend skinning: v = sum_k w_k (R_k (v_rest - rest_k) + p_k). Vertices that follow
        one joint alone (most) take the rigid shortcut."""
        R = rotations[self.joint_of]  # (V, 3, 3)
        vertices = np.einsum("vij,vj->vi", R, self.local_vertices) + positions[self.joint_of]
        normals = np.einsum("vij,vj->vi", R, self.local_normals)
        blend = self._blended
        if blend.size:
            joints, weights = self.skin_joints[blend], self.skin_weights[blend]  # (B, 3)
            offsets = positions - np.einsum("kij,kj->ki", rotations, self.rest_positions)  # p_k - R_k rest_k
            M = np.einsum("bk,bkij->bij", weights, rotations[joints])  # blended rotation parts (B, 3, 3)
            t = np.einsum("bk,bki->bi", weights, offsets[joints])
            vertices[blend] = np.einsum("bij,bj->bi", M, self.rest_vertices[blend]) + t
            n = np.einsum("bij,bj->bi", M, self.local_normals[blend])
            normals[blend] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-8)
        return FrameMesh(vertices.astype(np.float32), normals.astype(np.float32))

    def skinned(self, motion: Motion | None = None) -> SkinnedMesh:
        """The body as glTF stores it (the mannequin has no shape parameters: `motion` unused)."""
        joints, weights = _four(self.skin_joints, self.skin_weights)
        return SkinnedMesh(
            self.rest_vertices,
            self.local_normals,
            self.colours,
            self.faces,
            joints,
            weights,
            self.rest_positions.astype(np.float32),
            "mannequin",
        )

    def frames(self, motion: Motion):
        """Yield a FrameMesh per frame of `motion`."""
        rotations, positions = pose_motion(motion)
        for rot, pos in zip(rotations, positions):
            yield self.mesh(rot, pos)


def pose_motion(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (T, 55, 3, 3) and joint positions (T, 55, 3) on the rest skeleton."""
    poses = torch.as_tensor(motion.poses, dtype=torch.float32).reshape(-1, NUM_JOINTS, 3)
    positions, rotations = forward_kinematics(axis_angle_to_matrix(poses), torch.as_tensor(motion.trans, dtype=torch.float32))
    return rotations.numpy(), positions.numpy()


class SMPLXError(ValueError):
    """SMPL-X model files that cannot be used; the message says what to do."""


SMPLX_ENV = "GRANUMAMBA_SMPLX"


def find_smplx_model(path: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """The SMPL-X .npz file from `path` (a file or a folder with SMPLX_<GENDER>.npz) or the
    GRANUMAMBA_SMPLX environment variable."""
    path = path or os.environ.get(SMPLX_ENV)
    if not path:
        raise SMPLXError(
            f"no SMPL-X model files configured: pass --smplx DIR or set {SMPLX_ENV} to the folder with "
            "SMPLX_NEUTRAL.npz (from the SMPL-X website, after registration)."
        )
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / f"SMPLX_{gender.upper()}.npz"
        if not path.is_file() and (path.parent / "smplx" / path.name).is_file():
            path = path.parent / "smplx" / path.name
    if path.suffix == ".pkl":
        raise SMPLXError(f"{path}: use the .npz version of the SMPL-X model files (the .pkl needs unpickling).")
    if not path.is_file():
        raise SMPLXError(f"{path}: not found. The folder should hold SMPLX_{gender.upper()}.npz.")
    return path


class SMPLXBody:
    """The SMPL-X mesh through the `smplx` package, with the motion's betas and expressions."""

    name = "smplx"
    REQUIRED = ("f", "v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")

    def __init__(self, path: str | os.PathLike | None = None, gender: str = "neutral", batch: int = 64):
        import smplx

        model_file = find_smplx_model(path, gender)
        try:  # check the file before smplx reads it (smplx allows pickles; a valid model has none)
            with np.load(model_file, allow_pickle=False) as data:
                missing = [k for k in self.REQUIRED if k not in data.files]
                shapes = {} if missing else {k: data[k].shape for k in ("v_template", "shapedirs")}
        except (OSError, ValueError) as err:
            raise SMPLXError(f"{model_file}: not a usable SMPL-X .npz ({err}).") from None
        if missing:
            raise SMPLXError(f"{model_file}: not an SMPL-X model file (missing {', '.join(missing)}).")
        self.num_betas = min(300, max(10, shapes["shapedirs"][-1] - 100 if shapes["shapedirs"][-1] > 100 else 10))
        self.model = smplx.create(
            str(model_file),
            model_type="smplx",
            gender=gender,
            use_pca=False,
            flat_hand_mean=True,
            num_betas=self.num_betas,
            num_expression_coeffs=100,
            batch_size=batch,
            ext="npz",
        )
        self.num_expressions = self.model.num_expression_coeffs
        self.faces = np.asarray(self.model.faces, dtype=np.int32)
        self.colours = np.tile(np.append(SKIN, 1.0), (shapes["v_template"][0], 1)).astype(np.float32)
        self.batch = batch

    def _betas(self, motion: Motion | None) -> np.ndarray:
        betas = np.zeros(self.num_betas, dtype=np.float32)
        if motion is not None and motion.betas is not None:
            n = min(self.num_betas, motion.betas.shape[0])
            betas[:n] = motion.betas[:n]
        return betas

    @torch.no_grad()
    def skinned(self, motion: Motion | None = None) -> SkinnedMesh:
        """The SMPL-X mesh with the take's betas in its bind pose, its joints where SMPL-X's
        regressor puts them for that shape, and its skin weights (the four strongest of 55)."""
        model = self.model
        betas = torch.from_numpy(self._betas(motion))
        shaped = model.v_template + torch.einsum("l,mkl->mk", betas, model.shapedirs[..., : self.num_betas])
        joints = (model.J_regressor @ shaped)[:NUM_JOINTS]
        vertices = shaped.numpy().astype(np.float32)
        normals = np.asarray(trimesh.Trimesh(vertices, self.faces, process=False).vertex_normals, dtype=np.float32)
        normals[np.linalg.norm(normals, axis=1) < 0.5] = (0.0, 1.0, 0.0)  # a vertex in no face: glTF wants unit normals
        influence = np.tile(np.arange(NUM_JOINTS), (len(vertices), 1))
        skin_joints, skin_weights = _four(influence, model.lbs_weights.numpy()[:, :NUM_JOINTS])
        return SkinnedMesh(
            vertices, normals, self.colours, self.faces, skin_joints, skin_weights, joints.numpy().astype(np.float32), "smplx"
        )

    @torch.no_grad()
    def frames(self, motion: Motion):
        frames = motion.num_frames
        poses = torch.as_tensor(motion.poses, dtype=torch.float32).reshape(frames, NUM_JOINTS, 3)
        trans = torch.as_tensor(motion.trans, dtype=torch.float32)
        expressions = torch.as_tensor(motion.expressions, dtype=torch.float32)[:, : self.num_expressions]
        betas = self._betas(motion)
        for start in range(0, frames, self.batch):
            stop = min(start + self.batch, frames)
            n = self.batch  # smplx's module has a fixed batch: pad the last one with its final frame
            index = torch.arange(start, start + n).clamp(max=frames - 1)
            p = poses[index]
            out = self.model(
                betas=torch.from_numpy(betas)[None].expand(n, -1),
                global_orient=p[:, 0],
                body_pose=p[:, 1:22].reshape(n, -1),
                jaw_pose=p[:, 22],
                leye_pose=p[:, 23],
                reye_pose=p[:, 24],
                left_hand_pose=p[:, 25:40].reshape(n, -1),
                right_hand_pose=p[:, 40:55].reshape(n, -1),
                expression=expressions[index],
                transl=trans[index],
                return_verts=True,
            )
            for verts in out.vertices.numpy()[: stop - start]:
                mesh = trimesh.Trimesh(verts, self.faces, process=False)
                yield FrameMesh(verts.astype(np.float32), np.asarray(mesh.vertex_normals, dtype=np.float32))


def make_body(kind: str = "mannequin", smplx_path: str | os.PathLike | None = None):
    if kind == "mannequin":
        return Mannequin()
    if kind == "smplx":
        return SMPLXBody(smplx_path)
    raise ValueError(f"body is 'mannequin' or 'smplx', not {kind!r}")
