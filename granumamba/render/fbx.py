"""A motion as FBX (.fbx), for the tools that take FBX before glTF (Maya, MotionBuilder, Unity,
Unreal): the glTF export (`write_glb`, the same body, skeleton, animation and face) converted by
Blender's own glTF importer and FBX exporter (`blender_fbx.py`), run as a separate program.

Written through Blender because FBX is a closed format with no maintained open writer in Python
(the Autodesk FBX SDK is not on PyPI); Blender's exporter is the open one that the animation
tools' users already rely on. Blender is found as $GRANUMAMBA_BLENDER or `blender` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..motion.parts import Motion

BLENDER_ENV = "GRANUMAMBA_BLENDER"
SCRIPT = Path(__file__).with_name("blender_fbx.py")
TIMEOUT_SECONDS = 1800  # Blender writes 4 to 12 s of motion a second here (bench_export): a two-hour take fits


class FBXError(RuntimeError):
    """Blender is missing or could not write the FBX; the message says what to do."""


def blender_program() -> str | None:
    """The Blender command: $GRANUMAMBA_BLENDER, else `blender` on PATH."""
    named = os.environ.get(BLENDER_ENV)
    if named:
        return named if os.access(named, os.X_OK) and Path(named).is_file() else None
    return shutil.which("blender")


def write_fbx(path: str | os.PathLike, motion: Motion, body=None) -> None:
    """Write `motion` as FBX at `path`: the .glb of `write_glb` (the built-in body, or `body`,
    an SMPLXBody) opened and exported by Blender in a temporary folder that is removed after."""
    from .gltf import write_glb  # here, not at the top: importing FBXError stays cheap (the CLI does on any error)

    blender = blender_program()
    if blender is None:
        where = f"${BLENDER_ENV} ({os.environ[BLENDER_ENV]}) is not a program" if os.environ.get(BLENDER_ENV) else "Blender is not on PATH"
        raise FBXError(
            f"FBX is written by Blender, and {where}: install it (apt-get install blender python3-numpy, or blender.org) "
            f"or set {BLENDER_ENV} to its program; or export .glb, which Blender, Unity and Unreal open as well."
        )
    with tempfile.TemporaryDirectory(prefix="granumamba-fbx-") as folder:
        glb, fbx = Path(folder) / "motion.glb", Path(folder) / "motion.fbx"
        write_glb(glb, motion, body)
        command = [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(SCRIPT), "--", str(glb), str(fbx)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FBXError(f"Blender took over {TIMEOUT_SECONDS // 60} minutes to write the FBX; export a shorter take") from None
        if done.returncode != 0 or not fbx.is_file():
            said = [line for line in (done.stderr + done.stdout).splitlines() if "Error" in line or "error" in line][-3:]
            hint = " Its glTF importer needs numpy: apt-get install python3-numpy." if any("numpy" in line for line in said) else ""
            message = " | ".join(said) or "no message"
            raise FBXError(f"Blender ({blender}) could not write the FBX (exit {done.returncode}): {message}.{hint}")
        shutil.move(fbx, path)
