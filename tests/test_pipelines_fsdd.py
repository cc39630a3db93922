"""`python -m pipelines.fsdd` end to end on a handful of FSDD utterances (needs ../shared/data)."""

import json

import pytest
import yaml

from conftest import TINY_MODEL
from pipelines.fsdd import SPLITS, conditions, main, run, split_protocol


def test_fsdd_pipeline_runs_end_to_end(shared_data, speech_corpus, tmp_path, capsys):
    borrowed = str(speech_corpus["train"])  # a second corpus, kept beside FSDD's train split
    assert main(["--source", str(shared_data / "fsdd"), "--work", str(tmp_path),
                 "--utterances", "16", "4", "4", "4", *TINY_MODEL, "train.epochs=1",
                 "train.batch_size=8", f"data.train_manifest=[replaced.jsonl, {borrowed}]",
                 "data.train_weights=[1.0, 0.25]"]) == 0
    saved = yaml.safe_load((tmp_path / "model" / "config.yaml").read_text())["data"]
    assert saved["train_manifest"] == [str(tmp_path / "data" / "train.jsonl"), borrowed]
    for split, count in {"train": 16, "dev": 4, "test": 4, "test-unseen": 4}.items():
        assert len((tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()) == count
    for decoding in ("greedy", "lm"):
        for condition in ("test", "test-unseen", "test-unseen+noise10", "dev+telephone"):
            report = json.loads((tmp_path / "reports" / decoding / condition / "report.json").read_text())
            assert report["summary"]["utterances"] == 4
    lm_report = json.loads((tmp_path / "reports" / "lm" / "test" / "report.json").read_text())
    assert lm_report["metadata"]["decoder"].startswith("beam search")
    assert (tmp_path / "lm.arpa").is_file()
    out = capsys.readouterr().out
    assert "| test-unseen | noise:10 |" in out and "| test-unseen | reverb:0.5 |" in out
    assert "beam + LM WER" in out and "best: alpha" in out
    assert (tmp_path / "robustness.md").read_text() in out


def test_fsdd_pipeline_names_a_missing_corpus_on_one_line(tmp_path, capsys):
    missing = tmp_path / "not-prepared"
    assert main(["--prepared", str(missing), "--work", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{missing / 'train.jsonl'}: cannot be read" in error


def test_scored_conditions_perturb_dev_and_the_unseen_voices():
    perturbed = [None, "noise:10", "reverb:0.5", "telephone"]
    assert conditions(SPLITS) == [*(("dev", p) for p in perturbed), ("test", None),
                                  *(("test-unseen", p) for p in perturbed)]
    fold = [split.name for split in split_protocol("george").splits]
    assert conditions(fold) == [*(("dev", p) for p in perturbed), *(("held-out", p) for p in perturbed)]


def test_held_out_runs_check_their_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--hold-out", "george", "--utterances", "16", "4", "x=1", "--work", str(tmp_path)])
    assert exit.value.code == 2
    assert "argument --utterances: invalid int value: 'x=1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--hold-out", "theo"])
    assert "argument --hold-out: invalid choice: 'theo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--hold-out", "george", "--prepared", str(tmp_path)])
    assert "--hold-out prepares its own fold from --source" in capsys.readouterr().err
    with pytest.raises(ValueError, match="prepares its own fold from source; it takes no prepared"):
        run(tmp_path, tmp_path / "work", tmp_path / "config.yaml", prepared=tmp_path, hold_out="george")
