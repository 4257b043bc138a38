"""Shared fixtures: the shared real BEAT2 take, a small synthetic corpus, speech files."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]
BEAT2_SAMPLE = ROOT.parent / "shared" / "data" / "beat2_sample"
SAMPLE_TAKE = "2_scott_0_1_1"


@pytest.fixture(scope="session")
def beat2_sample() -> Path:
    if not (BEAT2_SAMPLE / "smplxflame_30" / f"{SAMPLE_TAKE}.npz").is_file():
        pytest.skip(f"the shared BEAT2 sample is not at {BEAT2_SAMPLE} (it ships with the project's CI, not with a clone)")
    return BEAT2_SAMPLE


def need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng; scripts/setup.sh does it)")


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """Two speakers, about a minute and a half of speech, in BEAT2's layout."""
    need_espeak()
    from train.make_corpus import make_corpus

    out = tmp_path_factory.mktemp("synth")
    make_corpus(out, minutes=1.5, seed=3, speakers=2, take_seconds=9.0, progress=False)
    return out


def demo_corpus_options() -> dict:
    """make_corpus's take options in train/configs/demo.yaml's `corpus` section (all of it but the
    size, as make_demo passes them)."""
    from dataclasses import asdict

    from train.config import load_config

    corpus = asdict(load_config(ROOT / "train" / "configs" / "demo.yaml").corpus)
    return {name: value for name, value in corpus.items() if name not in ("minutes", "speakers")}


@pytest.fixture(scope="session")
def demo_kind_corpus(tmp_path_factory) -> Path:
    """A small corpus made with the demo checkpoint's corpus settings (train/configs/demo.yaml's
    `corpus` section: people's pauses, both hands, the shoulder girdle), another seed than the
    demo corpus's, so never trained on: the motion and speech the bundled checkpoint knows."""
    need_espeak()
    from train.make_corpus import make_corpus

    options = demo_corpus_options()
    out = tmp_path_factory.mktemp("synth_demo_kind")
    make_corpus(out, minutes=1.5, seed=3, speakers=2, take_seconds=9.0, progress=False, **options)
    return out


@pytest.fixture(scope="session")
def paused_corpus(tmp_path_factory) -> Path:
    """synth_corpus's takes with people's pauses between phrases (`phrase_pause`), the kind of
    speech the demo checkpoint trains on; another seed than the demo corpus's, so never trained on."""
    need_espeak()
    from train.make_corpus import make_corpus

    out = tmp_path_factory.mktemp("synth_paused")
    make_corpus(out, minutes=1.5, seed=3, speakers=2, take_seconds=9.0, progress=False, phrase_pause=0.6)
    return out


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A few seconds of project-made speech, 16 kHz mono PCM."""
    need_espeak()
    from granumamba.text.tts import synthesize

    audio, _ = synthesize("Every careful student remembers the golden river, and the quiet city opens again.")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    soundfile.write(path, audio, 16000, subtype="PCM_16")
    return path


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1, subtype: str = "PCM_16") -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    soundfile.write(path, data, rate, subtype=subtype)
    return path


def probe_video(path) -> dict:
    """Frames, duration, size, fps and streams of a video, from the ffmpeg that imageio-ffmpeg ships."""
    import re
    import subprocess

    import imageio_ffmpeg

    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    video = re.search(r"Video: (\w+).*?, (\w+)\(?.*?, (\d+)x(\d+).*?, ([\d.]+) fps", info)
    audio = re.search(r"Audio: (\w+)", info)
    return {
        "frames": frames,
        "seconds": seconds,
        "codec": video.group(1) if video else None,
        "pix_fmt": video.group(2) if video else None,
        "width": int(video.group(3)) if video else 0,
        "height": int(video.group(4)) if video else 0,
        "fps": float(video.group(5)) if video else 0.0,
        "audio": audio.group(1) if audio else None,
    }


def read_frames(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def write_fake_smplx(folder, vertices=10475, faces=2000, seed=0):
    """An SMPL-X model file with the real structure and random numbers (real ones need registration)."""
    rng = np.random.default_rng(seed)
    template = rng.normal(0, 0.2, (vertices, 3)) + [0, 0.3, 0]
    weights = rng.random((vertices, 55)) ** 8
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((55, vertices))
    regressor[np.arange(55), rng.choice(vertices, 55, replace=False)] = 1.0
    parents = np.array(
        [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
        + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
        + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
    )
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(55)]).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "SMPLX_NEUTRAL.npz",
        f=rng.integers(0, vertices, (faces, 3)).astype(np.int64),
        v_template=template,
        shapedirs=rng.normal(0, 0.01, (vertices, 3, 400)).astype(np.float32),
        posedirs=np.zeros((vertices, 3, 486), np.float32),
        J_regressor=regressor,
        kintree_table=kintree,
        weights=weights,
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
        lmk_faces_idx=np.zeros(51, np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3),
    )
    return folder
