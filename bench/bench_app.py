"""The demo end to end: cold start (process start to page served, then the first request) and
warm requests, 10 s and 60 s of speech to a 512 x 512 video, with each step's share.

    python -m bench.bench_app
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

from granumamba.text.tts import synthesize

from .common import machine, table

ROOT = Path(__file__).resolve().parents[1]


def speech(seconds: float, path: Path) -> Path:
    sentence = "The quiet student remembers every bright river in the ancient city, and the teacher answers slowly. "
    audio, _ = synthesize(sentence * max(1, int(seconds / 6) + 1))
    soundfile.write(path, audio[: int(seconds * 16000)], 16000, subtype="PCM_16")
    return path


def main() -> None:
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="granumamba-bench-app-"))
    clips = {s: speech(s, tmp / f"speech{s}.wav") for s in (10, 60)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRANUMAMBA_MAX_SECONDS="600")  # the default model lookup, as a user runs it
    env.pop("HF_HUB_OFFLINE", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        up = time.perf_counter() - started
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        rows = []
        for label, seconds in (("cold (first request)", 10), ("warm", 10), ("warm", 60)):
            t = time.perf_counter()
            _, _, settings = client.predict(
                handle_file(str(clips[seconds])),
                "",
                "English (US), male",
                "",
                "speaker 1",
                1,
                1,
                1,
                0.8,
                0,
                "Built-in body",
                512,
                api_name="/generate",
            )
            wall = time.perf_counter() - t
            timing = settings["timing"]
            rows.append(
                [
                    label,
                    seconds,
                    wall,
                    seconds / wall,
                    timing["speech_and_generation_s"],
                    timing["render_and_encode_wall_s"],
                    wall - timing["total_s"],
                ]
            )
        table(
            f"Demo end to end, 512 x 512 video ({machine()}); app start to page served: {up:.1f} s",
            ["request", "speech s", "wall s", "x real time", "features + generation s", "render + encode s", "upload, queue, download s"],
            rows,
        )
        # The page's own path: Generate shows the 3D view (glTF + speech), a slider decodes again.
        rows = []
        for seconds in (28, 60):
            clip = clips.get(seconds) or speech(seconds, tmp / f"speech{seconds}.wav")
            viewer = Client(f"http://127.0.0.1:{port}/", verbose=False)  # a session of its own
            t = time.perf_counter()
            _, _, settings, _ = viewer.predict(
                handle_file(str(clip)), "", "English (US), male", "", "speaker 1", 1, 1, 1, 0.8, 0, api_name="/show"
            )
            to_view = time.perf_counter() - t
            t = time.perf_counter()
            _, _, regained, _ = viewer.predict(1, 1, 0.5, api_name="/regain")
            slider = time.perf_counter() - t
            rows.append([seconds, to_view, settings["timing"]["to_view_s"], slider, regained["timing"]["redecode_s"]])
        table(
            "Generate to the 3D view's files, and a slider release to new ones (server round trip; the browser then loads the glTF)",
            ["speech s", "Generate to view s", "of which server s", "slider release s", "of which decode + files s"],
            rows,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
