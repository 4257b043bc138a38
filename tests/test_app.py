"""The demo as a person and a script use it: the Gradio app on 127.0.0.1, gradio_client, a
headless browser, and the CLI on the same inputs."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from granumamba.data import load_motion

from .conftest import ROOT, free_port, probe_video

BUNDLED = ROOT / "assets" / "granumamba-demo"
# the temperature the app's slider starts at and the CLI samples at unless told: the checkpoint's own
CONFIG = BUNDLED / "config.json"
SERVED_TEMPERATURE = json.loads(CONFIG.read_text()).get("temperature", 1.0) if CONFIG.is_file() else 1.0
pytestmark = pytest.mark.skipif(
    not (BUNDLED / "model.safetensors").is_file(), reason="the bundled demo checkpoint is not built (python -m train.make_demo)"
)


def start_app(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """app.py with `args` (its --port among them), once its port answers; its output in `log`."""
    port = int(args[args.index("--port") + 1])
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.5)
    return proc


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    port = free_port()
    env = dict(
        os.environ,
        GRANUMAMBA_MODEL=str(BUNDLED),
        GRADIO_ANALYTICS_ENABLED="False",
        TMPDIR=str(tmp),
        GRANUMAMBA_MAX_SECONDS="30",
        HF_HUB_OFFLINE="1",
    )
    proc = start_app(["--port", str(port)], env, tmp / "server.log")
    url = f"http://127.0.0.1:{port}/"
    yield url, tmp
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory):
    """gradio_client leaves an empty folder in the temp directory for every file it downloads:
    point its temp directory and downloads into the test's own folder."""
    import tempfile

    from gradio_client import Client

    scratch = tmp_path_factory.mktemp("client")
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    yield Client(app_server[0], verbose=False, download_files=str(scratch / "downloads"))
    tempfile.tempdir = saved


def call(client, audio=None, text="", fine=1.0, seed=0, voice="English (US), male", transcript=""):
    from gradio_client import handle_file

    return client.predict(
        handle_file(str(audio)) if audio else None,
        text,
        voice,
        transcript,
        "speaker 1",
        1.0,
        1.0,
        fine,
        SERVED_TEMPERATURE,  # the app's and the CLI's default, so that both give the same motion
        seed,
        "Built-in body",
        256,
        False,
        api_name="/generate",
    )


def video_path(value):
    return value["video"] if isinstance(value, dict) else value


def test_speech_file_gives_a_video_as_long_as_the_speech_with_sound(client, speech_wav):
    video, npz, settings = call(client, speech_wav)
    info = probe_video(video_path(video))
    seconds = soundfile.info(speech_wav).duration
    assert abs(info["seconds"] - seconds) <= 1 / 30 + 1e-6 and info["audio"] == "aac"
    motion = load_motion(npz)
    assert motion.num_frames == int(soundfile.info(speech_wav).frames * 30 // 16000)
    assert settings["gains"] == {"coarse": 1.0, "mid": 1.0, "fine": 1.0}


def test_text_gives_a_video_and_the_fine_slider_changes_the_motion(client):
    text = "Quiet rivers carry bright stories across the city."
    _, npz_a, settings = call(client, text=text, fine=0.0, seed=3)
    _, npz_b, _ = call(client, text=text, fine=2.0, seed=3)
    a, b = load_motion(npz_a), load_motion(npz_b)
    assert a.num_frames == b.num_frames and settings["words"] == 8
    hands = slice(25 * 3, 55 * 3)
    assert np.abs(a.poses[:, hands] - b.poses[:, hands]).mean() > 1e-3


@pytest.mark.parametrize("case", ["not_audio", "empty", "short", "silence", "too_long", "no_input", "empty_text", "huge_text"])
def test_bad_input_gives_a_clear_message_and_leaves_nothing_behind(client, app_server, tmp_path, case):
    from gradio_client.exceptions import AppError

    folder = Path(app_server[1]) / "granumamba-app"
    before = set(folder.glob("*")) if folder.exists() else set()
    audio, text, expected = None, "", ""
    if case == "not_audio":
        audio = tmp_path / "notes.wav"
        audio.write_text("just text\n" * 100)
        expected = "not a readable audio file"
    elif case == "empty":
        audio = tmp_path / "empty.wav"
        audio.write_bytes(b"")
        expected = "empty"
    elif case == "short":
        audio = tmp_path / "short.wav"
        soundfile.write(audio, np.random.default_rng(0).normal(0, 0.1, 3200), 16000)
        expected = "too short"
    elif case == "silence":
        audio = tmp_path / "silence.wav"
        soundfile.write(audio, np.zeros(32000), 16000)
        expected = "silent"
    elif case == "too_long":
        audio = tmp_path / "long.wav"
        soundfile.write(audio, np.random.default_rng(0).normal(0, 0.1, 16000 * 40), 16000)
        expected = "over the limit of 30 s"
    elif case == "no_input":
        expected = "upload or record audio, or type text"
    elif case == "empty_text":
        text = "?!"
        expected = "no words"
    elif case == "huge_text":
        text = "word " * 4000
        expected = "limit"
    with pytest.raises(AppError, match=expected):
        call(client, audio, text)
    after = set(folder.glob("*")) if folder.exists() else set()
    assert after == before


def test_the_cli_gives_the_same_motion_as_the_app(client, speech_wav, tmp_path):
    from granumamba.__main__ import main

    _, npz, _ = call(client, speech_wav, seed=7)
    out = tmp_path / "cli.npz"
    assert main(["generate", "--audio", str(speech_wav), "--npz", str(out), "--model", str(BUNDLED), "--seed", "7", "--speaker", "1"]) == 0
    assert np.allclose(load_motion(out).poses, load_motion(npz).poses, atol=1e-6)
    assert main(["generate", "--audio", str(tmp_path / "missing.wav"), "--npz", str(out), "--model", str(BUNDLED)]) == 2
    assert main(["generate", "--text", "hello there", "--model", str(BUNDLED)]) == 2  # neither --out nor --npz
    assert main(["generate", "--text", "hello", "--npz", str(out), "--model", str(tmp_path / "no-such-folder")]) == 2


def test_unreachable_hub_falls_back_to_the_bundled_checkpoint(monkeypatch):
    from granumamba.model import ModelLoadError
    from granumamba.pipeline import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model("granumamba/granumamba-demo")
    assert loaded.fallback_reason and "granumamba-demo" in loaded.source
    with pytest.raises(ModelLoadError):
        load_model("granumamba/granumamba-demo", allow_fallback=False)


def test_the_cli_says_once_that_it_falls_back_to_the_bundled_checkpoint(tmp_path):
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    env.pop("GRANUMAMBA_MODEL", None)
    out = tmp_path / "hello.npz"
    cli = [sys.executable, "-m", "granumamba", "generate", "--text", "hello there", "--npz", str(out)]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("using the bundled demo checkpoint") == 1, done.stderr
    assert "the Hub cannot be reached" in done.stderr and out.is_file()


def test_the_live_tab_serves_the_model_named_for_it(monkeypatch, tmp_path):
    """--live-model or GRANUMAMBA_LIVE_MODEL puts another model behind the Live tab while the
    Generate tab keeps the app's; none named, the bundled live checkpoint (causal, for its
    latency), or the app's own in a checkout without one; a named one that does not load stops
    the start with the reason. Checked through the started app: its
    WebSocket answers with the live model's blocks of 4 frames, not the demo's 16."""
    import importlib

    from websockets.sync.client import connect

    from granumamba.model import GranuMamba
    from granumamba.pipeline import GranuMambaPipeline, display_name

    from .test_model import TINY

    app = importlib.import_module("app")
    monkeypatch.delenv("GRANUMAMBA_LIVE_MODEL", raising=False)
    live_dir = tmp_path / "live-model"
    GranuMamba(TINY | {"causal": True, "lookahead": 2}).save_pretrained(live_dir)
    pipe = GranuMambaPipeline.from_pretrained(BUNDLED)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    default_live = app.load_live_pipeline(pipe, None)  # the bundled live checkpoint, causal
    assert default_live.model.config.causal and display_name(default_live.source) == "bundled live checkpoint"
    assert app.weights_line(default_live).startswith("**Weights:** bundled live checkpoint, because")  # what the Live tab shows
    monkeypatch.setattr("granumamba.pipeline.BUNDLED_LIVE_MODEL", tmp_path / "no-live-checkpoint")
    assert app.load_live_pipeline(pipe, None) is pipe  # a checkout without one: the app's own
    assert app.load_live_pipeline(pipe, str(live_dir)).model.config.causal
    monkeypatch.setenv("GRANUMAMBA_LIVE_MODEL", str(live_dir))
    assert app.load_live_pipeline(pipe, None).source == str(live_dir)
    monkeypatch.delenv("GRANUMAMBA_LIVE_MODEL")

    port = free_port()
    env = dict(os.environ, GRANUMAMBA_MODEL=str(BUNDLED), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    bad = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--live-model", str(tmp_path / "missing")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "cannot start" in bad.stderr and "missing" in bad.stderr
    proc = start_app(["--port", str(port), "--live-model", str(live_dir)], env, tmp_path / "server.log")
    try:
        with connect(f"ws://127.0.0.1:{port}/live/ws") as ws:
            ws.send('{"type": "start"}')
            ready = json.loads(ws.recv(timeout=30))
        assert ready["block_frames"] == 4 and ready["lookahead_frames"] == 2 and ready["delay_frames"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium (apt-get install chromium; scripts/setup.sh --dev installs it)")
    return path


VIEW_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",  # WebGL drawn on the CPU
    "--enable-unsafe-swiftshader",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def canvas_digest(frame) -> str:
    return frame.evaluate(
        "() => { const c = document.querySelector('canvas'); const d = c.toDataURL('image/png');"
        " let h = 0; for (let i = 0; i < d.length; i++) h = (h * 31 + d.charCodeAt(i)) | 0; return String(h); }"
    )


def open_demo(p, url: str):
    """Chromium (WebGL on the CPU) on the demo's page, once the page shows its weights line."""
    browser = p.chromium.launch(executable_path=chromium(), args=VIEW_FLAGS)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_selector("#weights-line", timeout=120_000)
    return browser, page


def test_a_browser_sees_the_gesture_in_3d_moves_a_slider_and_renders_the_video(app_server, speech_wav, tmp_path):
    """Generate shows the 3D view (no video yet) playing with the speech; releasing a slider
    changes the pose shown at a fixed time without new sampling; Render video gives the mp4."""
    playwright = pytest.importorskip("playwright.sync_api")
    url, _ = app_server
    with playwright.sync_playwright() as p:
        browser, page = open_demo(p, url)
        assert "Weights" in page.inner_text("#weights-line")
        assert page.locator("iframe#granumamba-view").count() == 0  # nothing plays before Generate
        page.locator("input[type=file]").first.set_input_files(str(speech_wav))
        # Generate once the upload is in the box (a fixed wait lost the race on a loaded machine)
        page.wait_for_selector("[data-testid=audio-player-Speech]", state="attached", timeout=60_000)
        page.get_by_role("button", name="Generate", exact=True).click()
        frame = page.wait_for_selector("iframe#granumamba-view", timeout=120_000).content_frame()
        frame.wait_for_function("window.viewerState && window.viewerState.loaded", timeout=120_000)
        assert frame.evaluate("window.viewerState.frames") == int(soundfile.info(speech_wav).frames * 30 // 16000)
        # the speech plays and the body moves with it
        frame.wait_for_function("document.getElementById('speech').currentTime > 0.3", timeout=30_000)
        first = canvas_digest(frame)
        page.wait_for_timeout(600)
        assert canvas_digest(frame) != first
        assert not frame.evaluate("document.getElementById('speech').paused")
        # the three downloads beside the view (the BVH follows the view by a moment)
        page.wait_for_function(
            "() => ['.glb', '.bvh', '.npz'].every(s => document.body.innerHTML.includes('granumamba_1.00_1.00_1.00' + s))", timeout=60_000
        )
        # a fixed time, then the fine slider at 0: the pose at that time changes
        frame.evaluate("() => { const a = document.getElementById('speech'); a.pause(); a.currentTime = 1.0; }")
        page.wait_for_timeout(400)
        before = canvas_digest(frame)
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        assert "granumamba_1.00_1.00_1.00.glb" in page.get_attribute("iframe#granumamba-view", "src")
        slider = page.locator("input[type=range]").nth(2)  # coarse, mid, fine: drag fine to 0 as a person does
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        page.wait_for_function(  # the view now shows the motion decoded with fine at 0
            "() => document.querySelector('iframe#granumamba-view').src.includes('granumamba_1.00_1.00_0.00.glb')", timeout=30_000
        )
        frame = page.wait_for_selector("iframe#granumamba-view").content_frame()
        frame.wait_for_function("window.viewerState && window.viewerState.loaded", timeout=30_000)
        frame.evaluate("() => { const a = document.getElementById('speech'); a.pause(); a.currentTime = 1.0; }")
        page.wait_for_timeout(400)
        assert canvas_digest(frame) != before
        # the video on request
        page.get_by_role("button", name="Render video (mp4)").click()
        page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && v.readyState >= 1 && v.duration > 0; }", timeout=180_000
        )
        duration = page.evaluate("() => document.querySelector('video').duration")
        assert abs(duration - soundfile.info(speech_wav).duration) < 0.1
        # the FBX on request, where Blender is installed (the export's tests open such files in Blender)
        fbx = page.get_by_role("button", name="FBX for Maya, Unity, Unreal")
        assert fbx.count() == (shutil.which("blender") is not None)
        if fbx.count():
            fbx.click()
            page.wait_for_function("() => document.body.innerHTML.includes('granumamba_1.00_1.00_0.00.fbx')", timeout=120_000)
            link = page.locator("a[href*='granumamba_1.00_1.00_0.00.fbx']").first.get_attribute("href")
            fetched = page.request.get(link if link.startswith("http") else url.rstrip("/") + link)
            assert fetched.ok and fetched.body()[:18] == b"Kaydara FBX Binary"  # binary FBX's signature
        if os.environ.get("GRANUMAMBA_SCREENSHOT"):
            shutil.copy(tmp_path / "app.png", os.environ["GRANUMAMBA_SCREENSHOT"])
        browser.close()


def test_a_recording_in_a_video_container_comes_in_through_its_button(app_server, speech_wav, tmp_path):
    """A .webm (what browsers' MediaRecorder saves) or a phone's video: the Speech box takes audio
    files only, so the button under it puts the file's sound track in the box and Generate
    gestures to it; a video without sound says so."""
    playwright = pytest.importorskip("playwright.sync_api")
    import imageio_ffmpeg

    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y"]
    webm, mute = tmp_path / "recording.webm", tmp_path / "screen.mp4"
    if subprocess.run([*ffmpeg, "-i", str(speech_wav), "-c:a", "libopus", str(webm)], capture_output=True).returncode:
        pytest.skip("this ffmpeg cannot write Opus")
    picture_only = [*ffmpeg, "-f", "lavfi", "-i", "color=c=blue:s=64x64:d=2", "-c:v", "libx264", str(mute)]
    subprocess.run(picture_only, check=True, capture_output=True)
    url, _ = app_server
    with playwright.sync_playwright() as p:
        browser, page = open_demo(p, url)
        button = page.get_by_role("button", name="Speech from a video or a WebM recording")
        with page.expect_file_chooser() as chooser:
            button.click()
        chooser.value.set_files(str(mute))
        page.get_by_text("holds no sound track").wait_for(timeout=60_000)
        assert page.locator("[data-testid=audio-player-Speech]").count() == 0
        with page.expect_file_chooser() as chooser:
            button.click()
        chooser.value.set_files(str(webm))
        page.wait_for_selector("[data-testid=audio-player-Speech]", state="attached", timeout=60_000)
        page.get_by_role("button", name="Generate", exact=True).click()
        frame = page.wait_for_selector("iframe#granumamba-view", timeout=120_000).content_frame()
        frame.wait_for_function("window.viewerState && window.viewerState.loaded", timeout=120_000)
        frames = frame.evaluate("window.viewerState.frames")
        browser.close()
    assert abs(frames - soundfile.info(speech_wav).duration * 30) <= 2  # the whole sound track, at 30 fps


def test_other_formats_scripts_and_mismatched_transcripts_still_work(client, speech_wav, tmp_path):
    import imageio_ffmpeg

    m4a = tmp_path / "stereo48k.m4a"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), "-ac", "2", "-ar", "48000", "-c:a", "aac", str(m4a)],
        check=True,
    )
    video, npz, _ = call(client, m4a)
    assert abs(probe_video(video_path(video))["seconds"] - soundfile.info(speech_wav).duration) < 0.1
    # a transcript with far too many words: a warning, and the motion all the same
    _, npz_t, settings = call(client, speech_wav, transcript="word " * 300)
    assert settings["words"] == 300 and load_motion(npz_t).num_frames == load_motion(npz).num_frames
    # text in another script is spoken by espeak-ng's voice as it can; a video comes back
    video, _, _ = call(client, text="你好，世界。Здравствуй, мир.")
    assert probe_video(video_path(video))["frames"] > 0


def test_two_users_at_once_both_get_their_video(app_server, speech_wav):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    clients = [Client(app_server[0], verbose=False) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: call(c[1], speech_wav, seed=c[0]), enumerate(clients)))
    assert all(Path(video_path(r[0])).is_file() for r in results)
    assert not np.allclose(load_motion(results[0][1]).poses, load_motion(results[1][1]).poses)  # each its own seed


def test_old_outputs_and_cached_uploads_are_bounded_by_count(tmp_path, monkeypatch):
    import importlib

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = importlib.import_module("app")
    monkeypatch.setattr(app, "OUTPUT_ROOT", tmp_path / "outputs")
    for root, count in ((tmp_path / "outputs", 40), (tmp_path / "gradio", 140)):
        for i in range(count):
            entry = root / f"entry{i:03d}"
            entry.mkdir(parents=True)
            (entry / "file.bin").write_bytes(b"x" * 10)
            os.utime(entry, (1_000_000 + i, 1_000_000 + i))  # older entries first, all older than two minutes
    fresh = tmp_path / "gradio" / "in-flight"
    fresh.mkdir()
    for i in range(3):
        os.utime(tmp_path / "gradio" / f"entry{i:03d}", None)  # just written: spared whatever their rank
    app.prune_outputs()
    outputs = sorted(p.name for p in (tmp_path / "outputs").iterdir())
    assert outputs == [f"entry{i:03d}" for i in range(8, 40)]  # the 32 newest
    cache = {p.name for p in (tmp_path / "gradio").iterdir()}
    assert len(cache) == app.KEEP_UPLOADS  # the newest, counting the ones just written
    assert {"in-flight", "entry000", "entry001", "entry002", "entry139"} <= cache and "entry010" not in cache


def spoken_and_settled(level: np.ndarray, loud: float = 0.01, quiet: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Frames of the page's microphone level (one per motion frame) where speech plays (loud
    frames, gaps under half a second between them bridged) and where silence has settled (quiet
    for over 1.5 s, and half a second or more before the next loud frame). The fake microphone
    loops its file from whatever moment the stream starts at, so both are found in the level
    itself, wherever they fall."""
    from scipy import ndimage

    loud_frames = level > loud
    spoken = ndimage.binary_closing(np.pad(loud_frames, 15), np.ones(16, bool))[15:-15]
    quiet_for = np.zeros(len(level), int)  # how many frames the level has been quiet
    for i, is_quiet in enumerate(level < quiet):
        quiet_for[i] = (quiet_for[i - 1] + 1 if i else 1) if is_quiet else 0
    loud_so_far = np.concatenate([[0], np.cumsum(loud_frames), np.full(15, loud_frames.sum())])
    loud_soon = loud_so_far[16 : 16 + len(level)] > loud_so_far[1 : 1 + len(level)]  # in the next 15 frames
    return spoken, (quiet_for > 45) & ~loud_soon


def test_spoken_and_settled_find_speech_and_silence_wherever_the_loop_starts():
    rng = np.random.default_rng(0)
    talk = np.where(np.arange(300) % 40 < 30, 0.05, 0.0) + rng.uniform(0, 0.02, 300)  # words, 10-frame gaps
    loop = np.concatenate([talk, np.zeros(210)])  # 10 s of speech, 7 s of silence
    for start in (0, 150, 320, 480):
        level = np.tile(loop, 3)[start : start + 700]
        spoken, settled = spoken_and_settled(level)
        in_talk = np.tile(np.arange(510) < 300, 3)[start : start + 700]
        assert not (spoken & settled).any()
        assert (spoken <= in_talk).all() and spoken[in_talk].mean() > 0.9  # pauses between words count as speech
        silences = np.flatnonzero(np.diff(np.concatenate([[1], in_talk, [1]]).astype(int)) == -1)
        for first in silences:  # each whole silence: settled from 1.5 s in to 0.5 s before the speech
            if 0 < first and first + 210 < 700:  # a whole silence, with speech on both sides
                assert settled[first + 46 : first + 195].all() and not settled[first : first + 45].any()
                assert not settled[first + 196 : first + 210].any()


def test_live_tab_gestures_with_the_microphone(app_server, tmp_path):
    """Chromium's fake microphone plays speech then silence into the Live tab: frames stream back
    for every moment of it with their latencies, the body moves with the speech and rests in the
    silence, Stop ends the session cleanly."""
    playwright = pytest.importorskip("playwright.sync_api")
    speech, rate = soundfile.read(ROOT / "assets" / "examples" / "welcome_us_female.wav", dtype="float32")
    mic = tmp_path / "mic.wav"
    soundfile.write(mic, np.concatenate([speech, np.zeros(7 * rate, np.float32)]), rate, subtype="PCM_16")
    url, _ = app_server
    flags = VIEW_FLAGS + [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
    ]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url, wait_until="load", timeout=120_000)
        page.get_by_role("tab", name="Live").click()
        frame = page.wait_for_selector("iframe#granumamba-live", timeout=60_000).content_frame()
        frame.wait_for_function("window.liveState && window.liveState.bodyLoaded", timeout=60_000)
        still = canvas_digest(frame)
        page.wait_for_timeout(500)
        assert canvas_digest(frame) == still  # nothing moves before Start
        frame.click("#start")
        frame.wait_for_function("window.liveState.ready && window.liveState.received > 60", timeout=60_000)
        moving = canvas_digest(frame)
        # the body moves while the loop plays (polled: the microphone may begin in the silence, and
        # on a loaded machine a frame can take a while)
        for _ in range(20):
            page.wait_for_timeout(500)
            if canvas_digest(frame) != moving:
                break
        assert canvas_digest(frame) != moving
        # two passes of the loop: one pass's silence is one sample of what the model does there
        # (replayed through the live path, single passes read 1.1 to 2.6, pairs of passes 1.45 to 2.5)
        seconds = 2 * (len(speech) / rate + 7)
        heard = int((seconds + 3) * 30)
        frame.wait_for_function(f"window.liveState.level.length > {heard}", timeout=150_000)
        # on a loaded machine the frames can trail the microphone by seconds: what is checked is
        # that each moment heard gets its frame, so wait for the frames of the moments heard so far
        frame.wait_for_function(f"window.liveState.received >= {heard - 60}", timeout=60_000)
        page.screenshot(path=str(tmp_path / "live.png"))
        state = frame.evaluate("() => ({motion: liveState.motion, level: liveState.level, latencies: liveState.latencies})")
        frame.click("#stop")
        frame.wait_for_function("window.liveState.closed !== null", timeout=30_000)
        assert frame.evaluate("window.liveState.closed.code") == 1000
        # the session's motion, offered as BEAT2's npz once it ends
        frame.wait_for_function("window.liveState.download !== null", timeout=30_000)
        with page.expect_download() as download:
            frame.click("#download")
        download.value.save_as(tmp_path / "take.npz")
        offered = frame.evaluate("window.liveState.download.frames")
        browser.close()
    take = load_motion(tmp_path / "take.npz")
    assert take.num_frames == offered >= heard - 60 and take.expressions.shape == (offered, 100)
    with np.load(tmp_path / "take.npz") as raw:  # BEAT2's keys and kinds, as save_motion writes them
        assert str(raw["model"]) == "smplx2020" and int(raw["mocap_frame_rate"]) == 30 and raw["betas"].shape == (300,)
    # the same frames the page posed the body with: their arm motion is the page's, frame by frame
    arms = np.abs(np.diff(take.poses[:, 3 * 16 : 3 * 22], axis=0)).sum(1)
    shown = np.array([np.nan if m is None else m for m in state["motion"]], float)[1 : len(arms) + 1]
    assert np.allclose(arms[: len(shown)], shown, rtol=1e-4, atol=1e-6)
    level = np.array(state["level"], float)[:heard]
    assert (level > 0.01).sum() > 150 and (level < 1e-4).sum() > 45  # the speech and the silence both reached the page
    motion = np.array([np.nan if m is None else m for m in state["motion"]], float)
    assert len(motion) >= heard - 60 and np.isfinite(motion[1:]).all()  # a frame for every moment, no gap
    assert np.nanmean(motion) > 0.01
    assert np.isfinite(state["latencies"]).all() and len(state["latencies"]) > 200
    # The Live tab's model rests in the silence: over both passes the arms move at least 1.2 times
    # as much while the speech plays as in settled silence, wherever in the loop the microphone began.
    frames = min(len(level), len(motion))
    spoken, settled = spoken_and_settled(level[:frames])
    assert spoken.sum() > 300 and settled.sum() > 180
    ratio = np.nanmean(motion[:frames][spoken]) / np.nanmean(motion[:frames][settled])
    print(f"arm motion, speech against settled silence: {ratio:.2f}")
    assert ratio >= 1.2, ratio
