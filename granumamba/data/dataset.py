"""Windowed training data over BEAT2-layout takes, with a content-keyed feature cache on disk.

Each take's body-part features and speech features are computed once and stored as .npy files
named by the SHA-256 of the source file and the feature version; the hash of a file is
remembered by (path, size, mtime), so a second epoch or a second run reads no audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import FPS
from ..audio.features import FEATURE_VERSION, speech_features
from ..audio.io import AudioError, load_audio
from ..motion.normalize import Normalizer
from ..motion.parts import PART_NAMES, split_parts
from ..text.textgrid import TextGridError, read_words
from ..text.vocab import Vocabulary
from .beat2 import DataError, Take, index_beat2, load_motion

log = logging.getLogger(__name__)
MOTION_VERSION = 1  # bump when the part split changes: it keys the cache
# The parts whose motion without the synthetic corpus's slow (coarse) component a dataset gives
# with `without_coarse`: the body's posture is the upper part's, and the coarse slider's measure.
WITHOUT_COARSE_PARTS = ("upper",)


class FeatureCache:
    """Arrays computed from a source file, stored under the hash of that file's bytes."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._hash_file = self.root / "hashes.json"
        try:
            self._hashes: dict[str, str] = json.loads(self._hash_file.read_text())
        except (OSError, ValueError):
            self._hashes = {}
        self._dirty = False

    def content_hash(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self._hashes:
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            self._hashes[key] = digest.hexdigest()
            self._dirty = True
        return self._hashes[key]

    def get(self, source: Path, kind: str, compute) -> dict[str, np.ndarray]:
        """The arrays `compute(source)` returns ({name: array}), from the cache when present."""
        folder = self.root / kind / self.content_hash(source)[:32]
        done = folder / "done"
        if not done.is_file():
            arrays = compute(source)
            folder.mkdir(parents=True, exist_ok=True)
            # Temporary names of this process's own: ranks and workers may fill one entry at once.
            for name, value in arrays.items():
                tmp = folder / f".{name}.{os.getpid()}.tmp.npy"
                np.save(tmp, value)
                os.replace(tmp, folder / f"{name}.npy")
            tmp = folder / f".done.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(sorted(arrays)))
            os.replace(tmp, done)
        names = json.loads(done.read_text())
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}

    def flush(self) -> None:
        if self._dirty:
            tmp = self._hash_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._hashes))
            os.replace(tmp, self._hash_file)
            self._dirty = False


def _motion_arrays(path: Path) -> dict[str, np.ndarray]:
    parts = split_parts(load_motion(path))
    return {name: value.numpy() for name, value in parts.items()}


def _without_coarse_arrays(motion_path: Path, components_path: Path) -> dict[str, np.ndarray]:
    """The take's parts with its saved coarse component taken out of the poses (the corpus
    saves poses as exactly base + coarse + mid + fine + jaw, train.corpus)."""
    motion = load_motion(motion_path)
    try:
        with np.load(components_path) as components:
            coarse = components["coarse"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{components_path}: not a readable components file with a 'coarse' array ({err})") from err
    if coarse.shape != motion.poses.shape:
        raise DataError(f"{components_path}: coarse component {coarse.shape} does not match the take's poses {motion.poses.shape}")
    parts = split_parts(replace(motion, poses=motion.poses - coarse))
    return {f"{name}_without_coarse": parts[name].numpy() for name in WITHOUT_COARSE_PARTS}


def _audio_arrays(path: Path) -> dict[str, np.ndarray]:
    return {"speech": speech_features(load_audio(path))}


class GestureWindows(Dataset):
    """Fixed-length windows of (speech features, words, speaker, body parts) over takes.

    Items: {"audio": (window, FEATURE_DIM), "words": (window,) int64, "speaker": int64,
    part name: (window, PART_DIMS[part]) normalised when a normaliser is given}; with
    `without_coarse` (synthetic corpora, whose takes have a components/ file) also
    "<part>_without_coarse" for the parts of WITHOUT_COARSE_PARTS: that part of the take's
    motion without its slow component, normalised as the part is (stage 1's coarse split term).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        speakers: list[int] | None = None,
        window: int = 64,
        stride: int = 32,
        cache_dir: str | os.PathLike | None = None,
        vocab: Vocabulary | None = None,
        normalizer: Normalizer | None = None,
        without_coarse: bool = False,
    ):
        if window < 1 or stride < 1:
            raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
        self.window, self.stride = window, stride
        self.vocab, self.normalizer = vocab, normalizer
        index = index_beat2(root, split=split, speakers=speakers)
        self.skipped = dict(index.skipped)
        self.cache = FeatureCache(cache_dir or Path(root) / ".granumamba_cache")
        self.takes: list[Take] = []
        self.data: list[dict[str, np.ndarray]] = []
        self.words: list = []
        for take in index.takes:
            try:
                arrays = dict(self.cache.get(take.motion, f"motion-v{MOTION_VERSION}", _motion_arrays))
                arrays.update(self.cache.get(take.audio, f"speech-v{FEATURE_VERSION}", _audio_arrays))
                if without_coarse:
                    components = Path(root) / "components" / f"{take.name}.npz"
                    if not components.is_file():
                        raise ValueError(
                            f"{components}: no components file. The coarse split term (stage1.coarse_split_weight) needs a "
                            "synthetic corpus's saved components (python -m train.make_corpus); set it to 0 for other data."
                        )
                    # keyed by the components file: the corpus writes it with the take's motion, from the same draw
                    arrays.update(
                        self.cache.get(components, f"without-coarse-v{MOTION_VERSION}", partial(_without_coarse_arrays, take.motion))
                    )
                words = read_words(take.textgrid) if take.textgrid is not None else None
            except (DataError, AudioError, TextGridError) as err:
                self.skipped[take.name] = str(err)
                log.warning("skipping take %s: %s", take.name, err)
                continue
            self.takes.append(take)
            self.data.append(arrays)
            self.words.append(words)
        self.cache.flush()
        self.windows: list[tuple[int, int]] = []
        for i in range(len(self.data)):
            frames = self.frames(i)
            self.windows.extend((i, start) for start in range(0, frames - window + 1, stride))

    def frames(self, take_index: int) -> int:
        arrays = self.data[take_index]
        return min(arrays["speech"].shape[0], *(arrays[p].shape[0] for p in PART_NAMES))

    def transcripts(self) -> list[list[str]]:
        return [[w.text for w in words] for words in self.words if words]

    def part_streams(self):
        """Whole-take part features, for fitting normalisation statistics."""
        for arrays in self.data:
            yield {p: torch.from_numpy(np.array(arrays[p])) for p in PART_NAMES}

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        take_index, start = self.windows[item]
        arrays, stop = self.data[take_index], start + self.window
        out = {
            "audio": torch.from_numpy(np.array(arrays["speech"][start:stop], dtype=np.float32)),
            "speaker": torch.tensor(self.takes[take_index].speaker, dtype=torch.long),
        }
        for key in (*PART_NAMES, *(f"{p}_without_coarse" for p in WITHOUT_COARSE_PARTS)):
            if key not in arrays:
                continue
            part = key.removesuffix("_without_coarse")
            x = torch.from_numpy(np.array(arrays[key][start:stop], dtype=np.float32))
            out[key] = self.normalizer.normalize(part, x) if self.normalizer else x
        words = self.words[take_index]
        if self.vocab is not None and words:
            shifted = [type(w)(w.text, w.start - start / FPS, w.end - start / FPS) for w in words]
            out["words"] = torch.from_numpy(self.vocab.frame_ids(shifted, self.window))
        else:
            out["words"] = torch.zeros(self.window, dtype=torch.long)
        return out
