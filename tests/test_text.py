import numpy as np
import pytest

from granumamba.text import NO_WORD, UNKNOWN, TextGridError, Vocabulary, Word, read_words, tts, write_words
from granumamba.text.tts import VOICES, SpeechError, Voice, piper_available, synthesize, tokenize

from .conftest import need_espeak

WORDS = [Word("Hello,", 0.10, 0.52), Word("wörld", 0.60, 1.00), Word("don't", 1.4, 1.9)]


@pytest.mark.parametrize("short", [False, True])
def test_textgrid_round_trips_in_long_and_short_format(tmp_path, short):
    path = tmp_path / "take.TextGrid"
    write_words(path, WORDS, duration=2.5, short=short)
    text = path.read_text()
    assert ("intervals [" in text) != short  # the two formats really differ
    assert read_words(path) == WORDS


def test_textgrid_picks_the_words_tier_and_reports_bad_files(tmp_path):
    path = tmp_path / "t.TextGrid"
    write_words(path, WORDS, 2.5, tier="phones")
    assert read_words(path) == WORDS  # the only interval tier
    with pytest.raises(TextGridError, match="no interval tier named 'words'"):
        read_words(path, tier="words")
    bad = tmp_path / "bad.TextGrid"
    bad.write_text('File type = "ooTextFile"\nnonsense')
    with pytest.raises(TextGridError, match="not a readable Praat TextGrid"):
        read_words(bad)


def test_vocabulary_maps_frames_to_words_with_silence_and_unknown_paths(tmp_path):
    vocab = Vocabulary.build([["Hello", "world", "hello"], ["world", "again"]], min_count=2)
    assert vocab.words[2:] == ["hello", "world"]
    ids = vocab.frame_ids([Word("HELLO!", 0.0, 0.1), Word("zebra", 0.2, 0.3)], frames=12)
    assert ids.tolist() == [vocab.id("hello")] * 3 + [NO_WORD] * 3 + [UNKNOWN] * 3 + [NO_WORD] * 3
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").words == vocab.words
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a GranuMamba vocabulary"):
        Vocabulary.load(tmp_path / "broken.json")


def test_tokenize_keeps_words_of_any_script_and_phrase_punctuation():
    assert tokenize("Don't stop, 東京 über-cool!") == ["Don't", "stop", ",", "東京", "über", "cool", "!"]


def piper_voice() -> Voice:
    if not piper_available():
        pytest.skip("piper is not installed (pip install -r requirements-piper.txt)")
    return next(v for v in VOICES.values() if v.engine == "piper")


@pytest.mark.parametrize("engine", ["espeak", "piper"])
def test_tts_gives_exact_word_timings(engine):
    voice = piper_voice() if engine == "piper" else need_espeak() or Voice()
    audio, words = synthesize("Bright rivers move slowly, quiet cities never sleep.", voice)
    assert [w.text for w in words] == "Bright rivers move slowly quiet cities never sleep".split()
    rate = 16000
    for w in words:  # every word span holds sound, every gap between words is silent
        assert np.abs(audio[int(w.start * rate) : int(w.end * rate)]).max() > 0.05
    for a, b in zip(words[:-1], words[1:]):
        assert b.start >= a.end and np.abs(audio[int(a.end * rate) + 2 : int(b.start * rate) - 2]).max() == 0.0
    assert words[4].start - words[3].end > words[1].start - words[0].end  # longer pause at the comma


def test_piper_is_reproducible_and_follows_the_rate():
    voice = piper_voice()
    text = "Every careful teacher explains the question again."
    first, words = synthesize(text, voice)
    tts._piper_clips.clear()  # speak anew, not from the cache
    again, _ = synthesize(text, voice)
    assert np.array_equal(first, again)
    slow, slow_words = synthesize(text, Voice("", rate=110, engine="piper"))
    spoken = lambda ws: sum(w.end - w.start for w in ws)  # noqa: E731
    assert spoken(slow_words) > 1.3 * spoken(words)


def test_piper_without_a_voice_model_says_how_to_get_one(tmp_path):
    with pytest.raises(SpeechError, match="requirements-piper.txt"):
        synthesize("hello there", Voice(str(tmp_path / "missing.onnx"), engine="piper"))


@pytest.mark.parametrize("text,message", [("   ", "empty"), ("?!.,", "no words"), ("x" * 20000, "limit")])
def test_tts_refuses_unusable_text(text, message):
    with pytest.raises(SpeechError, match=message):
        synthesize(text)


def test_the_cli_lists_its_voices_one_a_line_and_each_one_speaks(capsys):
    """`generate --list-voices` needs neither --audio nor --text, prints every voice the machine
    has, and each name it prints speaks."""
    from granumamba.__main__ import build_parser

    need_espeak()

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["generate", "--list-voices"])
    assert stop.value.code == 0
    names = capsys.readouterr().out.splitlines()
    assert names == list(VOICES) and len(names) >= 1
    for name in names:
        audio, words = synthesize("hello there", VOICES[name])
        assert len(words) == 2 and np.sqrt(np.mean(audio**2)) > 0.01, name
