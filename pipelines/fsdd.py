"""FSDD connected digits end to end: prepare -> train -> LM -> robustness table.

    python -m pipelines.fsdd --source ../shared/data/fsdd --work work/fsdd-run [KEY=VALUE ...]
    python -m pipelines.fsdd --model run/model.keras --prepared work/fsdd --work work/table

The table scores test (training speakers), test-unseen (two new speakers) and
test-unseen under 10 dB noise, room reverberation and a telephone channel; dev
under the same conditions comes first, since recipes are chosen on dev. Each is
decoded greedily and with beam search + a trigram LM of FSDD's training
transcripts, spelling only its words (the ten digits), its weight and word bonus
tuned on dev and the same three perturbed devs pooled (clean dev alone is nearly
error-free, so there every weight ties).

`--utterances 40 8 8 8` (train, dev, test, test-unseen) shrinks the corpus (a smoke run; the
protocol's first utterances of each split stay the same).

`--hold-out SPEAKER` chooses between recipes without looking at any test take:
it trains on the other three training speakers and scores dev and that
speaker's dev and train takes ("held-out"), clean and perturbed, instead of
test and test-unseen (`asr.corpora.fsdd.held_out_protocol`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from asr.config import load_config
from asr.corpora.fsdd import CONNECTED_DIGITS, Protocol, held_out_protocol, prepare_fsdd
from asr.decoding.decoder_config import DecoderConfig
from asr.errors import EXIT_OK, exit_status
from asr.evaluation.evaluate import evaluate
from asr.evaluation.tune import format_tuning, tune_transcript_lm
from asr.training.train import train

PERTURBATIONS = ("noise:10", "reverb:0.5", "telephone")  # reverb: RT60 0.5 s, DRR 3 dB
PERTURBED = ("dev", "test-unseen", "held-out")  # splits scored under each perturbation too
SPLITS = tuple(split.name for split in CONNECTED_DIGITS.splits)
DECODINGS = {"greedy": "greedy", "lm": "beam + LM"}  # report folder -> table label


def conditions(splits) -> list[tuple[str, str | None]]:
    """(split, perturbation or None) to score: every split but train clean, PERTURBED ones perturbed too."""
    return [(split, perturbation) for split in splits if split != "train"
            for perturbation in ((None, *PERTURBATIONS) if split in PERTURBED else (None,))]


def split_protocol(hold_out: str | None = None) -> Protocol:
    """The connected-digit protocol, or its fold leaving training speaker `hold_out` out."""
    return held_out_protocol(hold_out) if hold_out else CONNECTED_DIGITS


def run(source: Path, work: Path, config_path: Path, overrides=(), utterances=None, *,
        model: Path | None = None, prepared: Path | None = None,
        hold_out: str | None = None) -> list[dict]:
    """Train (unless `model` is given), build and tune the LM, return the robustness table's rows.

    The config's first training manifest is replaced by FSDD's train split; any
    others (corpora a recipe borrows, with `data.train_weights`) are kept.
    `utterances` sizes some splits, e.g. {"train": 40}; the rest keep the protocol's counts.
    `prepared` is an FSDD preparation to use as it is, instead of preparing
    `source` into `work/data`. `hold_out` names a training speaker to leave out
    and score instead of test and test-unseen.
    """
    if hold_out and prepared:  # a preparation's train split holds every training speaker
        raise ValueError(f"hold_out={hold_out!r} prepares its own fold from source; it takes no prepared")
    protocol = split_protocol(hold_out).with_counts(**(utterances or {}))
    splits = [split.name for split in protocol.splits]
    manifests = ({split: prepared / f"{split}.jsonl" for split in splits} if prepared
                 else prepare_fsdd(source, work / "data", protocol=protocol))
    if model is None:
        config = load_config(config_path, overrides)
        given = config.data.train_manifest
        borrowed = given[1:] if isinstance(given, tuple) else ()
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, train_manifest=(str(manifests["train"]), *borrowed),
            dev_manifest=str(manifests["dev"]),
            test_manifests=tuple(str(manifests[split]) for split in splits
                                 if split not in ("train", "dev"))))
        result = train(config, work / "model")
        kept = f" (mean of epochs {list(result.averaged)})" if result.averaged else ""
        print(f"trained {result.epochs} epochs in {result.seconds / 60:.1f} min, "
              f"dev WER {result.best_dev_wer:.2%}{kept}")
        model = result.model_path
    tuning, decoder = tune_transcript_lm(model, [manifests["train"]], manifests["dev"], work / "lm.arpa",
                                         perturbations=PERTURBATIONS, lexicon=True)
    print(format_tuning(tuning))
    rows = robustness(model, manifests, work / "reports", {"greedy": DecoderConfig(), "lm": decoder},
                      conditions(splits))
    table = format_table(rows)
    (work / "robustness.md").write_text(table)
    print(table, end="")
    return rows


def robustness(model: Path, manifests: dict[str, Path], folder: Path,
               decoders: dict[str, DecoderConfig], scored=conditions(SPLITS)) -> list[dict]:
    """WER and CER of `model` on each of the `scored` conditions with each of `decoders` (DECODINGS' keys).

    One row per condition: {"split", "condition", "utterances", and per decoding
    {"wer", "cer"}}; the reports go to `folder/DECODING/CONDITION/`.
    """
    rows = []
    for split, perturbation in scored:
        name = split + (f"+{perturbation.replace(':', '')}" if perturbation else "")
        row = {"split": split, "condition": perturbation or "clean"}
        for decoding, decoder in decoders.items():
            report, _, _ = evaluate(model, manifests[split], folder / decoding / name,
                                    decoder=decoder, perturbation=perturbation)
            row[decoding] = {"wer": report["summary"]["wer"], "cer": report["summary"]["cer"]}
            row["utterances"] = report["summary"]["utterances"]
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table: a WER and a CER column per decoding."""
    header = "".join(f" {label} WER | {label} CER |" for label in DECODINGS.values())
    lines = [f"| split | condition |{header} utterances |", "|---|---|" + "---|" * (2 * len(DECODINGS) + 1)]
    for row in rows:
        rates = "".join(f" {row[d]['wer']:.2%} | {row[d]['cer']:.2%} |" for d in DECODINGS)
        lines.append(f"| {row['split']} | {row['condition']} |{rates} {row['utterances']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    # --hold-out decides the splits, so how many counts --utterances takes: read it first.
    fold = argparse.ArgumentParser(add_help=False)
    fold.add_argument("--hold-out", metavar="SPEAKER", choices=CONNECTED_DIGITS.split("train").speakers,
                      help="leave this training speaker out and score it instead of the test splits")
    splits = tuple(split.name for split in split_protocol(fold.parse_known_args(argv)[0].hold_out).splits)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[fold])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/fsdd"))
    parser.add_argument("--work", type=Path, default=Path("work/fsdd-run"))
    parser.add_argument("--config", type=Path, default=Path("configs/fsdd.yaml"))
    parser.add_argument("--utterances", nargs=len(splits), type=int, metavar=splits,
                        help="corpus size per split (default: the protocol's)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--model", type=Path, help="score this model instead of training one")
    parser.add_argument("--prepared", type=Path, help="an existing FSDD preparation to use as it is")
    args = parser.parse_args(argv)
    if args.hold_out and args.prepared:  # a preparation's train split holds every training speaker
        parser.error("--hold-out prepares its own fold from --source; it takes no --prepared")
    args.utterances = dict(zip(splits, args.utterances or ()))
    return exit_status(lambda: _main(args))


def _main(args) -> int:
    args.work.mkdir(parents=True, exist_ok=True)
    run(args.source, args.work, args.config, args.overrides, utterances=args.utterances,
        model=args.model, prepared=args.prepared, hold_out=args.hold_out)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
