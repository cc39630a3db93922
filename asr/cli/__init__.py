"""`asr` command line: each subcommand parses arguments and forwards to the library.

Exit codes: 0 success, 1 some inputs or the job failed, 2 usage or input errors.
User errors (`asr.errors.AsrError`) are printed on one line; anything else is a
bug, and its traceback is shown.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import sys
from pathlib import Path

from asr.cli.options import (HelpFormatter, add_config_arguments, count, library_default, seconds,
                             start_tensorflow)
from asr.cli.prepare import add_prepare_commands
from asr.config import choices
from asr.decoding.decoder_config import DecoderConfig
from asr.decoding.lm import build_kneser_ney
from asr.errors import EXIT_FAILED, EXIT_OK, UsageError, exit_status
from asr.evaluation.evaluate import evaluate as evaluate_model
from asr.evaluation.tune import tune
from asr.text import SCORING_NORMALIZERS
from asr.transcription.chunking import MAX_SECONDS
from asr.transcription.transcribe import transcribe as transcribe_files
from asr.transcription.writers import DEFAULT_FORMATS


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # None: argparse reads the command line
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # TensorFlow's native logging once set up, errors included (see asr.quiet)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return exit_status(lambda: args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details, and TensorFlow's start-up lines")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=functools.partial(
        argparse.ArgumentParser, formatter_class=HelpFormatter))

    add_prepare_commands(commands)
    _add_train_parser(commands)
    _add_transcribe_parser(commands)
    _add_evaluate_parser(commands)
    _add_demo_parser(commands)
    _add_build_lm_parser(commands)
    _add_tune_lm_parser(commands)
    _add_export_parser(commands)
    return parser


def _add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a model from a YAML config")
    add_config_arguments(train)
    train.add_argument("--output", required=True, type=Path,
                       help="run folder (model.keras, logs); running again resumes from its backup/")
    train.add_argument("--init-from", type=Path, metavar="MODEL",
                       help="start from this .keras model's weights (fine-tuning)")
    train.add_argument("--characters", help="the new model's characters, when they differ from "
                       "--init-from's (its output layer then starts afresh); default a-z, ' and space")
    train.set_defaults(handler=_train)


def _add_transcribe_parser(commands) -> None:
    transcribe = commands.add_parser(
        "transcribe", help="transcribe files, folders, globs, manifests or paths on stdin",
        description="Outputs mirror the inputs' layout under --output-dir; a rerun skips files "
                    "already done. Exit status: 0 all done, 1 some files failed, 2 usage error.")
    add_transcribe_arguments(transcribe)
    transcribe.set_defaults(handler=_transcribe)


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="WER/CER report: a model on a manifest, any system's output, or two reports",
        description="Give --model and --manifest, or --ref and --hyp, or --compare A B.")
    evaluate.add_argument("--model", type=Path)
    evaluate.add_argument("--manifest", type=Path, help="labelled manifest to transcribe and score")
    evaluate.add_argument("--ref", type=Path, help="reference manifest (with --hyp)")
    evaluate.add_argument("--hyp", type=Path, help="hypotheses JSONL: id or audio_filepath, text")
    evaluate.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                          help="two report.json files: delta table with paired-bootstrap significance")
    evaluate.add_argument("--output-dir", type=Path, default=Path("report"), help="report folder")
    evaluate.add_argument("--batch-size", type=count, default=library_default(evaluate_model, "batch_size"),
                          help="utterances decoded together")
    evaluate.add_argument("--normalizer", choices=SCORING_NORMALIZERS,
                          default=library_default(evaluate_model, "normalizer"),
                          help="text normalisation before scoring: the one training uses, none, or "
                               "Whisper's English normaliser (needs pip install 'asr[whisper]')")
    evaluate.add_argument("--perturb", metavar="SPEC", help="score the manifest's audio corrupted: "
                          "noise:SNR, babble:SNR, reverb:RT60[:DRR], telephone, gain:DB or "
                          "silence:SECONDS, several joined by + (silence:1+noise:30)")
    evaluate.add_argument("--perturb-seed", type=int, default=library_default(evaluate_model, "seed"),
                          help="seed of the corruptions")
    _add_decoder_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _add_demo_parser(commands) -> None:
    demo = commands.add_parser("demo", help="synthesise speech, train, evaluate on unseen voices")
    add_config_arguments(demo, default=Path("configs/demo.yaml"))
    demo.add_argument("--work-dir", type=Path, default=Path("work/demo"),
                      help="corpus, model and report folder")
    demo.add_argument("--utterances", nargs=3, type=count, metavar=("TRAIN", "DEV", "TEST"),
                      help="corpus size per split (default: the full demo corpus)")
    demo.set_defaults(handler=_demo)


def _add_build_lm_parser(commands) -> None:
    build_lm = commands.add_parser("build-lm", help="build a word n-gram LM (ARPA) from text and transcripts")
    build_lm.add_argument("--text", nargs="+", type=Path, default=[], help="text files, one sentence a line")
    build_lm.add_argument("--manifest", nargs="+", type=Path, default=[],
                          help="manifests whose transcripts to add")
    build_lm.add_argument("--order", type=count, default=library_default(build_kneser_ney, "order"),
                          help="n-gram order")
    build_lm.add_argument("--out", required=True, type=Path, help="ARPA file to write (.gz to compress)")
    build_lm.set_defaults(handler=_build_lm)


def _add_tune_lm_parser(commands) -> None:
    tune_lm = commands.add_parser("tune-lm", help="grid-search LM weight and word bonus on a dev manifest")
    tune_lm.add_argument("--model", required=True, type=Path)
    tune_lm.add_argument("--manifest", required=True, type=Path, help="labelled dev manifest (never test)")
    tune_lm.add_argument("--lm", required=True, type=Path)
    tune_lm.add_argument("--alphas", type=_numbers, help="comma-separated LM weights",
                         default=",".join(map(str, library_default(tune, "alphas"))))
    tune_lm.add_argument("--betas", type=_numbers, help="comma-separated word bonuses",
                         default=",".join(map(str, library_default(tune, "betas"))))
    tune_lm.add_argument("--perturb", nargs="+", default=(), metavar="SPEC",
                         help="also score the grid on dev corrupted each way (noise:SNR, babble:SNR, "
                              "reverb:RT60[:DRR], telephone, gain:DB, silence:SECONDS, joined by +), "
                              "pooled with clean dev")
    tune_lm.add_argument("--beam-width", type=count, default=library_default(tune, "beam_width"),
                         help="beam width")
    tune_lm.add_argument("--lexicon", action="store_true", help="decode spelling only the LM's words")
    tune_lm.add_argument("--batch-size", type=count, default=library_default(tune, "batch_size"),
                         help="utterances run through the model together")
    tune_lm.add_argument("--workers", type=count, default=library_default(tune, "workers"),
                         help="processes decoding the grid")
    tune_lm.add_argument("--output", type=Path, help="decoding config to write (for --decode-config)")
    tune_lm.set_defaults(handler=_tune_lm)


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """`asr transcribe`'s arguments, shared with the distributed pipelines (`pipelines/`)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio file, folder (searched recursively), glob pattern, "
                             ".jsonl or .csv manifest, or - to read paths from stdin")
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("transcripts"), help="output folder")
    parser.add_argument("--format", default=",".join(DEFAULT_FORMATS),
                        help="comma-separated: txt, json (with word times), jsonl (one summary "
                             "file), srt, vtt, or all")
    parser.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    parser.add_argument("--file-timeout", type=seconds, metavar="SECONDS",
                        help="fail a file whose reading and decoding take longer")
    parser.add_argument("--chunk-seconds", type=seconds, default=MAX_SECONDS,
                        help="longest piece of audio decoded at once; longer files are cut at pauses")
    parser.add_argument("--batch-size", type=count, default=library_default(transcribe_files, "batch_size"),
                        help="chunks decoded together")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_decoder_arguments(parser)


def _add_export_parser(commands) -> None:
    from asr.export import FORMATS

    export = commands.add_parser(
        "export", help="write a self-contained serving graph: audio in, text out",
        description="Log-mel features, the model and greedy CTC decoding in one graph that needs "
                    "no asr code (README: Deploying a model).")
    export.add_argument("model", type=Path, metavar="MODEL", help="trained .keras model")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--output", required=True, type=Path,
                        help="folder: the SavedModel itself, or the one to hold model.tflite / model.onnx")
    export.add_argument("--quantize", action="store_true",
                        help="tflite: int8 weights (dynamic-range quantization)")
    export.set_defaults(handler=_export)


def _numbers(text: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        numbers = (math.nan,)
    if not all(map(math.isfinite, numbers)):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {text!r}")
    return numbers


def _add_decoder_arguments(parser):
    # Defaults are None so that decoder_config can tell given flags from --decode-config's values.
    group = parser.add_argument_group("decoding (flags override --decode-config)")
    group.add_argument("--decode-config", type=Path, help="decoding YAML, e.g. from `asr tune-lm --output`")
    group.add_argument("--decoder", choices=choices(DecoderConfig, "decoder"),
                       help=f"default {DecoderConfig.decoder}")
    group.add_argument("--beam-width", type=count, help=f"default {DecoderConfig.beam_width}")
    group.add_argument("--lm", type=Path, help="word n-gram LM (ARPA, or KenLM binary with kenlm installed)")
    group.add_argument("--alpha", type=float, help=f"LM weight (default {DecoderConfig.alpha})")
    group.add_argument("--beta", type=float, help=f"word insertion bonus (default {DecoderConfig.beta})")
    group.add_argument("--hotwords", help="words to boost: word[:weight],... (beam decoder)")
    group.add_argument("--lexicon", action="store_true", default=None,
                       help="spell only words the LM knows (and hotwords); needs --lm")


def decoder_config(args):
    """The DecoderConfig that --decode-config and the decoding flags describe."""
    from asr.decoding.decoder_config import load_decoder_config, override_decoder_config, parse_hotwords

    config = load_decoder_config(args.decode_config) if args.decode_config else DecoderConfig()
    return override_decoder_config(
        config, decoder=args.decoder, beam_width=args.beam_width, lm_path=args.lm, alpha=args.alpha,
        beta=args.beta, hotwords=parse_hotwords(args.hotwords) if args.hotwords else None,
        lexicon=args.lexicon)


def _train(args) -> int:
    from asr.config import load_config
    from asr.text import Vocabulary

    config = load_config(args.config, args.overrides)
    vocabulary = Vocabulary(args.characters) if args.characters else None
    start_tensorflow(args)
    from asr.training.train import train

    result = train(config, args.output, vocabulary=vocabulary, init_from=args.init_from)
    kept = (f"mean of epochs {', '.join(map(str, result.averaged))}" if result.averaged
            else "best")
    print(f"model: {result.model_path} ({kept}, dev WER {result.best_dev_wer:.2%}, "
          f"{result.epochs} epochs, {result.seconds / 60:.1f} min)")
    return EXIT_OK


def _transcribe(args) -> int:
    from tqdm import tqdm

    from asr.transcription.inputs import expand_inputs
    from asr.transcription.writers import TranscriptWriter, parse_formats

    formats = parse_formats(args.format)
    decoder = decoder_config(args)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise UsageError(f"no audio files in {' '.join(args.inputs)}")
    with TranscriptWriter(args.output_dir, paths, formats, overwrite=args.overwrite) as writer:
        if writer.pending:
            start_tensorflow(args)
        progress = tqdm(total=len(writer.pending), unit="file", file=sys.stderr, dynamic_ncols=True,
                        disable=args.quiet or not sys.stderr.isatty())
        done, audio_seconds = 0, 0.0
        results = transcribe_files(writer.pending, args.model, batch_size=args.batch_size, decoder=decoder,
                             chunk_seconds=args.chunk_seconds, file_timeout=args.file_timeout)
        for result in results if writer.pending else ():  # nothing to do: do not load the model
            writer.write(result)
            if result.ok:
                done += 1
            else:
                progress.write(f"asr: error: {result.error}", file=sys.stderr)
            audio_seconds += result.duration or 0.0
            elapsed = max(progress.format_dict["elapsed"], 1e-3)
            progress.set_postfix_str(f"{audio_seconds / elapsed:.0f} audio-s/s", refresh=False)
            progress.update()
        progress.close()
    print(f"{done} transcribed, {writer.skipped} already done, "
          f"{len(writer.failed)} failed -> {args.output_dir}")
    return EXIT_FAILED if writer.failed else EXIT_OK


def _evaluate(args) -> int:
    from asr.evaluation.evaluate import compare, score_hypotheses

    if args.compare:
        from asr.evaluation.report.markdown import comparison_markdown

        comparison, paths = compare(*args.compare, args.output_dir)
        print(comparison_markdown(comparison))
        print("comparison: " + json.dumps({k: str(v) for k, v in paths.items()}))
        return EXIT_OK
    if args.ref or args.hyp:
        if not (args.ref and args.hyp):
            raise UsageError("--ref and --hyp go together")
        report, paths = score_hypotheses(args.ref, args.hyp, args.output_dir, normalizer=args.normalizer)
        _print_summary(report, paths)
        return EXIT_OK
    if not (args.model and args.manifest):
        raise UsageError("give --model and --manifest, or --ref and --hyp, or --compare A B")
    decoder = decoder_config(args)
    start_tensorflow(args)
    report, paths, failures = evaluate_model(args.model, args.manifest, args.output_dir,
                                             batch_size=args.batch_size, decoder=decoder,
                                             normalizer=args.normalizer, perturbation=args.perturb,
                                             seed=args.perturb_seed)
    for failure in failures:
        print(f"asr: error: {failure.error}", file=sys.stderr)
    _print_summary(report, paths)
    return EXIT_FAILED if failures else EXIT_OK


def _demo(args) -> int:
    from asr.config import load_config

    config = load_config(args.config, args.overrides)
    start_tensorflow(args)
    from asr.demo import run_demo

    utterances = dict(zip(("train", "dev", "test"), args.utterances or ()))
    demo = run_demo(config, args.work_dir, utterances=utterances)
    result = demo.training
    print(f"trained in {result.seconds / 60:.1f} min, {result.epochs} epochs -> {result.model_path}")
    print(f"LM: {demo.decoder.lm_path}, tuned on dev: alpha {demo.decoder.alpha}, beta {demo.decoder.beta}")
    for name, report in demo.reports.items():
        print(f"{name:>9s}: ", end="")
        _print_summary(report, demo.paths[name])
    return EXIT_OK


def _build_lm(args) -> int:
    from asr.decoding.lm import read_sentences

    if not (args.text or args.manifest):
        raise UsageError("give --text and/or --manifest")
    sentences = read_sentences(args.text, args.manifest)
    model = build_kneser_ney(sentences, order=args.order)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_arpa(args.out)
    counts = ", ".join(f"{n}-grams {len(table)}" for n, table in enumerate(model.ngrams, 1))
    print(f"{len(sentences)} sentences -> {args.out} ({counts})")
    return EXIT_OK


def _tune_lm(args) -> int:
    from asr.decoding.decoder_config import save_decoder_config
    from asr.evaluation.tune import format_tuning

    if args.output:  # checked before the search, which can take hours, not after
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(args.output.parent, os.W_OK):
            raise UsageError(f"{args.output}: its folder cannot be written")
    start_tensorflow(args)
    tuning, config = tune(args.model, args.manifest, args.lm, alphas=args.alphas, betas=args.betas,
                          perturbations=args.perturb, beam_width=args.beam_width, lexicon=args.lexicon,
                          batch_size=args.batch_size, workers=args.workers)
    print(format_tuning(tuning))
    if args.output:
        best = tuning.best
        save_decoder_config(config, args.output, comment=(
            f"asr tune-lm on {args.manifest} ({tuning.utterances} utterances: "
            f"{', '.join(tuning.conditions)}) with {args.model}: "
            f"WER {100 * best.wer:.2f}% (greedy {100 * tuning.greedy_wer:.2f}%)"))
        print(f"decoding config: {args.output}")
    return EXIT_OK


def _export(args) -> int:
    start_tensorflow(args)
    from asr.export import export

    exported = export(args.model, args.output, args.format, quantize=args.quantize)
    print(f"{exported.format}: {exported.path} ({exported.bytes / 1e6:.1f} MB)")
    return EXIT_OK


def _print_summary(report: dict, paths: dict) -> None:
    from asr.evaluation.report.markdown import percent

    summary, counts = report["summary"], report["counts"]
    print(f"WER {percent(summary['wer'])}  CER {percent(summary['cer'])}  "
          f"({summary['utterances']} utterances)")
    warnings = {
        "empty_references": "{} utterance(s) have no reference text: all they are given counts as "
                            "insertions (is the manifest's `text` missing?)",
        "missing_hypotheses": "{} utterance(s) have no hypothesis: their words count as deletions",
        "unmatched_hypotheses": "{} hypothesis line(s) match no reference: not scored",
    }
    for name, warning in warnings.items():
        if counts.get(name):  # a report written before the count existed has none
            print("asr: warning: " + warning.format(counts[name]), file=sys.stderr)
    print("report: " + json.dumps({k: str(v) for k, v in paths.items()}))

