"""Exported models against the Keras path: size, load time, RTF, and transcript parity.

    python scripts/bench_export.py --model work/fsdd-run/model/model.keras \\
        --manifest work/fsdd/test.jsonl --output work/bench-export

Exports the model as SavedModel, TFLite (float and int8 weights) and ONNX, then
transcribes the manifest with each and with `asr.transcribe` (greedy), all in
this run. RTF is processing seconds / audio seconds, timed after loading and a
warm-up call; every system reads and resamples each file itself within the
timing. Exported graphs get batches of `--batch-size` files sorted by length,
as `asr.transcribe` does, except TFLite, which takes one file per call.
Parity: the share of files whose transcript is identical to the Keras path's
(target >= 99%), and both WERs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from asr import audio  # noqa: E402
from asr.data import pad  # noqa: E402
from asr.evaluation.metrics import error_rates  # noqa: E402
from asr.export import export, load_exported, texts  # noqa: E402
from bench_set import read_benchmark_set  # noqa: E402  (scripts/ is on sys.path)

VARIANTS = {"saved_model": ("saved_model", False), "tflite": ("tflite", False),
            "tflite-int8": ("tflite", True), "onnx": ("onnx", False)}


def run_keras(model_path: Path, paths: list[str], batch_size: int):
    """(hypothesis per path, load seconds, transcription seconds) of `asr.transcribe`."""
    from asr.model import load_model
    from asr.transcription.transcribe import transcribe

    started = time.perf_counter()
    model = load_model(model_path)
    loaded = time.perf_counter()
    list(transcribe(paths[:1], model))  # traces the model once
    ready = time.perf_counter()
    hypotheses = {t.path: t.text or "" for t in transcribe(paths, model, batch_size=batch_size)}
    return hypotheses, loaded - started, time.perf_counter() - ready


def run_exported(path: Path, paths: list[str], batch_size: int):
    """(hypothesis per path, load seconds, transcription seconds) of an exported model."""
    started = time.perf_counter()
    run = load_exported(path)
    loaded = time.perf_counter()
    run(*pad([audio.load_audio(paths[0])], np.float32))  # warm-up
    ready = time.perf_counter()
    ordered = sorted(paths, key=audio.duration)
    hypotheses = {}
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start:start + batch_size]
        outputs = run(*pad([audio.load_audio(p) for p in batch], np.float32))
        hypotheses.update(zip(batch, texts(outputs)))
    return hypotheses, loaded - started, time.perf_counter() - ready


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/fsdd-run/model/model.keras"))
    parser.add_argument("--manifest", type=Path, default=Path("work/fsdd/test.jsonl"))
    parser.add_argument("--output", type=Path, default=Path("work/bench-export"))
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    bench = read_benchmark_set(args.manifest)
    paths, references, seconds = bench.paths, bench.references, bench.seconds

    keras_hypotheses, load, elapsed = run_keras(args.model, paths, args.batch_size)
    keras_wer = error_rates(references, [keras_hypotheses[p] for p in paths])["wer"]
    results = {"keras": {"bytes": args.model.stat().st_size, "load_seconds": load, "rtf": elapsed / seconds,
                         "wer": keras_wer, "agreement": 1.0}}
    for name in args.variants.split(","):
        format, quantize = VARIANTS[name]
        started = time.perf_counter()
        exported = export(args.model, _fresh(args.output / name), format, quantize=quantize)
        export_seconds = time.perf_counter() - started
        batch_size = 1 if format == "tflite" else args.batch_size
        hypotheses, load, elapsed = run_exported(exported.path, paths, batch_size)
        same = sum(hypotheses[p] == keras_hypotheses[p] for p in paths)
        results[name] = {"bytes": exported.bytes, "load_seconds": load, "rtf": elapsed / seconds,
                         "wer": error_rates(references, [hypotheses[p] for p in paths])["wer"],
                         "agreement": same / len(paths), "export_seconds": export_seconds}
    print(f"{'':>12} {'MB':>6} {'load s':>7} {'RTF':>7} {'x Keras':>8} {'WER':>7} {'same text':>9}")
    for name, result in results.items():
        print(f"{name:>12} {result['bytes'] / 1e6:6.2f} {result['load_seconds']:7.2f} {result['rtf']:7.4f} "
              f"{results['keras']['rtf'] / result['rtf']:7.2f}x {result['wer']:7.2%} "
              f"{result['agreement']:9.1%}")
    print(json.dumps(results))


def _fresh(folder: Path) -> Path:
    """An empty output folder (SavedModel export refuses a non-empty one)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return folder


if __name__ == "__main__":
    main()
