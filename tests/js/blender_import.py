"""Run inside Blender: blender -b --factory-startup --python blender_import.py -- FILE OUT.json
Imports a .glb, .fbx or .bvh the way a user would and writes what Blender sees as JSON."""

import builtins
import json
import sys

import bpy

path, out = sys.argv[sys.argv.index("--") + 1 :][:2]
bpy.ops.wm.read_factory_settings(use_empty=True)
if path.endswith(".bvh"):
    # Blender 3.4's BVH reader opens files with mode "rU", which Python 3.11 rejects: drop the U.
    real_open = builtins.open
    builtins.open = lambda file, mode="r", *a, **k: real_open(file, mode.replace("U", ""), *a, **k)
    bpy.ops.import_anim.bvh(filepath=path, update_scene_fps=True, update_scene_duration=True)
    builtins.open = real_open
elif path.endswith(".fbx"):
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=path)
else:
    import numpy

    # Blender 3.4's glTF importer uses numpy.bool, gone from the numpy 2 that Debian ships with it.
    numpy.bool = bool
    bpy.context.scene.render.fps = 30  # glTF keeps seconds; Blender turns them into frames at the scene's rate
    bpy.ops.import_scene.gltf(filepath=path)
armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
meshes = [o for o in bpy.data.objects if o.type == "MESH"]
actions = list(bpy.data.actions)
# each shape key's curve and the frame its action starts at (glTF's time 0 lands on frame 0; the
# FBX importer puts a file's first frame on frame 1, its default anim_offset)
key_curves = [(c, round(a.frame_range[0])) for a in actions for c in a.fcurves if c.data_path.startswith("key_blocks")]
report = {
    "armatures": len(armatures),
    "bones": [b.name for b in armatures[0].data.bones] if armatures else [],
    "meshes": len(meshes),
    "skinned_meshes": sum(1 for m in meshes if any(mod.type == "ARMATURE" for mod in m.modifiers)),
    "vertex_groups": len(meshes[0].vertex_groups) if meshes else 0,
    "actions": len(actions),
    "frame_range": list(actions[0].frame_range) if actions else None,
    "fps": bpy.context.scene.render.fps,
    # the face's morph targets: the mesh's shape keys (Basis first) and the actions that move them
    "shape_keys": [k.name for k in meshes[0].data.shape_keys.key_blocks] if meshes and meshes[0].data.shape_keys else [],
    "shape_key_curves": len(key_curves),
    # each shape key's value at the take's first frames, as Blender plays it: {key name: [values]}
    "shape_key_values": {c.data_path.split('"')[1]: [c.evaluate(start + f) for f in range(10)] for c, start in key_curves},
}
if armatures and actions:  # where each bone's head is in the world (Blender's Z up) at the take's frames 0, 10 and 37
    armature, start = armatures[0], round(actions[0].frame_range[0])
    report["heads"] = {}
    for frame in (0, 10, 37):
        bpy.context.scene.frame_set(start + frame)
        world = armature.matrix_world
        report["heads"][frame] = {b.name: list(world @ b.head) for b in armature.pose.bones}
if path.endswith(".fbx"):  # the file's own settings, read with the parser of Blender's FBX add-on
    from io_scene_fbx import parse_fbx

    def children(element, name):
        return [c for c in element.elems if c.id == name]

    def properties(element):  # an element's Properties70: {name: its value, or its values}
        return {p.props[0].decode(): p.props[4:] if len(p.props) > 5 else p.props[-1] for p in children(element, b"Properties70")[0].elems}

    root, _ = parse_fbx.parse(path)
    settings = properties(children(root, b"GlobalSettings")[0])
    report["fbx_settings"] = {k: settings[k] for k in ("UnitScaleFactor", "UpAxis", "UpAxisSign", "CustomFrameRate")}
    models = [properties(m) for m in children(children(root, b"Objects")[0], b"Model")]
    report["fbx_scales"] = [list(m["Lcl Scaling"]) for m in models if "Lcl Scaling" in m]
with open(out, "w") as fh:
    json.dump(report, fh)
