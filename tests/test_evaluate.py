import json

import jiwer

from asr.evaluation.evaluate import evaluate
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


def test_perturbed_evaluation_scores_corrupted_copies_the_same_way_each_time(
        trained_model, speech_corpus, tmp_path):
    import numpy as np
    import pytest

    from asr.audio import load_audio
    from asr.config import ConfigError

    runs = [evaluate(trained_model, speech_corpus["test"], tmp_path / name, perturbation="noise:0")
            for name in ("a", "b")]
    (report, _, failures), (again, _, _) = runs
    assert failures == [] and "noise:0" in report["metadata"]["data"]
    assert [r["hypothesis"] for r in report["utterances"]] == [r["hypothesis"] for r in again["utterances"]]
    originals = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    copies = sorted((tmp_path / "a" / "perturbed").glob("*.wav"))
    assert len(copies) == len(originals)
    clean, noisy = load_audio(originals[0]), load_audio(copies[0])
    assert noisy.shape == clean.shape
    snr = 10 * np.log10(np.mean(clean.astype(np.float64)**2) / np.mean((noisy - clean)**2))
    assert snr == pytest.approx(0.0, abs=0.1)
    with pytest.raises(ConfigError, match="perturbation"):
        evaluate(trained_model, speech_corpus["test"], tmp_path / "c", perturbation="fog:3")
