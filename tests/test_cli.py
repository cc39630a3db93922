"""End to end through the command line: train, transcribe, evaluate, errors and exit codes."""

import json
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
    assert "WER 0.00%" in capsys.readouterr().out
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
