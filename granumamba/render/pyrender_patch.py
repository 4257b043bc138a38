"""Everything the offscreen renderer changes in pyrender, in one place.

pyrender offers no options for these, so they reach into its internals. They are written for
pyrender-maintained PYRENDER_VERSION (pinned in requirements.txt); `check` says at once, naming
the attribute, when another version has moved what they use (tests/test_render.py runs it).

- framebuffer samples: pyrender always allocates a 4x multisampled offscreen framebuffer; on a
  software rasteriser resolving it costs as much as drawing the body, so the count is chosen per
  draw (`samples`);
- background: pyrender clears each frame to a flat colour; while `drawing_over` is set, the colour
  clear becomes a copy of a pre-drawn picture (the floor), so the body lands on it in OpenGL;
- shaders, read-back, vertex buffer: the renderer's program cache pointed at the project's
  shaders, frames read back as colour only (pyrender also reads and converts depth), and the
  body mesh's interleaved GPU buffer overwritten in place.
"""

from __future__ import annotations

from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import numpy as np

PYRENDER_VERSION = "1.0.1"
_MODULE = ("glRenderbufferStorageMultisample", "glClear")  # pyrender.renderer's OpenGL names that are wrapped
_OFFSCREEN = ("_platform", "_renderer")
_RENDERER = ("_program_cache", "_main_fb", "_main_fb_ms", "_read_main_framebuffer", "_delete_main_framebuffer")
_PRIMITIVE = ("_buffers",)

_samples = [0]  # samples per pixel of the next framebuffer pyrender allocates
_background: list = [None]  # (framebuffer, width, height) of the picture the body is drawn over now


class PyrenderChanged(RuntimeError):
    pass


def check(offscreen=None, primitive=None) -> None:
    """Raise PyrenderChanged naming what the installed pyrender lacks of what these patches use."""
    import pyrender.renderer as renderer

    try:
        installed = version("pyrender-maintained")
    except PackageNotFoundError:
        installed = "not pyrender-maintained"
    missing = [f"pyrender.renderer.{name}" for name in _MODULE if not hasattr(renderer, name)]
    if offscreen is not None:
        missing += [f"OffscreenRenderer.{name}" for name in _OFFSCREEN if not hasattr(offscreen, name)]
        inner = getattr(offscreen, "_renderer", None)
        missing += [f"Renderer.{name}" for name in _RENDERER if inner is not None and not hasattr(inner, name)]
    if primitive is not None:
        missing += [f"Primitive.{name}" for name in _PRIMITIVE if not hasattr(primitive, name)]
    if missing or installed != PYRENDER_VERSION:
        raise PyrenderChanged(
            f"pyrender ({installed}) is not the version the renderer's patches are written for "
            f"(pyrender-maintained {PYRENDER_VERSION}){': missing ' + ', '.join(missing) if missing else ''}. "
            "Install requirements.txt's pin, or update granumamba/render/pyrender_patch.py."
        )


def install() -> None:
    """Wrap pyrender's framebuffer allocation and colour clear (once per process)."""
    import pyrender.renderer as renderer
    from OpenGL.GL import GL_COLOR_BUFFER_BIT, GL_NEAREST, GL_READ_FRAMEBUFFER, glBindFramebuffer, glBlitFramebuffer

    allocate_original, clear_original = renderer.glRenderbufferStorageMultisample, renderer.glClear
    if getattr(allocate_original, "granumamba", False):
        return

    def allocate(target, samples, internal_format, width, height):
        return allocate_original(target, _samples[0], internal_format, width, height)

    def clear(mask):
        if _background[0] is None or not mask & GL_COLOR_BUFFER_BIT:
            return clear_original(mask)
        framebuffer, width, height = _background[0]
        clear_original(mask & ~GL_COLOR_BUFFER_BIT)
        glBindFramebuffer(GL_READ_FRAMEBUFFER, framebuffer)
        glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL_COLOR_BUFFER_BIT, GL_NEAREST)

    allocate.granumamba = clear.granumamba = True
    renderer.glRenderbufferStorageMultisample, renderer.glClear = allocate, clear


def samples(count: int) -> None:
    """Samples per pixel of the framebuffers pyrender allocates from now on."""
    _samples[0] = count


@contextmanager
def drawing_over(framebuffer: int | None, width: int, height: int):
    """Within the block, pyrender's colour clear copies `framebuffer` (None: a plain clear)."""
    _background[0] = None if framebuffer is None else (framebuffer, width, height)
    try:
        yield
    finally:
        _background[0] = None


def make_current(offscreen) -> None:
    offscreen._platform.make_current()


def drop_main_framebuffer(offscreen) -> None:
    """Free the offscreen framebuffer, so the next draw allocates one with the current samples."""
    offscreen._platform.make_current()
    offscreen._renderer._delete_main_framebuffer()


def use_shaders(offscreen, folder: str) -> None:
    from pyrender.shader_program import ShaderProgramCache

    inner = offscreen._renderer
    inner._program_cache.clear()
    inner._program_cache = ShaderProgramCache(shader_dir=folder)


def read_colour_only(offscreen, width: int, height: int, rgba: bool) -> None:
    """This renderer's frames read back as colour only: RGB, or RGBA (coverage)."""
    from OpenGL import GL

    inner = offscreen._renderer
    channels, layout = (4, GL.GL_RGBA) if rgba else (3, GL.GL_RGB)

    def read_colour(scene, flags):
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, inner._main_fb_ms)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, inner._main_fb)
        GL.glBlitFramebuffer(0, 0, width, height, 0, 0, width, height, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, inner._main_fb)
        pixels = GL.glReadPixels(0, 0, width, height, layout, GL.GL_UNSIGNED_BYTE)
        return np.frombuffer(pixels, np.uint8).reshape(height, width, channels)[::-1], None

    inner._read_main_framebuffer = read_colour  # this instance only


def overwrite_vertices(offscreen, primitive, data: np.ndarray) -> None:
    """Write `data` over the primitive's interleaved vertex buffer on the GPU."""
    from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

    offscreen._platform.make_current()
    glBindBuffer(GL_ARRAY_BUFFER, primitive._buffers[0])
    glBufferSubData(GL_ARRAY_BUFFER, 0, data.nbytes, data)
