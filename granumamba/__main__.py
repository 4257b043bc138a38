"""GranuMamba from the command line.

python -m granumamba generate --audio speech.wav --out out.mp4 [--npz out.npz] [--model ID|DIR]
                              [--coarse G --mid G --fine G] [--seed N] [--speaker S] [--body mannequin|smplx] [--size N]
python -m granumamba generate --text "Hello there." --voice "English (US), female" --npz out.npz
python -m granumamba generate --list-voices
python -m granumamba render --motion M.npz --audio A.wav --out out.mp4 [--body mannequin|smplx] [--size 512]
python -m granumamba export --motion M.npz --out M.glb|M.bvh|M.npz [--in-place] [--body smplx --smplx DIR]
python -m granumamba live --audio A.wav|--mic [--url ws://127.0.0.1:7860/live/ws] [--out M.npz] [--fast]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import TERMINATED

EXIT_BAD_INPUT = 2
EXPORT_FORMATS = (".glb", ".fbx", ".bvh", ".npz")
SIZE_RANGE = (256, 1080)


def _number(low: float, high: float, kind=float):
    """An argparse type: a finite number from low to high."""

    def parse(text: str):
        try:
            value = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {low} to {high}")
        return value

    return parse


def _check_output(path: Path | None, suffixes: tuple[str, ...]) -> None:
    """Before any work: the output is a file of an accepted kind in a folder that can be written."""
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: write {' or '.join(suffixes)} (the format comes from the extension)")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name ending in {' or '.join(suffixes)}")
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{folder}: this folder cannot be written; choose another place for {path.name}")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body", choices=("mannequin", "smplx"), default="mannequin", help="built-in body or the SMPL-X mesh")
    parser.add_argument("--smplx", type=Path, help="folder with SMPLX_NEUTRAL.npz (or set GRANUMAMBA_SMPLX)")
    parser.add_argument("--size", type=_number(*SIZE_RANGE, int), default=512, help="video height and width in pixels, 256 to 1080")
    parser.add_argument("--framing", choices=("body", "upper"), default="body", help="the camera on the whole body, or from the hips up")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: one per core but one, up to 4)")
    parser.add_argument("--antialias", action="store_true", help="smooth edges (4 samples a pixel; about half the speed on a CPU)")


def _add_sampling_options(parser: argparse.ArgumentParser, seed_bits: int) -> None:
    parser.add_argument("--coarse", type=_number(0, 2), default=1.0, help="gain of the coarse level (slow posture), 0 to 2")
    parser.add_argument("--mid", type=_number(0, 2), default=1.0, help="gain of the mid level (beats and strokes), 0 to 2")
    parser.add_argument("--fine", type=_number(0, 2), default=1.0, help="gain of the fine level (fingers, small motion), 0 to 2")
    parser.add_argument(
        "--temperature",
        type=_number(0, 2),
        default=None,
        help="sampling temperature, 0 to 2 (default: the model's; each level at its share of it, config.json's level_temperature)",
    )
    parser.add_argument("--seed", type=_number(0, 2**seed_bits - 1, int), default=0, help=f"random seed, 0 to 2^{seed_bits} - 1")
    parser.add_argument("--speaker", type=_number(0, 10_000, int), default=None, help="speaker/style id of the model")


class _ListVoices(argparse.Action):
    """--list-voices: print the voices this machine speaks with, one a line, and exit (like
    --help, before the check that --audio or --text is given)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from .text.tts import VOICES

        print("\n".join(VOICES))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m granumamba", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="speech or text to gesture (video and/or BEAT2 npz)")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio", type=Path, help="speech recording (wav, flac, ogg, mp3, m4a, opus, webm, aiff)")
    source.add_argument("--text", help="text to speak with offline text-to-speech")
    gen.add_argument("--voice", default=None, help="text-to-speech voice (see --list-voices)")
    gen.add_argument("--list-voices", action=_ListVoices, help="print the voices this machine speaks with, then exit")
    gen.add_argument("--transcript", type=Path, help="a TextGrid with word timings for --audio")
    gen.add_argument("--out", type=Path, help="video to write (.mp4)")
    gen.add_argument("--npz", type=Path, help="motion to write (BEAT2 npz); alone, nothing is rendered")
    gen.add_argument("--model", help="Hub repo id or folder (default: GRANUMAMBA_MODEL, else the bundled demo)")
    _add_sampling_options(gen, seed_bits=32)
    gen.add_argument("--max-seconds", type=_number(0.5, 1e6), default=None, help="refuse longer audio")
    _add_render_options(gen)

    ren = commands.add_parser("render", help="render a BEAT2 npz with its speech to video")
    ren.add_argument("--motion", type=Path, required=True, nargs="+", help="one npz, or several for a side-by-side grid")
    ren.add_argument("--labels", nargs="+", help="a label over each motion of a grid")
    ren.add_argument("--audio", type=Path, help="speech to put under the video")
    ren.add_argument("--out", type=Path, required=True)
    _add_render_options(ren)

    exp = commands.add_parser("export", help="export a BEAT2 npz for animation tools (format from --out's extension)")
    exp.add_argument("--motion", type=Path, required=True)
    exp.add_argument("--out", type=Path, required=True, help=f"the file to write: {', '.join(EXPORT_FORMATS)}")
    exp.add_argument("--in-place", action="store_true", help="keep the character in place: no horizontal root travel (height kept)")
    exp.add_argument(
        "--body",
        choices=("mannequin", "smplx"),
        default="mannequin",
        help="the .glb's or .fbx's body: built-in, or the SMPL-X mesh and its face's blend shapes",
    )
    exp.add_argument("--smplx", type=Path, help="folder with SMPLX_NEUTRAL.npz (or set GRANUMAMBA_SMPLX), for --body smplx")

    live = commands.add_parser("live", help="stream speech to a running demo's live endpoint, receive the motion as it is made")
    speech = live.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", type=Path, help="a recording, sent at the pace it is spoken")
    speech.add_argument("--mic", action="store_true", help="the microphone (needs the sounddevice package)")
    live.add_argument("--url", default="ws://127.0.0.1:7860/live/ws", help="the live endpoint (default: a local demo's)")
    live.add_argument("--out", type=Path, help="write the received motion (BEAT2 npz)")
    live.add_argument("--seconds", type=_number(0.1, 86400), default=None, help="with --mic: stop after this long (default: Ctrl-C)")
    live.add_argument("--fast", action="store_true", help="send the recording at once instead of at speaking pace")
    _add_sampling_options(live, seed_bits=31)  # the live protocol's seed is a signed 32-bit integer
    return parser


def _render(args, motions, audio, labels=None):
    from tqdm import tqdm

    from .render.video import render_video

    bars = []  # one, made at the first report, when the frame count is known

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="rendering", unit="frame", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        return render_video(
            motions,
            audio,
            args.out,
            body=args.body,
            size=args.size,
            labels=labels,
            framing=args.framing,
            workers=args.workers,
            smplx_path=args.smplx,
            progress=progress,
            antialias=args.antialias,
        )
    finally:
        for bar in bars:
            bar.close()


def generate(args) -> int:
    from .data.beat2 import save_motion
    from .pipeline import GranuMambaPipeline
    from .text.textgrid import read_words
    from .text.tts import VOICES, synthesize

    if args.out is None and args.npz is None:
        raise ValueError("say where to write: --out video.mp4 and/or --npz motion.npz")
    _check_output(args.out, (".mp4",))
    _check_output(args.npz, (".npz",))
    pipe = GranuMambaPipeline.from_pretrained(args.model)  # says so (a warning) when it falls back to the bundled model
    started = time.perf_counter()
    if args.text is not None:
        if args.voice is not None and args.voice not in VOICES:
            raise ValueError(f"unknown voice {args.voice!r}; voices: {'; '.join(VOICES)} (one a line: generate --list-voices)")
        audio, words = synthesize(args.text, VOICES[args.voice] if args.voice else next(iter(VOICES.values())))  # the app's default
    else:
        audio, words = args.audio, read_words(args.transcript) if args.transcript else None
    result = pipe(
        audio,
        words=words,
        speaker=args.speaker,
        gains=(args.coarse, args.mid, args.fine),
        **({} if args.temperature is None else {"temperature": args.temperature}),
        seed=args.seed,
        max_seconds=args.max_seconds,
    )
    print(f"generated {result.seconds:.1f} s of motion in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    if args.npz is not None:
        save_motion(args.npz, result.motion)
        print(f"wrote {args.npz}")
    if args.out is not None:
        _render(args, result.motion, result.audio)
        print(f"wrote {args.out}")
    print(json.dumps(result.settings), file=sys.stderr)
    return 0


def render(args) -> int:
    from .audio.io import load_audio
    from .data.beat2 import load_motion

    _check_output(args.out, (".mp4",))
    motions = [load_motion(p) for p in args.motion]
    audio = load_audio(args.audio) if args.audio else None
    stats = _render(args, motions, audio, args.labels)
    print(f"wrote {args.out}: {stats.frames} frames at {stats.fps:.1f} fps")
    return 0


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _writer(suffix: str):
    """The export format's writer, imported alone (the mesh formats bring the body and trimesh)."""
    if suffix == ".npz":
        from .data.beat2 import save_motion

        return lambda path, motion, body: save_motion(path, motion)
    if suffix == ".bvh":
        from .motion.bvh import write_bvh

        return lambda path, motion, body: write_bvh(path, motion)
    if suffix == ".glb":
        from .render.gltf import write_glb

        return write_glb
    from .render.fbx import write_fbx

    return write_fbx


def export(args) -> int:
    from .data.beat2 import load_motion
    from .motion.parts import in_place

    _check_output(args.out, EXPORT_FORMATS)
    suffix = args.out.suffix.lower()
    if args.body == "smplx" and suffix not in (".glb", ".fbx"):
        raise ValueError(f"--body smplx shapes the .glb's or .fbx's mesh; a {suffix} holds no mesh (write a .glb, or leave --body out)")
    body = None
    if args.body == "smplx":
        from .render.body import SMPLXBody

        body = SMPLXBody(args.smplx, batch=1)
    motion = load_motion(args.motion)
    if args.in_place:
        motion = in_place(motion)
    # written beside the target under a temporary name, then renamed: a killed export leaves no half file
    handle, tmp = tempfile.mkstemp(prefix=f".{args.out.stem}.", suffix=suffix, dir=args.out.parent)
    os.close(handle)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is the owner's alone; the export is an ordinary file
    try:
        _writer(suffix)(tmp, motion, body)
        os.replace(tmp, args.out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"wrote {args.out}")
    return 0


def live(args) -> int:
    import numpy as np

    from .data.beat2 import save_motion
    from .live_client import file_pieces, microphone_pieces, stream_speech

    _check_output(args.out, (".npz",))
    settings = {"gains": [args.coarse, args.mid, args.fine], "seed": args.seed}
    if args.temperature is not None:
        settings["temperature"] = args.temperature
    if args.speaker is not None:
        settings["speaker"] = args.speaker
    if args.mic:
        pieces, pace = microphone_pieces(args.seconds), None
        print("listening: speak (Ctrl-C to stop)", file=sys.stderr)
    else:
        pieces, settings["loudness_gain"] = file_pieces(args.audio)
        pace = None if args.fast else 1.0
    from websockets.exceptions import InvalidHandshake, InvalidURI

    try:
        result = stream_speech(args.url, pieces, settings, pace=pace)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise OSError(f"cannot reach the live endpoint {args.url}: {err}. Is the demo running (python app.py)?") from None
    if result.close_code not in (1000, None) or not result.motion.num_frames:
        raise ValueError(f"the server ended the session: {result.close_reason or 'no reason given'} ({result.close_code})")
    latency = result.latency_s[np.isfinite(result.latency_s)]
    if latency.size and pace:
        print(
            f"{result.motion.num_frames} frames; speech to pose: median {np.median(latency) * 1000:.0f} ms, "
            f"95th percentile {np.percentile(latency, 95) * 1000:.0f} ms",
            file=sys.stderr,
        )
    if args.out is not None:
        save_motion(args.out, result.motion)
        print(f"wrote {args.out}")
    return 0


def _terminate(*_) -> None:
    TERMINATED.set()  # in case the SystemExit lands in a library that swallows it
    sys.exit(128 + signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(message)s")  # the project's warnings (a fallback to the bundled model) as plain lines
    # SIGTERM unwinds like Ctrl-C, so that partial outputs and temporary folders are removed
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return {"generate": generate, "render": render, "export": export, "live": live}[args.command](args)
    except Exception as err:
        if TERMINATED.is_set():  # the stop's SystemExit, turned into another error by the call it landed in
            sys.exit(128 + signal.SIGTERM)  # (ctypes wraps it in an ArgumentError, e.g. inside an EGL call)
        # imported here, not before the command: an export to .npz needs neither the model nor the renderer
        from .audio.io import AudioError
        from .data.beat2 import DataError
        from .model.granumamba import ModelLoadError
        from .render.fbx import FBXError
        from .text.textgrid import TextGridError
        from .text.tts import SpeechError

        # (SMPLXError is a ValueError)
        bad_input = (AudioError, DataError, ModelLoadError, TextGridError, SpeechError, FBXError, ValueError, OSError)
        if isinstance(err, bad_input):
            print(f"error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
