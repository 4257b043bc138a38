"""Speech features at exactly 30 fps, one row per motion frame.

Features are computed at 100 Hz (hop 160 samples at 16 kHz) and pooled into motion frames by
each frame's exact sample span ([i/30, (i+1)/30) s), so that an hour of audio stays aligned
with the motion to the sample; a 533-sample hop would drift 0.19 s over five minutes.

Columns (FEATURE_DIM = N_MELS + 4): log-mel (N_MELS), onset strength, energy (dB), log pitch
(relative to 100 Hz, 0 where unvoiced), voicing (0 or 1). The waveform is loudness-normalised
first, so recordings made at different gains give comparable features.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import FPS, SAMPLE_RATE, num_frames

HOP = 160  # 100 Hz analysis
N_FFT = 1024
N_MELS = 64
FEATURE_DIM = N_MELS + 4
TARGET_RMS_DB = -23.0
SILENCE_DB = -55.0  # frame energy under this (after normalisation) counts as silence
FEATURE_VERSION = 3  # bump when any of the above changes: it keys the feature cache


def loudness_gain(audio: np.ndarray) -> float:
    """The gain that puts the speech (frames within 40 dB of the loudest) at TARGET_RMS_DB."""
    frame_rms = np.sqrt(np.mean(_frames(audio, 400) ** 2, axis=1) + 1e-12) if audio.size >= 400 else np.array([0.0])
    return _gain_of(frame_rms)


def _gain_of(frame_rms: np.ndarray, quietest: float = 0.0) -> float:
    """loudness_gain from the RMS of 400-sample frames; a speech level under `quietest` counts as it."""
    peak = frame_rms.max(initial=0.0)
    if peak < 1e-5:  # silence: nothing to normalise
        return 1.0
    speech = frame_rms[frame_rms > peak * 0.01]
    return float(10 ** (TARGET_RMS_DB / 20) / max(float(np.sqrt(np.mean(speech**2))), quietest))


def normalize_loudness(audio: np.ndarray) -> np.ndarray:
    """Scale so that the speech sits at TARGET_RMS_DB (see loudness_gain)."""
    return np.clip(audio * loudness_gain(audio), -1.0, 1.0).astype(np.float32)


def _frames(audio: np.ndarray, size: int) -> np.ndarray:
    usable = (audio.size // size) * size
    return audio[:usable].reshape(-1, size)


def _first_row(frame: int) -> int:
    """The first 100 Hz analysis row of motion frame `frame`: ceil(frame * 100 / 30), exactly."""
    return -((-frame * (SAMPLE_RATE // HOP)) // FPS)


def pool_to_motion_frames(
    values: np.ndarray, num_motion_frames: int, reduce: str = "mean", whole: bool = False, first_frame: int = 0
) -> np.ndarray:
    """(n, dims) at 100 Hz (row j centred at j/100 s) -> (num_motion_frames, dims) at 30 fps, the
    rows starting at motion frame `first_frame`'s first row. whole: `values` end exactly where the
    last motion frame ends (a piece of a longer recording); otherwise they are a recording's last
    rows, and the last frame takes what is left."""
    starts = np.array([_first_row(first_frame + i) for i in range(num_motion_frames + 1)]) - _first_row(first_frame)
    starts = np.minimum(starts, values.shape[0] - (0 if whole else 1))
    if reduce == "max":
        out = np.maximum.reduceat(values, starts[:-1], axis=0)
    else:
        # reduceat gives values[start] for an empty span, so dividing by at least 1 is right.
        out = np.add.reduceat(values, starts[:-1], axis=0) / np.maximum(np.diff(starts), 1)[:, None]
    return out.astype(np.float32)


CHUNK = 480_000  # samples analysed at a time (30 s): a multiple of 1600, so chunks meet on motion frames
MARGIN = 7 * HOP  # context on each side of a chunk, more than any analysis window reaches
REACH = N_FFT // 2  # samples an analysis row's window reaches past its centre
QUIET_SPEECH_DB = -45.0  # live speech: the running gain never lifts a level quieter than this to the target


ONSET_RANGE_DB = 80.0  # the onset envelope sees the mel spectrum down to this far under the loudest value so far


def _analysis_rows(segment: np.ndarray, known_loudest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loudness-normalised samples -> (n, FEATURE_DIM) rows at 100 Hz, row k centred at sample k * HOP,
    and each row's loudest mel value (dB) of the recording up to that row.

    The onset envelope's floor at a row lies ONSET_RANGE_DB under that loudest value: causal,
    so live speech and a whole file give the same rows. known_loudest: those values for the
    segment's first rows (computed with the frames before it).
    """
    import librosa

    power = np.abs(librosa.stft(segment, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2
    mel = np.einsum("ft,mf->mt", power, _mel_basis(), optimize=True)  # librosa.feature.melspectrogram(S=power, ...)
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)  # (mels, n)
    log_mel = mel_db / 20.0
    row_max, known = mel_db.max(axis=0), len(known_loudest)
    loudest = np.concatenate([known_loudest, np.maximum.accumulate(np.maximum(row_max[known:], known_loudest[-1] if known else -np.inf))])
    # onset_strength's envelope at a row looks back (lag and centring), never ahead
    onset = librosa.onset.onset_strength(S=np.maximum(mel_db, loudest - ONSET_RANGE_DB), sr=SAMPLE_RATE)
    energy_db = 10 * np.log10(np.mean(power, axis=0) / (N_FFT / 2) + 1e-10)
    f0 = librosa.yin(segment, fmin=65, fmax=500, sr=SAMPLE_RATE, frame_length=N_FFT, hop_length=HOP, center=True)
    voiced = (energy_db > SILENCE_DB + 15).astype(np.float32)
    log_pitch = np.log2(np.clip(f0, 65, 500) / 100.0) * voiced
    n = min(log_mel.shape[1], onset.shape[0], energy_db.shape[0], f0.shape[0])
    rows = np.concatenate(
        [log_mel[:, :n].T, (onset[:n] / 10.0)[:, None], (energy_db[:n] / 20.0)[:, None], log_pitch[:n, None], voiced[:n, None]],
        axis=1,
    )
    return rows.astype(np.float32), loudest


def _pool(rows: np.ndarray, frames: int, whole: bool, first_frame: int) -> np.ndarray:
    """Rows from motion frame `first_frame`'s first row on -> `frames` motion frames (onset by its peak)."""
    pooled = pool_to_motion_frames(rows, frames, whole=whole, first_frame=first_frame)
    onset = pool_to_motion_frames(rows[:, N_MELS : N_MELS + 1], frames, reduce="max", whole=whole, first_frame=first_frame)
    pooled[:, N_MELS] = onset[:, 0]
    return pooled


def frames_covered(received: int) -> int:
    """How many motion frames' features `received` samples give (`StreamingFeatures.push`): those
    whose analysis windows have arrived, a frame's audio and REACH samples after it."""
    rows = (received - REACH) // HOP + 1 if received >= REACH else 0  # rows whose windows have arrived
    return min(rows * FPS // (SAMPLE_RATE // HOP), num_frames(received))


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """The mel filterbank (N_MELS, N_FFT // 2 + 1), built once: librosa builds it anew on every
    call, which cost live speech more than its spectra (one analysis per block)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=40, fmax=7600)


class StreamingFeatures:
    """Speech features of audio that arrives in pieces (live speech; a whole file is one piece).

    `push` returns the rows of every motion frame whose analysis windows the audio received so
    far covers (a frame's audio and REACH samples, 32 ms, after it), `finish` the rest, the end treated as
    the end of a recording. The analysis runs over at most `chunk` samples at a time with MARGIN
    samples of context each side, so memory does not grow with length; the rows equal one pass
    over the whole recording at the same `gain`.

    gain: the loudness gain (`loudness_gain` of the whole recording for a file). None: live
    speech, whose end is unknown: the gain of the speech heard so far, updated with every piece,
    never lifting a level under QUIET_SPEECH_DB to the target (a room's noise before anyone
    speaks stays quiet).
    """

    def __init__(self, gain: float | None = None, chunk: int = CHUNK):
        if chunk % (SAMPLE_RATE * 3 // FPS) or chunk % HOP:
            raise ValueError(f"chunk {chunk} must be a multiple of 1600 samples")
        self.gain, self.chunk = gain, chunk
        self.received = 0  # samples pushed
        self.frames_done = 0  # motion frames returned
        self._buffer = np.zeros(0, np.float32)  # samples from self._offset on
        self._offset = 0
        self._frame_power: list[np.ndarray] = []  # live gain: mean square of each whole 400-sample frame
        self._partial = np.zeros(0, np.float32)
        self._loudest = np.zeros(0)  # the last rows' loudest mel value so far: the onset envelope's reference

    def current_gain(self) -> float:
        if self.gain is not None:
            return self.gain
        power = np.concatenate(self._frame_power) if self._frame_power else np.zeros(0)
        self._frame_power = [power]
        return _gain_of(np.sqrt(power + 1e-12), quietest=10 ** (QUIET_SPEECH_DB / 20))

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.gain is None:
            whole = np.concatenate([self._partial, samples])
            usable = whole.size // 400 * 400
            self._frame_power.append(np.mean(whole[:usable].reshape(-1, 400) ** 2, axis=1))
            self._partial = whole[usable:]
        self._buffer = samples if self._buffer.size == 0 else np.concatenate([self._buffer, samples])
        self.received += samples.size
        return self._rows(frames_covered(self.received), final=False)

    def finish(self) -> np.ndarray:
        return self._rows(num_frames(self.received), final=True)

    def _rows(self, last: int, final: bool) -> np.ndarray:
        pieces = []
        first = self.frames_done
        gain = self.current_gain() if first < last else 1.0
        while first < last:
            stop = min(first + self.chunk * FPS // SAMPLE_RATE, last)
            start_row, stop_row = _first_row(first), _first_row(stop)
            lo, hi = max(0, start_row * HOP - MARGIN), min(self.received, stop_row * HOP + MARGIN)
            segment = np.clip(self._buffer[lo - self._offset : hi - self._offset] * gain, -1.0, 1.0)
            end_piece = final and hi == self.received
            if end_piece:
                segment = np.pad(segment, (0, N_FFT))  # the last motion frames see real analysis windows
            first_row, last_row = start_row - lo // HOP, None if end_piece else stop_row - lo // HOP
            rows, loudest = _analysis_rows(segment, self._loudest[len(self._loudest) - first_row :])
            self._loudest = loudest[max(0, stop_row - lo // HOP - MARGIN // HOP) : stop_row - lo // HOP]
            frames = (last if end_piece else stop) - first
            pieces.append(_pool(rows[first_row:last_row], frames, whole=not end_piece, first_frame=first))
            first += frames
        self.frames_done = first
        keep = max(0, _first_row(first) * HOP - MARGIN)  # the samples the next frames' analysis reaches back to
        if keep > self._offset:
            self._buffer = self._buffer[keep - self._offset :]
            self._offset = keep
        return np.concatenate(pieces) if pieces else np.zeros((0, FEATURE_DIM), np.float32)


def speech_features(audio: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """16 kHz mono float32 -> (num_frames(len(audio)), FEATURE_DIM) float32, loudness-normalised
    over the whole recording (see StreamingFeatures, which this is with the whole file as one piece)."""
    audio = np.asarray(audio, dtype=np.float32)
    stream = StreamingFeatures(loudness_gain(audio), chunk)
    return np.concatenate([stream.push(audio), stream.finish()])


def is_silent(audio: np.ndarray) -> bool:
    """True where no 25 ms frame of the recording rises above SILENCE_DB (dB full scale)."""
    if audio.size < 400:
        return True
    rms = np.sqrt(np.mean(_frames(np.asarray(audio, dtype=np.float32), 400) ** 2, axis=1))
    return bool(20 * np.log10(rms.max() + 1e-12) < SILENCE_DB)
