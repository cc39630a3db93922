"""Real-time factor and WER of `asr.transcribe` and of PocketSphinx on the same files.

    python scripts/bench_transcribe.py --model work/fsdd-run/model/model.keras \\
        --manifest work/fsdd/test.jsonl --pocketsphinx-hyp work/bench/pocketsphinx.jsonl

RTF is processing seconds / audio seconds, timed after each system is set up
(model load and tracing, or PocketSphinx's initialisation, are reported apart).
Both systems read and resample every file themselves within the timing.
PocketSphinx uses its bundled en-us acoustic model with a JSGF grammar of digit
words, as suits FSDD connected digits; `--pocketsphinx-hyp` writes its
hypotheses as JSONL for `asr evaluate --ref MANIFEST --hyp PATH`.
Targets: RTF <= 0.02, at least 2.5x faster than PocketSphinx, and a lower WER.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from asr import audio  # noqa: E402
from asr.evaluation.metrics import error_rates  # noqa: E402
from asr.text import normalize  # noqa: E402
from bench_set import read_benchmark_set  # noqa: E402  (scripts/ is on sys.path)

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def run_asr(model_path: Path, paths: list[str], batch_size: int) -> tuple[dict[str, str], float, float]:
    """(hypothesis per path, set-up seconds, transcription seconds)."""
    from asr.model import load_model
    from asr.transcription.transcribe import transcribe

    started = time.perf_counter()
    model = load_model(model_path)
    list(transcribe(paths[:1], model))  # traces the model once
    ready = time.perf_counter()
    hypotheses = {t.path: t.text or "" for t in transcribe(paths, model, batch_size=batch_size)}
    return hypotheses, ready - started, time.perf_counter() - ready


def run_pocketsphinx(paths: list[str]) -> tuple[dict[str, str], float, float]:
    """(hypothesis per path, set-up seconds, transcription seconds): en-us model + digit grammar."""
    from pocketsphinx import Decoder

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        grammar = Path(folder) / "digits.gram"
        grammar.write_text(f"#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( {' | '.join(DIGITS)} )+ ;\n")
        decoder = Decoder(jsgf=str(grammar), loglevel="FATAL")
    ready = time.perf_counter()
    hypotheses = {}
    for path in paths:
        samples = audio.load_audio(path, 16000)  # the en-us model is for 16 kHz 16-bit audio
        decoder.start_utt()
        decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        hypotheses[path] = hypothesis.hypstr if hypothesis else ""
    return hypotheses, ready - started, time.perf_counter() - ready


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/fsdd-run/model/model.keras"))
    parser.add_argument("--manifest", type=Path, default=Path("work/fsdd/test.jsonl"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pocketsphinx-hyp", type=Path, help="write PocketSphinx's hypotheses here (JSONL)")
    parser.add_argument("--skip-pocketsphinx", action="store_true")
    args = parser.parse_args(argv)

    bench = read_benchmark_set(args.manifest)
    utterances, paths, references, seconds = bench.utterances, bench.paths, bench.references, bench.seconds

    systems = {"asr": run_asr(args.model, paths, args.batch_size)}
    if not args.skip_pocketsphinx:
        systems["pocketsphinx"] = run_pocketsphinx(paths)
    results = {}
    for name, (hypotheses, setup, elapsed) in systems.items():
        rates = error_rates(references, [normalize(hypotheses[path]) for path in paths])
        results[name] = {"wer": rates["wer"], "rtf": elapsed / seconds, "seconds": elapsed,
                         "setup_seconds": setup}
        print(f"{name:>13}: WER {rates['wer']:6.2%}  RTF {elapsed / seconds:.4f}  "
              f"({elapsed:.1f} s, set-up {setup:.1f} s)")
    if "pocketsphinx" in results:
        ratio = results["pocketsphinx"]["rtf"] / results["asr"]["rtf"]
        print(f"asr is {ratio:.1f}x faster than PocketSphinx")
    if args.pocketsphinx_hyp and "pocketsphinx" in systems:
        args.pocketsphinx_hyp.parent.mkdir(parents=True, exist_ok=True)
        hypotheses = systems["pocketsphinx"][0]
        records = ({"id": u.key, "audio_filepath": u.audio_filepath, "text": hypotheses[u.audio_filepath]}
                   for u in utterances)
        args.pocketsphinx_hyp.write_text("".join(json.dumps(record) + "\n" for record in records))
        print(f"PocketSphinx hypotheses: {args.pocketsphinx_hyp}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
