"""Bodies that turn BEAT2 motion into a triangle mesh per frame.

`Mannequin` is the project's own license-free body, an artist's mannequin on the SMPL-X kinematic
tree and the project's rest skeleton: a torso swept as one smooth surface from hips to shoulders,
tapered limbs with round ends, palms and feet, hands with all 30 finger joints, and a head with a
jaw that opens. It is one mesh with linear-blend skin weights on
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
import scipy.sparse
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
    and the joints' bind positions (55, 3), root translation excluded. A body with a face of
    blend shapes adds them as morph targets (K, V, 3), their names, and their weight in every
    frame of the motion (T, K)."""

    vertices: np.ndarray
    normals: np.ndarray
    colours: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    joint_positions: np.ndarray
    name: str
    morph_targets: np.ndarray | None = None
    morph_names: list[str] | None = None
    morph_weights: np.ndarray | None = None


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


def _ellipsoid(centre, radii, subdivisions: int = 2) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    mesh.apply_scale(radii)
    mesh.apply_translation(centre)
    return mesh


def _loft(
    origin, axis, width, depth, s, a, b, offset=None, caps=(0.0, 0.0), around: int = 32, step: float = 0.008, cap_rings: int = 6
) -> trimesh.Trimesh:
    """A smooth closed surface swept along `axis` from `origin`: elliptical sections with half-extents
    `a` along `width` and `b` along `depth`, centred `offset` along `depth`, given at distances `s`
    and interpolated by monotone cubics (so a profile never bulges past the values it is given);
    each end is closed by a rounded cap `caps` deep. trimesh's primitives are spheres, capsules and
    boxes of one radius; a body's torso, tapered limbs, palms and feet need this one sweep."""
    from scipy.interpolate import PchipInterpolator

    origin, axis, width, depth = (np.asarray(v, dtype=np.float64) for v in (origin, axis, width, depth))
    s = np.asarray(s, dtype=np.float64)
    profile = np.stack([a, b, np.zeros(len(s)) if offset is None else offset], axis=1).astype(np.float64)
    along = np.linspace(s[0], s[-1], max(2, int(np.ceil((s[-1] - s[0]) / step)) + 1))
    sections = PchipInterpolator(s, profile)(along) if len(s) > 2 else np.stack([np.interp(along, s, p) for p in profile.T], 1)
    rings = [(x, *sec) for x, sec in zip(along, sections)]
    for end, sign in ((0, -1.0), (-1, 1.0)):
        x, sa, sb, so = rings[end]
        cap = [
            (x + sign * caps[end] * np.sin(t), sa * np.cos(t), sb * np.cos(t), so) for t in np.linspace(0, np.pi / 2, cap_rings + 1)[1:-1]
        ]
        rings = cap[::-1] + rings if end == 0 else rings + cap
    poles = [s[0] - caps[0], s[-1] + caps[1]]
    phi = np.linspace(0, 2 * np.pi, around, endpoint=False)
    cos, sin = np.cos(phi)[:, None], np.sin(phi)[:, None]
    points = [origin + x * axis + (ra * cos) * width + (rb * sin + ro) * depth for x, ra, rb, ro in rings]
    first, last = rings[0][3], rings[-1][3]
    vertices = np.concatenate([np.vstack(points), [origin + poles[0] * axis + first * depth, origin + poles[1] * axis + last * depth]])
    n, k = len(rings), np.arange(around)
    faces = []
    for i in range(n - 1):
        lo, hi = i * around + k, (i + 1) * around + k
        lo1, hi1 = i * around + (k + 1) % around, (i + 1) * around + (k + 1) % around
        faces += [np.stack([lo, lo1, hi1], 1), np.stack([lo, hi1, hi], 1)]
    bottom, top = n * around, n * around + 1
    faces.append(np.stack([np.full(around, bottom), (k + 1) % around, k], 1))
    last_ring = (n - 1) * around
    faces.append(np.stack([np.full(around, top), last_ring + k, last_ring + (k + 1) % around], 1))
    mesh = trimesh.Trimesh(vertices, np.concatenate(faces), process=False)
    if mesh.volume < 0:  # wind the faces so that normals point outward
        mesh = trimesh.Trimesh(vertices, mesh.faces[:, ::-1], process=False)
    return mesh


def _limb(start: np.ndarray, end: np.ndarray, radii: tuple[float, float], around: int = 20, cap_rings: int = 4) -> trimesh.Trimesh:
    """A tapered capsule from start to end: round ends of the two radii. Its sections are 2.5 cm
    apart, enough for the skin to bend it smoothly at the joints."""
    direction = np.asarray(end, dtype=np.float64) - start
    length = float(np.linalg.norm(direction))
    axis = direction / length
    width = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
    width /= np.linalg.norm(width)
    return _loft(
        start, axis, width, np.cross(axis, width), [0.0, length], radii, radii, caps=radii, around=around, step=0.025, cap_rings=cap_rings
    )


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
    return joints, weights


@dataclass
class _Piece:
    """One closed surface of the body in the bind pose and its skin: up to four joints and
    weights per vertex."""

    mesh: trimesh.Trimesh
    colour: np.ndarray
    joints: np.ndarray  # (V, 4)
    weights: np.ndarray  # (V, 4), summing to 1


def _piece(mesh: trimesh.Trimesh, colour, joint: int, child: int | None = None, *, rest: np.ndarray) -> _Piece:
    """A piece placed in `joint`'s frame (moved to the bind pose `rest` here) that follows `joint`,
    or the bone from `joint` to `child` with the blends of `_bone_weights`."""
    mesh = mesh.copy()
    mesh.apply_translation(rest[joint])
    joints, weights = _bone_weights(np.asarray(mesh.vertices), joint, child, rest)
    return _Piece(mesh, colour, np.pad(joints, ((0, 0), (0, 1))), np.pad(weights, ((0, 0), (0, 1))))


TORSO_PROFILE = np.array(
    [  # height in the bind pose (m), half-width, half-depth, forward offset: hips, waist, chest, shoulders
        (-0.47, 0.118, 0.085, -0.005),
        (-0.43, 0.150, 0.100, -0.005),
        (-0.37, 0.162, 0.104, -0.010),
        (-0.30, 0.150, 0.097, -0.010),
        (-0.22, 0.134, 0.090, -0.005),
        (-0.13, 0.143, 0.095, 0.000),
        (-0.04, 0.160, 0.103, 0.010),
        (0.04, 0.170, 0.100, 0.006),
        (0.095, 0.164, 0.086, -0.008),
    ]
)


def _torso(rest: np.ndarray) -> _Piece:
    """Pelvis, waist, chest and shoulders as one smooth surface. Each vertex follows the spine bone
    at its height, blending into the next across each joint; the shoulders' tops follow the collars
    a little, so a shrug lifts them with the arm."""
    h, a, b, z = TORSO_PROFILE.T
    mesh = _loft([0.0, 0.0, 0.0], [0, 1, 0], [1, 0, 0], [0, 0, 1], h, a, b, z, caps=(0.05, 0.055), around=40, step=0.015)
    points = np.asarray(mesh.vertices)
    chain = [JOINT_INDEX[n] for n in ("pelvis", "spine1", "spine2", "spine3", "neck")]
    band = np.clip(np.searchsorted(rest[chain[1:-1], 1], points[:, 1]), 0, len(chain) - 2)
    joints, weights = np.zeros((len(points), 4), np.int64), np.zeros((len(points), 4), np.float32)
    for i in range(len(chain) - 1):
        rows = band == i
        joints[rows, :3], weights[rows, :3] = _bone_weights(points[rows], chain[i], chain[i + 1], rest)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        collar = JOINT_INDEX[f"{side}_collar"]
        share = _smoothstep((sign * points[:, 0] - 0.08) / 0.08) * _smoothstep(points[:, 1] / 0.08)
        rows = share > 0
        weights[rows, :3] *= 1 - share[rows, None]
        joints[rows, 3], weights[rows, 3] = collar, share[rows]
    return _Piece(mesh, TORSO, joints, weights)


LIMB_RADII = {  # (at the joint, at the child joint) of the left side's bones; the right mirrors them
    ("left_shoulder", "left_elbow"): (0.056, 0.043),
    ("left_elbow", "left_wrist"): (0.044, 0.033),
    ("left_hip", "left_knee"): (0.086, 0.060),
    ("left_knee", "left_ankle"): (0.060, 0.043),
}


class Mannequin:
    """The built-in body. `mesh(rotmats, trans)` poses it; faces and colours are fixed."""

    name = "mannequin"

    def __init__(self):
        offsets, rest = REST_OFFSETS, rest_joint_positions()
        pieces = [_torso(rest)]
        for (joint, child), radii in LIMB_RADII.items():
            for side in ("left", "right"):
                j, c = JOINT_INDEX[joint.replace("left", side)], JOINT_INDEX[child.replace("left", side)]
                pieces.append(_piece(_limb(np.zeros(3), offsets[c], radii), _tint(side + "_", SKIN), j, c, rest=rest))
        for j in range(1, NUM_JOINTS):  # fingers: three segments each, the first reaching into the palm
            name = JOINT_NAMES[j]
            if not any(finger in name for finger in ("thumb", "index", "middle", "ring", "pinky")):
                continue
            r = 0.0105 if name.endswith("1") else 0.0095
            start = np.zeros(3) if not name.endswith("1") else offsets[j] * 0.35
            pieces.append(_piece(_limb(start, offsets[j], (r, r), 8, 2), _tint(name, SKIN), PARENTS[j], j, rest=rest))
            if name.endswith("3"):  # fingertip: carry the last segment on past the joint
                tip = offsets[j] / np.linalg.norm(offsets[j]) * 0.022
                pieces.append(_piece(_limb(np.zeros(3), tip, (0.0092, 0.0085), 8, 2), _tint(name, SKIN), j, rest=rest))
        neck, head, jaw = JOINT_INDEX["neck"], JOINT_INDEX["head"], JOINT_INDEX["jaw"]
        pieces.append(_piece(_limb(np.array([0.0, -0.06, 0.01]), offsets[head], (0.046, 0.04), 24), SKIN, neck, head, rest=rest))
        pieces.append(_piece(_ellipsoid([0, 0.09, 0.02], [0.085, 0.11, 0.1], 3), SKIN, head, rest=rest))
        pieces.append(
            _piece(_limb(np.array([0, 0.075, 0.1]), np.array([0, 0.05, 0.128]), (0.012, 0.01), 12, 3), SKIN, head, rest=rest)
        )  # nose
        for side in (-1, 1):
            pieces.append(_piece(_ellipsoid([0.032 * side, 0.1, 0.098], [0.011, 0.009, 0.006], 1), DARK, head, rest=rest))  # eyes
        pieces.append(_piece(_ellipsoid([0, 0.025, 0.045], [0.05, 0.03, 0.04], 2), SKIN * 0.92, jaw, rest=rest))  # lower jaw, opens
        pieces.append(_piece(_ellipsoid([0, 0.025, 0.088], [0.035, 0.012, 0.02], 1), DARK * 2, head, rest=rest))  # mouth behind the jaw
        for side, sign in (("left", 1.0), ("right", -1.0)):
            wrist, ankle = JOINT_INDEX[f"{side}_wrist"], JOINT_INDEX[f"{side}_ankle"]
            palm = _loft(
                [0.0, -0.005, -0.005],
                [sign, 0, 0],
                [0, 0, 1],
                [0, 1, 0],
                [0.0, 0.03, 0.065, 0.09],
                [0.03, 0.04, 0.043, 0.041],
                [0.017, 0.016, 0.014, 0.012],
                caps=(0.012, 0.01),
                around=24,
                step=0.015,
                cap_rings=4,
            )
            pieces.append(_piece(palm, _tint(f"{side}_", SKIN), wrist, rest=rest))
            toe = offsets[JOINT_INDEX[f"{side}_foot"]]
            foot = _loft(  # heel to toes, the sole flat
                [toe[0] * 0.3, -0.0775, -0.03],
                [0, 0, 1],
                [1, 0, 0],
                [0, 1, 0],
                [0.0, 0.05, 0.12, 0.17],
                [0.036, 0.042, 0.048, 0.042],
                [0.045, 0.04, 0.03, 0.022],
                [0.045, 0.04, 0.03, 0.022],
                caps=(0.035, 0.03),
                around=24,
                step=0.015,
                cap_rings=4,
            )
            pieces.append(_piece(foot, TORSO * 0.6, ankle, rest=rest))
        self._assemble(pieces, rest)

    def _assemble(self, pieces: list[_Piece], rest: np.ndarray) -> None:
        counts = np.cumsum([0] + [len(p.mesh.vertices) for p in pieces])
        self.rest_vertices = np.concatenate([p.mesh.vertices for p in pieces]).astype(np.float32)  # the bind pose
        self.rest_normals = np.concatenate([p.mesh.vertex_normals for p in pieces]).astype(np.float32)
        self.faces = np.concatenate([p.mesh.faces + c for p, c in zip(pieces, counts)]).astype(np.int32)
        self.colours = np.concatenate([np.tile(np.append(p.colour, 1.0), (len(p.mesh.vertices), 1)) for p in pieces]).astype(np.float32)
        self.rest_positions = rest
        joints = np.concatenate([p.joints for p in pieces]).astype(np.int64)
        weights = np.concatenate([p.weights for p in pieces]).astype(np.float32)
        order = np.argsort(-weights, axis=1, kind="stable")  # the strongest influence first
        self.skin_joints = np.take_along_axis(joints, order, 1)  # (V, 4): the joints each vertex follows
        self.skin_weights = np.take_along_axis(weights, order, 1)  # (V, 4), summing to 1
        self.skin_joints[self.skin_weights == 0] = 0
        rows = np.repeat(np.arange(len(weights)), weights.shape[1])
        self._skin = scipy.sparse.csr_array((self.skin_weights.ravel(), (rows, self.skin_joints.ravel())), shape=(len(weights), NUM_JOINTS))

    def mesh(self, rotations: np.ndarray, positions: np.ndarray) -> FrameMesh:
        """Global joint rotations (55, 3, 3) and positions (55, 3) of one frame -> its mesh, by
        linear blend skinning: v = sum_k w_k (R_k (v_rest - rest_k) + p_k), the weighted sum of the
        joints' 3 x 4 transforms taken once per vertex as a sparse product."""
        transforms = np.concatenate(
            [rotations.reshape(NUM_JOINTS, 9), positions - np.einsum("kij,kj->ki", rotations, self.rest_positions)], axis=1
        ).astype(np.float32)
        M = self._skin @ transforms  # (V, 12): each vertex's blended rotation (row-major) and offset
        columns = M[:, 0:9:3], M[:, 1:9:3], M[:, 2:9:3]
        v, n = self.rest_vertices, self.rest_normals
        vertices = columns[0] * v[:, :1] + columns[1] * v[:, 1:2] + columns[2] * v[:, 2:3] + M[:, 9:]
        normals = columns[0] * n[:, :1] + columns[1] * n[:, 1:2] + columns[2] * n[:, 2:3]
        normals /= np.maximum(np.sqrt((normals * normals).sum(1, keepdims=True)), 1e-8)
        return FrameMesh(vertices, normals)

    def skinned(self, motion: Motion | None = None) -> SkinnedMesh:
        """The body as glTF stores it (the mannequin has no shape parameters: `motion` unused)."""
        joints, weights = _four(self.skin_joints, self.skin_weights)
        return SkinnedMesh(
            self.rest_vertices,
            self.rest_normals,
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
        regressor puts them for that shape, its skin weights (the four strongest of 55), and its
        expression blend shapes as morph targets weighted by the take's expression coefficients
        (SMPL-X adds them to the shaped mesh before skinning, as glTF adds morph targets)."""
        model = self.model
        betas = torch.from_numpy(self._betas(motion))
        shaped = model.v_template + torch.einsum("l,mkl->mk", betas, model.shapedirs[..., : self.num_betas])
        joints = (model.J_regressor @ shaped)[:NUM_JOINTS]
        vertices = shaped.numpy().astype(np.float32)
        normals = np.asarray(trimesh.Trimesh(vertices, self.faces, process=False).vertex_normals, dtype=np.float32)
        normals[np.linalg.norm(normals, axis=1) < 0.5] = (0.0, 1.0, 0.0)  # a vertex in no face: glTF wants unit normals
        influence = np.tile(np.arange(NUM_JOINTS), (len(vertices), 1))
        skin_joints, skin_weights = _four(influence, model.lbs_weights.numpy()[:, :NUM_JOINTS])
        targets = model.expr_dirs[..., : self.num_expressions].permute(2, 0, 1).numpy().astype(np.float32)  # (K, V, 3)
        weights = np.zeros((0 if motion is None else motion.num_frames, len(targets)), np.float32)
        if motion is not None:
            given = min(len(targets), motion.expressions.shape[1])
            weights[:, :given] = motion.expressions[:, :given]
        return SkinnedMesh(
            vertices,
            normals,
            self.colours,
            self.faces,
            skin_joints,
            skin_weights,
            joints.numpy().astype(np.float32),
            "smplx",
            morph_targets=targets,
            morph_names=[f"expression_{k:03d}" for k in range(len(targets))],
            morph_weights=weights,
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
