"""The live endpoint: a WebSocket beside the demo, speech in, pose frames out as they are made.

    ws[s]://HOST/live/ws

1. The client opens with a text message, JSON, every field optional:
   {"type": "start", "sample_rate": 16000, "encoding": "f32le" | "s16le", "speaker": 1,
    "gains": [1, 1, 1], "temperature": 1.0, "seed": 0, "loudness_gain": null,
    "lookahead": 3, "delay": 0}
   temperature: by default the model's own (config.json's `temperature`; 1 unless it says).
   loudness_gain: null for live speech (the gain of the speech so far); a number for a recording
   whose gain the client knows (`python -m granumamba live --audio` sends its file's, which makes
   the motion that of `generate`). lookahead and delay: frames, see `granumamba.live`; by
   default the model's look-ahead, and no delay for a causal model (8 frames for one whose
   decoders look ahead).
2. The server answers {"type": "ready", ...}: the session's settings, the joint names, the
   frame layout and the limits.
3. The client sends speech as binary messages: mono PCM at its sample rate, little-endian
   float32 ("f32le") or int16 ("s16le"), any length up to MAX_MESSAGE_SECONDS; and may send
   {"type": "gains", "gains": [c, m, f]} (for the frames still to come) or {"type": "end"}.
4. The server sends each run of new frames as one binary message: a little-endian uint32 n,
   n bytes of JSON header {"type": "frames", "first": i, "count": k, "speech_received_s": s},
   then k frames of FRAME_FLOATS little-endian float32: 165 axis-angle values (55 SMPL-X joints,
   BEAT2's order), 3 root translation (m), 100 expression coefficients. Frame i answers the
   speech at i / 30 s.
5. After "end", the last frames, then {"type": "end", "frames": N} and a normal close (1000).

Other closes, each with a reason: 1002 a message that is not this protocol; 1003 speech that is
not PCM of the announced encoding; 1008 a limit (session time, idle time, message size); 1011 an
error of the server's own; 1013 the server holds its most sessions (try again later).
Limits (environment): GRANUMAMBA_LIVE_SESSIONS (at once, default: the CPU count),
GRANUMAMBA_LIVE_MAX_SECONDS (speech per session, default 600; a session's wall time is at
most twice that), GRANUMAMBA_LIVE_IDLE_SECONDS
(longest wait for the next message, default 10).

WebSocket rather than WebRTC: the model answers in steps of 4 frames (0.13 s) behind a 3-frame
look-ahead (the live checkpoint; 16-frame blocks for the non-causal demo checkpoint), and the
speech-to-pose latency measured end to end is about 210 ms (bench_live), so a transport's own
latency (well under a millisecond here, a few milliseconds over the internet) is not what the
user waits for; a WebSocket needs no extra package, no STUN or TURN server, and passes the
proxies of hosted demos (Spaces) as plain HTTPS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import struct
import threading
import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import Response, WebSocket
from starlette.websockets import WebSocketDisconnect

from . import SAMPLE_RATE
from .live import LiveFrames, LiveSession, default_delay
from .model.granumamba import GranuMamba
from .motion.skeleton import JOINT_NAMES

log = logging.getLogger(__name__)

FRAME_FLOATS = 165 + 3 + 100
LAYOUT = {"poses": [0, 165], "trans": [165, 168], "expressions": [168, 268]}
MAX_MESSAGE_SECONDS = 5.0
ENCODINGS = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2")}
START_FIELDS = {"type", "sample_rate", "encoding", "speaker", "gains", "temperature", "seed", "loudness_gain", "lookahead", "delay"}

NORMAL, PROTOCOL, UNSUPPORTED, LIMIT, SERVER_ERROR, BUSY = 1000, 1002, 1003, 1008, 1011, 1013


class Closing(Exception):
    """Ends a session with a WebSocket close code and a reason for the client."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class LiveLimits:
    sessions: int = os.cpu_count() or 1
    max_seconds: float = 600.0
    idle_seconds: float = 10.0

    @classmethod
    def from_env(cls, number) -> LiveLimits:
        """`number(name, default, low, high, kind)` reads a limit (the app's env_number)."""
        return cls(
            sessions=number("GRANUMAMBA_LIVE_SESSIONS", os.cpu_count() or 1, 0, 256, int),
            max_seconds=number("GRANUMAMBA_LIVE_MAX_SECONDS", 600, 1, 86400),
            idle_seconds=number("GRANUMAMBA_LIVE_IDLE_SECONDS", 10, 0.5, 3600),
        )


def encode_frames(frames: LiveFrames) -> bytes:
    """One frames message: uint32 header length, JSON header, float32 frames (see the module)."""
    m = frames.motion
    header = json.dumps(
        {"type": "frames", "first": frames.first, "count": frames.count, "speech_received_s": round(frames.speech_received_s, 4)}
    ).encode()
    body = np.concatenate([m.poses, m.trans, m.expressions], axis=1).astype("<f4")
    return struct.pack("<I", len(header)) + header + body.tobytes()


def decode_frames(message: bytes) -> tuple[dict, np.ndarray]:
    """A frames message -> (header, (count, FRAME_FLOATS) float32): the client's side."""
    (length,) = struct.unpack_from("<I", message)
    header = json.loads(message[4 : 4 + length])
    frames = np.frombuffer(message[4 + length :], dtype="<f4").reshape(header["count"], FRAME_FLOATS)
    return header, frames


def _number(settings: dict, key: str, default, low: float, high: float, kind=float):
    value = settings.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise Closing(PROTOCOL, f"start: {key} must be a number from {low} to {high}")
    if kind is int and value != int(value):
        raise Closing(PROTOCOL, f"start: {key} must be a whole number")
    return kind(value)


def _gains(value) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in value):
        raise Closing(PROTOCOL, "gains: a list of three numbers (coarse, mid, fine) from 0 to 2")
    gains = tuple(float(g) for g in value)
    if not all(0.0 <= g <= 2.0 for g in gains):  # NaN fails this too
        raise Closing(PROTOCOL, "gains: a list of three numbers (coarse, mid, fine) from 0 to 2")
    return gains


def open_session(model: GranuMamba, settings: dict) -> tuple[LiveSession, np.dtype]:
    """A LiveSession from the start message's settings, each checked with a reason."""
    if not isinstance(settings, dict) or settings.get("type") != "start":
        raise Closing(PROTOCOL, 'open with a text message {"type": "start", ...} (see the API docs)')
    unknown = sorted(set(settings) - START_FIELDS)
    if unknown:
        raise Closing(PROTOCOL, f"start: unknown fields {', '.join(unknown)[:60]}")
    encoding = settings.get("encoding", "f32le")
    if encoding not in ENCODINGS:
        raise Closing(PROTOCOL, f"start: encoding is one of {', '.join(ENCODINGS)}")
    config = model.config
    try:
        session = LiveSession(
            model,
            sample_rate=_number(settings, "sample_rate", 16000, 8000, 192000, int),
            speaker=_number(settings, "speaker", config.default_speaker, 0, config.num_speakers - 1, int),
            gains=_gains(settings.get("gains", [1, 1, 1])),
            temperature=_number(settings, "temperature", config.temperature, 0, 2),
            seed=_number(settings, "seed", 0, 0, 2**31 - 1, int),
            loudness_gain=_number(settings, "loudness_gain", None, 1e-4, 1e4),
            lookahead=_number(settings, "lookahead", model.generator.lookahead, 0, model.generator.lookahead, int),
            delay=_number(settings, "delay", default_delay(model), 0, model.frame_multiple, int),
        )
    except ValueError as err:
        raise Closing(PROTOCOL, f"start: {err}"[:120]) from None
    return session, ENCODINGS[encoding]


class LiveServer:
    """The sessions of one server: how many run, their limits, the model they share."""

    def __init__(self, model: GranuMamba, limits: LiveLimits | None = None):
        self.model, self.limits = model, limits or LiveLimits()
        self.active: set[str] = set()
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """One short session on noise, so that the first visitor does not wait for the analysis's
        and the model's first-call set-up (compiled routines, allocations): about a second."""
        session = LiveSession(self.model, seed=0)
        noise = np.random.default_rng(0).normal(0, 0.05, SAMPLE_RATE).astype(np.float32)
        session.push(noise)
        session.finish()

    def ready_message(self, session_id: str, session: LiveSession) -> dict:
        return {
            "type": "ready",
            "session": session_id,
            "fps": 30,
            "sample_rate": session.sample_rate,
            "joints": list(JOINT_NAMES),
            "layout": LAYOUT,
            "frame_floats": FRAME_FLOATS,
            "block_frames": session.block,
            "lookahead_frames": session.lookahead,
            "delay_frames": session.delay,
            "gains": list(session.gains),
            "limits": {"max_seconds": self.limits.max_seconds, "idle_seconds": self.limits.idle_seconds},
        }

    async def serve(self, websocket) -> None:
        """One client, from accept to close (a Starlette WebSocket)."""
        await websocket.accept()
        session_id = uuid.uuid4().hex[:12]
        with self._lock:
            full = len(self.active) >= self.limits.sessions
            if not full:
                self.active.add(session_id)
        if full:
            await websocket.close(BUSY, f"the server holds its most live sessions ({self.limits.sessions}); try again later")
            return
        try:
            code, reason = await self._run(websocket, session_id)
        except Exception:  # the server's own fault: the client is told, the server goes on
            log.exception("live session %s failed", session_id)
            code, reason = SERVER_ERROR, "the server failed on this session; try again"
        finally:
            with self._lock:
                self.active.discard(session_id)
        if code is not None:
            try:
                await websocket.close(code, reason[:120])
            except Exception:  # the client has gone already
                pass

    async def _receive(self, websocket, deadline: float):
        """The next message, or None when the client has gone; Closing at the idle or wall-time limit."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise asyncio.TimeoutError
            message = await asyncio.wait_for(websocket.receive(), min(self.limits.idle_seconds, remaining + 0.01))
        except asyncio.TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise Closing(LIMIT, f"a live session lasts at most {2 * self.limits.max_seconds:g} s") from None
            raise Closing(LIMIT, f"nothing received for {self.limits.idle_seconds:g} s: the session is closed") from None
        if message["type"] == "websocket.disconnect":
            return None
        return message

    async def _run(self, websocket, session_id: str) -> tuple[int | None, str]:
        deadline = asyncio.get_running_loop().time() + 2 * self.limits.max_seconds  # wall time: speech time, twice over
        try:
            message = await self._receive(websocket, deadline)
            if message is None:
                return None, ""
            if message.get("text") is None:
                raise Closing(PROTOCOL, 'open with a text message {"type": "start", ...} before any speech')
            try:
                settings = json.loads(message["text"])
            except json.JSONDecodeError:
                raise Closing(PROTOCOL, "the start message is not JSON") from None
            session, dtype = open_session(self.model, settings)
            await websocket.send_text(json.dumps(self.ready_message(session_id, session)))
            limit_samples = self.limits.max_seconds * session.sample_rate
            received = 0
            max_bytes = int(MAX_MESSAGE_SECONDS * session.sample_rate) * dtype.itemsize
            while True:
                message = await self._receive(websocket, deadline)
                if message is None:
                    return None, ""  # the client went away: nothing to send, the session is dropped
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if len(data) > max_bytes:
                        raise Closing(LIMIT, f"a speech message holds at most {MAX_MESSAGE_SECONDS:g} s")
                    if len(data) % dtype.itemsize:
                        raise Closing(UNSUPPORTED, f"speech messages are whole {dtype.itemsize}-byte samples")
                    samples = np.frombuffer(data, dtype=dtype).astype(np.float32)
                    if dtype.kind == "i":
                        samples /= 32768.0
                    elif not np.isfinite(samples).all() or np.abs(samples).max(initial=0) > 64:
                        raise Closing(UNSUPPORTED, "the speech is not float32 PCM from -1 to 1")
                    received += samples.size
                    if received > limit_samples:
                        raise Closing(LIMIT, f"a live session takes at most {self.limits.max_seconds:g} s of speech")
                    blocks = await asyncio.to_thread(session.push, samples)
                elif text is not None:
                    try:
                        control = json.loads(text)
                    except json.JSONDecodeError:
                        raise Closing(PROTOCOL, "text messages are JSON") from None
                    kind = control.get("type") if isinstance(control, dict) else None
                    if kind == "gains":
                        session.set_gains(_gains(control.get("gains")))
                        continue
                    if kind != "end":
                        raise Closing(PROTOCOL, 'text messages are {"type": "gains", ...} or {"type": "end"}')
                    for frames in await asyncio.to_thread(session.finish):
                        await websocket.send_bytes(encode_frames(frames))
                    await websocket.send_text(json.dumps({"type": "end", "frames": session.frames_given}))
                    return NORMAL, "the speech has ended"
                else:
                    continue
                for frames in blocks:
                    await websocket.send_bytes(encode_frames(frames))
        except Closing as closing:
            return closing.code, closing.reason
        except (RuntimeError, OSError, WebSocketDisconnect) as err:  # sending to a client that has gone
            log.info("live session %s ended: %s", session_id, err)
            return None, ""


def add_live_routes(app, server: LiveServer, body_glb: bytes) -> None:
    """The WebSocket and the body the live view poses, on a FastAPI app."""

    @app.websocket("/live/ws")
    async def live_socket(websocket: WebSocket):
        await server.serve(websocket)

    @app.get("/live/body.glb")
    async def live_body():
        return Response(body_glb, media_type="model/gltf-binary", headers={"Cache-Control": "max-age=3600"})
