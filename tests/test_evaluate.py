import json

import jiwer

from asr.evaluate import evaluate
from asr.manifest import read_manifest
from asr.text import normalize


def test_report_matches_jiwer_on_the_model_output(trained_model, speech_corpus, tmp_path):
    report, paths, failures = evaluate(trained_model, speech_corpus["test"], tmp_path / "report")

    assert failures == []
    assert {"json", "markdown", "html"} <= set(paths)
    saved = json.loads(paths["json"].read_text())
    references = [normalize(u.text) for u in read_manifest(speech_corpus["test"])]
    hypotheses = [row["hypothesis"] for row in saved["utterances"]]
    assert [row["reference"] for row in saved["utterances"]] == references
    assert saved["summary"]["wer"] == jiwer.wer(references, hypotheses)
    assert saved["metadata"]["normalization"].startswith("training (asr.text.normalize")
