"""Offscreen rendering with pyrender: OSMesa on a CPU, EGL on a GPU, no X server.

The platform is chosen once per process before OpenGL loads: GRANUMAMBA_GL=osmesa|egl
overrides, otherwise EGL where CUDA is present and OSMesa elsewhere.
"""

from __future__ import annotations

import os

import numpy as np

GL_ENV = "GRANUMAMBA_GL"


def choose_platform() -> str:
    wanted = os.environ.get(GL_ENV, "").lower()
    if wanted in ("osmesa", "egl"):
        platform = wanted
    elif wanted:
        raise ValueError(f"{GL_ENV}={wanted!r}: use osmesa or egl")
    else:
        platform = os.environ.get("PYOPENGL_PLATFORM") or "osmesa"
        try:
            import torch

            if torch.cuda.is_available() and "PYOPENGL_PLATFORM" not in os.environ:
                platform = "egl"
        except ImportError:  # pragma: no cover
            pass
    os.environ["PYOPENGL_PLATFORM"] = platform
    return platform


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world matrix of a camera at `eye` looking at `target` (OpenGL: looks down -z)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    true_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, -forward, eye
    return pose


def frame_camera(
    positions: np.ndarray, rotations: np.ndarray, framing: str = "body", yfov: float = 0.55, aspect: float = 1.0
) -> tuple[np.ndarray, float]:
    """A steady camera for the whole clip: in front of where the speaker faces on average,
    framing the whole body or the upper body (pelvis up). positions (T, 55, 3), rotations
    (T, 55, 3, 3). Returns (camera pose, floor height)."""
    from ..motion.skeleton import JOINT_INDEX

    if framing not in ("body", "upper"):
        raise ValueError(f"framing is 'body' or 'upper', not {framing!r}")
    floor = float(np.percentile(positions[:, [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]], 1], 2)) - 0.03
    joints = positions if framing == "body" else positions[:, [i for i in range(55) if i not in (1, 2, 4, 5, 7, 8, 10, 11)]]
    low = np.percentile(joints.reshape(-1, 3), 1, axis=0)
    high = np.percentile(joints.reshape(-1, 3), 99, axis=0)
    top = high[1] + 0.3  # the head joint sits below the top of the head; room for a label
    bottom = floor if framing == "body" else positions[:, 0, 1].mean() - 0.05
    facing = rotations[:, 0, :, 2].mean(axis=0)  # the pelvis' forward (+z) axis, averaged
    facing[1] = 0.0
    facing = facing / (np.linalg.norm(facing) + 1e-9) if np.linalg.norm(facing) > 1e-6 else np.array([0.0, 0.0, 1.0])
    centre = np.array([(low[0] + high[0]) / 2, (top + bottom) / 2, (low[2] + high[2]) / 2])
    height = (top - bottom) * 1.12
    width = (high[0] - low[0]) * 1.15
    span = max(height, width / aspect)
    distance = span / 2 / np.tan(yfov / 2) + 0.3
    eye = centre + facing * distance + np.array([0.0, 0.15 * span, 0.0])
    return look_at(eye, centre), floor


class SceneRenderer:
    """One offscreen renderer: a floor, lights, a fixed camera, and a body mesh per frame."""

    def __init__(
        self,
        width: int,
        height: int,
        faces: np.ndarray,
        colours: np.ndarray,
        camera_pose: np.ndarray,
        floor: float,
        yfov: float = 0.55,
        centre_xz=(0.0, 0.0),
    ):
        choose_platform()
        import pyrender
        import trimesh

        self.pyrender = pyrender
        self.faces, self.colours = faces, colours
        self.scene = pyrender.Scene(ambient_light=np.array([0.22, 0.22, 0.24]), bg_color=np.array([0.95, 0.95, 0.96, 1.0]))
        self.scene.add(pyrender.PerspectiveCamera(yfov=yfov, aspectRatio=width / height), pose=camera_pose)
        key = look_at(np.array([1.5, 3.0, 2.5]) + [centre_xz[0], 0, centre_xz[1]], np.array([centre_xz[0], 1.0, centre_xz[1]]))
        fill = look_at(np.array([-2.0, 1.5, 1.5]) + [centre_xz[0], 0, centre_xz[1]], np.array([centre_xz[0], 1.0, centre_xz[1]]))
        self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=1.7), pose=key)
        self.scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=0.6), pose=fill)
        # A floor with a faint grid and a soft blob shadow under the feet.
        tiles = []
        for i in range(-6, 6):
            for k in range(-6, 6):
                tile = trimesh.creation.box(extents=[0.5, 0.01, 0.5])
                tile.apply_translation([centre_xz[0] + i * 0.5 + 0.25, floor - 0.005, centre_xz[1] + k * 0.5 + 0.25])
                shade = 0.86 if (i + k) % 2 else 0.9
                tile.visual.vertex_colors = np.array([shade, shade, shade * 1.02, 1.0]) * 255
                tiles.append(tile)
        self.scene.add(pyrender.Mesh.from_trimesh(trimesh.util.concatenate(tiles), smooth=False))
        disc = trimesh.creation.cylinder(radius=1.0, height=0.001, sections=48)
        disc.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
        shadow_material = pyrender.MetallicRoughnessMaterial(baseColorFactor=[0.25, 0.25, 0.28, 0.35], alphaMode="BLEND")
        self.shadow_node = self.scene.add(pyrender.Mesh.from_trimesh(disc, material=shadow_material))
        self.floor = floor
        # One primitive per colour (pyrender's per-vertex colour path shades far too dark), each
        # with only its own vertices, so a frame uploads every vertex once.
        face_colours = np.round(colours[faces[:, 0], :3], 3)
        unique, group = np.unique(face_colours, axis=0, return_inverse=True)
        self.groups = []
        for g in range(len(unique)):
            group_faces = faces[group.reshape(-1) == g]
            used, local_faces = np.unique(group_faces, return_inverse=True)
            material = pyrender.MetallicRoughnessMaterial(metallicFactor=0.0, roughnessFactor=0.7, baseColorFactor=[*unique[g], 1.0])
            self.groups.append((used, local_faces.reshape(-1, 3).astype(np.uint32), material))
        self.body_node = None
        self.renderer = pyrender.OffscreenRenderer(width, height)

    def render(self, vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """One frame of the body mesh -> (height, width, 3) uint8."""
        pyrender = self.pyrender
        primitives = [
            pyrender.Primitive(
                positions=vertices[used], normals=normals[used], indices=faces, material=material, mode=pyrender.constants.GLTF.TRIANGLES
            )
            for used, faces, material in self.groups
        ]
        if self.body_node is not None:
            self.scene.remove_node(self.body_node)
        self.body_node = self.scene.add(pyrender.Mesh(primitives))
        feet = vertices[vertices[:, 1] < self.floor + 0.25]
        centre = feet.mean(axis=0) if len(feet) else vertices.mean(axis=0)
        pose = np.diag([0.32, 1.0, 0.24, 1.0])
        pose[:3, 3] = [centre[0], self.floor + 0.002, centre[2]]
        self.scene.set_pose(self.shadow_node, pose)
        colour, _ = self.renderer.render(self.scene)
        return colour

    def close(self) -> None:
        self.renderer.delete()
