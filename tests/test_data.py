import csv
import shutil

import numpy as np
import pytest
import torch

from granumamba.audio.io import AudioError
from granumamba.data import DataError, GestureWindows, index_beat2, load_motion
from granumamba.motion import PART_DIMS, Normalizer
from granumamba.text import Vocabulary


def copy_layout(src, dst, takes):
    for sub, ext in (("smplxflame_30", "npz"), ("wave16k", "wav"), ("textgrid", "TextGrid")):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for take in takes:
            if (src / sub / f"{take}.{ext}").is_file():
                shutil.copy(src / sub / f"{take}.{ext}", dst / sub)


def test_reader_works_on_the_real_beat2_layout(beat2_sample):
    index = index_beat2(beat2_sample)
    assert [t.name for t in index.takes] == ["2_scott_0_1_1"]
    take = index.takes[0]
    assert take.speaker == 2 and take.textgrid is None  # no TextGrid ships: it trains audio-only
    with pytest.raises(DataError, match="no train_test_split.csv"):
        index_beat2(beat2_sample, split="train")


def test_reader_filters_by_split_and_speaker_and_reports_missing_files(synth_corpus, tmp_path):
    index = index_beat2(synth_corpus, split="train")
    assert index.takes and {t.split for t in index.takes} == {"train"}
    assert {t.speaker for t in index_beat2(synth_corpus, speakers=[2]).takes} == {2}
    rows = list(csv.DictReader((synth_corpus / "train_test_split.csv").open()))
    names = [r["id"] for r in rows]
    copy_layout(synth_corpus, tmp_path, names)
    (tmp_path / "wave16k" / f"{names[0]}.wav").unlink()
    (tmp_path / "smplxflame_30" / f"{names[1]}.npz").unlink()
    (tmp_path / "textgrid" / f"{names[2]}.TextGrid").unlink()
    shutil.copy(synth_corpus / "train_test_split.csv", tmp_path)
    index = index_beat2(tmp_path)
    assert set(index.skipped) == {names[0], names[1]}
    assert "wave16k" in index.skipped[names[0]] and "smplxflame_30" in index.skipped[names[1]]
    assert next(t for t in index.takes if t.name == names[2]).textgrid is None
    with pytest.raises(DataError, match="unknown split"):
        index_beat2(tmp_path, split="training")
    with pytest.raises(DataError, match="not a BEAT2-layout folder"):
        index_beat2(tmp_path / "wave16k")


def test_bad_npz_files_are_refused_clearly(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, poses=np.zeros((10, 100)))
    with pytest.raises(DataError, match=r"expected \(frames, 165\)"):
        load_motion(path)
    np.savez(path, poses=np.array([object()], dtype=object))
    with pytest.raises(DataError):
        load_motion(path)  # object arrays would need unpickling: refused
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="not an npz archive"):
        load_motion(path)


def test_windows_cover_each_take_and_a_second_pass_reads_no_audio(synth_corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    vocab = Vocabulary.build([])
    first = GestureWindows(synth_corpus, split="train", window=32, stride=16, cache_dir=cache)
    vocab = Vocabulary.build(first.transcripts())
    norm = Normalizer.fit(first.part_streams())
    calls = []
    import granumamba.data.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "load_audio", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    second = GestureWindows(synth_corpus, split="train", window=32, stride=16, cache_dir=cache, vocab=vocab, normalizer=norm)
    assert calls == []
    expected = sum((second.frames(i) - 32) // 16 + 1 for i in range(len(second.takes)))
    assert len(second) == expected > 0
    item = second[len(second) // 2]
    assert item["audio"].shape == (32, 68) and item["words"].shape == (32,) and item["speaker"].item() in (1, 2)
    assert all(item[p].shape == (32, d) for p, d in PART_DIMS.items())
    assert (item["words"] > 1).any()  # words of the transcript, in the vocabulary
    stacked = torch.cat([second[i]["upper"] for i in range(len(second))])
    assert stacked.mean().abs() < 0.3 and 0.5 < stacked.std() < 1.5  # normalised


def test_without_coarse_gives_the_upper_part_of_the_motion_without_its_slow_component(synth_corpus, tmp_path):
    """Stage 1's coarse split term reads the take's upper part with the saved coarse component
    taken out of its poses, windowed and normalised as the upper part is; data without saved
    components is refused with what to do, and a broken components file skips its take."""
    from granumamba.motion.parts import split_parts

    cache = tmp_path / "cache"
    plain = GestureWindows(synth_corpus, split="train", window=32, stride=16, cache_dir=cache)
    norm = Normalizer.fit(plain.part_streams())
    ds = GestureWindows(synth_corpus, split="train", window=32, stride=16, cache_dir=cache, normalizer=norm, without_coarse=True)
    assert len(ds) == len(plain)
    take_index, start = ds.windows[len(ds) // 2]
    item = ds[len(ds) // 2]
    motion = load_motion(ds.takes[take_index].motion)
    with np.load(synth_corpus / "components" / f"{ds.takes[take_index].name}.npz") as c:
        still = c["base"][None] + c["mid"] + c["fine"] + c["jaw"]  # the poses less their coarse component
        coarse_energy = float(np.abs(c["coarse"]).mean())
    expected = split_parts(type(motion)(still, motion.trans, motion.expressions))["upper"][start : start + 32]
    assert coarse_energy > 0.01  # there is a slow component to take out
    assert torch.allclose(norm.denormalize("upper", item["upper_without_coarse"]), expected, atol=1e-4)
    assert not torch.allclose(item["upper_without_coarse"], item["upper"], atol=0.05)
    assert "upper_without_coarse" not in plain[0] and "lower_without_coarse" not in item

    names = [t.name for t in index_beat2(synth_corpus, split="train").takes[:2]]
    copy_layout(synth_corpus, tmp_path / "bare", names)
    with pytest.raises(ValueError, match="no components file.*coarse_split_weight"):
        GestureWindows(tmp_path / "bare", split=None, window=16, stride=16, cache_dir=tmp_path / "c2", without_coarse=True)
    (tmp_path / "bare" / "components").mkdir()
    shutil.copy(synth_corpus / "components" / f"{names[1]}.npz", tmp_path / "bare" / "components")
    (tmp_path / "bare" / "components" / f"{names[0]}.npz").write_bytes(b"PK\x03\x04 broken")
    ds = GestureWindows(tmp_path / "bare", split=None, window=16, stride=16, cache_dir=tmp_path / "c3", without_coarse=True)
    assert [t.name for t in ds.takes] == [names[1]] and "components file" in ds.skipped[names[0]]


def test_a_broken_take_is_skipped_not_fatal(synth_corpus, tmp_path):
    names = [t.name for t in index_beat2(synth_corpus).takes[:3]]
    copy_layout(synth_corpus, tmp_path, names)
    (tmp_path / "wave16k" / f"{names[0]}.wav").write_bytes(b"RIFF garbage")
    ds = GestureWindows(tmp_path, split=None, window=16, stride=16, cache_dir=tmp_path / "c")
    assert names[0] in ds.skipped and len(ds.takes) == 2
    assert "not a readable audio file" in ds.skipped[names[0]]
    assert AudioError  # the reason is the loader's own message


def test_dataset_reads_the_real_take_audio_only(beat2_sample, tmp_path):
    ds = GestureWindows(beat2_sample, split=None, window=64, stride=64, cache_dir=tmp_path)
    assert len(ds) == 1906 // 64
    item = ds[3]
    assert item["words"].eq(0).all() and item["speaker"].item() == 2
    assert torch.isfinite(item["audio"]).all() and item["lower"].shape == (64, 61)
