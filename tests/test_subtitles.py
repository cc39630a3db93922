import re

from asr.transcription.subtitles import MAX_CHARACTERS, MAX_SECONDS, cues, to_srt, to_vtt
from asr.transcription.timestamps import Word

SRT_CUE = re.compile(r"(\d+)\n(\d\d):([0-5]\d):([0-5]\d),(\d{3}) --> (\d\d):([0-5]\d):([0-5]\d),(\d{3})\n"
                     r"([^\n]+)\n")
VTT_CUE = re.compile(r"(\d\d):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d\d):([0-5]\d):([0-5]\d)\.(\d{3})\n"
                     r"([^\n]+)\n")


def speech(count=60, seconds_per_word=0.45, pause_every=17):
    """Timed words of varying length, with a 2 s pause now and then; starts past an hour."""
    found, time = [], 3600.0 - 5
    for i in range(count):
        text = ["a", "quick", "extraordinarily", "fox", "jumps"][i % 5]
        found.append(Word(text, round(time, 3), round(time + seconds_per_word - 0.05, 3), 0.9))
        time += seconds_per_word + (2.0 if i % pause_every == pause_every - 1 else 0.0)
    return found


def milliseconds(hours, minutes, seconds, millis):
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def test_srt_is_numbered_timed_cues_separated_by_blank_lines():
    words = speech()
    srt = to_srt(words)
    blocks = srt.split("\n\n")
    assert blocks[-1] == "" and srt.endswith("\n\n") and not srt.startswith("\n")
    previous_end, texts = 0, []
    for number, block in enumerate(blocks[:-1], 1):
        match = SRT_CUE.fullmatch(block + "\n")
        assert match, block
        assert int(match[1]) == number
        start, end = milliseconds(*match.group(2, 3, 4, 5)), milliseconds(*match.group(6, 7, 8, 9))
        assert previous_end <= start < end
        previous_end = end
        texts.append(match[10])
    assert " ".join(texts) == " ".join(w.text for w in words)


def test_vtt_has_its_header_and_dot_separated_milliseconds():
    vtt = to_vtt(speech())
    assert vtt.startswith("WEBVTT\n\n")
    body = vtt[len("WEBVTT\n\n"):]
    blocks = body.split("\n\n")
    assert blocks[-1] == "" and all(VTT_CUE.fullmatch(block + "\n") for block in blocks[:-1])
    assert VTT_CUE.match(blocks[0] + "\n").group(1, 2, 3, 4) == ("00", "59", "55", "000")


def test_cues_respect_the_line_and_duration_limits_and_break_at_pauses():
    words = speech()
    found = cues(words)
    assert all(len(cue.text) <= MAX_CHARACTERS and cue.end - cue.start <= MAX_SECONDS for cue in found)
    pause_ends = {round(w.end, 3) for w, after in zip(words, words[1:]) if after.start - w.end > 1.5}
    assert pause_ends and pause_ends <= {round(cue.end, 3) for cue in found}
    assert len(found) < len(words) / 2  # words are grouped, not one per cue


def test_a_word_longer_than_a_line_gets_a_cue_of_its_own_and_no_words_no_cues():
    long = Word("x" * 60, 0.0, 1.0, 0.5)
    assert [cue.text for cue in cues([long, Word("yes", 1.1, 1.3, 0.9)])] == ["x" * 60, "yes"]
    assert to_srt([]) == "" and to_vtt([]) == "WEBVTT\n\n"


def test_times_are_rounded_so_cues_never_overlap_or_vanish():
    words = [Word("a", 1.0004, 1.0004, 0.9), Word("b" * 41, 1.0004, 1.5, 0.9)]
    cue_times = re.findall(r"(\S+) --> (\S+)", to_srt(words))
    assert cue_times == [("00:00:01,000", "00:00:01,001"), ("00:00:01,001", "00:00:01,500")]
