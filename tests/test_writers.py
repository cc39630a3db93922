import json
import os
import subprocess
import sys

import pytest

from asr import fileio
from asr.errors import UsageError
from asr.transcription.transcribe import Transcript, Word
from asr.transcription.writers import TranscriptWriter, output_stems, parse_formats


def done(path, text="hello world"):
    words = tuple(Word(w, 0.5 * i, 0.5 * i + 0.4, 0.9) for i, w in enumerate(text.split()))
    return Transcript(path, text=text, duration=2.0, words=words)


def test_formats_parse_from_a_comma_list_or_all():
    assert parse_formats("txt, SRT,txt") == ("txt", "srt")
    assert parse_formats("all") == ("txt", "json", "jsonl", "srt", "vtt")
    with pytest.raises(UsageError, match="'docx'"):
        parse_formats("txt,docx")
    with pytest.raises(UsageError):
        parse_formats("")


def test_outputs_mirror_the_layout_below_the_common_folder_and_never_collide(tmp_path):
    paths = [str(tmp_path / "in" / "a" / "x.wav"), str(tmp_path / "in" / "b" / "x.wav"),
             str(tmp_path / "in" / "b" / "x.flac"), str(tmp_path / "in" / "b" / "y.raw")]
    stems = output_stems(paths)
    assert [str(stems[p]) for p in paths] == ["a/x", "b/x.wav", "b/x.flac", "b/y"]
    assert [str(s) for s in output_stems(["clip.wav"]).values()] == ["clip"]


def test_every_format_is_written_per_file_with_summaries(tmp_path):
    good, bad = str(tmp_path / "in" / "sub" / "good.wav"), str(tmp_path / "in" / "bad.wav")
    out = tmp_path / "out"
    with TranscriptWriter(out, [good, bad], parse_formats("all")) as writer:
        writer.write(done(good))
        writer.write(Transcript(bad, error=f"{bad}: not a recognised audio format"))
    assert (out / "sub" / "good.txt").read_text() == "hello world\n"
    record = json.loads((out / "sub" / "good.json").read_text())
    assert record["text"] == "hello world" and record["duration"] == 2.0
    assert record["words"][1] == {"text": "world", "start": 0.5, "end": 0.9, "confidence": 0.9}
    srt = (out / "sub" / "good.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\nhello world\n")
    assert (out / "sub" / "good.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert [json.loads(line)["audio_filepath"] for line in (out / "transcripts.jsonl").open()] == [good]
    assert [json.loads(line) for line in (out / "failures.jsonl").open()] == [
        {"audio_filepath": bad, "error": f"{bad}: not a recognised audio format"}]
    assert not list(out.rglob(".tmp-*"))


def test_a_rerun_skips_files_already_done_unless_told_to_overwrite(tmp_path):
    first, second = str(tmp_path / "first.wav"), str(tmp_path / "second.wav")
    out = tmp_path / "out"
    with TranscriptWriter(out, [first, second]) as writer:
        writer.write(done(first))
    with TranscriptWriter(out, [first, second]) as writer:
        assert writer.pending == [second] and writer.skipped == 1
        writer.write(done(second, "again"))
    summary = [json.loads(line) for line in (out / "transcripts.jsonl").open()]
    assert [r["text"] for r in summary] == ["hello world", "again"]  # the skipped file's record carried over
    assert TranscriptWriter(out, [first, second], ("txt", "srt")).pending == [first, second]
    assert TranscriptWriter(out, [first, second], overwrite=True).pending == [first, second]


def test_a_run_with_other_files_keeps_the_summary_rows_of_earlier_ones(tmp_path):
    """The summaries had been rewritten with this run's files only."""
    first, second, broken = (str(tmp_path / name) for name in ("first.wav", "second.wav", "broken.wav"))
    with TranscriptWriter(tmp_path / "out", [first, broken], ("jsonl",)) as writer:
        writer.write(done(first))
        writer.write(Transcript(broken, error=f"{broken}: no such file"))
    with TranscriptWriter(tmp_path / "out", [second], ("jsonl",)) as writer:
        writer.write(done(second, "again"))
    summary = [json.loads(line) for line in (tmp_path / "out" / "transcripts.jsonl").open()]
    assert [(r["audio_filepath"], r["text"]) for r in summary] == [(first, "hello world"), (second, "again")]
    failures = [json.loads(line)["audio_filepath"] for line in (tmp_path / "out" / "failures.jsonl").open()]
    assert failures == [broken]
    with TranscriptWriter(tmp_path / "out", [broken], ("jsonl",)) as writer:
        writer.write(done(broken, "found"))  # fixed since: no longer a failure
    assert not (tmp_path / "out" / "failures.jsonl").read_text()


def test_a_file_name_that_is_not_utf8_is_written_and_found_done_again(tmp_path):
    path = os.fsdecode(bytes(tmp_path / "caf") + b"\xe9.wav")
    with TranscriptWriter(tmp_path / "out", [path], parse_formats("all")) as writer:
        writer.write(done(path))
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9.txt")).read_text() == "hello world\n"
    assert json.loads((tmp_path / "out" / "transcripts.jsonl").read_text())["audio_filepath"] == path
    assert TranscriptWriter(tmp_path / "out", [path], parse_formats("all")).pending == []


def test_jsonl_alone_counts_a_file_done_when_the_summary_has_it(tmp_path):
    path = str(tmp_path / "a.wav")
    with TranscriptWriter(tmp_path / "out", [path], ("jsonl",)) as writer:
        assert writer.pending == [path]
        writer.write(done(path))
    assert TranscriptWriter(tmp_path / "out", [path], ("jsonl",)).pending == []
    assert not list((tmp_path / "out").glob("*.txt"))


def test_opening_a_folder_removes_temporaries_a_killed_run_left(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    stale = tmp_path / "sub" / f".tmp-{fileio._HOST}-{int(finished.stdout)}-0123abcd.clip.txt"
    stale.parent.mkdir()
    stale.write_text("half")
    TranscriptWriter(tmp_path, [str(tmp_path / "sub" / "clip.wav")])
    assert not stale.exists()


def test_per_file_outputs_reach_the_disk_before_the_summary_lists_them(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(fileio.os, "sync", lambda: events.append("sync"))
    monkeypatch.setattr(fileio.os, "fsync", lambda descriptor: events.append("fsync"))
    path = str(tmp_path / "a.wav")
    with TranscriptWriter(tmp_path / "out", [path], ("txt", "jsonl")) as writer:
        writer.write(done(path))
        assert events == []  # no fsync per output file
    assert events[0] == "sync" and "fsync" in events[1:]
