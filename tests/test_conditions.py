"""Real speech as other microphones and rooms record it (train/conditions.py): the recordings the
check makes, and the bundled model's motion on them against the clean recordings'."""

import json
import os
import tempfile

import librosa
import numpy as np
import pytest
from scipy.signal import welch

from train.conditions import CONDITIONS, RETIMED, record

from .conftest import ROOT, need_espeak

BUNDLED_MODEL = ROOT / "assets" / "granumamba-demo"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    need_espeak()
    from granumamba.text.tts import synthesize

    audio, _ = synthesize("Every careful student remembers the golden river, and the quiet city opens again.")
    return audio


def test_each_condition_records_the_speech_as_it_says(speech):
    before = set(os.listdir(tempfile.gettempdir()))
    recorded = {name: record(speech, name) for name in CONDITIONS}
    assert set(os.listdir(tempfile.gettempdir())) == before  # nothing left behind
    for name, audio in recorded.items():  # as long as the speech, or as RETIMED makes it
        assert audio.dtype == np.float32 and abs(audio.shape[0] - speech.shape[0] / RETIMED.get(name, 1.0)) < 0.3 * 16000, name
    power = lambda a: float(np.mean(a[: speech.shape[0]].astype(np.float64) ** 2))  # noqa: E731
    # the telephone line keeps the voice band: next to nothing above its 4 kHz Nyquist, where the clean speech has energy
    f, clean_spectrum = welch(speech, 16000, nperseg=1024)
    _, phone_spectrum = welch(recorded["telephone (8 kHz, 300 to 3400 Hz)"], 16000, nperseg=1024)
    high = f > 4100
    assert phone_spectrum[high].sum() < 0.01 * clean_spectrum[high].sum()
    assert 10 * np.log10(power(speech) / power(recorded["quiet (-30 dB)"])) == pytest.approx(30, abs=0.5)
    noisy = recorded["noisy (pink noise at 10 dB SNR)"]
    n = min(noisy.shape[0], speech.shape[0])
    assert 10 * np.log10(power(speech) / power(noisy[:n] - speech[:n])) == pytest.approx(10, abs=0.5)
    # the MP3 and the room change the waveform but keep the speech's loudness within 6 dB
    for name in ("MP3 at 24 kbit/s", "echoing room"):
        assert abs(10 * np.log10(power(recorded[name]) / power(speech))) < 6, name
    assert not np.allclose(recorded["echoing room"][: speech.shape[0]], speech, atol=1e-3)

    # the voices four semitones up and down (a ratio of 1.26): pitch moved, the words where they were
    def pitch(a):
        f0, voiced, _ = librosa.pyin(a, fmin=50, fmax=600, sr=16000)
        return float(np.nanmedian(f0[voiced]))

    def loudness(a):  # the energy envelope, 50 ms frames
        return librosa.feature.rms(y=a[: speech.shape[0]], frame_length=800, hop_length=800)[0]

    for name, ratio in (("a higher voice (+4 semitones)", 2 ** (4 / 12)), ("a lower voice (-4 semitones)", 2 ** (-4 / 12))):
        assert pitch(recorded[name]) / pitch(speech) == pytest.approx(ratio, rel=0.04), name
        clean, shifted = loudness(speech), loudness(recorded[name])
        n = min(len(clean), len(shifted))
        assert np.corrcoef(clean[:n], shifted[:n])[0, 1] > 0.8, name
    for name in RETIMED:  # a quicker or slower talker: the words move, the voice keeps its pitch (within a semitone)
        assert pitch(recorded[name]) / pitch(speech) == pytest.approx(1.0, rel=0.055), name
    with pytest.raises(ValueError, match="unknown recording condition"):
        record(speech, "underwater")


def test_the_motion_survives_other_microphones_and_rooms(beat2_sample, tmp_path, capsys):
    """`train.evaluate --real --conditions` with the bundled model on the shared real recordings
    as a phone line, an MP3, a quiet or noisy microphone and an echoing room record them, and
    spoken higher or lower, faster or slower (two seeds): the arms move as fast and as wide as on the clean recordings (within 0.85 to 1.18
    times) and still follow the speech's loudness; the table prints a row per condition."""
    from train.evaluate import main

    with pytest.raises(SystemExit):  # nothing to record again without --real
        main(["--model", str(BUNDLED_MODEL), "--no-split", "--conditions"])
    out = tmp_path / "metrics.json"
    args = ["--model", str(BUNDLED_MODEL), "--no-split", "--real", str(beat2_sample), "--conditions", "--real-seeds", "2"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())["recording conditions"]
    assert list(results) == ["clean", *CONDITIONS]
    assert all(f"| {name} |" in printed for name in results)
    clean = results["clean"]
    assert clean["wrist_speed_ratio"] == clean["wrist_spread_ratio"] == 1.0
    for name, row in results.items():
        assert 0.85 < row["wrist_speed_ratio"] < 1.18 and 0.85 < row["wrist_spread_ratio"] < 1.18, (name, row)
        assert row["speech_motion_corr"] > 0.05, (name, row)
        assert 0.9 < row["bc"] < 1 and 0 <= row["far_beats"] < 0.06, (name, row)
    # the retimed rows are set against their own speech's onsets: a faster talker's come denser
    # (random times score higher), a slower one's sparser; the others share the clean onsets
    chance = {name: row["chance_bc"] for name, row in results.items()}
    assert chance["faster speech (1.25 x)"] > chance["clean"] > chance["slower speech (0.8 x)"]
    assert all(chance[name] == chance["clean"] for name in CONDITIONS if name not in RETIMED)
