from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from granumamba.data import load_motion, save_motion
from granumamba.motion import JOINT_INDEX, RELAXED_POSE, Motion
from granumamba.render.body import SMPLXBody, SMPLXError, find_smplx_model
from granumamba.render.video import render_video

from .conftest import SAMPLE_TAKE, probe_video, read_frames, write_fake_smplx


def still(frames: int) -> Motion:
    poses = np.tile(RELAXED_POSE, (frames, 1)).astype(np.float32)
    return Motion(poses, np.tile([0.0, 1.295, 0.0], (frames, 1)), np.zeros((frames, 100)))


def changed_box(a: np.ndarray, b: np.ndarray):
    diff = np.abs(a.astype(int) - b.astype(int)).sum(-1) > 30
    ys, xs = np.nonzero(diff)
    return (ys.min(), ys.max(), xs.min(), xs.max(), diff.mean()) if ys.size else None


def test_the_real_take_renders_to_a_video_with_its_speech(beat2_sample, tmp_path):
    from granumamba.audio import load_audio

    motion = load_motion(beat2_sample / "smplxflame_30" / f"{SAMPLE_TAKE}.npz")
    start, frames = 600, 120
    clip = Motion(motion.poses[start : start + frames], motion.trans[start : start + frames], motion.expressions[start : start + frames])
    audio = load_audio(beat2_sample / "wave16k" / f"{SAMPLE_TAKE}.wav")[start * 16000 // 30 :]
    out = tmp_path / "real.mp4"
    stats = render_video(clip, audio, out, size=256, workers=2)
    info = probe_video(out)
    assert info["frames"] == frames and info["fps"] == 30 and abs(info["seconds"] - 4.0) < 0.05
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["audio"] == "aac"
    assert stats.frames == frames
    video = read_frames(out)
    assert video.std() > 10  # not blank
    for i in (0, 60, 119):
        Image.fromarray(video[i]).save(tmp_path / f"frame_{i:03d}.png")
    moving = np.abs(video[1:].astype(int) - video[:-1].astype(int)).mean(axis=(1, 2, 3))
    assert (moving > 0).mean() > 0.5  # the body moves, frame to frame


def test_finger_motion_changes_pixels_only_around_the_hands(tmp_path):
    motion = still(2)
    for j in range(25, 55):  # curl every finger joint on the second frame
        motion.poses[1, 3 * j + 2] += 0.9 if j < 40 else -0.9
    out = tmp_path / "fingers.mp4"
    render_video(motion, None, out, size=384, workers=1, crf=0)
    a, b = read_frames(out)
    box = changed_box(a, b)
    assert box is not None, "curling the fingers changed nothing"
    top, bottom, left, right, share = box
    assert share < 0.02  # a small part of the picture
    assert top > 384 * 0.35  # hands hang by the hips, well below the head


def test_jaw_opening_changes_pixels_at_the_face(tmp_path):
    motion = still(2)
    motion.poses[1, 3 * JOINT_INDEX["jaw"]] = 0.45
    out = tmp_path / "jaw.mp4"
    render_video(motion, None, out, size=384, workers=1, crf=0)
    a, b = read_frames(out)
    box = changed_box(a, b)
    assert box is not None, "opening the jaw changed nothing"
    top, bottom, left, right, share = box
    assert bottom < 384 * 0.4 and share < 0.01  # only at the head


def test_antialiasing_smooths_edges_and_changes_nothing_else():
    from granumamba.render.video import render_stills

    motion = still(1)
    motion.poses[0, 3 * JOINT_INDEX["right_shoulder"] + 2] = 0.8  # an arm out: slanted edges
    sharp = render_stills(motion, [0], size=256, antialias=False).astype(int)
    smooth = render_stills(motion, [0], size=256, antialias=True).astype(int)
    changed = np.abs(sharp - smooth).max(axis=-1) > 8
    assert 0 < changed.mean() < 0.03  # edge pixels only
    colours = lambda image: len(np.unique(image.reshape(-1, 3), axis=0))  # noqa: E731
    assert colours(smooth) > 1.3 * colours(sharp)  # blends along the edges


def test_pyrender_patches_fit_the_installed_pinned_pyrender(monkeypatch):
    """The renderer's changes to pyrender are written for one version: the pin in requirements.txt
    is that version, the installed pyrender has every internal they use, and a version or an
    internal that moves is named at once."""
    import pyrender

    from granumamba.render import pyrender_patch
    from granumamba.render.scene import choose_platform

    pinned = [line for line in (Path(__file__).parent.parent / "requirements.txt").read_text().splitlines() if line.startswith("pyrender")]
    assert pinned and pinned[0].split("#")[0].strip() == f"pyrender-maintained=={pyrender_patch.PYRENDER_VERSION}"
    choose_platform()
    offscreen = pyrender.OffscreenRenderer(64, 64)
    try:
        scene = pyrender.Scene()
        mesh = pyrender.Mesh([pyrender.Primitive(positions=np.zeros((3, 3), np.float32), indices=np.array([[0, 1, 2]]), mode=4)])
        scene.add(mesh)
        scene.add(pyrender.PerspectiveCamera(yfov=0.5), pose=np.eye(4))
        offscreen.render(scene)  # the internals exist once a frame is drawn
        pyrender_patch.check(offscreen, mesh.primitives[0])
        with monkeypatch.context() as moved:
            moved.delattr(type(offscreen._renderer), "_delete_main_framebuffer")
            with pytest.raises(pyrender_patch.PyrenderChanged, match="Renderer._delete_main_framebuffer"):
                pyrender_patch.check(offscreen)
    finally:
        offscreen.delete()
    monkeypatch.setattr(pyrender_patch, "PYRENDER_VERSION", "0.0.1")
    with pytest.raises(pyrender_patch.PyrenderChanged, match="0.0.1"):
        pyrender_patch.check()


def test_drawing_in_this_process_works_from_any_thread_and_between_stills(tmp_path):
    """A web app renders in whichever thread serves the request, sometimes two at once, and other
    code may draw stills in between: every video still comes out whole."""
    from concurrent.futures import ThreadPoolExecutor

    from granumamba.render.video import render_stills

    motion = still(4)
    motion.poses[:, 3 * JOINT_INDEX["right_elbow"] + 1] += np.linspace(0, 1.0, 4)

    def one(i, size=256):
        out = tmp_path / f"t{i}.mp4"
        render_video(motion, None, out, size=size, workers=1)
        return probe_video(out)["frames"]

    with ThreadPoolExecutor(2) as pool:
        assert pool.submit(one, 0).result() == 4
        render_stills(motion, [0], size=256)
        assert pool.submit(one, 1, 320).result() == 4
        assert list(pool.map(one, [2, 3])) == [4, 4]  # two at once


def test_osmesa_and_egl_draw_the_same_frames(tmp_path):
    """GRANUMAMBA_GL picks the OpenGL platform (once per process, so each runs in its own);
    over more frames than OSMesa keeps one context for, both give the same pictures."""
    import os
    import subprocess
    import sys

    from granumamba.render.scene import REFRESH_OSMESA_EVERY

    motion = still(REFRESH_OSMESA_EVERY + 5)
    motion.poses[:, 3 * JOINT_INDEX["right_elbow"] + 1] += np.linspace(0, 1.5, motion.num_frames)
    save_motion(tmp_path / "m.npz", motion)
    videos = {}
    for platform in ("egl", "osmesa"):
        videos[platform] = tmp_path / f"{platform}.mp4"
        code = (
            "import sys; from granumamba.data import load_motion; from granumamba.render.video import render_video; "
            "render_video(load_motion(sys.argv[1]), None, sys.argv[2], size=256, workers=1, crf=0)"
        )
        env = dict(os.environ, GRANUMAMBA_GL=platform)
        command = [sys.executable, "-c", code, str(tmp_path / "m.npz"), str(videos[platform])]
        subprocess.run(command, check=True, env=env, timeout=300, cwd=Path(__file__).resolve().parents[1])
    egl, osmesa = read_frames(videos["egl"]).astype(int), read_frames(videos["osmesa"]).astype(int)
    assert egl.shape == osmesa.shape and egl.shape[0] == motion.num_frames
    assert np.abs(egl[-1] - egl[0]).max(axis=-1).mean() > 0.002  # the arm moved
    # the same body in the same place; the floor's tile edges may be smoothed differently
    assert (np.abs(egl - osmesa).max(axis=-1) > 40).mean() < 0.002


def test_grid_has_one_cell_per_motion_and_audio_matches_video_length(tmp_path):
    motion = still(45)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)  # longer than the video: trimmed
    out = tmp_path / "grid.mp4"
    render_video([motion, motion, motion], audio, out, size=256, labels=["A", "B", "C"], workers=1)
    info = probe_video(out)
    assert (info["width"], info["height"]) == (768, 256) and info["frames"] == 45 and abs(info["seconds"] - 1.5) < 0.05
    with pytest.raises(ValueError, match="labels"):
        render_video([motion, motion], None, tmp_path / "x.mp4", labels=["only one"])
    with pytest.raises(ValueError, match="outside 256 to 1080"):
        render_video(motion, None, tmp_path / "x.mp4", size=100)
    assert not list(tmp_path.glob(".*partial*"))


def test_smplx_body_renders_from_a_model_folder(tmp_path):
    folder = write_fake_smplx(tmp_path / "smplx")
    body = SMPLXBody(folder, batch=4)
    motion = still(6)
    motion.betas = np.ones(300, np.float32)
    meshes = list(body.frames(motion))
    assert len(meshes) == 6 and meshes[0].vertices.shape == (10475, 3)
    motion.expressions[3:, 0] = 3.0  # expressions move the mesh
    moved = list(body.frames(motion))
    assert not np.allclose(moved[5].vertices, meshes[5].vertices)
    out = tmp_path / "smplx.mp4"
    render_video(motion, None, out, body="smplx", smplx_path=folder, size=256, workers=1)
    assert probe_video(out)["frames"] == 6


def test_smplx_gives_clear_errors_for_missing_or_wrong_files(tmp_path, monkeypatch):
    monkeypatch.delenv("GRANUMAMBA_SMPLX", raising=False)
    with pytest.raises(SMPLXError, match="GRANUMAMBA_SMPLX"):
        find_smplx_model(None)
    with pytest.raises(SMPLXError, match="SMPLX_NEUTRAL.npz"):
        find_smplx_model(tmp_path)
    with pytest.raises(SMPLXError, match=".npz version"):
        find_smplx_model(tmp_path / "SMPLX_NEUTRAL.pkl")
    (tmp_path / "SMPLX_NEUTRAL.npz").write_bytes(b"garbage")
    with pytest.raises(SMPLXError, match="not a usable SMPL-X"):
        SMPLXBody(tmp_path)
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", f=np.zeros((1, 3)))
    with pytest.raises(SMPLXError, match="missing v_template"):
        SMPLXBody(tmp_path)


def test_bvh_export_reads_back_with_an_independent_reader(tmp_path):
    import roma
    import torch
    from bvh import Bvh

    from granumamba.motion.bvh import write_bvh
    from granumamba.motion.skeleton import JOINT_NAMES

    rng = np.random.default_rng(0)
    motion = still(12)
    motion.poses += rng.normal(0, 0.5, motion.poses.shape).astype(np.float32)
    motion.trans[:, 0] = np.linspace(0, 0.3, 12)
    write_bvh(tmp_path / "m.bvh", motion)
    bvh = Bvh((tmp_path / "m.bvh").read_text())
    assert bvh.nframes == 12 and bvh.frame_time == pytest.approx(1 / 30) and sorted(bvh.get_joints_names()) == sorted(JOINT_NAMES)
    for j, name in enumerate(JOINT_NAMES):
        angles = np.array(bvh.frames_joint_channels(name, ["Zrotation", "Xrotation", "Yrotation"]), float)
        read = roma.euler_to_rotmat("ZXY", torch.tensor(angles), degrees=True)
        truth = roma.rotvec_to_rotmat(torch.tensor(motion.poses[:, 3 * j : 3 * j + 3], dtype=torch.float64))
        assert (read - truth).abs().max() < 1e-4, name
    root = np.array(bvh.frames_joint_channels("pelvis", ["Xposition", "Yposition", "Zposition"]), float)
    assert np.allclose(root[:, 0] / 100, motion.trans[:, 0], atol=1e-5)
    offset = np.array(bvh.joint_offset("left_elbow"), float) / 100
    from granumamba.motion.skeleton import REST_OFFSETS

    assert np.allclose(offset, REST_OFFSETS[JOINT_INDEX["left_elbow"]], atol=1e-6)


def test_render_and_export_commands(tmp_path, capsys):
    from granumamba.__main__ import main

    motion = still(30)
    save_motion(tmp_path / "m.npz", motion)
    soundfile.write(tmp_path / "a.wav", np.zeros(16000), 16000)
    assert (
        main(
            [
                "render",
                "--motion",
                str(tmp_path / "m.npz"),
                "--audio",
                str(tmp_path / "a.wav"),
                "--out",
                str(tmp_path / "m.mp4"),
                "--size",
                "256",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert probe_video(tmp_path / "m.mp4")["frames"] == 30
    err = capsys.readouterr().err
    assert "rendering: 100%" in err and "30/30" in err  # tqdm's bar, run to its end
    assert main(["export", "--motion", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m.bvh")]) == 0
    assert (tmp_path / "m.bvh").read_text().startswith("HIERARCHY")
    (tmp_path / "bad.npz").write_text("nope")
    assert main(["render", "--motion", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "b.mp4")]) == 2


def _reversals(profile: np.ndarray, tolerance: float) -> int:
    """How often a profile turns from growing to shrinking or back by more than `tolerance`."""
    turns, extreme, direction = 0, profile[0], 0
    for value in profile[1:]:
        step = value - extreme
        if direction >= 0 and value > extreme or direction <= 0 and value < extreme:
            extreme = value  # still going the same way (or not yet started)
            direction = direction or (1 if step > 0 else -1 if step < 0 else 0)
        elif abs(step) > tolerance:
            turns += direction != 0
            direction, extreme = -direction or (1 if step > 0 else -1), value
    return turns


def test_the_mannequin_is_closed_smooth_surfaces_without_lumps_along_the_torso():
    """The body is closed surfaces whose normals face out, and seen from the front in its bind
    pose the torso's outline from the crotch to below the arms widens and narrows only at the hips,
    the waist and the chest: no bulging pieces along it."""
    import trimesh

    from granumamba.motion.skeleton import NUM_JOINTS, forward_kinematics
    from granumamba.render.body import Mannequin
    from granumamba.render.scene import SceneRenderer, look_at

    body = Mannequin()
    mesh = trimesh.Trimesh(body.rest_vertices, body.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert all(piece.volume > 0 for piece in mesh.split(only_watertight=True))  # every piece wound outward
    assert np.mean(np.sum(body.rest_normals * mesh.vertex_normals, axis=1) > 0.5) > 0.99  # normals of its faces
    assert np.allclose(body.skin_weights.sum(1), 1, atol=1e-5)

    import torch

    positions, rotations = forward_kinematics(torch.eye(3).expand(1, NUM_JOINTS, 3, 3), torch.zeros(1, 3))
    frame = body.mesh(rotations[0].numpy(), positions[0].numpy())
    assert np.allclose(frame.vertices, body.rest_vertices, atol=1e-5)  # the bind pose reproduces the rest mesh
    size, height, distance, yfov = 512, -0.25, 2.5, 0.55
    scene = SceneRenderer(
        size, size, body.faces, body.colours, look_at(np.array([0, height, distance]), np.array([0, height, 0.0])), -1.4, yfov
    )
    background = scene.render(body.rest_vertices + [100.0, 0, 0], body.rest_normals)  # the body out of sight
    image = scene.render(frame.vertices, frame.normals)
    scene.close()
    inside = np.abs(image.astype(int) - background.astype(int)).sum(-1) > 12
    per_metre = size / (2 * distance * np.tan(yfov / 2))  # pixels per metre at the body's depth

    def rows(y: float) -> int:
        return int(round(size / 2 - (y - height) * per_metre))

    centre = size // 2
    widths = []
    for row in range(rows(-0.05), rows(-0.45)):  # below the outstretched arms, above the crotch
        line = inside[row]
        assert line[centre], f"row {row}: the torso has a gap"
        left = centre - np.argmin(line[centre::-1])
        right = centre + np.argmin(line[centre:])
        widths.append(right - left)
    widths = np.asarray(widths, float)
    assert widths.min() > 0.2 * per_metre  # a torso, not a stick
    assert _reversals(widths, tolerance=2.0) <= 2, widths  # chest, waist, hips: two turns at most
