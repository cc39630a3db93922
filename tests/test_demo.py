"""`asr demo` end to end at a tiny size: synthesise, train one epoch, report on unseen voices."""

import json

from asr.cli import main
from conftest import TINY_MODEL


def test_demo_runs_end_to_end(tmp_path, capsys):
    work = tmp_path / "demo"
    assert main(["demo", "--work-dir", str(work), "--utterances", "24", "4", "4", *TINY_MODEL,
                 "train.epochs=1", "train.batch_size=8"]) == 0
    for split, count in {"train": 24, "dev": 4, "test": 4}.items():
        assert len((work / "corpus" / f"{split}.jsonl").read_text().splitlines()) == count
    assert (work / "model" / "model.keras").is_file()
    assert (work / "lm.arpa").is_file()  # built from the training transcripts
    for decoding in ("greedy", "lm"):
        report = json.loads((work / "report" / decoding / "report.json").read_text())
        assert report["summary"]["utterances"] == 4
    assert json.loads((work / "report" / "lm" / "report.json").read_text())["metadata"]["decoder"].startswith("beam")
    out = capsys.readouterr().out
    assert "greedy: WER" in out and "beam + LM: WER" in out
