"""Offscreen rendering with pyrender, no X server: EGL (a GPU's driver, or Mesa's software
rasteriser on a CPU) or OSMesa.

The platform is chosen once per process before OpenGL loads: GRANUMAMBA_GL=osmesa|egl
overrides. By default EGL wherever its library is installed, OSMesa otherwise: measured on a
2-core CPU with Mesa 22.3, OSMesa draws this scene at about half EGL's speed and keeps tens of MB
per frame until its context is destroyed (SceneRenderer starts a fresh context every
REFRESH_OSMESA_EVERY frames when it has to use it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import pyrender_patch

GL_ENV = "GRANUMAMBA_GL"
REFRESH_OSMESA_EVERY = 15  # frames: OSMesa keeps about 30 MB a frame of this scene until then
SHADERS = Path(__file__).resolve().parent / "shaders"  # the body's shaders (pyrender's BRDF, only what the scene uses)


def default_platform() -> str:
    """EGL where libEGL and a driver for it (Mesa's, or a GPU vendor's) are installed, else OSMesa."""
    import ctypes.util

    has_driver = ctypes.util.find_library("EGL_mesa") or ctypes.util.find_library("EGL_nvidia")
    return "egl" if ctypes.util.find_library("EGL") and has_driver else "osmesa"


def choose_platform() -> str:
    wanted = os.environ.get(GL_ENV, "").lower()
    if wanted in ("osmesa", "egl"):
        platform = wanted
    elif wanted:
        raise ValueError(f"{GL_ENV}={wanted!r}: use osmesa or egl")
    else:
        platform = os.environ.get("PYOPENGL_PLATFORM") or default_platform()
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
    """One offscreen renderer with a fixed camera. antialias: 4 samples a pixel for the body, at
    about half the speed on a software rasteriser. The floor (a faint grid and a soft shadow under
    where the speaker stands) is drawn once into a background picture that each frame starts from;
    a frame then draws only the body (one mesh, coloured per vertex, its GPU buffer overwritten in
    place) and reads back its colour. The software rasteriser's cost grows with the pixels it shades, and
    pyrender's per-draw and read-back costs are in Python, so this is several times faster than
    drawing the whole scene through pyrender's defaults."""

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
        antialias: bool = False,
    ):
        choose_platform()
        import pyrender
        import trimesh

        pyrender_patch.install()

        self.pyrender = pyrender
        self.size = (width, height)
        self.renderer = pyrender.OffscreenRenderer(width, height)
        camera = pyrender.PerspectiveCamera(yfov=yfov, aspectRatio=width / height)
        target = np.array([centre_xz[0], 1.0, centre_xz[1]])
        key = look_at(np.array([1.5, 3.0, 2.5]) + [centre_xz[0], 0, centre_xz[1]], target)
        fill = look_at(np.array([-2.0, 1.5, 1.5]) + [centre_xz[0], 0, centre_xz[1]], target)

        def lit_scene(background):
            scene = pyrender.Scene(ambient_light=np.array([0.22, 0.22, 0.24]), bg_color=np.array(background))
            scene.add(camera, pose=camera_pose)
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=1.7), pose=key)
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=0.6), pose=fill)
            return scene

        # The background: a floor of large tiles and a soft shadow, drawn once.
        ground = lit_scene([0.95, 0.95, 0.96, 1.0])
        tiles = []
        for i in range(-6, 6):
            for k in range(-6, 6):
                tile = trimesh.creation.box(extents=[0.5, 0.01, 0.5])
                tile.apply_translation([centre_xz[0] + i * 0.5 + 0.25, floor - 0.005, centre_xz[1] + k * 0.5 + 0.25])
                shade = 0.84 if (i + k) % 2 else 0.9
                tile.visual.vertex_colors = np.array([shade, shade, shade * 1.02, 1.0]) * 255
                tiles.append(tile)
        ground.add(pyrender.Mesh.from_trimesh(trimesh.util.concatenate(tiles), smooth=False))
        for layer, (radius, alpha) in enumerate(((1.0, 0.12), (0.75, 0.14), (0.5, 0.16))):  # stacked discs: a soft-edged shadow
            disc = trimesh.creation.cylinder(radius=radius, height=0.001, sections=48)
            disc.apply_transform(np.diag([0.34, 1.0, 0.26, 1.0]) @ trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
            disc.apply_translation([centre_xz[0], floor + 0.002 + 0.003 * layer, centre_xz[1]])  # apart: no depth fighting
            shadow = pyrender.MetallicRoughnessMaterial(baseColorFactor=[0.2, 0.2, 0.24, alpha], alphaMode="BLEND")
            ground.add(pyrender.Mesh.from_trimesh(disc, material=shadow))
        pyrender_patch.check(self.renderer)
        pyrender_patch.samples(4)  # drawn once: the floor always antialiased
        self.background = np.ascontiguousarray(self.renderer.render(ground)[0][..., :3])
        pyrender_patch.drop_main_framebuffer(self.renderer)  # the body's framebuffer gets its own samples
        self.samples = 4 if antialias else 0

        # The body: one mesh; its vertex buffer (position, normal, colour per vertex, pyrender's
        # interleaved layout) is kept here and only positions and normals change per frame.
        self.scene = lit_scene([0.0, 0.0, 0.0, 0.0])
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        self.colours = np.ascontiguousarray(colours, dtype=np.float32)
        self.vertex_data = np.zeros((len(colours), 10), np.float32)
        self.vertex_data[:, 6:] = self.colours
        self.material = pyrender.MetallicRoughnessMaterial(metallicFactor=0.0, roughnessFactor=0.7, baseColorFactor=[1.0, 1.0, 1.0, 1.0])
        self.body_node = None
        self.frames_on_context = 0
        self._start_context()

    def _start_context(self) -> None:
        """Upload the background into this context and read frames back as colour only: RGB, or
        RGBA (coverage) when antialiasing (pyrender reads colour and depth and converts the depth,
        which this renderer never uses)."""
        from OpenGL import GL

        pyrender_patch.make_current(self.renderer)
        width, height = self.size
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        self.background_texture = GL.glGenTextures(1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.background_texture)
        GL.glTexImage2D(
            GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, width, height, 0, GL.GL_RGB, GL.GL_UNSIGNED_BYTE, np.ascontiguousarray(self.background[::-1])
        )
        self.background_framebuffer = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.background_framebuffer)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, self.background_texture, 0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        pyrender_patch.use_shaders(self.renderer, str(SHADERS))  # the floor was drawn with pyrender's shaders; the body uses the project's
        pyrender_patch.read_colour_only(self.renderer, width, height, rgba=bool(self.samples))

    def render(self, vertices: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """One frame of the body mesh -> (height, width, 3) uint8."""
        pyrender = self.pyrender
        if os.environ.get("PYOPENGL_PLATFORM") == "osmesa" and self.frames_on_context >= REFRESH_OSMESA_EVERY:
            # Mesa's OSMesa keeps memory for every frame until its context is destroyed: start a fresh one.
            self.scene.remove_node(self.body_node)
            self.body_node = None
            self.renderer.delete()
            self.renderer = pyrender.OffscreenRenderer(*self.size)
            self._start_context()
            self.frames_on_context = 0
        self.frames_on_context += 1
        self.vertex_data[:, :3] = vertices
        self.vertex_data[:, 3:6] = normals
        if self.body_node is None:
            primitive = pyrender.Primitive(
                positions=self.vertex_data[:, :3],
                normals=self.vertex_data[:, 3:6],
                color_0=self.colours,
                indices=self.faces,
                material=self.material,
                mode=pyrender.constants.GLTF.TRIANGLES,
            )
            self.body_node = self.scene.add(pyrender.Mesh([primitive]))
        else:
            pyrender_patch.overwrite_vertices(self.renderer, self.body_node.mesh.primitives[0], self.vertex_data)
        pyrender_patch.samples(self.samples)
        # Single-sampled, the body is drawn straight over the background. Multisampled, it is
        # drawn over nothing (OpenGL cannot copy a picture into a multisampled framebuffer) and
        # laid over the background here, through its coverage, within the box it covers.
        with pyrender_patch.drawing_over(None if self.samples else self.background_framebuffer, *self.size):
            colour, _ = self.renderer.render(self.scene)
        if not self.samples:
            return np.ascontiguousarray(colour)
        frame = self.background.copy()
        alpha = colour[..., 3]
        rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
        if rows.size:
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            cover = alpha[box][..., None].astype(np.uint16)
            # the body's colour is already weighted by its coverage (it was drawn over black)
            frame[box] = np.minimum(colour[box][..., :3] + (frame[box] * (255 - cover) + 127) // 255, 255).astype(np.uint8)
        return frame

    def close(self) -> None:
        self.renderer.delete()
