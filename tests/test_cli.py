"""End to end through the command line: train, transcribe, evaluate, errors and exit codes."""

import argparse
import html
import json
import os
import subprocess
import sys

import pytest

from asr.cli import main
from conftest import TINY_MODEL


def test_train_transcribe_evaluate(speech_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "configs/demo.yaml", "--output", str(run), *TINY_MODEL,
                 "train.epochs=1", f"data.train_manifest={speech_corpus['train']}",
                 f"data.dev_manifest={speech_corpus['dev']}"]) == 0
    model = run / "model.keras"
    assert model.is_file() and (run / "logs").is_dir()

    audio_dir = speech_corpus["test"].parent / "test"
    out = tmp_path / "out"
    assert main(["transcribe", str(audio_dir), "--model", str(model), "--output-dir", str(out)]) == 0
    wavs = sorted(audio_dir.glob("*.wav"))
    assert sorted(p.stem for p in out.glob("*.txt")) == [p.stem for p in wavs]
    lines = (out / "transcripts.jsonl").read_text().splitlines()
    assert len(lines) == len(wavs) and all("text" in json.loads(line) for line in lines)

    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(model), "--manifest", str(speech_corpus["test"]),
                 "--output-dir", str(report)]) == 0
    assert (report / "report.md").is_file()
    assert "WER" in capsys.readouterr().out


def test_a_bad_file_fails_the_run_but_not_the_batch(trained_model, tmp_path, tone_wav, capsys):
    good = tone_wav("good.wav", seconds=1.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    code = main(["transcribe", str(good), str(bad), "--model", str(trained_model),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"asr: error: {bad}: " + errors[0].split(f"{bad}: ", 1)[1]]
    assert (tmp_path / "out" / "good.txt").is_file()
    failures = (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    assert [json.loads(line)["audio_filepath"] for line in failures] == [str(bad)]


def test_user_mistakes_get_one_line_and_exit_code_2(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"audio_filepath": "../outside.wav", "text": "x"}\n')
    code = main(["train", "--config", "configs/demo.yaml", "--output", str(tmp_path / "r"),
                 f"data.train_manifest={manifest}", f"data.dev_manifest={manifest}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "escapes the manifest root" in err
    assert main(["train", "--config", str(tmp_path / "missing.yaml"), "--output", "x"]) == 2
    capsys.readouterr()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    # Before the grid search (no model is even read), not after it.
    assert main(["tune-lm", "--model", "absent.keras", "--manifest", "dev.jsonl", "--lm", "lm.arpa",
                 "--output", str(blocked / "decode.yaml")]) == 2
    assert capsys.readouterr().err == f"asr: error: {blocked}: File exists\n"


@pytest.mark.parametrize("arguments, message", [
    (["prepare", "synthetic", "--out", "x", "--utterances", "0", "1", "1"], "--utterances: 0 is not a positive count"),
    (["prepare", "synthetic", "--out", "x", "--digit-share", "2"], "--digit-share: 2.0 does not lie in [0, 1]"),
    (["prepare-features", "--config", "c.yaml", "--manifest", "m", "--out", "s", "--shard-size", "0"],
     "--shard-size: 0 is not a positive count"),
    (["transcribe", "a.wav", "--model", "m.keras", "--batch-size", "-1"], "--batch-size: -1 is not a positive count"),
    (["build-lm", "--manifest", "m", "--order", "three", "--out", "lm"], "--order: invalid count value: 'three'"),
    (["transcribe", "a.wav", "--model", "m.keras", "--chunk-seconds", "nan"], "--chunk-seconds: nan is not a time"),
    (["transcribe", "a.wav", "--model", "m.keras", "--file-timeout", "0"], "--file-timeout: 0.0 is not a time"),
    (["tune-lm", "--model", "m", "--manifest", "d", "--lm", "l", "--output", "o", "--alphas", "0,nan"],
     "--alphas: expected comma-separated finite numbers"),
])
def test_counts_and_shares_are_checked_by_the_parser(arguments, message, capsys):
    """Each had reached the library: a ValueError or ZeroDivisionError traceback."""
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train"], ["transcribe"], ["evaluate"], ["demo"], ["prepare", "fsdd"]])
def test_help(command):
    result = subprocess.run([sys.executable, "-m", "asr.cli", *command, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: asr" in result.stdout


def test_score_other_systems_and_compare_reports(speech_corpus, tmp_path, capsys):
    from asr.manifest import read_manifest

    utterances = read_manifest(speech_corpus["test"])
    perfect, sloppy = tmp_path / "perfect.jsonl", tmp_path / "sloppy.jsonl"
    perfect.write_text("".join(json.dumps({"audio_filepath": u.audio_filepath, "text": u.text}) + "\n"
                               for u in utterances))
    sloppy.write_text("".join(json.dumps({"id": u.key, "text": u.text.split()[0]}) + "\n"
                              for u in utterances[:-1]))
    for name, hyp in (("a", perfect), ("b", sloppy)):
        assert main(["evaluate", "--ref", str(speech_corpus["test"]), "--hyp", str(hyp),
                     "--output-dir", str(tmp_path / name)]) == 0
    captured = capsys.readouterr()
    assert "WER 0.00%" in captured.out
    assert captured.err == "asr: warning: 1 utterance(s) have no hypothesis: their words count as deletions\n"
    no_text = tmp_path / "no-text.jsonl"  # a manifest without references had scored silently
    no_text.write_text(json.dumps({"audio_filepath": utterances[0].audio_filepath}) + "\n")
    assert main(["evaluate", "--ref", str(no_text), "--hyp", str(perfect), "--output-dir", str(tmp_path / "c")]) == 0
    assert "1 utterance(s) have no reference text" in capsys.readouterr().err
    assert main(["evaluate", "--ref", str(no_text), "--hyp", str(sloppy), "--output-dir", str(tmp_path / "d")]) == 0
    assert f"{len(utterances) - 2} hypothesis line(s) match no reference" in capsys.readouterr().err
    assert main(["evaluate", "--compare", str(tmp_path / "a" / "report.json"),
                 str(tmp_path / "b" / "report.json"), "--output-dir", str(tmp_path / "ab")]) == 0
    assert (tmp_path / "ab" / "comparison.md").is_file()
    assert main(["evaluate", "--ref", str(speech_corpus["test"])]) == 2


def test_malformed_shared_files_are_each_reported_in_one_line(trained_model, shared_data, tmp_path, capsys):
    malformed = sorted((shared_data / "realworld" / "malformed").iterdir())
    code = main(["transcribe", *map(str, malformed), "--model", str(trained_model),
                 "--output-dir", str(tmp_path / "out")])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert sorted(line.split(": ")[2] for line in errors) == sorted(map(str, malformed))


def test_a_bug_shows_its_traceback_rather_than_a_usage_line(tmp_path, monkeypatch):
    """Before, every ValueError, an internal shape bug included, became `asr: error:` and exit 2."""
    text = tmp_path / "corpus.txt"
    text.write_text("the cat sat\n")

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr("asr.decoding.lm.NGramModel.save_arpa", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["build-lm", "--text", str(text), "--out", str(tmp_path / "lm.arpa")])


def test_a_job_that_fails_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    from asr.training.callbacks import TrainingDiverged

    def diverge(*args, **kwargs):
        raise TrainingDiverged("epoch 1, batch 3: loss inf (limit train.max_loss=1e+04); utterances: a, b")

    monkeypatch.setattr("asr.training.train.train", diverge)
    assert main(["train", "--config", "configs/demo.yaml", "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == ("asr: error: epoch 1, batch 3: loss inf (limit train.max_loss=1e+04); "
                                       "utterances: a, b\n")


def test_help_shows_the_library_defaults():
    """Defaults are read from the library (dataclasses and signatures), never typed twice."""
    from asr.cli import _parser
    from asr.decoding.decoder_config import DecoderConfig

    commands = _parser()._subparsers._group_actions[0].choices
    transcribe = commands["transcribe"].format_help()
    assert "chunks decoded together (default: 16)" in transcribe
    assert f"LM weight (default {DecoderConfig.alpha})" in transcribe
    assert f"default {DecoderConfig.beam_width}" in commands["evaluate"].format_help()
    parsers = list(commands.items())
    while parsers:  # every option with a default has help text, so that --help shows the default
        name, parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += [(f"{name} {sub}", subparser) for sub, subparser in action.choices.items()]
            elif action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                assert action.help, f"asr {name} {action.option_strings[0]}"


def test_a_folder_scan_reports_broken_audio_and_tensorflow_says_nothing(trained_model, tmp_path, tone_wav):
    """One real `asr transcribe` process: TensorFlow's start-up lines (cuInit error included)
    used to come first; a .wav that cannot be parsed used to vanish from a folder scan."""
    (tmp_path / "in").mkdir()
    tone_wav("in/good.wav", seconds=1.0)
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    environment = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(tmp_path / "in"),
                             "--model", str(trained_model), "--output-dir", str(tmp_path / "out"), "-q"],
                            capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 1
    assert result.stdout.endswith("1 transcribed, 0 already done, 1 failed -> " + str(tmp_path / "out") + "\n")
    assert result.stderr.splitlines() == [
        f"asr: error: {tmp_path / 'in' / 'broken.wav'}: not a recognised audio format "
        + result.stderr.split("not a recognised audio format ", 1)[-1].strip()]


def test_every_malformed_shared_file_in_a_folder_is_a_failure(trained_model, shared_data, tmp_path, capsys):
    folder = shared_data / "realworld" / "malformed"
    assert main(["transcribe", str(folder), "--model", str(trained_model), "--output-dir", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert sorted(line.split(": ")[2] for line in errors) == sorted(map(str, folder.iterdir()))


@pytest.mark.parametrize("normalizer, wer, named", [
    ("training", 2 / 3, "training (asr.text.normalize"),
    ("none", 1.0, "none (texts scored as written"),
    ("whisper", 0.0, "whisper (OpenAI Whisper's EnglishTextNormalizer"),
])
def test_evaluate_scores_with_the_chosen_normaliser(tmp_path, normalizer, wer, named):
    pytest.importorskip("whisper_normalizer")
    (tmp_path / "ref.jsonl").write_text(json.dumps({"audio_filepath": "a.wav", "text": "Mr. Smith's colour"}) + "\n")
    (tmp_path / "hyp.jsonl").write_text(json.dumps({"id": "a", "text": "mister smith's color"}) + "\n")
    assert main(["evaluate", "--ref", str(tmp_path / "ref.jsonl"), "--hyp", str(tmp_path / "hyp.jsonl"),
                 "--normalizer", normalizer, "--output-dir", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["summary"]["wer"] == pytest.approx(wer, abs=0.01)
    assert report["metadata"]["normalization"].startswith(named)
    assert named in (tmp_path / "report" / "report.md").read_text()
    assert html.escape(named) in (tmp_path / "report" / "report.html").read_text()
