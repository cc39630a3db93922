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
    for name, layout in [("librispeech", "LibriSpeech folder or .tar.gz (*.trans.txt + FLAC)"),
                         ("commonvoice", "Common Voice folder or archive (<split>.tsv + clips/)"),
                         ("ljspeech", "LJSpeech folder or archive (metadata.csv + wavs/)")]:
        corpus = corpora.add_parser(name, help=f"manifests for {layout}")
        corpus.add_argument("--source", required=True, type=Path, help="corpus folder or archive")
        corpus.add_argument("--out", required=True, type=Path, help="manifest folder; archives are "
                            "extracted into it, and a corpus folder must lie inside it")
        corpus.set_defaults(handler=_prepare_published, corpus=name)
    table = corpora.add_parser("csv", help="a manifest from a CSV/TSV table with a header row")
    table.add_argument("--table", required=True, type=Path, help="audio paths relative to its folder")
    table.add_argument("--manifest", type=Path, help="output JSONL (default: beside the table)")
    table.add_argument("--audio-column", default="audio_filepath")
    table.add_argument("--text-column", default="text")
    table.add_argument("--speaker-column")
    table.add_argument("--id-column")
    table.set_defaults(handler=_prepare_csv)

    train = commands.add_parser("train", help="train a model from a YAML config")
    _add_config_arguments(train)
    train.add_argument("--output", required=True, type=Path,
                       help="run folder (model.keras, logs); running again resumes from its backup/")
    train.add_argument("--init-from", type=Path, metavar="MODEL",
                       help="start from this .keras model's weights (fine-tuning)")
    train.add_argument("--characters", help="the new model's characters, when they differ from "
                       "--init-from's (its output layer then starts afresh); default a-z, ' and space")
    train.set_defaults(handler=_train)

    transcribe = commands.add_parser(
        "transcribe", help="transcribe files, folders, globs, manifests or paths on stdin",
        description="Outputs mirror the inputs' layout under --output-dir; a rerun skips files "
                    "already done. Exit status: 0 all done, 1 some files failed, 2 usage error.")
    transcribe.add_argument("inputs", nargs="+", metavar="INPUT",
                            help="audio file, folder (searched recursively), glob pattern, "
                                 ".jsonl or .csv manifest, or - to read paths from stdin")
    transcribe.add_argument("--model", required=True, type=Path)
    transcribe.add_argument("--output-dir", type=Path, default=Path("transcripts"))
    transcribe.add_argument("--format", default="txt,jsonl",
                            help="comma-separated: txt, json (with word times), jsonl (one summary "
                                 "file), srt, vtt, or all (default: txt,jsonl)")
    transcribe.add_argument("--overwrite", action="store_true", help="redo files whose outputs exist")
    transcribe.add_argument("--file-timeout", type=float, metavar="SECONDS",
                            help="fail a file whose reading and decoding take longer")
    transcribe.add_argument("--chunk-seconds", type=float, default=20.0,
                            help="longest piece of audio decoded at once; longer files are cut at pauses")
    transcribe.add_argument("--batch-size", type=int, default=16)
    transcribe.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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

    build_lm = commands.add_parser("build-lm", help="build a word n-gram LM (ARPA) from text and transcripts")
    build_lm.add_argument("--text", nargs="+", type=Path, default=[], help="text files, one sentence a line")
    build_lm.add_argument("--manifest", nargs="+", type=Path, default=[], help="manifests whose transcripts to add")
    build_lm.add_argument("--order", type=int, default=3)
    build_lm.add_argument("--out", required=True, type=Path, help="ARPA file to write (.gz to compress)")
    build_lm.set_defaults(handler=_build_lm)

    tune_lm = commands.add_parser("tune-lm", help="grid-search LM weight and word bonus on a dev manifest")
    tune_lm.add_argument("--model", required=True, type=Path)
    tune_lm.add_argument("--manifest", required=True, type=Path, help="labelled dev manifest (never test)")
    tune_lm.add_argument("--lm", required=True, type=Path)
    tune_lm.add_argument("--alphas", type=_numbers, help="comma-separated LM weights (default %(default)s)",
                         default="0,0.25,0.5,0.75,1,1.5")
    tune_lm.add_argument("--betas", type=_numbers, help="comma-separated word bonuses (default %(default)s)",
                         default="0,0.5,1,2,3")
    tune_lm.add_argument("--beam-width", type=int, default=16)
    tune_lm.add_argument("--batch-size", type=int, default=16)
    tune_lm.add_argument("--workers", type=int, default=2, help="processes decoding the grid")
    tune_lm.add_argument("--output", type=Path, help="decoding config to write (for --decode-config)")
    tune_lm.set_defaults(handler=_tune_lm)
    return parser


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_config_arguments(parser, default=None):
    parser.add_argument("--config", type=Path, default=default, required=default is None,
                        help="YAML experiment config" + (f" (default {default})" if default else ""))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.epochs=5 model.lstm_units=128")


def _add_decoder_arguments(parser):
    # Defaults are None so that _decoder can tell given flags from --decode-config's values.
    group = parser.add_argument_group("decoding (flags override --decode-config)")
    group.add_argument("--decode-config", type=Path, help="decoding YAML, e.g. from `asr tune-lm --output`")
    group.add_argument("--decoder", choices=("greedy", "beam"), help="default greedy")
    group.add_argument("--beam-width", type=int, help="default 16")
    group.add_argument("--lm", type=Path, help="word n-gram LM (ARPA, or KenLM binary with kenlm installed)")
    group.add_argument("--alpha", type=float, help="LM weight (default 0.5)")
    group.add_argument("--beta", type=float, help="word insertion bonus (default 1.0)")
    group.add_argument("--hotwords", help="words to boost: word[:weight],... (beam decoder)")


def _decoder(args):
    from asr.decode import DecoderConfig, parse_hotwords
    from asr.tune import load_decoder_config, override_decoder_config

    config = load_decoder_config(args.decode_config) if args.decode_config else DecoderConfig()
    return override_decoder_config(
        config, decoder=args.decoder, beam_width=args.beam_width, lm_path=args.lm, alpha=args.alpha,
        beta=args.beta, hotwords=parse_hotwords(args.hotwords) if args.hotwords else None)


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


def _prepare_published(args) -> int:
    from asr.corpora import importers

    prepare = {"librispeech": importers.import_librispeech,
               "commonvoice": importers.import_common_voice,
               "ljspeech": importers.import_ljspeech}[args.corpus]
    for split, path in prepare(args.source, args.out).items():
        print(f"{split}: {path}")
    return EXIT_OK


def _prepare_csv(args) -> int:
    from asr.corpora.importers import import_csv

    print(import_csv(args.table, args.manifest, audio_column=args.audio_column,
                     text_column=args.text_column, speaker_column=args.speaker_column,
                     id_column=args.id_column))
    return EXIT_OK


def _train(args) -> int:
    from asr.config import load_config
    from asr.text import Vocabulary
    from asr.train import train

    vocabulary = Vocabulary(args.characters) if args.characters else None
    result = train(load_config(args.config, args.overrides), args.output, vocabulary=vocabulary,
                   init_from=args.init_from)
    print(f"model: {result.model_path} (best dev WER {result.best_dev_wer:.2%}, "
          f"{result.epochs} epochs, {result.seconds / 60:.1f} min)")
    return EXIT_OK


def _transcribe(args) -> int:
    from tqdm import tqdm

    from asr.inputs import expand_inputs
    from asr.transcribe import transcribe
    from asr.writers import TranscriptWriter, parse_formats

    formats = parse_formats(args.format)
    decoder = _decoder(args)
    paths = expand_inputs(args.inputs)
    if not paths:
        raise ValueError(f"no audio files in {' '.join(args.inputs)}")
    with TranscriptWriter(args.output_dir, paths, formats, overwrite=args.overwrite) as writer:
        progress = tqdm(total=len(writer.pending), unit="file", file=sys.stderr, dynamic_ncols=True,
                        disable=args.quiet or not sys.stderr.isatty())
        done, audio_seconds = 0, 0.0
        results = transcribe(writer.pending, args.model, batch_size=args.batch_size, decoder=decoder,
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
          f"{len(writer.failures)} failed -> {args.output_dir}")
    return EXIT_SOME_FAILED if writer.failures else EXIT_OK


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


def _build_lm(args) -> int:
    from asr.lm import build_kneser_ney
    from asr.tune import read_sentences

    if not (args.text or args.manifest):
        raise ValueError("give --text and/or --manifest")
    sentences = read_sentences(args.text, args.manifest)
    model = build_kneser_ney(sentences, order=args.order)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_arpa(args.out)
    counts = ", ".join(f"{n}-grams {len(table)}" for n, table in enumerate(model.ngrams, 1))
    print(f"{len(sentences)} sentences -> {args.out} ({counts})")
    return EXIT_OK


def _tune_lm(args) -> int:
    from asr.tune import format_tuning, save_decoder_config, tune

    tuning, config = tune(args.model, args.manifest, args.lm, alphas=args.alphas, betas=args.betas,
                          beam_width=args.beam_width, batch_size=args.batch_size, workers=args.workers)
    print(format_tuning(tuning))
    if args.output:
        best = tuning.best
        save_decoder_config(config, args.output, comment=(
            f"asr tune-lm on {args.manifest} ({tuning.utterances} utterances) with {args.model}: "
            f"WER {100 * best.wer:.2f}% (greedy {100 * tuning.greedy_wer:.2f}%)"))
        print(f"decoding config: {args.output}")
    return EXIT_OK


def _print_summary(report: dict, paths: dict) -> None:
    from asr.report_markdown import percent

    summary = report["summary"]
    print(f"WER {percent(summary['wer'])}  CER {percent(summary['cer'])}  "
          f"({summary['utterances']} utterances)")
    print("report: " + json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    sys.exit(main())
