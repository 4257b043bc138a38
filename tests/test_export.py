"""Exported motion, opened by the programs users open it with: the Khronos glTF validator,
Blender (glTF, FBX and BVH importers), and the project's own readers."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from granumamba.__main__ import main
from granumamba.data import load_motion, save_motion
from granumamba.motion import JOINT_NAMES, RELAXED_POSE, Motion
from granumamba.motion.skeleton import joint_positions
from granumamba.render.body import Mannequin

from .conftest import write_fake_smplx

JS = Path(__file__).resolve().parent / "js"
FRAMES = 75


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("export")
    t = np.arange(FRAMES) / 30
    poses = np.tile(RELAXED_POSE, (FRAMES, 1)).astype(np.float32)
    poses[:, 17 * 3 + 2] += 0.8 * np.sin(2 * np.pi * t)  # the right arm waves
    poses[:, 22 * 3] = 0.2 * (1 + np.sin(4 * np.pi * t))  # the jaw opens and closes
    trans = np.stack([0.3 * t, np.full(FRAMES, 1.29), np.zeros(FRAMES)], 1)
    save_motion(folder / "m.npz", Motion(poses, trans, np.zeros((FRAMES, 100))))
    out = {}
    for suffix in (".glb", ".bvh"):
        out[suffix] = folder / f"m{suffix}"
        assert main(["export", "--motion", str(folder / "m.npz"), "--out", str(out[suffix])]) == 0
    return out


def validate(path: Path) -> dict:
    if shutil.which("node") is None or not (JS / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("the glTF validator is not installed (scripts/setup.sh --dev: npm install in tests/js)")
    proc = subprocess.run(["node", str(JS / "validate_gltf.mjs"), str(path)], capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout)


def test_the_glb_passes_the_khronos_validator_with_no_errors(exported):
    report = validate(exported[".glb"])
    assert report["errors"] == 0 and report["warnings"] == 0, report


def test_with_smplx_model_files_the_glb_carries_the_smplx_mesh_with_the_takes_betas(exported, tmp_path, capsys):
    """--body smplx: the SMPL-X mesh shaped by the take's betas, its skeleton where SMPL-X's joint
    regressor puts the joints for that shape, SMPL-X's skin weights; the validator accepts it."""
    import pygltflib

    folder = write_fake_smplx(tmp_path / "smplx")
    model = np.load(folder / "SMPLX_NEUTRAL.npz")
    take = load_motion(exported[".glb"].with_suffix(".npz"))
    meshes = {}
    for name, betas in (("shaped", np.linspace(-2, 2, 300)), ("mean", np.zeros(300))):
        save_motion(tmp_path / f"{name}.npz", Motion(take.poses, take.trans, take.expressions, betas.astype(np.float32)))
        out = tmp_path / f"{name}.glb"
        assert (
            main(["export", "--motion", str(tmp_path / f"{name}.npz"), "--out", str(out), "--body", "smplx", "--smplx", str(folder)]) == 0
        )
        gltf = pygltflib.GLTF2().load(str(out))
        blob = gltf.binary_blob()
        position = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
        view = gltf.bufferViews[position.bufferView]
        meshes[name] = np.frombuffer(blob[view.byteOffset : view.byteOffset + view.byteLength], np.float32).reshape(-1, 3)
        shape_count = model["shapedirs"].shape[-1] - 100  # SMPL-X: shape components, then 100 expression ones
        shaped = model["v_template"] + np.einsum("l,mkl->mk", betas[:shape_count], model["shapedirs"][..., :shape_count])
        joints = model["J_regressor"] @ shaped
        np.testing.assert_allclose(meshes[name], shaped, atol=1e-5)
        np.testing.assert_allclose(gltf.nodes[JOINT_NAMES.index("left_knee")].translation, joints[4] - joints[1], atol=1e-5)
    assert meshes["shaped"].shape == (10475, 3) and np.abs(meshes["shaped"] - meshes["mean"]).max() > 1e-3
    report = validate(tmp_path / "shaped.glb")
    assert report["errors"] == 0, report
    bvh = main(
        ["export", "--motion", str(tmp_path / "shaped.npz"), "--out", str(tmp_path / "x.bvh"), "--body", "smplx", "--smplx", str(folder)]
    )
    assert bvh == 2 and "holds no mesh" in capsys.readouterr().err


def test_with_smplx_model_files_the_face_moves_in_the_glb_and_blender_plays_it(exported, tmp_path):
    """--body smplx: SMPL-X's 100 expression blend shapes travel as glTF morph targets (named,
    in the model's bind space) animated by the take's expression coefficients; the validator
    accepts them and Blender imports them as shape keys that play the take's coefficients."""
    import pygltflib

    folder = write_fake_smplx(tmp_path / "smplx")
    model = np.load(folder / "SMPLX_NEUTRAL.npz")
    take = load_motion(exported[".glb"].with_suffix(".npz"))
    t = np.arange(FRAMES) / 30
    expressions = 0.8 * np.sin(2 * np.pi * t[:, None] * (1 + np.arange(100)) / 20 + np.arange(100)).astype(np.float32)
    save_motion(tmp_path / "face.npz", Motion(take.poses, take.trans, expressions))
    out = tmp_path / "face.glb"
    assert main(["export", "--motion", str(tmp_path / "face.npz"), "--out", str(out), "--body", "smplx", "--smplx", str(folder)]) == 0
    gltf = pygltflib.GLTF2().load(str(out))
    blob, mesh = gltf.binary_blob(), gltf.meshes[0]

    def read(accessor: int) -> np.ndarray:
        view = gltf.bufferViews[gltf.accessors[accessor].bufferView]
        return np.frombuffer(blob[view.byteOffset : view.byteOffset + view.byteLength], np.float32)

    targets = mesh.primitives[0].targets
    assert len(targets) == len(mesh.weights) == len(mesh.extras["targetNames"]) == 100
    expression_dirs = model["shapedirs"][..., model["shapedirs"].shape[-1] - 100 :]  # SMPL-X: shape, then expression components
    np.testing.assert_allclose(read(targets[7]["POSITION"]).reshape(-1, 3), expression_dirs[..., 7], atol=1e-6)
    (channel,) = [c for c in gltf.animations[0].channels if c.target.path == "weights"]
    assert gltf.nodes[channel.target.node].mesh == 0
    np.testing.assert_allclose(read(gltf.animations[0].samplers[channel.sampler].output).reshape(FRAMES, 100), expressions, atol=1e-6)
    report = validate(out)
    assert report["errors"] == 0 and report["warnings"] == 0, report
    seen = blender(out, tmp_path)
    assert seen["shape_keys"] == ["Basis", *mesh.extras["targetNames"]] and seen["shape_key_curves"] == 100
    for k in (0, 7, 99):
        np.testing.assert_allclose(seen["shape_key_values"][mesh.extras["targetNames"][k]], expressions[:10, k], atol=1e-5)
    # the same face in the FBX (written by Blender from this glb): its blend shapes and their animation
    fbx = tmp_path / "face.fbx"
    assert main(["export", "--motion", str(tmp_path / "face.npz"), "--out", str(fbx), "--body", "smplx", "--smplx", str(folder)]) == 0
    seen = blender(fbx, tmp_path)
    assert seen["shape_keys"] == ["Basis", *mesh.extras["targetNames"]] and seen["shape_key_curves"] == 100
    for k in (0, 7, 99):
        np.testing.assert_allclose(seen["shape_key_values"][mesh.extras["targetNames"][k]], expressions[:10, k], atol=1e-4)


def blender(path: Path, tmp_path: Path) -> dict:
    if shutil.which("blender") is None:
        pytest.skip("Blender is not installed (apt-get install blender python3-numpy; scripts/setup.sh --dev does it)")
    out = tmp_path / "report.json"
    command = ["blender", "-b", "--factory-startup", "--python", str(JS / "blender_import.py"), "--", str(path), str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_blender_imports_the_glb_as_a_55_bone_armature_a_skinned_mesh_and_every_frame(exported, tmp_path):
    report = blender(exported[".glb"], tmp_path)
    assert report["armatures"] == 1 and sorted(report["bones"]) == sorted(JOINT_NAMES)
    assert report["meshes"] == 1 and report["skinned_meshes"] == 1 and report["vertex_groups"] == 55
    assert report["actions"] == 1
    first, last = report["frame_range"]
    assert round(last - first) + 1 == FRAMES


def test_the_fbx_opens_in_blender_with_the_skeleton_the_skin_and_every_pose_of_the_take(exported, tmp_path):
    """export --out M.fbx (written by Blender's FBX exporter from the glTF export), read back
    by Blender's FBX importer: SMPL-X's 55 bones and no others, one skinned mesh, every frame,
    and each joint where the take's forward kinematics puts it, in metres (Y up in the file,
    Blender's Z up on import)."""
    if shutil.which("blender") is None:
        pytest.skip("Blender is not installed (apt-get install blender python3-numpy; scripts/setup.sh --dev does it)")
    out = tmp_path / "m.fbx"
    assert main(["export", "--motion", str(exported[".glb"].with_suffix(".npz")), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fbx"]  # nothing else left behind
    report = blender(out, tmp_path)
    assert report["armatures"] == 1 and sorted(report["bones"]) == sorted(JOINT_NAMES)
    body = Mannequin()  # FBX keeps a skin cluster for each bone that moves some vertex: the built-in body's 51
    weighted = {int(j) for j, w in zip(np.ravel(body.skin_joints), np.ravel(body.skin_weights)) if w > 0}
    assert report["meshes"] == 1 and report["skinned_meshes"] == 1 and report["vertex_groups"] == len(weighted) > 50
    first, last = report["frame_range"]
    assert round(last - first) + 1 == FRAMES and report["fps"] == 30
    # in the file: Y up, 30 fps, metres as its unit (100 cm), and no object scaled to make them
    assert report["fbx_settings"] == {"UnitScaleFactor": 100.0, "UpAxis": 1, "UpAxisSign": 1, "CustomFrameRate": 30.0}
    assert report["fbx_scales"] and np.allclose(report["fbx_scales"], 1.0)
    take = load_motion(exported[".glb"].with_suffix(".npz"))
    truth = joint_positions(torch.as_tensor(take.poses), torch.as_tensor(take.trans, dtype=torch.float32)).numpy()
    for frame, heads in report["heads"].items():
        seen = np.array([heads[name] for name in JOINT_NAMES])
        np.testing.assert_allclose(seen, truth[int(frame)][:, [0, 2, 1]] * [1, -1, 1], atol=1e-4)  # Y up -> Z up
    assert np.linalg.norm(truth[37] - truth[0], axis=1).max() > 0.1  # the frames compared differ: the arm has moved


def test_without_blender_an_fbx_export_says_how_to_get_it_and_leaves_nothing(exported, tmp_path, monkeypatch, capsys):
    import tempfile

    command = ["export", "--motion", str(exported[".glb"].with_suffix(".npz")), "--out", str(tmp_path / "m.fbx")]
    monkeypatch.setenv("GRANUMAMBA_BLENDER", str(tmp_path / "no-blender"))
    assert main(command) == 2
    assert "apt-get install blender" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    # a Blender that fails (here a program that exits 1 at once): said, and no file or folder left
    temp_before = set(Path(tempfile.gettempdir()).glob("granumamba-fbx-*"))
    monkeypatch.setenv("GRANUMAMBA_BLENDER", shutil.which("false"))
    assert main(command) == 2
    assert "could not write the FBX (exit 1)" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    assert set(Path(tempfile.gettempdir()).glob("granumamba-fbx-*")) == temp_before
    # a Blender whose Python lacks numpy (Debian's without python3-numpy): the error says what to install
    fake = tmp_path.parent / f"{tmp_path.name}-blender"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'numpy'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GRANUMAMBA_BLENDER", str(fake))
    assert main(command) == 2
    assert "apt-get install python3-numpy" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_blender_imports_the_bvh_with_every_frame(exported, tmp_path):
    report = blender(exported[".bvh"], tmp_path)
    assert report["armatures"] == 1 and len(report["bones"]) == 55
    first, last = report["frame_range"]
    assert round(last - first) + 1 == FRAMES


def test_the_glb_animation_reproduces_the_motion(exported):
    """Read back with pygltflib: one key per frame at 30 fps, each joint's rotation the motion's."""
    import pygltflib
    import roma
    import torch

    gltf = pygltflib.GLTF2().load(str(exported[".glb"]))
    blob = gltf.binary_blob()

    def array(index, width):
        accessor = gltf.accessors[index]
        view = gltf.bufferViews[accessor.bufferView]
        return np.frombuffer(blob[view.byteOffset : view.byteOffset + view.byteLength], np.float32).reshape(accessor.count, width)

    animation = gltf.animations[0]
    times = array(animation.samplers[0].input, 1)[:, 0]
    assert np.allclose(times, np.arange(FRAMES) / 30)
    motion = load_motion(exported[".glb"].with_suffix(".npz"))
    for channel in animation.channels:
        out = array(animation.samplers[channel.sampler].output, 4 if channel.target.path == "rotation" else 3)
        if channel.target.path == "rotation":
            rotvec = roma.unitquat_to_rotvec(torch.tensor(out, dtype=torch.float64)).numpy()  # a copy: the buffer is read-only
            want = roma.rotvec_to_rotmat(torch.as_tensor(motion.poses.reshape(FRAMES, 55, 3)[:, channel.target.node], dtype=torch.float64))
            assert torch.allclose(roma.rotvec_to_rotmat(torch.as_tensor(rotvec)), want, atol=1e-5)
        else:
            assert channel.target.node == 0 and np.allclose(out[:, 0] - out[0, 0], motion.trans[:, 0] - motion.trans[0, 0], atol=1e-5)
