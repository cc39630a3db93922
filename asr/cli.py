"""`asr` command line: each subcommand parses arguments and forwards to the library.

Exit codes: 0 success, 1 some inputs failed, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from asr.audio import AudioError
    from asr.config import ConfigError
    from asr.manifest import ManifestError

    try:
        return args.handler(args)
    except (AudioError, ConfigError, ManifestError, FileNotFoundError, ValueError) as error:
        print(f"asr: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="build a corpus and its manifests")
    corpora = prepare.add_subparsers(required=True, metavar="CORPUS")
    fsdd = corpora.add_parser("fsdd", help="FSDD connected-digit protocol (train/dev/test/test-unseen)")
    fsdd.add_argument("--source", required=True, type=Path, help="FSDD folder (holding recordings/)")
    fsdd.add_argument("--out", required=True, type=Path, help="output folder")
    fsdd.add_argument("--seed", type=int, default=0)
    fsdd.set_defaults(handler=_prepare_fsdd)
    synthetic = corpora.add_parser("synthetic", help="multi-voice eSpeak NG corpus (offline)")
    synthetic.add_argument("--out", required=True, type=Path)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.set_defaults(handler=_prepare_synthetic)

    train = commands.add_parser("train", help="train a model from a YAML config")
    _add_config_arguments(train)
    train.add_argument("--output", required=True, type=Path, help="run folder (model.keras, logs)")
    train.set_defaults(handler=_train)

    transcribe = commands.add_parser("transcribe", help="transcribe files, folders or manifests")
    transcribe.add_argument("inputs", nargs="+", help="audio files, folders or .jsonl manifests")
    transcribe.add_argument("--model", required=True, type=Path)
    transcribe.add_argument("--output-dir", type=Path, default=Path("transcripts"))
    transcribe.add_argument("--batch-size", type=int, default=16)
    _add_decoder_arguments(transcribe)
    transcribe.set_defaults(handler=_transcribe)

    evaluate = commands.add_parser(
        "evaluate", help="WER/CER report: a model on a manifest, any system's output, or two reports",
        description="Give --model and --manifest, or --ref and --hyp, or --compare A B.")
    evaluate.add_argument("--model", type=Path)
    evaluate.add_argument("--manifest", type=Path, help="labelled manifest to transcribe and score")
    evaluate.add_argument("--ref", type=Path, help="reference manifest (with --hyp)")
    evaluate.add_argument("--hyp", type=Path, help="hypotheses JSONL: id or audio_filepath, text")
    evaluate.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                          help="two report.json files: delta table with paired-bootstrap significance")
    evaluate.add_argument("--output-dir", type=Path, default=Path("report"))
    evaluate.add_argument("--batch-size", type=int, default=16)
    _add_decoder_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    demo = commands.add_parser("demo", help="synthesise speech, train, evaluate on unseen voices")
    _add_config_arguments(demo, default=Path("configs/demo.yaml"))
    demo.add_argument("--work-dir", type=Path, default=Path("work/demo"))
    demo.set_defaults(handler=_demo)
    return parser


def _add_config_arguments(parser, default=None):
    parser.add_argument("--config", type=Path, default=default, required=default is None,
                        help="YAML experiment config" + (f" (default {default})" if default else ""))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.epochs=5 model.lstm_units=128")


def _add_decoder_arguments(parser):
    group = parser.add_argument_group("decoding")
    group.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    group.add_argument("--beam-width", type=int, default=16)
    group.add_argument("--lm", type=Path, help="word n-gram LM (ARPA, or KenLM binary with kenlm installed)")
    group.add_argument("--alpha", type=float, default=0.5, help="LM weight")
    group.add_argument("--beta", type=float, default=1.0, help="word insertion bonus")
    group.add_argument("--hotwords", help="words to boost: word[:weight],... (beam decoder)")


def _decoder(args):
    from asr.decode import DecoderConfig, parse_hotwords

    return DecoderConfig(decoder=args.decoder, beam_width=args.beam_width, lm_path=args.lm,
                         alpha=args.alpha, beta=args.beta,
                         hotwords=parse_hotwords(args.hotwords) if args.hotwords else None)


def _prepare_fsdd(args) -> int:
    from asr.corpora.fsdd import prepare_fsdd

    for split, path in prepare_fsdd(args.source, args.out, seed=args.seed).items():
        print(f"{split}: {path}")
    return EXIT_OK


def _prepare_synthetic(args) -> int:
    from asr.corpora.synthetic import make_synthetic_corpus

    for split, path in make_synthetic_corpus(args.out, seed=args.seed).items():
        print(f"{split}: {path}")
    return EXIT_OK


def _train(args) -> int:
    from asr.config import load_config
    from asr.train import train

    result = train(load_config(args.config, args.overrides), args.output)
    print(f"model: {result.model_path} (best dev WER {result.best_dev_wer:.2%}, "
          f"{result.epochs} epochs, {result.seconds / 60:.1f} min)")
    return EXIT_OK


def _transcribe(args) -> int:
    from asr.transcribe import expand_inputs, transcribe
    from asr.writers import write_transcripts

    paths = expand_inputs(args.inputs)
    folders = [str(Path(p).resolve()) for p in args.inputs if Path(p).is_dir()]
    root = os.path.commonpath(folders) if folders else None
    results = transcribe(paths, args.model, batch_size=args.batch_size, decoder=_decoder(args))
    done, failed = write_transcripts(results, args.output_dir, root=root)
    print(f"{done} transcribed, {failed} failed -> {args.output_dir}")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _evaluate(args) -> int:
    from asr.evaluate import compare, evaluate, score_hypotheses

    if args.compare:
        from asr.report_markdown import comparison_markdown

        comparison, paths = compare(*args.compare, args.output_dir)
        print(comparison_markdown(comparison))
        print("comparison: " + json.dumps({k: str(v) for k, v in paths.items()}))
        return EXIT_OK
    if args.ref or args.hyp:
        if not (args.ref and args.hyp):
            raise ValueError("--ref and --hyp go together")
        report, paths = score_hypotheses(args.ref, args.hyp, args.output_dir)
        _print_summary(report, paths)
        return EXIT_OK
    if not (args.model and args.manifest):
        raise ValueError("give --model and --manifest, or --ref and --hyp, or --compare A B")
    report, paths, failures = evaluate(args.model, args.manifest, args.output_dir,
                                       batch_size=args.batch_size, decoder=_decoder(args))
    for failure in failures:
        print(f"asr: error: {failure.error}", file=sys.stderr)
    _print_summary(report, paths)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _demo(args) -> int:
    from asr.config import load_config
    from asr.demo import run_demo

    report, paths, result = run_demo(load_config(args.config, args.overrides), args.work_dir)
    print(f"trained in {result.seconds / 60:.1f} min, {result.epochs} epochs -> {result.model_path}")
    _print_summary(report, paths)
    return EXIT_OK


def _print_summary(report: dict, paths: dict) -> None:
    from asr.report_markdown import percent

    summary = report["summary"]
    print(f"WER {percent(summary['wer'])}  CER {percent(summary['cer'])}  "
          f"({summary['utterances']} utterances)")
    print("report: " + json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    sys.exit(main())
