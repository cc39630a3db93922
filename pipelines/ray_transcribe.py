"""`asr transcribe` spread over a Ray cluster: the same inputs, outputs, resume and exit codes.

    python -m pipelines.ray_transcribe recordings/ --model model.keras --output-dir out/ --workers 2
    ray job submit --address http://HEAD:8265 -- python -m pipelines.ray_transcribe \\
        /data/archive.jsonl --model /data/model.keras --output-dir /data/out --workers 64

The driver expands the inputs (`asr.transcription.inputs`) and asks
`asr.transcription.writers.TranscriptWriter` which files still need transcribing. Ray
Data streams those paths, `--files-per-batch` at a time, to `--workers` actors: each
loads the model (and LM) once, transcribes its batches with `asr.transcribe` (which
sorts a batch by length, batches similar lengths and cuts long files at pauses) and
writes each file's outputs itself, atomically. Only one small row per file comes back to
the driver, which keeps the summaries (`transcripts.jsonl`, `failures.jsonl`) as
`asr transcribe` does, so a rerun, or a run restarted after being killed, skips what is done.
A batch whose worker process keeps dying is retried file by file, and only the file that
kills it fails.

Workers read the audio and write the outputs at the paths the driver sees: on a
cluster, inputs, model and output folder live on a file system every node mounts
at the same path.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from asr.cli import add_transcribe_arguments, decoder_config
from asr.decoding.decoder_config import DecoderConfig
from asr.errors import EXIT_FAILED, EXIT_OK, UsageError, exit_status
from asr.transcription.chunking import MAX_SECONDS
from asr.transcription.inputs import expand_inputs
from asr.transcription.transcribe import BATCH_SIZE, Transcript
from asr.transcription.writers import TranscriptWriter, parse_formats, write_outputs


class Transcriber:
    """One Ray actor: the model and decoder, loaded once, transcribing batch after batch.

    A batch is {"path": (files,), "stem": (files,)}, `stem` being the file's outputs'
    path without extension; returns {"path", "text", "duration", "error"}, one row
    per file ("" for the text of a failure and the error of a success).
    """

    def __init__(self, model: str, decoder: DecoderConfig, formats: tuple[str, ...], *, batch_size: int,
                 chunk_seconds: float | None, file_timeout: float | None, threads: int, cwd: str):
        if os.path.isdir(cwd):  # relative input paths mean what they meant to the driver
            os.chdir(cwd)
        import tensorflow as tf

        from asr.model import load_model

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        self.model = load_model(model)
        self.decoder = decoder  # keeps its LM once loaded (DecoderConfig.language_model)
        self.formats = formats
        self.options = {"batch_size": batch_size, "chunk_seconds": chunk_seconds,
                        "file_timeout": file_timeout}

    def __call__(self, batch: dict) -> dict[str, list]:
        from asr.transcription.transcribe import transcribe

        stems = {str(path): Path(stem) for path, stem in zip(batch["path"], batch["stem"])}
        rows = {"path": [], "text": [], "duration": [], "error": []}
        for transcript in transcribe(list(stems), self.model, decoder=self.decoder, **self.options):
            if transcript.ok:
                write_outputs(transcript, stems[transcript.path], self.formats)
            rows["path"].append(transcript.path)
            rows["text"].append(transcript.text or "")
            rows["duration"].append(transcript.duration or 0.0)
            rows["error"].append(transcript.error or "")
        return rows


# A batch whose worker process dies (a file that crashes a native decoder, memory run out) is
# retried on a restarted worker this many times; then its files are tried one per batch, so that
# only the file that kills its worker fails.
TASK_RETRIES = 2


def transcribe_on_ray(paths: list[str], stems: list[Path], model: Path, decoder: DecoderConfig,
                      formats: tuple[str, ...], *, workers: int, files_per_batch: int,
                      cpus_per_worker: float | None = None, batch_size: int = BATCH_SIZE,
                      chunk_seconds: float | None = MAX_SECONDS, file_timeout: float | None = None,
                      task_retries: int = TASK_RETRIES, quiet: bool = True):
    """Yield a `Transcript` (without words) for each path, in the order they finish.

    Needs `ray.init()` done. Each file's per-file outputs are written, by a worker, to
    its `stem` + '.txt' etc. before its transcript is yielded. Every path gets one
    transcript, a failure when its worker died on it `task_retries` + 1 times.
    """
    import ray

    if workers < 1 or files_per_batch < 1:
        raise UsageError(f"workers ({workers}) and files per batch ({files_per_batch}) must be positive")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not quiet
    context.print_on_execution_start = not quiet
    context.max_errored_blocks = -1  # a failed batch is logged (its traceback too) and retried below
    if cpus_per_worker is None:  # the cluster's CPUs shared out; TensorFlow uses as many threads
        cpus_per_worker = max(1.0, ray.cluster_resources().get("CPU", 1.0) // workers)
    options = {"batch_size": batch_size, "chunk_seconds": chunk_seconds, "file_timeout": file_timeout,
               "threads": max(1, int(cpus_per_worker)), "cwd": os.getcwd()}
    pending = dict(zip(paths, map(str, stems)))
    while pending:
        for transcript in _transcribe_batches(pending, (str(model.resolve()), decoder, formats), options,
                                              workers, files_per_batch, cpus_per_worker, task_retries):
            del pending[transcript.path]
            yield transcript
        if files_per_batch == 1:
            break
        files_per_batch = 1  # what is left was in a batch whose worker kept dying
    for path in pending:
        yield Transcript(path, error=f"{path}: the worker transcribing it died or failed "
                                     f"(tries: {task_retries + 1})")


def _transcribe_batches(stems: dict[str, str], arguments: tuple, options: dict, workers: int,
                        files_per_batch: int, cpus_per_worker: float, task_retries: int):
    """Transcripts of the files in `stems` (path -> outputs' stem) that their workers return."""
    import ray

    rows = [{"path": path, "stem": stem} for path, stem in stems.items()]
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // files_per_batch)))
    # One batch at a time per worker: a worker that dies takes only its own batch with it.
    pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    results = dataset.map_batches(
        Transcriber, batch_size=files_per_batch, compute=pool, num_cpus=cpus_per_worker,
        max_task_retries=task_retries,
        fn_constructor_args=arguments, fn_constructor_kwargs=options)
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        columns = (batch[name] for name in ("path", "text", "duration", "error"))
        for path, text, duration, error in zip(*columns):
            if error:
                yield Transcript(str(path), error=str(error))
            else:
                yield Transcript(str(path), text=str(text), duration=float(duration))


def run(args: argparse.Namespace) -> int:
    """Transcribe what `args` name; returns the exit code."""
    formats = parse_formats(args.format)
    decoder = decoder_config(args)
    for path, what in ((args.model, "model"), (decoder.lm_path, "language model")):
        if path and not Path(path).is_file():  # found here, before any worker starts
            raise UsageError(f"{path}: no such {what} file")
    paths = expand_inputs(args.inputs)
    if not paths:
        raise UsageError(f"no audio files in {' '.join(args.inputs)}")
    done = 0
    with TranscriptWriter(args.output_dir, paths, formats, overwrite=args.overwrite) as writer:
        if writer.pending:  # nothing to do: do not start Ray
            _start_ray(args)
            stems = [writer.output_dir.resolve() / writer.stems[path] for path in writer.pending]
            results = transcribe_on_ray(
                writer.pending, stems, args.model, decoder, formats, workers=args.workers,
                files_per_batch=args.files_per_batch, cpus_per_worker=args.cpus_per_worker,
                batch_size=args.batch_size, chunk_seconds=args.chunk_seconds,
                file_timeout=args.file_timeout, task_retries=args.task_retries,
                quiet=args.quiet or not sys.stderr.isatty())
            for result in results:
                writer.record(result)
                if result.ok:
                    done += 1
                else:
                    print(f"asr: error: {result.error}", file=sys.stderr)
    print(f"{done} transcribed, {writer.skipped} already done, "
          f"{len(writer.failed)} failed -> {args.output_dir}")
    return EXIT_FAILED if writer.failed else EXIT_OK


def _start_ray(args) -> None:
    import ray

    environment = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    ray.init(address=args.address, runtime_env={**environment, **(args.runtime_env or {})},
             include_dashboard=False, logging_level="INFO" if args.verbose else "ERROR",
             log_to_driver=args.verbose)
    logging.getLogger("ray.data").setLevel(logging.INFO if args.verbose else logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ray_transcribe", description=__doc__.splitlines()[0],
        epilog="Exit status: 0 all done, 1 some files failed, 2 usage error.")
    add_transcribe_arguments(parser)
    cluster = parser.add_argument_group("Ray")
    cluster.add_argument("--workers", type=_positive, default=1,
                         help="actors, each holding the model (default 1)")
    cluster.add_argument("--cpus-per-worker", type=float,
                         help="CPUs each actor reserves and TensorFlow threads it runs "
                              "(default: the cluster's CPUs / --workers)")
    cluster.add_argument("--files-per-batch", type=_positive, default=256,
                         help="files an actor takes at a time, sorted by length within (default 256)")
    cluster.add_argument("--task-retries", type=_whole_number, default=TASK_RETRIES,
                         help="times a batch whose worker process died is retried on a restarted one; "
                              "then its files are retried one by one, and only those that kill "
                              f"their worker fail (default {TASK_RETRIES})")
    cluster.add_argument("--address", help="Ray cluster to join, e.g. ray://HEAD:10001 "
                                           "(default: $RAY_ADDRESS, or a local Ray started here)")
    cluster.add_argument("--runtime-env", type=json.loads, metavar="JSON",
                         help='Ray runtime environment for the workers, e.g. \'{"pip": ["asr[ray]"]}\'')
    cluster.add_argument("-v", "--verbose", action="store_true", help="show the workers' logs")
    return parser


def _whole_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if _whole_number(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
