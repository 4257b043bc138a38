"""The BEAT2 reader: takes of `beat_english_v2.0.0/` (or any folder in its layout).

    smplxflame_30/<take>.npz     poses (T,165), trans (T,3), expressions (T,100), betas, ...
    wave16k/<take>.wav           speech
    textgrid/<take>.TextGrid     word timings (optional: a take without one trains audio-only)
    train_test_split.csv         id,type with type in train, val, test, additional (optional)

Take names are `<speaker>_<name>_...`; the first field is the speaker id.
"""

from __future__ import annotations

import csv
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..motion.parts import NUM_EXPRESSIONS, Motion
from ..motion.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "additional")


class DataError(ValueError):
    """A dataset folder or file that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class Take:
    name: str
    speaker: int
    split: str | None
    motion: Path
    audio: Path
    textgrid: Path | None


@dataclass
class Beat2Index:
    takes: list[Take]
    skipped: dict[str, str] = field(default_factory=dict)  # take name -> reason


def speaker_of(take_name: str) -> int:
    head = take_name.split("_", 1)[0]
    if not head.isdigit():
        raise DataError(f"take {take_name!r}: BEAT2 names start with the speaker id (e.g. 2_scott_0_1_1).")
    return int(head)


def read_split_csv(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the split file ({err}).") from None
    if rows and not {"id", "type"} <= set(rows[0]):
        raise DataError(f"{path}: the split file needs the columns id,type (has {', '.join(rows[0])}).")
    return {r["id"].strip(): r["type"].strip() for r in rows}


def index_beat2(root: str | os.PathLike, split: str | None = None, speakers: list[int] | None = None) -> Beat2Index:
    """Find the takes under `root`, filtered by split (needs train_test_split.csv) and speakers.

    A take listed or found without its npz or wav is reported in `skipped`, never fatal.
    """
    root = Path(root)
    motion_dir, audio_dir, grid_dir = root / "smplxflame_30", root / "wave16k", root / "textgrid"
    if not motion_dir.is_dir() and not audio_dir.is_dir():
        raise DataError(f"{root}: not a BEAT2-layout folder (no smplxflame_30/ or wave16k/).")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    split_file = root / "train_test_split.csv"
    splits = read_split_csv(split_file) if split_file.is_file() else None
    if split is not None and splits is None:
        raise DataError(f"{root}: split {split!r} asked for, but there is no train_test_split.csv.")
    names = set(splits) if splits is not None else {p.stem for p in motion_dir.glob("*.npz")}
    index = Beat2Index(takes=[])
    for name in sorted(names):
        take_split = splits.get(name) if splits is not None else None
        if split is not None and take_split != split:
            continue
        try:
            speaker = speaker_of(name)
        except DataError as err:
            index.skipped[name] = str(err)
            continue
        if speakers is not None and speaker not in speakers:
            continue
        motion, audio, grid = motion_dir / f"{name}.npz", audio_dir / f"{name}.wav", grid_dir / f"{name}.TextGrid"
        missing = [p.parent.name + "/" + p.name for p in (motion, audio) if not p.is_file()]
        if missing:
            index.skipped[name] = "missing " + " and ".join(missing)
            continue
        index.takes.append(Take(name, speaker, take_split, motion, audio, grid if grid.is_file() else None))
    for name, reason in index.skipped.items():
        log.warning("skipping take %s: %s", name, reason)
    return index


MAX_MOTION_FRAMES = 30 * 60 * 60 * 3  # three hours at 30 fps: far over any take, far under memory


def _check_npz_arrays(path: Path, archive: zipfile.ZipFile) -> None:
    """Read every array's header (numpy.lib.format) before loading any data: a file that declares
    an absurd shape or a non-numeric type is refused without allocating it."""
    for info in archive.infolist():
        key = info.filename.removesuffix(".npy")
        if key not in ("poses", "trans", "expressions", "betas"):
            continue
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise DataError(f"{path.name}: {key} is stored in .npy format {version}, which this does not read.")
            shape, _, dtype = readers[version](member, max_header_size=10_000)
        if dtype.kind not in "fiu":
            raise DataError(f"{path.name}: {key} holds {dtype} values; a BEAT2 npz holds numbers.")
        if len(shape) > 2 or int(np.prod(shape)) > MAX_MOTION_FRAMES * 165:
            raise DataError(f"{path.name}: {key} declares shape {shape}; over {MAX_MOTION_FRAMES} frames is not a take this reads.")


def load_motion(path: str | os.PathLike) -> Motion:
    """Read a BEAT2 npz (never unpickling: object arrays are refused) with shapes and types
    checked from the array headers before anything is loaded."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_npz_arrays(path, archive)
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k in ("poses", "trans", "expressions", "betas")}
    except (zipfile.BadZipFile, IsADirectoryError):
        raise DataError(f"{path.name}: not an npz archive (a BEAT2 motion is an .npz of poses, trans, expressions, betas).") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path.name}: not a readable BEAT2 npz ({err}).") from None
    if "poses" not in arrays:
        raise DataError(f"{path.name}: no 'poses' array; a BEAT2 npz holds poses (T,165), trans, expressions, betas.")
    poses = arrays["poses"].astype(np.float32)
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3 or poses.shape[0] == 0:
        raise DataError(f"{path.name}: poses has shape {poses.shape}; expected (frames, 165).")
    frames = poses.shape[0]
    trans = arrays.get("trans", np.zeros((frames, 3)))
    expressions = arrays.get("expressions", np.zeros((frames, NUM_EXPRESSIONS)))
    if trans.shape != (frames, 3) or expressions.shape != (frames, NUM_EXPRESSIONS):
        raise DataError(f"{path.name}: trans {trans.shape} or expressions {expressions.shape} do not match {frames} frames.")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all() and np.isfinite(expressions).all()):
        raise DataError(f"{path.name}: holds NaN or infinite values.")
    betas = arrays.get("betas")
    return Motion(poses, trans.astype(np.float64), expressions.astype(np.float64), None if betas is None else betas.astype(np.float32))


def save_motion(path: str | os.PathLike, motion: Motion) -> None:
    """Write BEAT2's npz with all its keys (see `write_npz`)."""
    frames = motion.num_frames
    arrays = {
        "poses": np.asarray(motion.poses, np.float32),
        "trans": np.asarray(motion.trans, np.float64),
        "expressions": np.asarray(motion.expressions, np.float64),
        "betas": (motion.betas if motion.betas is not None else np.zeros(300)).astype(np.float32),
        "model": np.array("smplx2020"),
        "gender": np.array("neutral"),
        "mocap_frame_rate": np.array(30, dtype=np.int32),
    }
    assert arrays["poses"].shape == (frames, NUM_JOINTS * 3)
    write_npz(path, arrays)


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as an .npz that np.load reads, byte-identical for identical arrays (fixed
    zip dates, which np.savez does not give), atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            # streamed into the archive: no copy of a long take's arrays in memory
            with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value, order="C"), allow_pickle=False)  # keeps 0-d arrays 0-d
    os.replace(tmp, path)
