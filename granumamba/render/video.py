"""Motion + speech -> MP4 (H.264 yuv420p, AAC), one motion or a labelled grid of several.

Frames are drawn in worker processes (each with its own OpenGL context) in chunks and streamed
in order to the ffmpeg that ships with imageio-ffmpeg. The audio is padded or trimmed to exactly
the video's length first, so the pipe never breaks and audio and video end together.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import FPS, SAMPLE_RATE, TERMINATED
from ..motion.parts import Motion

MIN_SIZE, MAX_SIZE = 256, 1080
CHUNK = 30  # frames per task sent to a worker


@dataclass
class RenderStats:
    frames: int = 0
    posing: float = 0.0  # seconds spent turning motion into meshes (all workers)
    drawing: float = 0.0  # seconds spent in OpenGL (all workers)
    encoding: float = 0.0  # seconds the main process spent handing frames to ffmpeg and finishing
    wall: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


_worker: dict = {}
_pools: dict[int, ProcessPoolExecutor] = {}
# One OpenGL renderer at a time in a process that draws itself (threads of a web app): pyrender's
# EGL contexts share the default display, deleting one ends the display for all, and a context
# belongs to the thread that made it current. So such a renderer lives for one call, under this lock.
_drawing_here = threading.Lock()


def _release_scene() -> None:
    scene = _worker.pop("scene", None)
    _worker.pop("key", None)
    if scene is not None:
        scene.close()


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes kept for the life of this process: starting them (Python, torch, an
    OpenGL context) costs seconds, more than a short clip takes to draw."""
    if workers not in _pools:
        context = multiprocessing.get_context("spawn")  # a fresh process: no GL or OpenMP state inherited
        _pools[workers] = ProcessPoolExecutor(workers, mp_context=context)
    return _pools[workers]


def _scene_for(setup: tuple):
    """The worker's body and scene for this video's setup (made once per video per worker)."""
    from .body import make_body
    from .scene import SceneRenderer

    key = repr(setup)
    if _worker.get("key") != key:
        body_kind, smplx_path, size, camera_pose, floor, centre_xz, antialias = setup
        _release_scene()
        if _worker.get("body_key") != (body_kind, smplx_path):
            _worker["body"], _worker["body_key"] = make_body(body_kind, smplx_path), (body_kind, smplx_path)
        body = _worker["body"]
        _worker["scene"] = SceneRenderer(size, size, body.faces, body.colours, camera_pose, floor, centre_xz=centre_xz, antialias=antialias)
        _worker["key"] = key
    return _worker["body"], _worker["scene"]


def _render_chunk(setup: tuple, motion: Motion) -> tuple[np.ndarray, float, float]:
    body, scene = _scene_for(setup)
    frames = np.empty((motion.num_frames, scene.size[1], scene.size[0], 3), np.uint8)
    posing = drawing = 0.0
    clock = time.perf_counter()
    for i, mesh in enumerate(body.frames(motion)):
        now = time.perf_counter()
        posing += now - clock
        frames[i] = scene.render(mesh.vertices, mesh.normals)
        clock = time.perf_counter()
        drawing += clock - now
    return frames, posing, drawing


def render_stills(
    motion: Motion, frames: list[int], size: int = 384, body: str = "mannequin", framing: str = "body", antialias: bool = True
) -> np.ndarray:
    """Chosen frames of `motion` side by side, (size, size * len(frames), 3) uint8: for
    TensorBoard samples and still pictures."""
    from .body import make_body, pose_motion
    from .scene import SceneRenderer, frame_camera

    rotations, positions = pose_motion(motion)
    camera, floor = frame_camera(positions, rotations, framing)
    figure = make_body(body)
    centre = positions[:, 0].mean(axis=0)
    centre_xz = (float(centre[0]), float(centre[2]))
    with _drawing_here:
        scene = SceneRenderer(size, size, figure.faces, figure.colours, camera, floor, centre_xz=centre_xz, antialias=antialias)
        try:
            images = []
            for i in frames:
                if hasattr(figure, "mesh"):
                    mesh = figure.mesh(rotations[i], positions[i])
                else:
                    mesh = next(iter(figure.frames(_slice(motion, i, i + 1))))
                images.append(scene.render(mesh.vertices, mesh.normals))
        finally:
            scene.close()
    return np.concatenate(images, axis=1)


def _slice(motion: Motion, start: int, stop: int) -> Motion:
    return Motion(motion.poses[start:stop], motion.trans[start:stop], motion.expressions[start:stop], motion.betas)


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = max(14, frame.shape[0] // 22)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    x = (frame.shape[1] - (box[2] - box[0])) // 2
    draw.rectangle([x - 8, 6, x + box[2] - box[0] + 8, 14 + box[3] - box[1]], fill=(255, 255, 255))
    draw.text((x, 8 - box[1] + 2), text, fill=(20, 20, 20), font=font)
    return np.asarray(image)


def fit_audio(audio: np.ndarray | None, frames: int) -> np.ndarray:
    """Pad with silence or trim so the audio lasts exactly `frames` video frames."""
    samples = frames * SAMPLE_RATE // FPS
    audio = np.zeros(samples, np.float32) if audio is None else np.asarray(audio, np.float32)
    return np.pad(audio, (0, max(0, samples - audio.shape[0])))[:samples]


def render_video(
    motions: Motion | list[Motion],
    audio: np.ndarray | None,
    out: str | os.PathLike,
    body: str = "mannequin",
    size: int = 512,
    labels: list[str] | None = None,
    framing: str = "body",
    workers: int | None = None,
    smplx_path: str | os.PathLike | None = None,
    crf: int = 20,
    progress=None,
    camera_motions: list[Motion] | None = None,
    antialias: bool = False,
) -> RenderStats:
    """Render one motion, or several side by side (same camera and body, a label over each),
    with `audio` (16 kHz mono float32) as AAC, to `out` (.mp4), written atomically.

    size: the height (and width) of each cell, 256 to 1080. progress(done, total) is called as
    frames are encoded. camera_motions: frame the camera on these instead (so that several
    videos share one camera). antialias: smooth edges (4 samples a pixel), at about half the
    speed on a CPU.
    """
    import imageio_ffmpeg
    import soundfile

    from .body import pose_motion
    from .scene import frame_camera

    motions = [motions] if isinstance(motions, Motion) else list(motions)
    if not motions:
        raise ValueError("nothing to render: no motion given")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size {size} is outside {MIN_SIZE} to {MAX_SIZE} pixels")
    size -= size % 2  # yuv420p needs even dimensions
    if labels is not None and len(labels) != len(motions):
        raise ValueError(f"{len(labels)} labels for {len(motions)} motions")
    frames = min(m.num_frames for m in motions)
    if frames == 0:
        raise ValueError("the motion has no frames")
    stats = RenderStats(frames=frames)
    started = time.perf_counter()
    rotations, positions = zip(*(pose_motion(_slice(m, 0, frames)) for m in (camera_motions or motions)))
    camera, floor = frame_camera(np.concatenate(positions), np.concatenate(rotations), framing)
    centre = np.concatenate(positions)[:, 0].mean(axis=0)
    columns = len(motions) if len(motions) <= 4 else math.ceil(math.sqrt(len(motions)))
    rows = math.ceil(len(motions) / columns)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, min(len(os.sched_getaffinity(0)) - 1, 4))  # a core stays for encoding
    tasks = [(cell, start, min(start + CHUNK, frames)) for start in range(0, frames, CHUNK) for cell in range(len(motions))]
    init = (body, None if smplx_path is None else str(smplx_path), size, camera, floor, (float(centre[0]), float(centre[2])), antialias)
    here = workers <= 1
    with _drawing_here if here else contextlib.nullcontext(), tempfile.TemporaryDirectory(prefix="granumamba-render-") as tmp:
        wav = Path(tmp) / "speech.wav"
        soundfile.write(wav, fit_audio(audio, frames), SAMPLE_RATE, subtype="PCM_16")
        partial = out.with_name(f".{out.stem}.partial{out.suffix}")
        writer = imageio_ffmpeg.write_frames(
            str(partial),
            (size * columns, size * rows),
            fps=FPS,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            quality=None,
            ffmpeg_log_level="error",
            audio_path=str(wav),
            audio_codec="aac",
            output_params=["-crf", str(crf), "-preset", "veryfast", "-b:a", "128k", "-movflags", "+faststart"],
        )
        writer.send(None)
        canvas = np.full((size * rows, size * columns, 3), 255, np.uint8)
        try:
            chunks = [_slice(motions[c], a, b) for c, a, b in tasks]
            if here:
                results = (_render_chunk(init, chunk) for chunk in chunks)
            else:
                results = _pool(workers).map(_render_chunk, [init] * len(chunks), chunks)
            pending: dict[int, np.ndarray] = {}
            done = 0
            for (cell, start, stop), (chunk, posing, drawing) in zip(tasks, results):
                if TERMINATED.is_set():  # told to stop while a library swallowed the SystemExit
                    raise SystemExit(128 + signal.SIGTERM)
                stats.posing += posing
                stats.drawing += drawing
                if labels:
                    chunk = np.stack([_label(f, labels[cell]) for f in chunk])
                pending[cell] = chunk
                if len(pending) < len(motions):
                    continue
                clock = time.perf_counter()
                for i in range(stop - start):
                    for c, cells in pending.items():
                        r, k = divmod(c, columns)
                        canvas[r * size : (r + 1) * size, k * size : (k + 1) * size] = cells[i]
                    writer.send(canvas)
                pending.clear()
                done = stop
                stats.encoding += time.perf_counter() - clock
                if progress:
                    progress(done, frames)
            clock = time.perf_counter()
            writer.close()
            stats.encoding += time.perf_counter() - clock
        except BaseException:
            writer.close()
            partial.unlink(missing_ok=True)
            raise
        finally:
            if here:
                _release_scene()
        os.replace(partial, out)
    stats.wall = time.perf_counter() - started
    return stats
