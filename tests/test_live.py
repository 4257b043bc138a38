"""Live mode: the session's frames against `generate`, the WebSocket endpoint against a real
WebSocket client (the `websockets` package) with bad clients, limits and disconnects, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from granumamba import SAMPLE_RATE
from granumamba.audio.features import loudness_gain
from granumamba.audio.io import load_audio
from granumamba.live import LiveSession, join
from granumamba.model.sampler import SampledCodes, decode
from granumamba.motion.parts import PART_NAMES, merge_parts
from granumamba.pipeline import BUNDLED_LIVE_MODEL, BUNDLED_MODEL, GranuMambaPipeline

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "assets" / "examples" / "welcome_us_female.wav"
SMALL = {"vq_hidden": 32, "latent_dim": 16, "codebook_size": 32, "d_model": 32, "n_global": 1, "n_local": 1}  # untrained models' sizes


@pytest.fixture(scope="module")
def pipe():
    return GranuMambaPipeline.from_pretrained(BUNDLED_MODEL)


@pytest.fixture(scope="module")
def speech():
    return load_audio(SPEECH)


@pytest.fixture(scope="module", params=["demo checkpoint", "live checkpoint"])
def model(request, pipe):
    """Both bundled checkpoints, so that both live paths are tested with trained weights and the
    hold outcome: the demo's (`causal` false: decoders that look ahead, blocks of a whole coarse
    step) and the Live tab's (causal, blocks of one fine step)."""
    if request.param == "demo checkpoint":
        return pipe.model
    live = GranuMambaPipeline.from_pretrained(BUNDLED_LIVE_MODEL).model
    assert live.config.causal != pipe.model.config.causal and live.config.hold_speed > 0
    return live


def run_live(model, audio, piece=320, **settings):
    session = LiveSession(model, **settings)
    given = []
    for start in range(0, audio.size, piece):
        given += session.push(audio[start : start + piece])
    return session, given + session.finish()


@pytest.mark.parametrize("shortest", [False, True], ids=["default", "lookahead 0, delay 0"])
def test_each_block_comes_with_the_piece_that_completes_its_speech(model, speech, shortest):
    """No frame waits longer than its block's speech (a causal model's fine step of 4 frames,
    else a coarse block of 16): after every 20 ms piece, the frames given are every block whose
    feature frames (a frame's analysis windows reach 32 ms past it) the speech so far covers,
    less the decoding delay."""
    session = LiveSession(model, **({"lookahead": 0, "delay": 0} if shortest else {}))
    lookahead, delay = session.lookahead, session.delay
    assert session.block == (4 if model.config.causal else 16)
    block, received = session.block, 0
    for start in range(0, speech.size, 320):
        session.push(speech[start : start + 320])
        received += speech[start : start + 320].size
        covered = min((max(0, received - 512) // 160 + 1) * 30 // 100 if received >= 512 else 0, received * 30 // SAMPLE_RATE)
        sampled = max(0, covered - lookahead) // block * block
        assert session.frames_given == max(0, sampled - delay), start
    assert session.frames_given > 0


def test_live_frames_are_the_decoding_of_generates_codes_so_far(model, speech):
    """Same speech, seed and loudness gain: the live session samples exactly `generate`'s codes,
    and every run of frames it gives is the decoding of the codes sampled up to then."""
    audio = speech[: 6 * SAMPLE_RATE]
    result = GranuMambaPipeline(model)(audio, seed=4)
    session, given = run_live(model, audio, seed=4, loudness_gain=loudness_gain(audio), delay=4)
    assert join(given).num_frames == result.motion.num_frames
    assert [g.first for g in given] == list(np.cumsum([0] + [g.count for g in given[:-1]]))
    block, total, start_xz = session.block, result.motion.num_frames, (0.0, 0.0)
    per = model.generator.frames_per_latent
    for g in given:
        stop = g.first + g.count
        sampled = min(-(-(stop + session.delay) // block) * block, -(-total // block) * block)  # codes sampled when it was given
        cut = [c[:, :, : -(-sampled // (per * f))] for c, f in zip(result.codes.indices, model.config.factors)]
        parts = decode(model, SampledCodes(cut, min(sampled, total)), (1, 1, 1), frames=(g.first, stop))
        expected = merge_parts({p: model.normalizer.denormalize(p, parts[p]) for p in PART_NAMES}, start_xz)
        start_xz = (float(expected.trans[-1, 0]), float(expected.trans[-1, 2]))
        np.testing.assert_allclose(g.motion.poses, expected.poses, atol=1e-5)
        np.testing.assert_allclose(g.motion.trans, expected.trans, atol=1e-5)


def test_live_motion_differs_from_generate_only_by_the_decoders_missing_future(model, speech):
    """A causal model's live frames are `generate`'s, whatever the delay. Decoders that look
    ahead lack, live, the later codes that the offline decoder sees: a difference, smaller the
    longer the decoding waits (delay)."""
    audio = speech[: 8 * SAMPLE_RATE]
    full = GranuMambaPipeline(model)(audio, seed=1).motion.poses
    gain = loudness_gain(audio)
    differences = []
    for delay in (0, 8, 16):
        live = join(run_live(model, audio, seed=1, loudness_gain=gain, delay=delay)[1]).poses
        differences.append(np.abs(live - full).max())
    if model.config.causal:
        assert max(differences) < 1e-4
    else:
        assert differences[0] > differences[1] > differences[2]


def test_live_takes_other_sample_rates_and_pieces_of_any_size(pipe, speech):
    import soxr

    audio = speech[: 5 * SAMPLE_RATE]
    at16 = join(run_live(pipe.model, audio, seed=2, loudness_gain=loudness_gain(audio))[1])
    at48 = soxr.resample(audio, SAMPLE_RATE, 48000)
    rng = np.random.default_rng(0)
    session = LiveSession(pipe.model, sample_rate=48000, seed=2, loudness_gain=loudness_gain(audio))
    given, start = [], 0
    while start < at48.size:
        size = int(rng.choice([1, 7, 480, 2400, 30000]))
        given += session.push(at48[start : start + size])
        start += size
    motion = join(given + session.finish())
    assert abs(motion.num_frames - at16.num_frames) <= 1
    n = min(motion.num_frames, at16.num_frames)
    assert np.isfinite(motion.poses).all()
    assert np.abs(motion.poses[:n] - at16.poses[:n]).mean() < 0.05  # resampled speech: the same gesture, give or take


def test_a_live_session_holds_bounded_state(pipe, speech):
    """Memory flat over a long session: only the samples, features and codes that later frames need."""
    session = LiveSession(pipe.model, seed=0)
    audio = np.tile(speech, 4)[: 45 * SAMPLE_RATE]
    sizes = []
    for start in range(0, audio.size, 4000):
        session.push(audio[start : start + 4000])
        sizes.append((session.features._buffer.size, session._inputs.shape[0], session._codes[-1].shape[2] if session._codes else 0))
    buffer, inputs, codes = np.max(sizes[len(sizes) // 2 :], axis=0)
    assert buffer < 0.5 * SAMPLE_RATE and inputs < 2 * pipe.model.frame_multiple
    model = pipe.model
    reach_back = model.decode_overlap + model.config.factors[0] + (session.delay + session.block) // model.generator.frames_per_latent
    assert codes <= reach_back
    assert session.frames_given > 40 * 30


def test_live_session_refuses_bad_settings_and_samples(pipe):
    with pytest.raises(ValueError, match="sample rate"):
        LiveSession(pipe.model, sample_rate=4000)
    with pytest.raises(ValueError, match="look-ahead"):
        LiveSession(pipe.model, lookahead=99)
    session = LiveSession(pipe.model)
    with pytest.raises(ValueError, match="not finite"):
        session.push(np.array([0.1, np.nan], np.float32))
    session.finish()
    with pytest.raises(RuntimeError, match="finished"):
        session.push(np.zeros(10, np.float32))


# ----- the WebSocket endpoint, served by uvicorn, used by the `websockets` client -------------


@pytest.fixture(scope="module")
def live_server(pipe):
    import uvicorn
    from fastapi import FastAPI

    from granumamba.live_server import LiveLimits, LiveServer, add_live_routes

    app = FastAPI()
    server = LiveServer(pipe.model, LiveLimits(sessions=2, max_seconds=60, idle_seconds=5))
    add_live_routes(app, server, b"glTF")
    port = free_port()
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not runner.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"ws://127.0.0.1:{port}/live/ws", server
    runner.should_exit = True
    thread.join(timeout=10)


def wait_idle(server, seconds: float = 5.0) -> None:
    deadline = time.time() + seconds
    while server.active and time.time() < deadline:
        time.sleep(0.05)
    assert not server.active, "a session was left behind"


def test_a_websocket_client_streams_a_recording_and_receives_the_live_motion(live_server, pipe, speech):
    from granumamba.live_client import file_pieces, stream_speech

    url, server = live_server
    pieces, gain = file_pieces(SPEECH)
    result = stream_speech(url, pieces[:300], {"seed": 5, "loudness_gain": gain}, pace=None)
    assert result.close_code == 1000
    assert len(result.ready["joints"]) == 55 and result.ready["frame_floats"] == 268
    local = join(run_live(pipe.model, np.concatenate(pieces[:300]), seed=5, loudness_gain=gain)[1])
    assert result.motion.num_frames == local.num_frames == int(sum(p.size for p in pieces[:300]) * 30 // SAMPLE_RATE)
    np.testing.assert_allclose(result.motion.poses, local.poses, atol=1e-6)
    np.testing.assert_allclose(result.motion.expressions, local.expressions, atol=1e-5)
    wait_idle(server)


def test_two_live_sessions_at_once_each_get_their_own_motion(live_server, speech):
    from granumamba.live_client import stream_speech

    url, server = live_server
    audio = speech[: 4 * SAMPLE_RATE]
    pieces = [audio[i : i + 320] for i in range(0, audio.size, 320)]
    results = {}

    def client(seed):
        results[seed] = stream_speech(url, pieces, {"seed": seed, "loudness_gain": 1.0}, pace=2.0)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in (0, 1)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    alone = stream_speech(url, pieces, {"seed": 1, "loudness_gain": 1.0}, pace=None)
    assert results[0].close_code == results[1].close_code == 1000
    np.testing.assert_allclose(results[1].motion.poses, alone.motion.poses, atol=1e-6)  # no session leaks into another
    assert np.abs(results[0].motion.poses - results[1].motion.poses).mean() > 1e-3  # other seed, other motion
    wait_idle(server)


def raw_session(url, messages, start=True):
    """Send `messages` (bytes or str) after an optional start; return (close code, reason)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url) as ws:
        if start:
            ws.send(json.dumps({"type": "start"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        try:
            for message in messages:
                ws.send(message)
            while True:
                ws.recv(timeout=15)
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


@pytest.mark.parametrize(
    "start, messages, code, words",
    [
        (False, [b"\x00\x00\x80\x3f"], 1002, "start"),  # speech before the start message
        (False, ['{"type": "start", "colour": "red"}'], 1002, "unknown fields"),
        (False, ['{"type": "start", "sample_rate": 1000}'], 1002, "sample_rate"),
        (False, ['{"type": "start", "gains": [1, 1, "x"]}'], 1002, "gains"),
        (False, ["not json at all"], 1002, "JSON"),
        (True, [b"\x00\x00\x80"], 1003, "4-byte samples"),
        (True, [np.array([0.1, np.nan], "<f4").tobytes()], 1003, "float32"),
        (True, ['{"type": "dance"}'], 1002, "gains"),
        (True, [np.zeros(16000 * 6, "<f4").tobytes()], 1008, "at most"),
    ],
)
def test_the_server_closes_on_bad_clients_with_a_reason_and_serves_on(live_server, start, messages, code, words):
    url, server = live_server
    got_code, reason = raw_session(url, messages, start)
    assert got_code == code and words in reason
    wait_idle(server)
    assert raw_session(url, [np.zeros(1600, "<f4").tobytes(), '{"type": "end"}'])[0] == 1000  # the server still serves


def test_idle_time_and_session_limits_close_with_reasons(live_server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url, server = live_server
    saved = server.limits
    try:
        server.limits = type(saved)(sessions=1, max_seconds=1.0, idle_seconds=0.5)
        code, reason = raw_session(url, [])  # a client that stalls
        assert code == 1008 and "nothing received" in reason
        code, reason = raw_session(url, [np.zeros(8000, "<f4").tobytes()] * 3)  # 1.5 s of speech, the limit is 1 s
        assert code == 1008 and "at most 1 s" in reason
        server.limits = type(saved)(sessions=1, max_seconds=60, idle_seconds=5)
        with connect(url) as first:
            first.send(json.dumps({"type": "start"}))
            first.recv(timeout=10)
            with connect(url) as second:  # the server holds its most sessions
                with pytest.raises(ConnectionClosed):
                    second.recv(timeout=10)
                assert second.close_code == 1013 and "try again" in second.close_reason
    finally:
        server.limits = saved
    wait_idle(server)


def test_a_client_that_disconnects_mid_stream_frees_its_session(live_server):
    from websockets.sync.client import connect

    url, server = live_server
    with connect(url) as ws:
        ws.send(json.dumps({"type": "start"}))
        ws.recv(timeout=10)
        for _ in range(20):
            ws.send(np.random.default_rng(0).normal(0, 0.1, 1600).astype("<f4").tobytes())
        assert server.active
        ws.socket.close()  # gone without a closing handshake, as a crashed client or a dropped network
        wait_idle(server, 10)


def test_gains_sent_mid_stream_change_only_the_frames_still_to_come(live_server, speech):
    from websockets.sync.client import connect

    from granumamba.live_server import decode_frames

    url, _ = live_server
    audio = speech[: 4 * SAMPLE_RATE].astype("<f4")

    def run(change):
        frames = {}
        with connect(url) as ws:
            ws.send(json.dumps({"type": "start", "seed": 3, "loudness_gain": 1.0}))
            ws.recv(timeout=10)
            ws.send(audio[: 2 * SAMPLE_RATE].tobytes())
            while len(frames) < 30:  # the first frames arrive with the old gains
                header, block = decode_frames(ws.recv(timeout=10))
                frames.update({header["first"] + k: block[k] for k in range(header["count"])})
            before = len(frames)
            if change:
                ws.send(json.dumps({"type": "gains", "gains": [1, 1, 0]}))
            ws.send(audio[2 * SAMPLE_RATE :].tobytes())
            ws.send(json.dumps({"type": "end"}))
            for message in ws:
                if isinstance(message, bytes):
                    header, block = decode_frames(message)
                    frames.update({header["first"] + k: block[k] for k in range(header["count"])})
        return np.stack([frames[i] for i in range(len(frames))]), before

    plain, before = run(False)
    changed, _ = run(True)
    np.testing.assert_allclose(changed[:before], plain[:before], atol=1e-6)
    assert np.abs(changed[before + 16 :] - plain[before + 16 :]).mean() > 1e-3


def test_the_live_command_streams_a_file_and_writes_the_motion(live_server, tmp_path, pipe):
    from granumamba.data.beat2 import load_motion

    url, _ = live_server
    out = tmp_path / "live.npz"
    run = subprocess.run(
        [sys.executable, "-m", "granumamba", "live", "--audio", str(SPEECH), "--url", url, "--fast", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    motion = load_motion(out)
    generated = pipe(str(SPEECH), seed=0).motion
    assert motion.num_frames == generated.num_frames
    assert np.abs(motion.poses - generated.poses).mean() < 0.01  # the same codes; the decoders' missing future only
    gone = subprocess.run(
        [sys.executable, "-m", "granumamba", "live", "--audio", str(SPEECH), "--url", f"ws://127.0.0.1:{free_port()}/live/ws"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 2 and "cannot reach the live endpoint" in gone.stderr


def test_torch_threads_are_restored_after_live_sessions(pipe, speech):
    threads = torch.get_num_threads()
    run_live(pipe.model, speech[:SAMPLE_RATE])
    assert torch.get_num_threads() == threads


def test_a_models_own_temperature_is_the_default_of_generate_and_live(speech, tmp_path):
    """config.json's `temperature` is what a model is sampled at unless the caller says: the
    pipeline and a live session both take it, and a value outside 0 to 2 is refused at load."""
    from granumamba.model import GranuMamba, ModelLoadError

    torch.manual_seed(0)
    model = GranuMamba(SMALL | {"causal": True, "temperature": 0.0}).eval()
    clip = speech[: 3 * SAMPLE_RATE]
    pipe = GranuMambaPipeline(model)
    own = pipe(clip, seed=1).motion.poses
    assert np.array_equal(own, pipe(clip, seed=1, temperature=0.0).motion.poses)
    assert not np.array_equal(own, pipe(clip, seed=1, temperature=1.0).motion.poses)
    live = join(run_live(model, clip, seed=1)[1]).poses
    assert np.array_equal(live, join(run_live(model, clip, seed=1, temperature=0.0)[1]).poses)
    assert not np.array_equal(live, join(run_live(model, clip, seed=1, temperature=1.0)[1]).poses)
    model.save_pretrained(tmp_path / "m")
    assert GranuMamba.from_pretrained(tmp_path / "m").config.temperature == 0.0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps(config | {"temperature": 3}))
    with pytest.raises(ModelLoadError, match="temperature must be a number from 0 to 2"):
        GranuMamba.from_pretrained(tmp_path / "m")
