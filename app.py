"""GranuMamba demo: speech (or text) in, full-body gesture video out, with granularity sliders.

    python app.py [--model REPO_ID_OR_DIR] [--live-model REPO_ID_OR_DIR] [--port 7860]

Weights: --model, else GRANUMAMBA_MODEL, else the default Hub repo; when the Hub cannot be
reached, the bundled demo checkpoint in assets/ (the page says which is in use). The Live tab
serves --live-model, else GRANUMAMBA_LIVE_MODEL, else the default live repo (a causal model that
answers speech in a quarter of a second), with the bundled live checkpoint as its fallback; in a
checkout without that checkpoint, the app's own model.
Limits (environment): GRANUMAMBA_MAX_SECONDS (audio length, default 120),
GRANUMAMBA_MAX_UPLOAD_MB (default 50), GRANUMAMBA_CONCURRENCY (requests at once, default 1);
live mode's GRANUMAMBA_LIVE_SESSIONS, GRANUMAMBA_LIVE_MAX_SECONDS, GRANUMAMBA_LIVE_IDLE_SECONDS
(granumamba/live_server.py). The same server answers the live WebSocket at /live/ws.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import gradio as gr
import numpy as np
import soundfile
from gradio.utils import get_upload_folder as gradio_upload_folder

from granumamba import SAMPLE_RATE
from granumamba.audio.io import ACCEPTED, AudioError, load_audio
from granumamba.data.beat2 import save_motion
from granumamba.live_server import LiveLimits, LiveServer, add_live_routes
from granumamba.model.granumamba import ModelLoadError
from granumamba.motion.bvh import write_bvh
from granumamba.motion.parts import Motion
from granumamba.pipeline import (
    DEFAULT_LIVE_MODEL_ID,
    DEFAULT_MODEL_ID,
    GenerationResult,
    GranuMambaPipeline,
    display_name,
    live_model_name,
)
from granumamba.render.body import SMPLX_ENV, SMPLXBody, SMPLXError
from granumamba.render.fbx import FBXError, blender_program, write_fbx
from granumamba.render.gltf import write_glb
from granumamba.render.video import render_video
from granumamba.text.align import estimate_word_timings
from granumamba.text.tts import MAX_CHARACTERS, VOICES, SpeechError, espeak_available, piper_available, synthesize

try:  # ZeroGPU on Hugging Face Spaces; a no-op elsewhere
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:

    def gpu(fn):
        return fn


ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "assets" / "examples"
WEB = ROOT / "granumamba" / "web"
EMPTY_VIEW = (
    '<div id="granumamba-view-empty" style="height:520px;display:grid;place-items:center;color:#777">'
    "The gesture plays here in 3D after Generate.</div>"
)


def env_number(name: str, default: float, low: float, high: float, kind=float):
    """A limit from the environment: a finite number from low to high, or the app stops with a
    message that names the variable."""
    text = os.environ.get(name, str(default))
    try:
        value = kind(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r}: give a {'whole ' if kind is int else ''}number from {low} to {high}") from None
    if not (low <= value <= high):  # NaN fails this too
        raise SystemExit(f"{name}={text!r}: give a number from {low} to {high}")
    return value


MAX_SECONDS = env_number("GRANUMAMBA_MAX_SECONDS", 120, 1, 3600)
MAX_UPLOAD_MB = env_number("GRANUMAMBA_MAX_UPLOAD_MB", 50, 1, 2000)
CONCURRENCY = env_number("GRANUMAMBA_CONCURRENCY", 1, 1, 64, int)
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "granumamba-app"
KEEP_OUTPUTS = 32  # finished requests whose files stay for download; older ones are removed
KEEP_UPLOADS = 128  # entries of Gradio's upload and output cache kept (each an upload or a returned file)


def prune_folders(root: Path, keep: int, min_age_s: float = 0.0) -> None:
    """Remove all but the `keep` newest entries of `root`, sparing any younger than `min_age_s`."""
    entries = sorted(root.glob("*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    now = time.time()
    for old in entries[:-keep] if keep else entries:
        if now - old.stat().st_mtime >= min_age_s:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def prune_outputs(keep: int = KEEP_OUTPUTS) -> None:
    """This app's finished requests, and Gradio's cache of uploads and returned files: bounded by
    count as well as by Gradio's own age limit, so a busy demo's disk use stays bounded."""
    prune_folders(OUTPUT_ROOT, keep)
    prune_folders(Path(gradio_upload_folder()), KEEP_UPLOADS, min_age_s=120)  # spare what a request in flight uses


def weights_line(pipe: GranuMambaPipeline) -> str:
    if pipe.fallback_reason:
        return f"**Weights:** {display_name(pipe.source)}, because the Hub model could not be loaded: {pipe.fallback_reason}"
    return f"**Weights:** `{display_name(pipe.source)}`"


def load_live_pipeline(pipe: GranuMambaPipeline, live_model: str | None) -> GranuMambaPipeline:
    """The Live tab's model (`live_model_name`: a causal one answers speech in a quarter of a
    second, README, Live mode), else the app's own. Only the default live repo falls back to its
    bundled checkpoint: a named model that does not load is an error."""
    name = live_model_name(live_model)
    return GranuMambaPipeline.from_pretrained(name, allow_fallback=name == DEFAULT_LIVE_MODEL_ID) if name else pipe


@dataclass
class Session:
    """One visitor's last generation: its sampled codes (so a slider only decodes again), the
    speech, and the folder of its files."""

    result: GenerationResult
    folder: Path
    gains: tuple[float, float, float]


def file_url(path: Path) -> str:
    """The URL that Gradio serves a file of an allowed folder under, relative to the page."""
    return "gradio_api/file=" + quote(str(path))


LIVE_VIEW = (
    f'<iframe id="granumamba-live" src="{html.escape(file_url(WEB / "live.html"))}" '
    'style="width:100%;height:560px;border:0" allow="microphone; autoplay"></iframe>'
)


def viewer_html(session: Session) -> str:
    """The 3D view: the exported glTF and the speech, played in sync (granumamba/web/viewer.html)."""
    glb = session.folder / f"granumamba_{gains_tag(session.gains)}.glb"
    src = f"{file_url(WEB / 'viewer.html')}?motion={quote(file_url(glb))}&audio={quote(file_url(session.folder / 'speech.wav'))}"
    return f'<iframe id="granumamba-view" src="{html.escape(src)}" style="width:100%;height:520px;border:0" allow="autoplay"></iframe>'


def gains_tag(gains: tuple[float, float, float]) -> str:
    return "_".join(f"{g:.2f}" for g in gains)


def download_paths(session: Session) -> dict[str, Path]:
    tag = gains_tag(session.gains)
    return {suffix: session.folder / f"granumamba_{tag}{suffix}" for suffix in (".glb", ".npz", ".bvh")}


def write_downloads(session: Session) -> list[str]:
    """The motion for the user's own tools, the quick ones first: glTF (the body of the view) and
    BEAT2 npz. The BVH (seconds for a minute of motion) follows in `add_bvh`, after the view is up."""
    paths = download_paths(session)
    for old in session.folder.glob("granumamba_*"):  # a slider's earlier files: only the current gains' stay
        if old not in paths.values():
            old.unlink(missing_ok=True)
    write_glb(paths[".glb"], session.result.motion)
    save_motion(paths[".npz"], session.result.motion)
    return [str(paths[".glb"]), str(paths[".npz"])]


def add_bvh(session: Session | None):
    if session is None:
        return gr.skip()
    paths = download_paths(session)
    write_bvh(paths[".bvh"], session.result.motion)
    return [str(p) for p in paths.values()]


def add_fbx(session: Session | None, body):
    """On request, where Blender is installed: the FBX (granumamba.render.fbx) beside the other
    downloads, on the body chosen for the video. A slider's release drops it with the earlier
    gains' files, since it holds their motion."""
    if session is None:
        raise gr.Error("Generate first: the FBX is made from the motion in the 3D view.")
    paths = download_paths(session)
    fbx = paths[".glb"].with_suffix(".fbx")
    try:
        write_fbx(fbx, session.result.motion, SMPLXBody(None, batch=1) if body == "SMPL-X" else None)
    except (FBXError, SMPLXError) as err:
        raise gr.Error(str(err)) from None
    return [str(p) for p in (*paths.values(), fbx) if p.is_file()]


# Gradio's Audio box takes audio files only: a browser reads a .webm or .mp4 file as video/* and
# the box refuses it, though MediaRecorder, screen recorders and phones save speech that way. So
# recordings in a video container come in through a button that puts their sound track in the box.
RECORDING_TYPES = [".webm", ".mp4", ".mov", ".mkv", ".avi", ".3gp"]


def sound_track(path) -> tuple[int, np.ndarray]:
    """A recording in a video container -> its speech (16 kHz, 16-bit) for the Speech box."""
    if not path:
        raise gr.Error("No file came: choose the recording again.")
    try:
        audio = load_audio(path, max_seconds=MAX_SECONDS)
    except AudioError as err:
        raise gr.Error(str(err)) from None
    return SAMPLE_RATE, (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def settings_of(session: Session, **extra) -> dict:
    return dict(session.result.settings, seconds=round(session.result.seconds, 2), **extra)


def make_handlers(pipe: GranuMambaPipeline):
    """The demo's steps: the motion (speech to codes to a motion, files written), the video of
    it, and new gains for the same codes. `generate` (the API) runs the first two in one call."""

    def motion_step(audio_path, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed, progress) -> Session:
        text = (text or "").strip()
        if not audio_path and not text:
            raise gr.Error("Give the speech: upload or record audio, or type text to speak.")
        folder = OUTPUT_ROOT / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            words = None
            if audio_path:
                audio = str(audio_path)
                if transcript and transcript.strip():
                    audio = load_audio(audio, max_seconds=MAX_SECONDS)
                    words, warning = estimate_word_timings(transcript, audio)
                    if warning:
                        gr.Warning(warning)
            else:
                progress(0.05, desc="speaking the text")
                audio, words = synthesize(text, VOICES.get(voice))
            progress(0.15, desc="speech features and generation")
            speaker_id = next((k for k, v in pipe.speakers.items() if v == speaker), None)
            gains = (float(coarse), float(mid), float(fine))
            result = pipe(
                audio, words=words, speaker=speaker_id, gains=gains, temperature=temperature, seed=int(seed), max_seconds=MAX_SECONDS
            )
            soundfile.write(folder / "speech.wav", result.audio, SAMPLE_RATE, subtype="PCM_16")
            prune_outputs()
            return Session(result, folder, gains)
        except (AudioError, SpeechError, ValueError) as err:
            shutil.rmtree(folder, ignore_errors=True)
            raise gr.Error(str(err)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def video_step(session: Session, body, size, smooth, progress) -> tuple[str, dict]:
        video = session.folder / f"granumamba_{gains_tag(session.gains)}.mp4"
        started = time.perf_counter()
        try:
            stats = render_video(
                session.result.motion,
                session.result.audio,
                video,
                body="smplx" if body == "SMPL-X" else "mannequin",
                size=int(size),
                antialias=bool(smooth),
                progress=lambda done, total: progress(0.3 + 0.65 * done / total, desc=f"rendering and encoding {done}/{total} frames"),
            )
        except (SMPLXError, ValueError) as err:
            raise gr.Error(str(err)) from None
        timing = {"render_s": round(stats.posing + stats.drawing, 3), "render_and_encode_wall_s": round(time.perf_counter() - started, 3)}
        return str(video), timing

    @gpu
    def generate(
        audio_path, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed, body, size, smooth=False, progress=gr.Progress()
    ):
        """Speech to video and motion in one call (the API; the page shows the 3D view first)."""
        started = time.perf_counter()
        session = motion_step(audio_path, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed, progress)
        npz = session.folder / "granumamba_motion.npz"
        save_motion(npz, session.result.motion)
        generated = time.perf_counter()
        video, timing = video_step(session, body, size, smooth, progress)
        timing = {"speech_and_generation_s": round(generated - started, 3), **timing, "total_s": round(time.perf_counter() - started, 3)}
        return video, str(npz), settings_of(session, body=body, size=int(size), smooth_edges=bool(smooth), timing=timing)

    @gpu
    def show(audio_path, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed, progress=gr.Progress()):
        started = time.perf_counter()
        session = motion_step(audio_path, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed, progress)
        downloads = write_downloads(session)
        timing = {"to_view_s": round(time.perf_counter() - started, 3)}
        return viewer_html(session), downloads, settings_of(session, timing=timing), session, None

    def regain(session: Session | None, coarse, mid, fine):
        """A slider released: the same codes decoded with the new gains, no new sampling."""
        if session is None:
            return gr.skip(), gr.skip(), gr.skip(), None, gr.skip()
        started = time.perf_counter()
        gains = (float(coarse), float(mid), float(fine))
        session = Session(pipe.with_gains(session.result, gains), session.folder, gains)
        downloads = write_downloads(session)
        return (
            viewer_html(session),
            downloads,
            settings_of(session, timing={"redecode_s": round(time.perf_counter() - started, 3)}),
            session,
            None,  # the video showed the earlier gains
        )

    def render(session: Session | None, body, size, smooth, progress=gr.Progress()):
        if session is None:
            raise gr.Error("Generate first: the video is made from the motion in the 3D view.")
        progress(0.3, desc="rendering")
        return video_step(session, body, size, smooth, progress)[0]

    return generate, show, regain, render


def build_demo(pipe: GranuMambaPipeline, live_pipe: GranuMambaPipeline | None = None) -> gr.Blocks:
    speakers = list(pipe.speakers.values())
    default_speaker = pipe.speakers.get(pipe.model.config.default_speaker, speakers[0])
    smplx_ready = bool(os.environ.get(SMPLX_ENV))
    examples = sorted(EXAMPLES.glob("*.wav"))
    with gr.Blocks(title="GranuMamba: co-speech gesture", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "# GranuMamba\nSpeech in, full-body 3D gesture out (SMPL-X body, fingers, jaw and face), from a multi-granularity "
            "selective state space model. Give speech, move the sliders, press **Generate**."
        )
        gr.Markdown(weights_line(pipe), elem_id="weights-line")
        with gr.Tabs() as tabs:
            with gr.Tab("Generate") as generate_tab, gr.Row():
                with gr.Column():
                    with gr.Tab("Audio"):
                        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
                        recording = gr.UploadButton("Speech from a video or a WebM recording", file_types=RECORDING_TYPES, size="sm")
                        transcript = gr.Textbox(
                            label="Transcript (optional)",
                            lines=2,
                            placeholder="What is said; word timings are estimated from the recording.",
                        )
                    with gr.Tab("Text"):
                        text = gr.Textbox(
                            label="Text to speak",
                            lines=3,
                            max_length=MAX_CHARACTERS,
                            placeholder="Type what the speaker says (spoken offline: piper where installed, espeak-ng always).",
                        )
                        voice = gr.Dropdown(
                            list(VOICES), value=next(iter(VOICES)), label="Voice", interactive=espeak_available() or piper_available()
                        )
                    gr.Markdown(
                        f"Accepted: {ACCEPTED}; a video's or a WebM file's sound track through the button under the box. "
                        f"Up to {MAX_SECONDS:.0f} s of speech and {MAX_UPLOAD_MB:.0f} MB per file."
                    )
                    coarse = gr.Slider(0, 2, 1, step=0.05, label="Coarse", info="slow posture and weight shifts (phrases)")
                    mid = gr.Slider(0, 2, 1, step=0.05, label="Mid", info="beat strokes of arms and head (words)")
                    fine = gr.Slider(0, 2, 1, step=0.05, label="Fine", info="fingers, wrists and small fast motion (frames)")
                    with gr.Row():
                        speaker = gr.Dropdown(speakers, value=default_speaker, label="Speaker / style")
                        temperature = gr.Slider(
                            0,
                            2,
                            pipe.model.config.temperature,
                            step=0.05,
                            label="Temperature",
                            info="1: the model as trained; 0: the most likely gesture",
                        )
                    with gr.Row():
                        seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                        shuffle = gr.Button("Random seed", size="sm")
                    with gr.Row():
                        body = gr.Radio(
                            ["Built-in body", "SMPL-X"] if smplx_ready else ["Built-in body"], value="Built-in body", label="Body"
                        )
                        size = gr.Dropdown([256, 384, 512, 720, 1080], value=512, label="Video size")
                        smooth = gr.Checkbox(False, label="Smooth edges", info="antialiasing; rendering takes about twice as long")
                    button = gr.Button("Generate", variant="primary")
                with gr.Column():
                    view = gr.HTML(EMPTY_VIEW, label="3D view", elem_id="view-box")
                    formats = "glTF (Blender, game engines, three.js), BVH, BEAT2 npz" + (", FBX on request" if blender_program() else "")
                    downloads = gr.File(label=f"Motion for your tools: {formats}", file_count="multiple")
                    with gr.Row():
                        render_button = gr.Button("Render video (mp4)")
                        fbx_button = gr.Button("FBX for Maya, Unity, Unreal", visible=blender_program() is not None)
                    video = gr.Video(label="Gesture video", autoplay=False)
                    motion = gr.File(label="Motion (BEAT2 npz)", visible=False)
                    settings = gr.JSON(label="Settings used")
        session = gr.State(None)
        generate, show, regain, render = make_handlers(pipe)
        recording.upload(sound_track, recording, audio, api_name=False)
        shuffle.click(lambda: int(np.random.default_rng().integers(0, 2**31 - 1)), outputs=seed, api_name=False)
        inputs = [audio, text, voice, transcript, speaker, coarse, mid, fine, temperature, seed]
        button.click(show, inputs, [view, downloads, settings, session, video], api_name="show", concurrency_limit=CONCURRENCY).then(
            add_bvh, session, downloads, api_name=False
        )
        for slider in (coarse, mid, fine):  # one API name for the three: the same step
            slider.release(
                regain,
                [session, coarse, mid, fine],
                [view, downloads, settings, session, video],
                api_name="regain" if slider is fine else False,
                concurrency_limit=CONCURRENCY,
            ).then(add_bvh, session, downloads, api_name=False)
        render_button.click(render, [session, body, size, smooth], video, api_name=False, concurrency_limit=CONCURRENCY)
        fbx_button.click(add_fbx, [session, body], downloads, api_name=False, concurrency_limit=CONCURRENCY)
        # The API: speech to video and motion in one call, as before the 3D view.
        api_button = gr.Button(visible=False)
        api_button.click(
            generate, [*inputs, body, size, smooth], [video, motion, settings], api_name="generate", concurrency_limit=CONCURRENCY
        )
        with tabs, generate_tab:  # the examples under the Generate tab
            if examples:
                gr.Examples([[str(e), ""] for e in examples], [audio, transcript], label="Examples (speech made by the project)")
            gr.Examples(
                [["Every careful student remembers the golden river, and the quiet city opens again.", "English (UK), female"]],
                [text, voice],
                label="Text example",
            )
        with tabs, gr.Tab("Live"):
            gr.Markdown(
                "Press **Start** and speak: the body gestures with your voice as you talk (the browser asks for the microphone; "
                "it works on https and on localhost). The sliders act on the frames still to come. Programs can drive the same "
                "stream: see the API section of the README and `python -m granumamba live`."
            )
            gr.Markdown(weights_line(live_pipe or pipe), elem_id="live-weights-line")
            gr.HTML(LIVE_VIEW, elem_id="live-box")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help=f"Hub repo id or folder (default: GRANUMAMBA_MODEL or {DEFAULT_MODEL_ID})")
    live_help = f"the Live tab's model, Hub repo id or folder (default: GRANUMAMBA_LIVE_MODEL or {DEFAULT_LIVE_MODEL_ID})"
    parser.add_argument("--live-model", help=live_help)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    try:
        pipe = GranuMambaPipeline.from_pretrained(args.model)
        live_pipe = load_live_pipeline(pipe, args.live_model)
    except ModelLoadError as err:
        sys.exit(f"cannot start: {err}")
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    prune_outputs()
    gr.set_static_paths([WEB])  # the 3D views' pages, their modules and three.js
    demo = build_demo(pipe, live_pipe)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=32)
    app = make_app(demo, live_pipe)
    import uvicorn

    print(f"GranuMamba demo on http://{args.host}:{args.port} (live WebSocket: /live/ws)", flush=True)
    # No WebSocket keep-alive pings: a live client that sends faster than speech waits in TCP (the
    # server reads its next message when it has answered the last), and a pong queued behind that
    # backlog timed out uvicorn's 20 s ping and cut the stream. The live endpoint's own idle limit
    # (GRANUMAMBA_LIVE_IDLE_SECONDS) ends a client that stops sending or is gone.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=3,  # open streams do not hold a stop
        ws_ping_interval=None,
    )


def body_glb() -> bytes:
    """The built-in body at rest, as the live view poses it (the same asset as the exports)."""
    path = OUTPUT_ROOT / f"live-body-{uuid.uuid4().hex}.glb"
    rest = Motion(np.zeros((1, 165), np.float32), np.zeros((1, 3)), np.zeros((1, 100)))
    write_glb(path, rest)
    data = path.read_bytes()
    path.unlink()
    return data


def make_app(demo: gr.Blocks, live_pipe: GranuMambaPipeline):
    """One server: the live WebSocket (serving `live_pipe`'s model) and the body it poses, and the
    Gradio demo at the root."""
    from fastapi import FastAPI

    app = FastAPI(title="GranuMamba")
    live = LiveServer(live_pipe.model, LiveLimits.from_env(env_number))
    threading.Thread(target=live.warm_up, daemon=True).start()  # beside the start: the page does not wait for it
    add_live_routes(app, live, body_glb())
    return gr.mount_gradio_app(
        app,
        demo,
        path="",
        max_file_size=f"{MAX_UPLOAD_MB:.0f}mb",
        theme=gr.themes.Soft(),
        allowed_paths=[str(OUTPUT_ROOT)],  # the view loads this session's glTF and speech from here
        footer_links=["api"],
    )


if __name__ == "__main__":
    main()
