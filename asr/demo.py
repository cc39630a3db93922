"""The embedded default: synthesise speech, train, transcribe held-out voices, report.

Runs offline: eSpeak NG (bundled by `espeakng-loader`) speaks a small corpus in
several voices; the test split's voices are never seen in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from asr.config import ExperimentConfig
from asr.corpora.synthetic import make_synthetic_corpus
from asr.evaluate import evaluate
from asr.train import train


def run_demo(config: ExperimentConfig, work_dir, verbose="auto",
             utterances: Mapping[str, int] | None = None):
    """Build the corpus under `work_dir`, train, evaluate on unseen voices.

    `utterances` sizes some splits, e.g. {"train": 48, "dev": 8, "test": 8};
    the others keep `make_synthetic_corpus`'s sizes.
    Returns (report dict, written report paths, TrainResult).
    """
    work_dir = Path(work_dir)
    sizes = {f"{split}_utterances": count for split, count in (utterances or {}).items()}
    manifests = make_synthetic_corpus(work_dir / "corpus", seed=config.train.seed, **sizes)
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, train_manifest=str(manifests["train"]), dev_manifest=str(manifests["dev"]),
        test_manifests=(str(manifests["test"]),)))
    result = train(config, work_dir / "model", verbose=verbose)
    report, paths, _ = evaluate(result.model_path, manifests["test"], work_dir / "report")
    return report, paths, result
