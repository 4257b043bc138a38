"""A client of the live endpoint (granumamba/live_server.py): speech sent at the pace it is spoken,
pose frames received as they come, with each frame's latency.

    result = stream_speech("ws://127.0.0.1:7860/live/ws", file_pieces("speech.wav"), settings)
    result.motion            # the received frames as one BEAT2 motion
    result.latency_s         # per frame: from the speech it answers being sent to the frame arriving
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from . import FPS, SAMPLE_RATE
from .live_server import decode_frames
from .motion.parts import Motion

PIECE_SECONDS = 0.02  # speech per message: what a browser's audio callback hands over
AHEAD_SECONDS = 10.0  # sending at once: at most this much speech ahead of the frames received


@dataclass
class LiveResult:
    motion: Motion
    latency_s: np.ndarray  # per frame: arrival - when the speech up to the end of its own frame had been sent
    drive_latency_s: np.ndarray  # per frame: arrival - when the speech that drives it (its frame + look-ahead) had been sent
    ready: dict = field(default_factory=dict)
    close_code: int | None = None
    close_reason: str = ""
    wall_s: float = 0.0


def file_pieces(path, piece_seconds: float = PIECE_SECONDS) -> tuple[list[np.ndarray], float]:
    """A recording as 16 kHz pieces, and its loudness gain (sent, so the motion equals `generate`'s)."""
    from .audio.features import loudness_gain
    from .audio.io import load_audio

    audio = load_audio(path)
    size = max(1, int(piece_seconds * SAMPLE_RATE))
    return [audio[i : i + size] for i in range(0, audio.size, size)], loudness_gain(audio)


def stream_speech(
    url: str,
    pieces: Iterable[np.ndarray],
    settings: dict | None = None,
    sample_rate: int = SAMPLE_RATE,
    pace: float | None = 1.0,
    open_timeout: float = 10.0,
) -> LiveResult:
    """Send float32 mono `pieces` at `sample_rate`, `pace` times as fast as spoken (None: as fast
    as the server answers, never more than AHEAD_SECONDS of speech ahead of the frames received,
    so that the backlog in the connection stays bounded), then "end"; receive every frame until
    the server closes."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    settings = {"type": "start", "sample_rate": sample_rate, "encoding": "f32le", **(settings or {})}
    frames: dict[int, np.ndarray] = {}
    arrived: dict[int, float] = {}
    sent: list[tuple[int, float]] = []  # (samples sent so far, when)
    result = LiveResult(Motion(np.zeros((0, 165), np.float32), np.zeros((0, 3)), np.zeros((0, 100))), np.zeros(0), np.zeros(0))
    started = time.perf_counter()
    # No keep-alive pings, as on the server: a server that is behind answers a ping only after the
    # frames queued before it, and a ping timed out that way cut a stream that was only slow.
    with connect(url, open_timeout=open_timeout, max_size=None, compression=None, ping_interval=None) as socket:
        socket.send(json.dumps(settings))
        try:
            result.ready = json.loads(socket.recv(timeout=open_timeout))
        except ConnectionClosed as closed:
            return _closed(result, closed, started)

        def receive() -> None:
            try:
                for message in socket:
                    if isinstance(message, bytes):
                        now = time.perf_counter()
                        header, block = decode_frames(message)
                        for k in range(header["count"]):
                            frames[header["first"] + k] = block[k]
                            arrived[header["first"] + k] = now
            except ConnectionClosed:
                pass

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        total = 0
        try:
            for piece in pieces:
                piece = np.ascontiguousarray(piece, dtype="<f4")
                if pace:
                    wait = started + (total + piece.size) / sample_rate / pace - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                else:
                    while receiver.is_alive() and (total / sample_rate - AHEAD_SECONDS) * FPS > len(frames):
                        time.sleep(0.005)
                socket.send(piece.tobytes())
                total += piece.size
                sent.append((total, time.perf_counter()))
            socket.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            pass
        receiver.join()
        result.close_code = socket.close_code
        result.close_reason = socket.close_reason or ""
    result.wall_s = time.perf_counter() - started
    count = len(frames)
    if count:
        block = np.stack([frames[i] for i in range(count)])
        result.motion = Motion(block[:, :165].copy(), block[:, 165:168].astype(np.float64), block[:, 168:].astype(np.float64))
        lookahead = int(result.ready.get("lookahead_frames", 0))
        result.latency_s = _latency(arrived, sent, count, 0, sample_rate)
        result.drive_latency_s = _latency(arrived, sent, count, lookahead, sample_rate)
    return result


def _latency(arrived: dict[int, float], sent: list[tuple[int, float]], count: int, shift: int, rate: int) -> np.ndarray:
    """Per frame i, arrival - when the speech up to the end of frame i + shift had been sent
    (NaN where that speech was never sent: the frames the end of the speech completes)."""
    totals = np.array([s for s, _ in sent])
    times = np.array([t for _, t in sent])
    needed = np.ceil((np.arange(count) + 1 + shift) * rate / FPS)
    index = np.searchsorted(totals, needed)
    out = np.full(count, np.nan)
    ok = index < len(totals)
    out[ok] = np.array([arrived[i] for i in range(count)])[ok] - times[index[ok]]
    return out


def _closed(result: LiveResult, closed, started: float) -> LiveResult:
    result.close_code = closed.rcvd.code if closed.rcvd else None
    result.close_reason = closed.rcvd.reason if closed.rcvd else ""
    result.wall_s = time.perf_counter() - started
    return result


def microphone_pieces(seconds: float | None, piece_seconds: float = PIECE_SECONDS) -> Iterator[np.ndarray]:
    """16 kHz pieces from the default microphone (the optional `sounddevice` package) until
    `seconds` have passed or Ctrl-C."""
    import queue

    try:
        import sounddevice
    except (ImportError, OSError) as err:
        raise ValueError(f"--mic needs the sounddevice package and PortAudio (pip install sounddevice): {err}") from None
    pieces: queue.Queue = queue.Queue()
    size = int(piece_seconds * SAMPLE_RATE)

    def heard(data, *_):
        pieces.put(data[:, 0].copy())

    with sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=size, callback=heard):
        taken = 0
        try:
            while seconds is None or taken < seconds * SAMPLE_RATE:
                piece = pieces.get()
                taken += piece.size
                yield piece
        except KeyboardInterrupt:
            return
