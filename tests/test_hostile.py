"""Hostile and broken inputs, one row each: the expected exit and a fragment of the message, and
no file left behind or written outside the output folder. The rows are the probes to re-run:
`pytest tests/test_hostile.py -v` prints one line per input."""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from granumamba.__main__ import main
from granumamba.data import save_motion
from granumamba.motion import RELAXED_POSE, Motion
from granumamba.study import PlanError, ResponseError, analyze, load_plan

from .conftest import ROOT


def motion(frames: int = 60) -> Motion:
    return Motion(np.tile(RELAXED_POSE, (frames, 1)).astype(np.float32), np.tile([0.0, 1.29, 0.0], (frames, 1)), np.zeros((frames, 100)))


def npz_with(path: Path, arrays: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for key, data in arrays.items():
            archive.writestr(f"{key}.npy", data)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def huge_header() -> bytes:
    """An .npy header that declares 10^12 frames, with no data behind it."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 165), }"
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def make_inputs(folder: Path) -> None:
    save_motion(folder / "good.npz", motion())
    np.save(folder / "renamed.npy", motion().poses)
    os.replace(folder / "renamed.npy", folder / "renamed.npz")
    npz_with(folder / "huge.npz", {"poses": huge_header()})
    npz_with(folder / "text_trans.npz", {"poses": npy_bytes(motion().poses), "trans": npy_bytes(np.array([["a", "b", "c"]] * 60))})
    (folder / "dir.mp4").mkdir()
    # a 1x1 PNG saved as .wav: a picture, no sound in it
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    (folder / "picture.wav").write_bytes(base64.b64decode(png))
    for name, config in {
        "cfg_string": '{"d_model": "128"}',
        "cfg_float": '{"d_model": 128.5}',
        "cfg_negative": '{"d_model": -5}',
        "cfg_null": "null",
        "cfg_list": "[1, 2]",
        "cfg_nested": "[" * 100_000 + "]" * 100_000,
        "cfg_huge": '{"d_model": 1000000000}',
        "cfg_speakers": '{"num_speakers": 1000000000}',
    }.items():
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(config)
        (folder / name / "model.safetensors").write_bytes(b"not used")


# args, expected exit, message fragment ({tmp} is the folder of inputs)
CLI_ROWS = [
    (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--max-seconds", "nan"], 2, "--max-seconds"),
    (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--max-seconds", "inf"], 2, "--max-seconds"),
    (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--seed", "1e20"], 2, "--seed"),
    (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--size", "100"], 2, "--size"),
    (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--fine", "nan"], 2, "--fine"),
    (["generate", "--text", "hi", "--out", "{tmp}/dir.mp4"], 2, "is a folder"),
    (["generate", "--text", "hi", "--npz", "{tmp}/o.txt"], 2, "write .npz"),
    (["generate", "--audio", "{tmp}/dir.mp4", "--npz", "{tmp}/o.npz"], 2, "is a folder; give an audio file"),
    (["generate", "--audio", "{tmp}/picture.wav", "--npz", "{tmp}/o.npz"], 2, "holds no sound track"),
    (["export", "--motion", "{tmp}/good.npz", "--out", "{tmp}/x.usd"], 2, "write .glb or .fbx or .bvh or .npz"),
    (["export", "--motion", "{tmp}/renamed.npz", "--out", "{tmp}/x.bvh"], 2, "not an npz archive"),
    (["export", "--motion", "{tmp}/text_trans.npz", "--out", "{tmp}/x.bvh"], 2, "holds <U1 values"),
    (["export", "--motion", "{tmp}/huge.npz", "--out", "{tmp}/x.bvh"], 2, "declares shape (1000000000000, 165)"),
    (["render", "--motion", "{tmp}/huge.npz", "--out", "{tmp}/v.mp4"], 2, "declares shape"),
    (["render", "--motion", "{tmp}/good.npz", "--out", "{tmp}/dir.mp4"], 2, "is a folder"),
    *[
        (["generate", "--text", "hi", "--npz", "{tmp}/o.npz", "--model", "{tmp}/" + name], 2, fragment)
        for name, fragment in (
            ("cfg_string", "d_model must be a whole number"),
            ("cfg_float", "d_model must be a whole number"),
            ("cfg_negative", "d_model must be a whole number"),
            ("cfg_null", "must hold an object"),
            ("cfg_list", "must hold an object"),
            ("cfg_nested", "not valid JSON"),
            ("cfg_huge", "d_model must be a whole number from 1 to 4096"),
            ("cfg_speakers", "num_speakers must be a whole number"),
        )
    ],
]


@pytest.mark.parametrize("args,code,fragment", CLI_ROWS, ids=[" ".join(r[0][:1] + r[0][-2:]) for r in CLI_ROWS])
def test_the_cli_refuses_with_a_message_and_leaves_nothing(tmp_path, capsys, args, code, fragment):
    make_inputs(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    started = time.perf_counter()
    try:
        exit_code = main([a.format(tmp=tmp_path) for a in args])
    except SystemExit as stop:  # argparse's refusals
        exit_code = stop.code
    err = capsys.readouterr().err
    assert exit_code == code and fragment in err, err[-500:]
    assert "Traceback" not in err
    assert time.perf_counter() - started < 30  # refused, not attempted
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_export_picks_the_format_from_the_extension_and_keeps_the_character_in_place(tmp_path):
    from granumamba.data import load_motion

    walking = motion(90)
    walking.trans[:, 0] = np.linspace(0, 1, 90)
    walking.trans[:, 1] += 0.02 * np.sin(np.arange(90))
    save_motion(tmp_path / "walk.npz", walking)
    assert main(["export", "--motion", str(tmp_path / "walk.npz"), "--out", str(tmp_path / "still.npz"), "--in-place"]) == 0
    still = load_motion(tmp_path / "still.npz")
    assert np.allclose(still.trans[:, [0, 2]], walking.trans[:1, [0, 2]]) and np.allclose(still.trans[:, 1], walking.trans[:, 1])
    assert main(["export", "--motion", str(tmp_path / "walk.npz"), "--out", str(tmp_path / "walk.bvh")]) == 0
    assert (tmp_path / "walk.bvh").read_text().startswith("HIERARCHY")
    assert main(["export", "--motion", str(tmp_path / "walk.npz"), "--out", str(tmp_path / "walk.glb")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.npz", "walk.bvh", "walk.glb", "walk.npz"]
    # every format with the permissions of any file the user makes there (its umask), not the owner's alone
    (tmp_path / "plain.txt").write_text("")
    ordinary = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("still.npz", "walk.bvh", "walk.glb")} == dict.fromkeys(
        ("still.npz", "walk.bvh", "walk.glb"), ordinary
    )


def _terminate_midway(command: list[str], cwd: Path, wait: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(wait)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_sigterm_during_export_and_render_leaves_no_partial_file(tmp_path):
    import tempfile

    save_motion(tmp_path / "long.npz", motion(30 * 60 * 20))  # 20 minutes: an export that takes a while
    temp_before = set(Path(tempfile.gettempdir()).glob("granumamba-render-*"))
    cli = [sys.executable, "-m", "granumamba"]
    exported = _terminate_midway([*cli, "export", "--motion", str(tmp_path / "long.npz"), "--out", str(tmp_path / "long.bvh")], ROOT, 6)
    rendered = _terminate_midway(
        [*cli, "render", "--motion", str(tmp_path / "long.npz"), "--out", str(tmp_path / "long.mp4"), "--size", "256"], ROOT, 10
    )
    for result in (exported, rendered):
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-800:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.npz"]
    assert set(Path(tempfile.gettempdir()).glob("granumamba-render-*")) == temp_before


def test_sigterm_during_an_fbx_export_stops_blender_and_leaves_nothing(tmp_path):
    import tempfile

    if shutil.which("blender") is None:
        pytest.skip("Blender is not installed (apt-get install blender python3-numpy; scripts/setup.sh --dev does it)")
    save_motion(tmp_path / "long.npz", motion(30 * 60 * 10))  # 10 minutes: Blender bakes it for a minute or more
    temp_before = set(Path(tempfile.gettempdir()).glob("granumamba-fbx-*"))
    command = [sys.executable, "-m", "granumamba", "export", "--motion", str(tmp_path / "long.npz"), "--out", str(tmp_path / "long.fbx")]
    stopped = _terminate_midway(command, ROOT, 15)
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr, stopped.stderr[-800:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.npz"]
    assert set(Path(tempfile.gettempdir()).glob("granumamba-fbx-*")) == temp_before
    assert not any(b"blender_fbx.py" in c for c in _command_lines()), "Blender runs on after the export was stopped"


def _command_lines() -> list[bytes]:
    """Every running process's command line (Linux's /proc)."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(path.read_bytes())
        except OSError:  # the process ended meanwhile
            pass
    return lines


def test_a_render_told_to_stop_stops_even_where_a_library_swallowed_the_exit(tmp_path):
    """The CLI's SIGTERM handler raises SystemExit, which trimesh's imports (under `except
    BaseException`) can swallow; the flag it also sets stops the render at its next chunk, with
    no partial video left."""
    import granumamba
    from granumamba.render.video import render_video

    granumamba.TERMINATED.set()  # as if the handler had run and its exit were lost
    try:
        with pytest.raises(SystemExit):
            render_video(motion(60), None, tmp_path / "clip.mp4", size=256, workers=1)
    finally:
        granumamba.TERMINATED.clear()
    assert list(tmp_path.iterdir()) == []


def test_a_stop_that_a_library_turned_into_another_error_still_exits_as_stopped(tmp_path, monkeypatch, capsys):
    """A SIGTERM that lands inside a ctypes call (the renderer's EGL calls) reaches the CLI as a
    ctypes.ArgumentError wrapping the handler's SystemExit: the CLI still exits as stopped (143),
    without a traceback, and the render's partial video is removed on the way out."""
    import ctypes

    import granumamba
    from granumamba.render import scene

    save_motion(tmp_path / "clip.npz", motion(60))

    def stopped_inside_a_c_call(*_args, **_kwargs):
        granumamba.TERMINATED.set()  # what the CLI's handler does before it raises
        raise ctypes.ArgumentError("argument 1: SystemExit: 143")

    monkeypatch.setattr(scene.pyrender_patch, "overwrite_vertices", stopped_inside_a_c_call)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["render", "--motion", str(tmp_path / "clip.npz"), "--out", str(tmp_path / "clip.mp4"), "--size", "256", "--workers", "1"])
    finally:
        granumamba.TERMINATED.clear()
    assert stop.value.code == 128 + signal.SIGTERM
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.npz"]


# ----- the study tool --------------------------------------------------------------------------
def plan_text(clip_id: str = "c1", condition: str = "ground_truth", extra: str = "") -> str:
    return (
        f"seed: 1\n{extra}clips:\n  - {{id: '{clip_id}', text: 'Hello there.'}}\n  - {{id: c2, text: 'Good day.'}}\n"
        f"conditions:\n  - {{name: '{condition}', npz: {{'{clip_id}': gt.npz, c2: gt.npz}}}}\n"
        "  - {name: other, npz: {'" + clip_id + "': gt.npz, c2: gt.npz}}\n"
    )


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(  # nine aliases of nine of ... a billion x
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)
PLAN_ROWS = [
    ("traversal clip id", plan_text(clip_id="../../escaped_clip"), "clip id '../../escaped_clip'"),
    ("slash in a condition", plan_text(condition="x/y"), "condition name 'x/y'"),
    ("alias bomb", BOMB + plan_text(), "YAML alias"),
    ("absurd forms", plan_text(extra="forms: 100000000\n"), "forms must be from 1 to 100"),
    ("absurd catch trials", plan_text(extra="attention: {catch: 20000}\n"), "attention.catch must be from 0 to 2"),
    ("nan gains", plan_text().replace("npz: {'c1'", "gains: [.nan, 1, 1], npz: {'c1'", 1), "gain"),
    ("a list for a plan", "- 1\n- 2\n", "a plan is a mapping"),
]


@pytest.mark.parametrize("plan,fragment", [r[1:] for r in PLAN_ROWS], ids=[r[0] for r in PLAN_ROWS])
def test_hostile_study_plans_are_refused_quickly(tmp_path, plan, fragment):
    save_motion(tmp_path / "gt.npz", motion())
    (tmp_path / "study.yaml").write_text(plan)
    started = time.perf_counter()
    with pytest.raises(PlanError, match=None) as refused:
        load_plan(tmp_path / "study.yaml")
    assert fragment in str(refused.value)
    assert time.perf_counter() - started < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.npz", "study.yaml"]


INJECTIONS = [
    "nat</script><script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "<!--<script>alert(2)//",
    "';alert(3);'",
    "\u2028alert(4)",
]


def test_the_questionnaire_page_keeps_every_plan_string_inert(tmp_path):
    from granumamba.study.page import write_form_page

    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or pytest.skip("no Chromium (apt-get install chromium)")
    dimensions = [{"name": text, "question": text, "scale": [text, text + "2"]} for text in INJECTIONS]
    page_path = tmp_path / "index.html"
    write_form_page(page_path, 1, list(INJECTIONS), dimensions, "videos/")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page()
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_timeout(500)
        assert page.evaluate("ITEMS") == INJECTIONS and page.evaluate("DIMENSIONS") == INJECTIONS  # data, intact
        assert page.locator("legend").all_inner_texts()[: len(INJECTIONS)] == INJECTIONS  # shown as text
        page.fill("#participant", "p1")
        page.click("#download")  # the script still runs: it reports the missing answers
        assert "missing" in page.inner_text("#status")
        browser.close()
    assert dialogs == [] and errors == []


def test_non_finite_ratings_and_broken_keys_are_refused_and_leave_no_report(tmp_path):
    key = tmp_path / "key.csv"
    key.write_text("stimulus_id,kind,condition\ns1,stimulus,a\ns2,stimulus,b\n")
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "p1.csv").write_text("participant,form,stimulus_id,dimension,rating\np1,1,s1,naturalness,nan\np1,1,s2,naturalness,inf\n")
    with pytest.raises(ResponseError, match="not a finite number"):
        analyze(key, answers, tmp_path / "report")
    assert not (tmp_path / "report").exists()
    (tmp_path / "nokey.csv").write_text("stimulus_id,kind\ns1,stimulus\n")
    with pytest.raises(ResponseError, match="condition"):
        analyze(tmp_path / "nokey.csv", answers, tmp_path / "report")


@pytest.mark.parametrize(
    "variable,value,fragment",
    [
        ("GRANUMAMBA_MAX_UPLOAD_MB", "abc", "GRANUMAMBA_MAX_UPLOAD_MB"),
        ("GRANUMAMBA_CONCURRENCY", "0", "GRANUMAMBA_CONCURRENCY"),
        ("GRANUMAMBA_MAX_SECONDS", "nan", "GRANUMAMBA_MAX_SECONDS"),
    ],
)
def test_the_app_refuses_broken_limits_at_start(variable, value, fragment):
    env = {**os.environ, variable: value, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-600:]


def test_a_truncated_training_checkpoint_is_a_message(tmp_path):
    import torch

    from train.loop import load_checkpoint

    torch.save({"model": {}, "optimizer": {}, "rng": torch.zeros(1), "step": 3}, tmp_path / "ckpt.pt")
    data = (tmp_path / "ckpt.pt").read_bytes()
    (tmp_path / "ckpt.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged or truncated"):
        load_checkpoint(tmp_path / "ckpt.pt")
