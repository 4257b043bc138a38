"""Live mode end to end: the demo's server (app.py, default settings) and clients that speak to
its WebSocket at the pace of speech, as the browser does (20 ms messages).

    python -m bench.bench_live [--seconds 30] [--data data/synth] [--model DIR]

Prints: latency from the speech being sent to the pose frame that answers it (median, 95th
percentile; the look-ahead's share beside it), for the default settings and the shorter
ones; the real-time factor; how many sessions at once keep up; the server's memory over 10
minutes of continuous speech; and, with --data (a synthetic corpus), BC on its test split for
each look-ahead, since a shorter look-ahead than the model was trained with costs timing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from granumamba import SAMPLE_RATE
from granumamba.live_client import PIECE_SECONDS, stream_speech
from granumamba.text.tts import synthesize

from .common import machine, table

ROOT = Path(__file__).resolve().parents[1]


def speech(seconds: float) -> np.ndarray:
    """Project-made speech with the pauses people make (a second or two between some sentences)."""
    sentences = [
        "The quiet student remembers every bright river in the ancient city.",
        "And the teacher answers slowly, because the question is a careful one.",
        "Perhaps the golden market opens again today.",
        "Every modern engine carries a heavy message across the mountain.",
    ]
    pieces, total, k = [], 0, 0
    while total < seconds * SAMPLE_RATE:
        audio, _ = synthesize(sentences[k % len(sentences)])
        pieces += [audio, np.zeros(int((0.3 if k % 3 else 1.8) * SAMPLE_RATE), np.float32)]
        total += pieces[-1].size + audio.size
        k += 1
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]


def pieces_of(audio: np.ndarray) -> list[np.ndarray]:
    size = int(PIECE_SECONDS * SAMPLE_RATE)
    return [audio[i : i + size] for i in range(0, audio.size, size)]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int, model: Path | None = None) -> subprocess.Popen:
    """The demo as a user starts it (its default model lookup), or serving `model` in the Live tab."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRANUMAMBA_LIVE_SESSIONS="16", GRANUMAMBA_LIVE_MAX_SECONDS="900")
    env.pop("HF_HUB_OFFLINE", None)  # the default model lookup, as a user runs it
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), *(["--live-model", str(model)] if model else [])]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the demo did not start") from None
            time.sleep(0.1)


def latency_ms(result) -> tuple[float, float, float, float]:
    same, drive = result.latency_s[np.isfinite(result.latency_s)], result.drive_latency_s[np.isfinite(result.drive_latency_s)]
    return (np.median(same) * 1000, np.percentile(same, 95) * 1000, np.median(drive) * 1000, np.percentile(drive, 95) * 1000)


def live_bc(model_dir: Path | None, data: Path) -> list[list]:
    """BC (sigma 0.3 and 0.1) of the live path's motion on the corpus's test split, per look-ahead:
    the model's own, half of it and none."""
    from granumamba.audio.features import loudness_gain
    from granumamba.audio.io import load_audio
    from granumamba.data.beat2 import index_beat2
    from granumamba.live import LiveSession, join
    from train.metrics import audio_onsets, beat_consistency, motion_positions

    model = live_model(model_dir)
    lookaheads = sorted({model.generator.lookahead, model.generator.lookahead // 2, 0}, reverse=True)
    takes = index_beat2(data, split="test").takes
    audios = [load_audio(t.audio) for t in takes]
    onsets = [audio_onsets(a) for a in audios]
    rows = []
    for lookahead in lookaheads:
        bcs = {0.3: [], 0.1: []}
        for audio, onset in zip(audios, onsets):
            session = LiveSession(model, lookahead=lookahead, loudness_gain=loudness_gain(audio))
            given = []
            for piece in pieces_of(audio):
                given += session.push(piece)
            positions = motion_positions(join(given + session.finish()))
            for sigma in bcs:
                bcs[sigma].append(beat_consistency(positions, onset, sigma))
        rows.append([f"{lookahead} frames ({lookahead / 30 * 1000:.0f} ms)", len(takes), np.nanmean(bcs[0.3]), np.nanmean(bcs[0.1])])
    return rows


def live_model(model_dir: Path | None):
    """The model the Live tab serves: `model_dir`, else the app's default (`live_model_name`)."""
    from granumamba.pipeline import GranuMambaPipeline, live_model_name

    return GranuMambaPipeline.from_pretrained(live_model_name(model_dir)).model


def speech_and_silence(model_dir: Path | None, seeds: range = range(4)) -> list[list]:
    """Arm motion per frame in the live path while speech plays and in settled silence (from 1.5 s
    after the speech to 1 s before the next): project-made speech with 6 s silences between,
    and each example recording followed by 7 s of silence (what the browser test plays)."""
    from granumamba.audio.io import load_audio
    from granumamba.live import LiveSession, join

    model = live_model(model_dir)
    gap = np.zeros(6 * SAMPLE_RATE, np.float32)
    talk = speech(12)
    signals = {"project speech, 6 s silences": [talk, gap, talk[::-1].copy(), gap]}
    for example in sorted((ROOT / "assets" / "examples").glob("*.wav")):
        signals[f"{example.stem} + 7 s silence"] = [load_audio(example), np.zeros(7 * SAMPLE_RATE, np.float32)]
    rows = []
    for name, clips in signals.items():
        bounds = np.cumsum([0] + [c.size / SAMPLE_RATE for c in clips])  # speech, silence, speech, ...
        ratios = []
        for seed in seeds:
            session = LiveSession(model, seed=seed)
            given = []
            for piece in pieces_of(np.concatenate(clips)):
                given += session.push(piece)
            poses = join(given + session.finish()).poses.reshape(-1, 55, 3)
            arms = np.abs(np.diff(poses[:, 16:22], axis=0)).sum((1, 2))
            t = (np.arange(len(arms)) + 1) / 30
            spoken = np.zeros(len(arms), bool)
            silent = np.zeros(len(arms), bool)
            for k in range(0, len(clips), 2):
                spoken |= (t > bounds[k]) & (t < bounds[k + 1])
                silent |= (t > bounds[k + 1] + 1.5) & (t < bounds[k + 2] - (1.0 if k + 2 < len(clips) else 0.0))
            ratios.append(float(arms[spoken].mean() / arms[silent].mean()))
            rows.append([name, seed, float(arms[spoken].mean()), float(arms[silent].mean()), ratios[-1]])
        rows.append([name, "mean", "", "", float(np.mean(ratios))])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="speech per latency run")
    parser.add_argument("--memory-minutes", type=float, default=10.0)
    parser.add_argument("--data", type=Path, help="a synthetic corpus: BC of its test split per look-ahead")
    parser.add_argument(
        "--model",
        type=Path,
        help="a model folder to serve in the Live tab and measure (default: the demo's own model lookup)",
    )
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    audio = speech(args.seconds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/live/ws"
    proc = start_server(port, args.model)
    try:
        time.sleep(3)  # the server's warm-up, as a visitor arriving a moment after the start
        rows, shorter = [], [{"delay": 0}, {"lookahead": 0, "delay": 0}]
        for settings in [{}, *shorter]:
            result = stream_speech(url, pieces_of(audio), settings, pace=1.0)
            lookahead, delay, block = (result.ready[k] for k in ("lookahead_frames", "delay_frames", "block_frames"))
            label = f"look-ahead {lookahead}, decoding delay {delay}, blocks of {block} frames" + (" (default)" if not settings else "")
            if settings and any(row[0].startswith(label) for row in rows):
                continue  # the default already (a causal model has no decoding delay)
            median, p95, drive_median, drive_p95 = latency_ms(result)
            rows.append([label, median, p95, lookahead / 30 * 1000, drive_median, drive_p95, result.close_code])
        table(
            f"Live latency, {args.seconds:.0f} s of speech sent in 20 ms messages at speaking pace (ms)",
            [
                "settings",
                "speech to pose, median",
                "95th pct",
                "look-ahead's share",
                "to the frame it drives, median",
                "95th pct",
                "close",
            ],
            rows,
        )

        fast = stream_speech(url, pieces_of(audio), {}, pace=None)
        table(
            "Real-time factor (one session, speech sent at once: server time / speech time)",
            ["speech s", "wall s", "real-time factor"],
            [[args.seconds, fast.wall_s, fast.wall_s / args.seconds]],
        )

        rows, single_p95 = [], None
        clip = audio[: 20 * SAMPLE_RATE]
        for sessions in (1, 2, 3, 4, 6):
            results: list = [None] * sessions

            def client(k):
                results[k] = stream_speech(url, pieces_of(clip), {"seed": k}, pace=1.0)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(sessions)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            p95 = max(latency_ms(r)[1] for r in results)
            single_p95 = single_p95 or p95
            behind = max(r.wall_s for r in results) - clip.size / SAMPLE_RATE
            keeps_up = p95 < single_p95 + 300 and behind < 1.5
            rows.append([sessions, np.median([latency_ms(r)[0] for r in results]), p95, behind, "yes" if keeps_up else "no"])
        table(
            f"Sessions at once, {clip.size / SAMPLE_RATE:.0f} s of speech each at speaking pace",
            ["sessions", "latency median ms", "worst 95th pct ms", "last frame after the speech ends, s", "keeps up"],
            rows,
        )

        long = np.tile(audio, int(np.ceil(args.memory_minutes * 60 / args.seconds)))[: int(args.memory_minutes * 60 * SAMPLE_RATE)]
        samples = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                samples.append(rss_mb(proc.pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        before = rss_mb(proc.pid)
        watcher.start()
        pieces = pieces_of(long)
        minute = int(60 / PIECE_SECONDS)
        marks = {}

        def marked():
            for k, piece in enumerate(pieces):
                if k == minute:
                    marks["after one minute"] = rss_mb(proc.pid)
                yield piece

        result = stream_speech(url, marked(), {}, pace=None)
        stop.set()
        watcher.join()
        after = rss_mb(proc.pid)
        table(
            f"Server memory over {args.memory_minutes:.0f} minutes of continuous speech (one session, sent as fast as it is taken)",
            ["RSS before MB", "after 1 minute MB", "at the end MB", "peak MB", "growth after the first minute MB", "frames", "close"],
            [
                [
                    before,
                    marks.get("after one minute", float("nan")),
                    after,
                    max(samples),
                    after - marks.get("after one minute", after),
                    result.motion.num_frames,
                    f"{result.close_code} {result.close_reason}",
                ]
            ],
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    table(
        "Live motion while speech plays and in settled silence (arm joints' rotation change per frame, rad)",
        ["speech", "seed", "while speech plays", "in settled silence", "speech / silence"],
        speech_and_silence(args.model),
    )
    if args.data:
        table(
            "BC of the live path on the synthetic test split, by look-ahead (the first: the one it was trained with)",
            ["look-ahead", "takes", "BC σ 0.3", "BC σ 0.1"],
            live_bc(args.model, args.data),
        )


if __name__ == "__main__":
    main()
