import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from granumamba import num_frames
from granumamba.audio import FEATURE_DIM, AudioError, is_silent, load_audio, speech_features
from granumamba.audio.features import N_MELS

from .conftest import write_tone


@pytest.mark.parametrize("seconds", [0.5, 1.0, 1.01, 2.345678, 7.77777, 13.0 + 1 / 30, 61.03])
def test_feature_frames_follow_the_motion_frame_rule_for_odd_durations(seconds):
    samples = int(round(seconds * 16000))
    audio = np.random.default_rng(0).normal(0, 0.1, samples).astype(np.float32)
    feats = speech_features(audio)
    assert feats.shape == (samples * 30 // 16000, FEATURE_DIM) == (num_frames(samples), FEATURE_DIM)
    assert np.isfinite(feats).all()


def test_features_stay_aligned_to_the_frame_over_long_audio():
    # a click train, one click every 2 s for 10 minutes: the onset column peaks on the click frames
    seconds, rate = 600, 16000
    audio = np.zeros(seconds * rate, np.float32)
    clicks = np.arange(1, seconds // 2) * 2 * rate
    for c in clicks:
        audio[c : c + 160] = np.hanning(160) * 0.8
    onset = speech_features(audio)[:, N_MELS]
    expected = clicks * 30 // rate
    found = np.array([e - 3 + np.argmax(onset[e - 3 : e + 4]) for e in expected])
    assert np.abs(found - expected).max() <= 1  # no drift, even in the last minute


@pytest.mark.parametrize(
    "rate,channels,subtype", [(8000, 1, "PCM_16"), (22050, 2, "PCM_24"), (44100, 1, "FLOAT"), (48000, 2, "PCM_32"), (16000, 1, "PCM_U8")]
)
def test_wav_of_any_rate_channels_and_sample_type_loads_as_16k_mono(tmp_path, rate, channels, subtype):
    path = write_tone(tmp_path / "x.wav", 2.5, rate, channels, subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 2.5 * 16000) <= 2
    # the tone survives resampling: energy near 220 Hz dominates
    spectrum = np.abs(np.fft.rfft(audio))
    assert 200 < np.argmax(spectrum) * 16000 / audio.shape[0] < 240


# webm (Opus) is what browsers' MediaRecorder writes; aiff is what Apple tools export
CODECS = {"flac": "flac", "ogg": "libvorbis", "mp3": "libmp3lame", "m4a": "aac", "webm": "libopus", "opus": "libopus", "aiff": "pcm_s16be"}


@pytest.mark.parametrize("fmt", list(CODECS))
def test_compressed_formats_load(tmp_path, fmt):
    wav = write_tone(tmp_path / "src.wav", 3.0, 44100, 2)
    out = tmp_path / f"x.{fmt}"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-c:a", CODECS[fmt], str(out)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:  # an ffmpeg build without the codec
        if fmt.upper() not in soundfile.available_formats():
            pytest.skip(f"this ffmpeg cannot write {fmt}")
        soundfile.write(out, soundfile.read(wav)[0], 44100, format=fmt.upper())
    audio = load_audio(out)
    assert abs(audio.shape[0] / 16000 - 3.0) < 0.1
    assert np.sqrt(np.mean(audio**2)) > 0.05


def test_a_videos_sound_track_loads(tmp_path):
    """A phone or screen recording uploaded as it is: the speech is read from its sound track."""
    wav = write_tone(tmp_path / "src.wav", 3.0, 48000, 2)
    video = tmp_path / "clip.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=64x64:d=3", "-i", str(wav)]
    subprocess.run(cmd + ["-shortest", "-c:v", "libx264", "-c:a", "aac", str(video)], check=True, capture_output=True)
    audio = load_audio(video)
    assert abs(audio.shape[0] / 16000 - 3.0) < 0.1
    assert np.sqrt(np.mean(audio**2)) > 0.05
    mute = tmp_path / "mute.mp4"
    subprocess.run(cmd[:-2] + ["-c:v", "libx264", str(mute)], check=True, capture_output=True)
    with pytest.raises(AudioError, match="no sound track"):
        load_audio(mute)


def test_bad_files_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    fake = tmp_path / "notes.wav"
    fake.write_text("this is a text file renamed to .wav\n" * 50)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(fake)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(
        write_tone(tmp_path / "ok.wav", 2.0).read_bytes()[:44] + bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    )
    try:  # a valid header over random bytes is noise, which is audio: either a result or a clear error
        assert load_audio(corrupt).ndim == 1
    except AudioError as err:
        assert corrupt.name in str(err)
    with pytest.raises(AudioError, match="too short"):
        load_audio(write_tone(tmp_path / "short.wav", 0.2))
    with pytest.raises(AudioError, match="no such"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "takes.wav").mkdir()
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path / "takes.wav")


def test_silence_loads_and_is_reported_silent(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000 * 3), 16000)
    audio = load_audio(path)
    assert is_silent(audio)
    assert np.isfinite(speech_features(audio)).all()
    assert not is_silent(load_audio(write_tone(tmp_path / "tone.wav", 3.0)))


def test_two_hour_audio_is_refused_from_its_header_before_decoding(tmp_path):
    path = tmp_path / "two_hours.wav"
    with soundfile.SoundFile(path, "w", 8000, 1, "PCM_16") as fh:
        block = np.zeros(8000 * 60, np.int16)
        for _ in range(120):
            fh.write(block)
    started = time.perf_counter()
    with pytest.raises(AudioError, match="7200.0 s of audio is over the limit of 600 s"):
        load_audio(path, max_seconds=600)
    assert time.perf_counter() - started < 1.0  # refused from the header, not after decoding 2 h


def test_loudness_does_not_change_the_features_much(tmp_path, speech_wav):
    audio = load_audio(speech_wav)
    quiet = speech_features(audio * 0.05)
    loud = speech_features(audio)
    assert np.abs(quiet[:, :N_MELS] - loud[:, :N_MELS]).mean() < 0.05


def test_features_computed_in_chunks_equal_one_pass():
    rng = np.random.default_rng(1)
    samples = 16000 * 13 + 777
    audio = (rng.normal(0, 0.1, samples) * np.sin(np.arange(samples) / 3000)).astype(np.float32)
    whole = speech_features(audio, chunk=16000 * 100)
    for chunk in (1600 * 10, 1600 * 37):
        assert np.abs(speech_features(audio, chunk=chunk) - whole).max() < 1e-5
    with pytest.raises(ValueError, match="multiple of 1600"):
        speech_features(audio, chunk=1000)
