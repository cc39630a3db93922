"""`asr prepare CORPUS` and `asr prepare-features`: corpora and feature stores from the command line."""

from __future__ import annotations

from pathlib import Path

from asr.cli.options import add_config_arguments, count, fraction, library_default, start_tensorflow
from asr.corpora.fsdd import prepare_fsdd
from asr.corpora.importers import import_csv
from asr.corpora.synthetic import EXTRA_VOICES, TRAIN_VOICES, make_synthetic_corpus
from asr.errors import EXIT_OK


def add_prepare_commands(commands) -> None:
    """Add `prepare` (with a subcommand per corpus) and `prepare-features` to `commands`."""
    prepare = commands.add_parser("prepare", help="build a corpus and its manifests")
    corpora = prepare.add_subparsers(required=True, metavar="CORPUS")
    fsdd = corpora.add_parser("fsdd", help="FSDD connected-digit protocol (train/dev/test/test-unseen)")
    fsdd.add_argument("--source", required=True, type=Path, help="FSDD folder (holding recordings/)")
    fsdd.add_argument("--out", required=True, type=Path, help="output folder")
    fsdd.add_argument("--seed", type=int, default=library_default(prepare_fsdd, "seed"),
                      help="seed of the digit sequences")
    fsdd.set_defaults(handler=_prepare_fsdd)
    synthetic = corpora.add_parser("synthetic", help="multi-voice eSpeak NG corpus (offline)")
    synthetic.add_argument("--out", required=True, type=Path)
    synthetic.add_argument("--seed", type=int, default=library_default(make_synthetic_corpus, "seed"),
                           help="seed of the sentences and voices")
    synthetic.add_argument("--utterances", nargs=3, type=count, metavar=("TRAIN", "DEV", "TEST"),
                           default=[library_default(make_synthetic_corpus, f"{split}_utterances")
                                    for split in ("train", "dev", "test")], help="split sizes")
    synthetic.add_argument("--digit-share", type=fraction,
                           default=library_default(make_synthetic_corpus, "digit_share"),
                           help="share of digit strings among the texts (1: connected digits only)")
    synthetic.add_argument("--extra-voices", action="store_true",
                           help="train on 30 more eSpeak voices (40 in all)")
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
    table.add_argument("--audio-column", default=library_default(import_csv, "audio_column"),
                       help="column of audio paths")
    table.add_argument("--text-column", default=library_default(import_csv, "text_column"),
                       help="column of transcripts")
    table.add_argument("--speaker-column")
    table.add_argument("--id-column")
    table.set_defaults(handler=_prepare_csv)

    _add_prepare_features(commands)


def _prepare_fsdd(args) -> int:
    for split, path in prepare_fsdd(args.source, args.out, seed=args.seed).items():
        print(f"{split}: {path}")
    return EXIT_OK


def _prepare_synthetic(args) -> int:
    train, dev, test = args.utterances
    voices = TRAIN_VOICES + (EXTRA_VOICES if args.extra_voices else ())
    for split, path in make_synthetic_corpus(args.out, train_utterances=train, dev_utterances=dev,
                                             test_utterances=test, digit_share=args.digit_share,
                                             voices=voices, seed=args.seed).items():
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
    print(import_csv(args.table, args.manifest, audio_column=args.audio_column,
                     text_column=args.text_column, speaker_column=args.speaker_column,
                     id_column=args.id_column))
    return EXIT_OK


def _add_prepare_features(commands) -> None:
    store = commands.add_parser(
        "prepare-features", help="write a manifest's features into a sharded store for training",
        description="Extracts the features of --manifest, at each of the config's "
                    "augment.speed_factors (default 1.0), and augment.corrupted_copies copies of "
                    "each corrupted as its augment section says (drawn with train.seed), "
                    "into TFRecord shards with an index; "
                    "several processes at once; running it again finishes a killed build. "
                    "Train from it with data.train_store=STORE.")
    add_config_arguments(store)
    store.add_argument("--manifest", required=True, type=Path)
    store.add_argument("--out", required=True, type=Path, help="store folder")
    # build_store imports TensorFlow: its default is left to it rather than read here.
    store.add_argument("--shard-size", type=count, help="utterances per shard (default: build_store's)")
    store.add_argument("--jobs", type=count, help="processes (default: all cores)")
    store.set_defaults(handler=_prepare_features)


def _prepare_features(args) -> int:
    from asr.config import load_config

    config = load_config(args.config, args.overrides)
    start_tensorflow(args)
    from asr.training.store import build_store  # imports TensorFlow

    sizing = {} if args.shard_size is None else {"shard_size": args.shard_size}
    summary = build_store(args.manifest, args.out, config.features,
                          speeds=config.augment.speed_factors or (1.0,), jobs=args.jobs,
                          augmentation=config.augment, seed=config.train.seed, **sizing)
    copies = f" x (clean + {summary['copies']} corrupted)" if summary["copies"] else ""
    print(f"{args.out}: {summary['utterances']} utterances x {len(summary['speeds'])} speed(s)"
          f"{copies} in {summary['shards']} shard(s); "
          f"dropped {summary['dropped'] or 'none'}")
    return EXIT_OK
