"""Run inside Blender, not imported by the package (granumamba.render.fbx runs it):

    blender -b --factory-startup --python blender_fbx.py -- IN.glb OUT.fbx

Opens the project's glTF export with Blender's glTF importer and writes it with Blender's FBX
exporter: the 55-bone armature under SMPL-X's names (no leaf bones added), the skinned mesh and,
on the SMPL-X body, its expression shape keys, and the animation baked at every frame (no
simplification, so each frame's pose is the take's), Y up, at 30 fps, in metres (the metre as
the file's unit, 100 cm, and no object scaled to make it so: Blender's "FBX All" scaling). The
mesh's deformation is not evaluated at each baked frame: the file stores the skin, not the
deformed mesh, and the exporter then runs five times faster.
"""

import sys

import bpy

source, target = sys.argv[sys.argv.index("--") + 1 :][:2]
try:
    import numpy

    if not hasattr(numpy, "bool"):  # Blender 3.4's glTF importer uses numpy.bool, gone in numpy 2
        numpy.bool = bool
except ImportError:  # Blender's own builds bring numpy; a distribution's may leave it out
    pass

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 30, 1.0  # glTF keeps seconds; Blender keys frames at the scene's rate
bpy.ops.import_scene.gltf(filepath=source)
first, last = min(a.frame_range[0] for a in bpy.data.actions), max(a.frame_range[1] for a in bpy.data.actions)
scene.frame_start, scene.frame_end = int(round(first)), int(round(last))
for modifier in (m for o in bpy.data.objects for m in o.modifiers):
    modifier.show_viewport = False
EXPORT = {  # Blender's FBX exporter's settings (the module's docstring says why each)
    "object_types": {"ARMATURE", "MESH"},
    "apply_scale_options": "FBX_SCALE_ALL",
    "add_leaf_bones": False,
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,
    "use_mesh_modifiers": False,
}
bpy.ops.export_scene.fbx(filepath=target, **EXPORT)
