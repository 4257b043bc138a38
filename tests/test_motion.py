import math

import numpy as np
import pytest
import torch

from granumamba.motion import (
    JOINT_INDEX,
    JOINT_NAMES,
    PARENTS,
    PART_DIMS,
    PART_JOINTS,
    REST_OFFSETS,
    Motion,
    Normalizer,
    axis_angle_to_6d,
    axis_angle_to_matrix,
    forward_kinematics,
    joint_positions,
    matrix_to_axis_angle,
    merge_parts,
    rest_joint_positions,
    sixd_to_axis_angle,
    sixd_to_matrix,
    split_parts,
    upper_body_positions,
)


def random_rotvecs(n: int, angles: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    if angles is None:
        angles = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    return axis * angles[:, None]


def same_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (axis_angle_to_matrix(a) - axis_angle_to_matrix(b)).abs().amax(dim=(-1, -2))


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 0.5, 2.0, math.pi - 1e-4, math.pi - 1e-7, math.pi])
def test_axis_angle_round_trips_through_matrix_and_6d_at_every_angle(angle):
    rotvecs = random_rotvecs(64, torch.full((64,), angle, dtype=torch.float64))
    back = matrix_to_axis_angle(axis_angle_to_matrix(rotvecs))
    assert same_rotation(back, rotvecs).max() < 1e-9
    assert same_rotation(sixd_to_axis_angle(axis_angle_to_6d(rotvecs)), rotvecs).max() < 1e-9
    # away from pi the axis-angle itself comes back (at pi, v and -v are the same rotation)
    if angle < 3.0:
        assert torch.allclose(back, rotvecs, atol=1e-7)


def test_conversions_are_batched_over_leading_dimensions():
    rotvecs = random_rotvecs(2 * 5 * 7).reshape(2, 5, 7, 3)
    assert axis_angle_to_matrix(rotvecs).shape == (2, 5, 7, 3, 3)
    assert axis_angle_to_6d(rotvecs).shape == (2, 5, 7, 6)
    assert sixd_to_axis_angle(axis_angle_to_6d(rotvecs)).shape == (2, 5, 7, 3)


def test_6d_of_any_vector_projects_to_a_proper_rotation():
    mats = sixd_to_matrix(torch.randn(100, 6, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    assert torch.allclose(mats @ mats.transpose(-1, -2), eye, atol=1e-10)
    assert torch.allclose(torch.linalg.det(mats), torch.ones(100, dtype=torch.float64), atol=1e-10)


def test_kinematic_tree_is_smplx_55_joints_with_parents_before_children():
    assert len(JOINT_NAMES) == len(PARENTS) == 55
    assert PARENTS[0] == -1 and all(0 <= p < i for i, p in enumerate(PARENTS) if i)
    assert JOINT_NAMES[22] == "jaw" and JOINT_NAMES[25] == "left_index1" and JOINT_NAMES[40] == "right_index1"
    assert PARENTS[JOINT_INDEX["left_index1"]] == JOINT_INDEX["left_wrist"]
    assert PARENTS[JOINT_INDEX["right_thumb3"]] == JOINT_INDEX["right_thumb2"]
    assert PARENTS[JOINT_INDEX["jaw"]] == JOINT_INDEX["head"]


def test_rest_skeleton_has_human_proportions_and_is_mirror_symmetric():
    pos = rest_joint_positions()
    height = pos[JOINT_INDEX["head"], 1] - min(pos[JOINT_INDEX["left_foot"], 1], pos[JOINT_INDEX["left_ankle"], 1])
    assert 1.35 < height < 1.7  # head joint above the feet for a 1.6-1.9 m adult
    arm_span = pos[JOINT_INDEX["left_middle3"], 0] - pos[JOINT_INDEX["right_middle3"], 0]
    assert 1.5 < arm_span < 1.95
    upper_arm = np.linalg.norm(REST_OFFSETS[JOINT_INDEX["left_elbow"]])
    thigh = np.linalg.norm(REST_OFFSETS[JOINT_INDEX["left_knee"]])
    assert 0.22 < upper_arm < 0.34 and 0.34 < thigh < 0.48
    for i, name in enumerate(JOINT_NAMES):
        if name.startswith("left_"):
            j = JOINT_INDEX[name.replace("left_", "right_")]
            assert np.allclose(pos[i] * [-1, 1, 1], pos[j])


def test_forward_kinematics_matches_a_chain_computed_by_hand():
    rotmats = torch.eye(3).repeat(55, 1, 1)
    # shoulder turned 90 degrees about +z: the arm, along +x at rest, points up (+y)
    rotmats[JOINT_INDEX["left_shoulder"]] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    # elbow turned 90 degrees about +y (local): the forearm, along the arm, turns to -z in the arm's frame
    rotmats[JOINT_INDEX["left_elbow"]] = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    trans = torch.tensor([0.5, 1.0, -2.0])
    pos, _ = forward_kinematics(rotmats, trans)
    rest = torch.as_tensor(rest_joint_positions())
    shoulder = rest[JOINT_INDEX["left_shoulder"]] + trans
    ox, oy, oz = REST_OFFSETS[JOINT_INDEX["left_elbow"]]
    elbow = shoulder + torch.tensor([-oy, ox, oz])  # Rz(90) applied to the offset
    wx, wy, wz = REST_OFFSETS[JOINT_INDEX["left_wrist"]]
    # global rotation at the elbow = Rz(90) @ Ry(90); Ry(90)(x,y,z) = (z, y, -x); Rz(90)(x,y,z) = (-y, x, z)
    wrist = elbow + torch.tensor([-wy, wz, -wx])
    assert torch.allclose(pos[JOINT_INDEX["left_shoulder"]], shoulder, atol=1e-6)
    assert torch.allclose(pos[JOINT_INDEX["left_elbow"]], elbow, atol=1e-6)
    assert torch.allclose(pos[JOINT_INDEX["left_wrist"]], wrist, atol=1e-6)
    # the other side is untouched
    assert torch.allclose(pos[JOINT_INDEX["right_wrist"]], rest[JOINT_INDEX["right_wrist"]] + trans, atol=1e-6)


def test_real_take_loads_with_documented_shapes_and_human_ranges(beat2_sample):
    from granumamba.data import load_motion

    motion = load_motion(beat2_sample / "smplxflame_30" / "2_scott_0_1_1.npz")
    assert motion.poses.shape == (1906, 165) and motion.trans.shape == (1906, 3)
    assert motion.expressions.shape == (1906, 100) and motion.betas.shape == (300,)
    joints = joint_positions(torch.as_tensor(motion.poses), torch.as_tensor(motion.trans, dtype=torch.float32))
    assert joints.shape == (1906, 55, 3)
    feet = joints[:, [JOINT_INDEX[n] for n in ("left_foot", "right_foot")], 1]
    head = joints[:, JOINT_INDEX["head"], 1]
    assert feet.min() > -0.15 and feet.max() < 0.35  # standing on the floor
    assert 1.3 < head.mean() < 1.8
    extent = joints.amax(dim=(0, 1)) - joints.amin(dim=(0, 1))
    assert (extent < 2.5).all()  # nothing flies off
    speed = (joints[1:] - joints[:-1]).norm(dim=-1).mean(dim=0)
    wrists = speed[[JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"]]].mean()
    assert wrists > 2.5 * speed[JOINT_INDEX["pelvis"]]


def synthetic_motion(frames: int = 50, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.6, (frames, 165)).astype(np.float32)
    poses[:, 23 * 3 : 25 * 3] = 0.0  # eyes are not generated
    trans = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0) + [0.3, 1.29, -0.2]
    return Motion(poses, trans, rng.normal(0, 1, (frames, 100)))


def test_part_split_has_the_documented_sizes_and_inverts_exactly():
    motion = synthetic_motion()
    parts = split_parts(motion)
    assert {k: v.shape[1] for k, v in parts.items()} == PART_DIMS == {"upper": 78, "hands": 180, "lower": 61, "face": 106}
    assert sorted(j for js in PART_JOINTS.values() for j in js) == [j for j in range(55) if j not in (23, 24)]
    back = merge_parts(parts, start_xz=(motion.trans[0, 0], motion.trans[0, 2]))
    rotvecs = lambda m: torch.as_tensor(m.poses, dtype=torch.float64).reshape(-1, 55, 3)  # noqa: E731
    assert same_rotation(rotvecs(back), rotvecs(motion)).max() < 1e-5
    assert np.abs(back.trans - motion.trans).max() < 1e-5
    assert np.abs(back.expressions - motion.expressions).max() < 1e-5


def test_upper_body_positions_are_the_full_skeletons_with_pelvis_and_legs_at_rest():
    motion = synthetic_motion(12)
    upper = split_parts(motion)["upper"].double()
    at_rest = motion.poses.reshape(-1, 55, 3).copy()
    at_rest[:, [j for j in range(55) if j not in PART_JOINTS["upper"]]] = 0.0
    full = joint_positions(torch.as_tensor(at_rest, dtype=torch.float64).reshape(-1, 165))[:, :22]
    assert torch.allclose(upper_body_positions(upper), full, atol=1e-6)
    assert upper_body_positions(upper[None]).shape == (1, 12, 22, 3)  # batched over leading dimensions
    moved = upper.clone()
    elbow = 6 * PART_JOINTS["upper"].index(18)
    moved[:, elbow : elbow + 6] = axis_angle_to_6d(torch.tensor([0.0, 0.0, 1.5], dtype=torch.float64))
    difference = (upper_body_positions(moved) - upper_body_positions(upper)).norm(dim=-1)
    assert difference[:, 20].min() > 0.0 and difference[:, :18].max() < 1e-9  # an elbow moves the wrist, not its parents


def test_foot_contacts_mark_still_feet_and_not_moving_ones():
    still = synthetic_motion(40)
    still.poses[:] = 0.0
    still.trans[:] = [0.0, 1.29, 0.0]
    assert split_parts(still)["lower"][:, 54:58].min() == 1.0
    walking = synthetic_motion(40)
    walking.poses[:] = 0.0
    walking.trans = np.stack([np.linspace(0, 2, 40), np.full(40, 1.29), np.zeros(40)], axis=1)  # 5 cm per frame
    assert split_parts(walking)["lower"][:, 54:58].max() == 0.0


def test_normalizer_fits_applies_inverts_and_survives_save_load(tmp_path):
    g = torch.Generator().manual_seed(1)
    takes = [{"upper": torch.randn(100, 4, generator=g) * 3 + 5, "face": torch.ones(100, 2)} for _ in range(3)]
    norm = Normalizer.fit(takes)
    allx = torch.cat([t["upper"] for t in takes])
    z = norm.normalize("upper", allx)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-5) and torch.allclose(z.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert torch.isfinite(norm.normalize("face", torch.ones(3, 2))).all()  # constant dims are not divided by zero
    norm.save(tmp_path / "stats.safetensors")
    loaded = Normalizer.load(tmp_path / "stats.safetensors")
    assert torch.allclose(loaded.denormalize("upper", loaded.normalize("upper", allx)), allx, atol=1e-4)
    with pytest.raises(ValueError):
        Normalizer.fit([])
