import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from keras import ops

import asr
from asr.cli import main
from asr.config import FeatureConfig, ModelConfig, to_dict
from asr.decoding.decoder_config import DecoderConfig
from asr.errors import EXIT_INTERRUPTED, EXIT_OK, exit_status
from asr.manifest import read_manifest
from asr.model import SpeechRecognizer, load_model
from asr.text import DEFAULT_CHARACTERS
from asr.transcription import chunking
from asr.transcription.transcribe import Transcript, Word, transcribe
from asr.transcription.writers import TranscriptWriter
from conftest import lose_an_interrupt

RATE = 16000


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(trained_model)


def wav_header(data_bytes: int, rate: int = RATE) -> bytes:
    """A 16-bit mono WAV header announcing `data_bytes` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def check_words(transcript: Transcript):
    assert transcript.ok, transcript.error
    assert transcript.text == " ".join(word.text for word in transcript.words)
    times = [t for word in transcript.words for t in (word.start, word.end)]
    assert times == sorted(times)
    assert not times or (times[0] >= 0 and times[-1] <= transcript.duration + 0.04)
    assert all(0 < word.confidence <= 1 for word in transcript.words)


def test_every_input_gets_a_result_and_bad_files_do_not_stop_the_batch(model, speech_corpus, tmp_path):
    good = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is text")
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(1600, np.nan, np.float32), RATE, subtype="FLOAT")
    paths = [*good, str(not_audio), str(nan), str(tmp_path / "absent.wav")]

    results = {r.path: r for r in transcribe(paths, model, batch_size=3)}

    assert set(results) == set(paths)
    assert all(results[p].ok and isinstance(results[p].text, str) for p in good)
    assert "not a recognised audio format" in results[str(not_audio)].error
    assert "NaN" in results[str(nan)].error
    assert results[str(tmp_path / "absent.wav")].error.endswith("no such file")
    assert all("\n" not in r.error for r in results.values() if not r.ok)


def test_an_unexpected_decoder_error_fails_its_file_and_keeps_the_traceback(model, speech_corpus,
                                                                            monkeypatch, caplog):
    good = [u.audio_filepath for u in read_manifest(speech_corpus["test"])][:2]
    chunks = chunking.chunks

    def chunks_or_fail(path, *args):
        if path == good[0]:
            raise KeyError("a decoder's own exception")
        return chunks(path, *args)

    monkeypatch.setattr(chunking, "chunks", chunks_or_fail)
    with caplog.at_level("INFO", logger="asr.transcription.transcribe"):
        results = {r.path: r for r in transcribe(good, model)}
    assert results[good[0]].error.startswith(f"{good[0]}: cannot be read (KeyError:")
    assert results[good[1]].ok
    assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)


def test_batching_does_not_change_transcripts(model, speech_corpus):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    one_by_one = {r.path: r.words for r in transcribe(paths, model, batch_size=1)}
    batched = {r.path: r.words for r in transcribe(paths, model, batch_size=8)}
    assert one_by_one == batched


def test_the_package_transcribes_into_timed_words(trained_model, speech_corpus):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["dev"])]
    results = list(asr.transcribe(paths, model=trained_model))
    assert sorted(r.path for r in results) == sorted(paths)
    assert sum(len(r.words) for r in results) >= len(paths)  # a trained model hears something
    for result in results:
        assert all(isinstance(word, Word) for word in result.words)
        check_words(result)


def test_beam_search_words_spell_its_text(model, speech_corpus):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    for result in transcribe(paths, model, decoder=DecoderConfig("beam", beam_width=4)):
        check_words(result)


def test_broken_files_fail_fast_in_one_line_or_are_transcribed(model, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("RIFF? no, a shopping list\n")
    nan = tmp_path / "nan.wav"
    samples = np.zeros(RATE, np.float32)
    samples[RATE // 2] = np.nan
    soundfile.write(nan, samples, RATE, subtype="FLOAT")
    truncated = tmp_path / "truncated.wav"
    soundfile.write(truncated, np.random.default_rng(0).uniform(-0.1, 0.1, RATE).astype(np.float32), RATE)
    truncated.write_bytes(truncated.read_bytes()[:10_001])
    claims_ten_hours = tmp_path / "claims_ten_hours.wav"
    claims_ten_hours.write_bytes(wav_header(10 * 3600 * RATE * 2) + bytes(3200))
    sparse = tmp_path / "sparse_ten_hours.wav"
    with open(sparse, "wb") as file:  # 1.15 GB of digital silence that takes no disk space
        file.write(wav_header(10 * 3600 * RATE * 2))
        file.truncate(44 + 10 * 3600 * RATE * 2)
    started = time.monotonic()

    results = {r.path: r for r in transcribe([empty, text, nan, truncated, claims_ten_hours, sparse],
                                             model, file_timeout=2.0)}

    assert time.monotonic() - started < 30
    assert "empty" in results[str(empty)].error
    assert "not a recognised audio format" in results[str(text)].error
    assert "NaN" in results[str(nan)].error
    assert results[str(truncated)].ok and 0.3 < results[str(truncated)].duration < 0.32
    assert results[str(claims_ten_hours)].ok and results[str(claims_ten_hours)].duration == 0.1
    assert "longer than the 2 s limit" in results[str(sparse)].error
    assert all(r.ok or (r.error.startswith(r.path + ": ") and "\n" not in r.error) for r in results.values())


def test_malformed_shared_files_are_each_rejected(model, shared_data):
    malformed = sorted(map(str, (shared_data / "realworld" / "malformed").iterdir()))
    results = list(transcribe(malformed, model))
    assert sorted(r.path for r in results) == malformed
    assert not any(r.ok for r in results)


def speech_with_pauses(corpus_manifest, path, seed=0):
    """Concatenate a manifest's utterances, with 0.4-1.2 s faint-noise pauses, into one file."""
    rng = np.random.default_rng(seed)
    with soundfile.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        for utterance in read_manifest(corpus_manifest):
            out.write(soundfile.read(utterance.audio_filepath, dtype="float32")[0])
            out.write(0.002 * rng.standard_normal(round(rng.uniform(0.4, 1.2) * RATE)).astype(np.float32))


def test_long_speech_is_chunked_into_one_timeline(model, speech_corpus, tmp_path):
    path = tmp_path / "long.wav"
    speech_with_pauses(speech_corpus["train"], path)
    duration = soundfile.info(path).duration
    assert duration > 120  # streamed in blocks, decoded in several chunks

    (result,) = transcribe([path], model, chunk_seconds=15.0)

    check_words(result)
    assert result.duration == pytest.approx(duration, abs=1e-3)
    assert result.words[0].start < 15 and result.words[-1].end > duration - 15


class LoudnessRecognizer(SpeechRecognizer):
    """A stand-in acoustic model whose right answer is known: it hears "a" in every
    logit frame louder than the chunk's average (features are standardised per chunk)
    and a space in the others, so each loud stretch of audio is one word."""

    def call(self, inputs, training=None):
        loudness = ops.mean(inputs["features"], axis=-1)  # (batch, frames)
        factor = self.model_config.subsampling
        padding = (-ops.shape(loudness)[1]) % factor
        loudness = ops.pad(loudness, ((0, 0), (0, padding)), constant_values=-1.0)
        loud = ops.max(ops.reshape(loudness, (ops.shape(loudness)[0], -1, factor)), axis=-1) > 0
        labels = ops.where(loud, *(self.vocabulary.encode(ch)[0] for ch in "a "))
        return 20.0 * ops.one_hot(labels, self.vocabulary.size)


def test_chunking_keeps_every_word_once_and_in_the_file_timeline(tmp_path):
    rng = np.random.default_rng(0)
    pieces, bursts, position = [], [], 0
    while position < 200 * RATE:  # loud 1-4 s bursts, faint 0.3-0.8 s pauses
        burst, pause = (round(rng.uniform(*span) * RATE) for span in ((1.0, 4.0), (0.3, 0.8)))
        tone = 0.3 * np.sin(np.arange(burst) * rng.uniform(0.05, 0.3))
        pieces += [tone + 0.05 * rng.standard_normal(burst), 0.003 * rng.standard_normal(pause)]
        bursts.append((position / RATE, (position + burst) / RATE))
        position += burst + pause
    path = tmp_path / "bursts.wav"
    soundfile.write(path, np.concatenate(pieces).astype(np.float32), RATE, subtype="FLOAT")
    model = LoudnessRecognizer(DEFAULT_CHARACTERS, to_dict(FeatureConfig(n_mels=40)),
                               to_dict(ModelConfig(conv_channels=2, lstm_units=4, lstm_layers=1)))

    (chunked,) = transcribe([path], model, chunk_seconds=20.0)
    (whole,) = transcribe([path], model, chunk_seconds=None)

    for result in (chunked, whole):
        check_words(result)
        assert len(result.words) == len(bursts)
        spans = np.array([(word.start, word.end) for word in result.words])
        np.testing.assert_allclose(spans, np.array(bursts), atol=0.1)


def test_each_file_over_the_time_limit_is_a_failure_of_its_own(model, speech_corpus):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    results = list(transcribe(paths, model, file_timeout=0.0))
    assert len(results) == len(paths)
    assert all(r.error == f"{r.path}: took longer than the 0 s limit per file" for r in results)


def test_cli_writes_every_format_mirrored_and_a_rerun_skips_what_is_done(trained_model, speech_corpus,
                                                                         tmp_path, capsys):
    inputs = tmp_path / "in"
    sources = [u.audio_filepath for u in read_manifest(speech_corpus["test"])][:3]
    for folder, source in zip(("x", "x/y", "z"), sources):
        (inputs / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, inputs / folder / "clip.wav")
    (inputs / "z" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    out = tmp_path / "out"
    # Folders yield only what is audio by content, so the broken file is named explicitly.
    command = ["transcribe", str(inputs), str(inputs / "z" / "broken.wav"), "--model", str(trained_model),
               "--output-dir", str(out), "--format", "all"]

    assert main(command) == 1
    captured = capsys.readouterr()
    assert captured.err == f"asr: error: {inputs / 'z' / 'broken.wav'}: " + captured.err.split(": ", 3)[3]
    assert captured.err.count("\n") == 1
    for folder in ("x", "x/y", "z"):
        for extension in ("txt", "json", "srt", "vtt"):
            assert (out / folder / f"clip.{extension}").is_file()
        assert json.loads((out / folder / "clip.json").read_text())["words"] is not None
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == 3
    assert [json.loads(line)["audio_filepath"] for line in (out / "failures.jsonl").open()] == [
        str(inputs / "z" / "broken.wav")]

    (out / "x" / "clip.srt").unlink()
    assert main(command) == 1
    assert capsys.readouterr().out.startswith("1 transcribed, 2 already done, 1 failed")
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == 3
    assert main(["transcribe", str(inputs / "x" / "*.wav"), *command[3:-1], "txt"]) == 0


@pytest.mark.parametrize("arguments, message", [
    (["--format", "docx"], "unknown output format 'docx'"),
    (["--decoder", "greedy", "--hotwords", "one"], "need the beam decoder"),
])
def test_cli_usage_errors_exit_with_2(trained_model, tmp_path, capsys, arguments, message):
    assert main(["transcribe", str(tmp_path), "--model", str(trained_model), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path), "--model", str(trained_model)]) == 2  # no audio there


def finished_outputs(out: Path, pattern: str) -> list[Path]:
    """Outputs under their own names: a killed run may leave temporaries (.tmp-*), which
    the next run removes."""
    return sorted(path for path in out.rglob(pattern) if not path.name.startswith(".tmp-"))


def outputs_are_complete(out: Path) -> int:
    """Every output parses; returns how many files were transcribed."""
    texts = finished_outputs(out, "*.txt")
    for text in texts:
        assert text.read_text().endswith("\n")
        assert "words" in json.loads(text.with_suffix(".json").read_text())
        assert text.with_suffix(".vtt").read_text().startswith("WEBVTT\n")
        srt = text.with_suffix(".srt").read_text()
        assert re.fullmatch(r"(\d+\n[\d:,]{12} --> [\d:,]{12}\n[^\n]+\n\n)*", srt)
    for summary in out.glob("*.jsonl"):
        [json.loads(line) for line in summary.read_text().splitlines()]
    return len(texts)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_leaves_complete_outputs_and_the_summaries(trained_model, speech_corpus, tmp_path,
                                                          monkeypatch):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["train"])][:8]
    out = tmp_path / "out"
    write = TranscriptWriter.write

    def write_then_press_ctrl_c(writer, transcript):
        write(writer, transcript)
        if len(writer.records) == 3:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TranscriptWriter, "write", write_then_press_ctrl_c)
    command = ["transcribe", *paths, "--model", str(trained_model), "--output-dir", str(out),
               "--format", "all"]
    assert main(command) == 130
    assert outputs_are_complete(out) == 3
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == 3
    assert not list(out.rglob(".tmp-*"))


def test_a_lost_interrupt_stops_transcription_after_the_file_in_hand(trained_model, speech_corpus,
                                                                    python_sigint):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["dev"])][:3]
    handled = []

    def job() -> int:
        for transcript in transcribe(paths, trained_model, batch_size=1):
            handled.append(transcript)
            lose_an_interrupt()
        return EXIT_OK

    assert exit_status(job) == EXIT_INTERRUPTED and len(handled) == 1


def test_interrupted_and_killed_runs_leave_only_complete_outputs(trained_model, speech_corpus, tmp_path,
                                                                python_sigint):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    sources = [u.audio_filepath for u in read_manifest(speech_corpus["train"])]
    for number in range(120):
        os.link(sources[number % len(sources)], inputs / f"{number:03d}.wav")
    command = [sys.executable, "-m", "asr.cli", "transcribe", str(inputs), "--model", str(trained_model),
               "--output-dir", str(out), "--format", "all", "--batch-size", "1", "--quiet"]

    def run_until_some_output(stop_signal):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(finished_outputs(out, "*.vtt")) < 3 + outputs and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=60)
        return process.returncode, stderr.decode(errors="replace")

    outputs = 0
    status, stderr = run_until_some_output(signal.SIGINT)
    assert status == 130, stderr
    assert not list(out.rglob(".tmp-*"))  # Ctrl-C: no temporary files, summaries written
    outputs = outputs_are_complete(out)
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == outputs < 120

    status, stderr = run_until_some_output(signal.SIGKILL)
    assert status == -signal.SIGKILL, stderr
    killed_at = outputs_are_complete(out)
    assert outputs < killed_at < 120

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stdout
    assert outputs_are_complete(out) == 120
    assert not list(out.rglob(".tmp-*"))
    assert len((out / "transcripts.jsonl").read_text().splitlines()) == 120
