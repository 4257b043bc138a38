"""A motion as glTF 2.0 binary (.glb): the built-in body as one skinned mesh (its linear-blend
skin weights, as the renderer uses them) on the 55 SMPL-X
joints (named as SMPL-X names them), and the motion as one animation at 30 fps, jaw included;
on the SMPL-X body, its 100 expression blend shapes as morph targets, animated by the take's
expression coefficients.
Blender, game engines and three.js open it; the offscreen renderer draws the same mesh.

The skeleton's bind pose is the SMPL-X zero pose (a T-pose) on the project's rest skeleton, so
a joint's animated rotation is exactly its BEAT2 axis-angle rotation; the pelvis also carries
the root translation. pygltflib writes the container; the arrays are packed here with numpy,
since glTF's buffers are plain little-endian arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pygltflib as gl
import roma
import torch

from .. import FPS
from ..motion.parts import Motion
from ..motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from .body import Mannequin


class _Packer:
    """Arrays into one binary buffer, each as a buffer view and an accessor."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf, self.blob = gltf, bytearray()

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        self.blob += b"\0" * (-len(self.blob) % 4)  # every view starts on a 4-byte boundary
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data), target=target))
        self.blob += data
        accessor = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array), type=kind)
        if bounds:
            flat = np.asarray(array).reshape(len(array), -1)
            accessor.min, accessor.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def _quaternions(motion: Motion) -> np.ndarray:
    """(T, 55, 4) unit quaternions (x, y, z, w), each joint's sign kept continuous over time so
    that linear interpolation between frames never turns the long way round."""
    q = roma.rotvec_to_unitquat(torch.as_tensor(motion.poses, dtype=torch.float64).reshape(-1, NUM_JOINTS, 3)).numpy()
    flips = np.cumprod(np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0), axis=0)
    q[1:] *= flips[..., None]
    return q.astype(np.float32)


def write_glb(path: str | os.PathLike, motion: Motion, body=None) -> None:
    """Write `motion` on a body (the built-in mannequin by default, or an `SMPLXBody`: its mesh
    with the take's betas) as a .glb: mesh, skin, skeleton, one animation."""
    skin = (body or Mannequin()).skinned(motion)
    frames = motion.num_frames
    bind = skin.joint_positions.astype(np.float32)  # joint positions in the bind pose, root translation excluded
    gltf = gl.GLTF2(asset=gl.Asset(generator="GranuMamba", version="2.0"))
    packer = _Packer(gltf)

    # the skeleton: one node per joint, children by the SMPL-X tree, placed where the body's joints are
    offsets = bind - np.where(np.array(PARENTS)[:, None] >= 0, bind[np.maximum(PARENTS, 0)], 0.0)
    trans = np.asarray(motion.trans, np.float32)
    for j in range(NUM_JOINTS):
        translation = offsets[j] + (trans[0] if j == 0 else 0.0)
        gltf.nodes.append(gl.Node(name=JOINT_NAMES[j], translation=[float(v) for v in translation]))
    for j, parent in enumerate(PARENTS):
        if parent >= 0:
            gltf.nodes[parent].children.append(j)

    # the body with its skin weights (up to four joints a vertex)
    attributes = gl.Attributes(
        POSITION=packer.add(skin.vertices.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=packer.add(skin.normals.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER),
        COLOR_0=packer.add(skin.colours.astype(np.float32), gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER),
        JOINTS_0=packer.add(skin.joints.astype(np.uint16), gl.VEC4, gl.UNSIGNED_SHORT, gl.ARRAY_BUFFER),
        WEIGHTS_0=packer.add(skin.weights.astype(np.float32), gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER),
    )
    indices = packer.add(skin.faces.reshape(-1).astype(np.uint32), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(
        gl.Material(name=skin.name, pbrMetallicRoughness=gl.PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=0.7))
    )
    primitive = gl.Primitive(attributes=attributes, indices=indices, material=0)
    mesh = gl.Mesh(name=skin.name, primitives=[primitive])
    if skin.morph_targets is not None:  # the face's blend shapes: glTF morph targets, named as Blender and three.js read them
        primitive.targets = [
            gl.Attributes(POSITION=packer.add(target.astype(np.float32), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, bounds=True))
            for target in skin.morph_targets
        ]
        mesh.weights = [0.0] * len(skin.morph_targets)
        mesh.extras = {"targetNames": list(skin.morph_names)}
    gltf.meshes.append(mesh)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (NUM_JOINTS, 1, 1))
    inverse_bind[:, 3, :3] = -bind  # glTF matrices are column-major: the translation is the fourth row here
    gltf.skins.append(
        gl.Skin(name="smplx", joints=list(range(NUM_JOINTS)), skeleton=0, inverseBindMatrices=packer.add(inverse_bind, gl.MAT4, gl.FLOAT))
    )
    gltf.nodes.append(gl.Node(name="body", mesh=0, skin=0))  # a root: parent transforms do not move a skinned mesh
    gltf.scenes.append(gl.Scene(name="GranuMamba", nodes=[0, NUM_JOINTS]))
    gltf.scene = 0

    # the motion: a rotation channel per joint, the root's translation
    times = packer.add(np.arange(frames, dtype=np.float32) / FPS, gl.SCALAR, gl.FLOAT, bounds=True)
    quaternions = _quaternions(motion)
    animation = gl.Animation(name="gesture")
    for j in range(NUM_JOINTS):
        animation.samplers.append(
            gl.AnimationSampler(input=times, output=packer.add(quaternions[:, j], gl.VEC4, gl.FLOAT), interpolation="LINEAR")
        )
        animation.channels.append(gl.AnimationChannel(sampler=j, target=gl.AnimationChannelTarget(node=j, path="rotation")))
    root = packer.add((trans + offsets[0]).astype(np.float32), gl.VEC3, gl.FLOAT)
    animation.samplers.append(gl.AnimationSampler(input=times, output=root, interpolation="LINEAR"))
    animation.channels.append(gl.AnimationChannel(sampler=NUM_JOINTS, target=gl.AnimationChannelTarget(node=0, path="translation")))
    if skin.morph_targets is not None:  # the morph targets' weights, every target's in each frame
        weights = packer.add(skin.morph_weights.astype(np.float32).reshape(-1), gl.SCALAR, gl.FLOAT)
        animation.samplers.append(gl.AnimationSampler(input=times, output=weights, interpolation="LINEAR"))
        target = gl.AnimationChannelTarget(node=NUM_JOINTS, path="weights")
        animation.channels.append(gl.AnimationChannel(sampler=len(animation.samplers) - 1, target=target))
    gltf.animations.append(animation)

    gltf.buffers.append(gl.Buffer(byteLength=len(packer.blob)))
    gltf.set_binary_blob(bytes(packer.blob))
    gltf.save_binary(str(Path(path)))
