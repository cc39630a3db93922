"""FSDD connected digits end to end: prepare -> train -> evaluate test and test-unseen.

    python -m pipelines.fsdd --source ../shared/data/fsdd --work work/fsdd-run [KEY=VALUE ...]

`--utterances 40 8 8 8` (train, dev, test, test-unseen) shrinks the corpus (a smoke run; the
protocol's first utterances of each split stay the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from asr.config import load_config
from asr.corpora.fsdd import CONNECTED_DIGITS, prepare_fsdd
from asr.evaluate import evaluate
from asr.train import train


SPLITS = tuple(split.name for split in CONNECTED_DIGITS.splits)


def run(source: Path, work: Path, config_path: Path, overrides=(), utterances=None) -> dict[str, dict]:
    """Returns {split: report summary} for test and test-unseen.

    `utterances` sizes some splits, e.g. {"train": 40}; the rest keep the protocol's counts.
    """
    protocol = CONNECTED_DIGITS.with_counts(**(utterances or {}))
    manifests = prepare_fsdd(source, work / "data", protocol=protocol)
    config = load_config(config_path, overrides)
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, train_manifest=str(manifests["train"]), dev_manifest=str(manifests["dev"]),
        test_manifests=(str(manifests["test"]), str(manifests["test-unseen"]))))
    result = train(config, work / "model")
    print(f"trained {result.epochs} epochs in {result.seconds / 60:.1f} min, "
          f"best dev WER {result.best_dev_wer:.2%}")
    summaries = {}
    for split in ("test", "test-unseen"):
        report, paths, _ = evaluate(result.model_path, manifests[split], work / "reports" / split)
        summaries[split] = report["summary"]
        print(f"{split}: WER {report['summary']['wer']:.2%} CER {report['summary']['cer']:.2%} "
              f"-> {paths['markdown']}")
    return summaries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/fsdd"))
    parser.add_argument("--work", type=Path, default=Path("work/fsdd-run"))
    parser.add_argument("--config", type=Path, default=Path("configs/fsdd.yaml"))
    parser.add_argument("--utterances", nargs=len(SPLITS), type=int,
                        metavar=SPLITS,
                        help="corpus size per split (default: the protocol's)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    run(args.source, args.work, args.config, args.overrides,
        utterances=dict(zip(SPLITS, args.utterances or ())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
