"""Throughput of pipelines.ray_transcribe with 1 and 2 local workers against plain `asr transcribe`.

    nice .venv/bin/python scripts/bench_distributed.py --model work/fsdd-run/model/model.keras \
        --manifest work/fsdd/test.jsonl --repeat 8

Every system runs as the command a user types, in a fresh process, on the same files
(the manifest's, `--repeat` times over as hard links, for a longer run), writing txt and
`transcripts.jsonl` to a folder of its own; the transcripts are compared. The Ray runs join
one local Ray cluster that this script starts first, as a cluster is up before jobs are
submitted to it; its start-up is timed and reported apart. Throughput is audio seconds per
wall-clock second of the whole command (Python, TensorFlow, the model, Ray's workers
included). Start-up is also timed apart, on the first file alone, and the steady rate is
audio / (wall - start-up).
Target: at 1 worker, Ray's throughput at most 15% below plain `asr transcribe`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

from asr.manifest import read_manifest

REPOSITORY = Path(__file__).resolve().parents[1]


def link_copies(paths: list[str], folder: Path, repeat: int) -> Path:
    """`repeat` copies of `paths` as hard links (symbolic where that fails) in folder/NN/."""
    for copy in range(repeat):
        (folder / f"{copy:02d}").mkdir(parents=True)
        for path in paths:
            target = folder / f"{copy:02d}" / Path(path).name
            try:
                os.link(path, target)
            except OSError:
                target.symlink_to(os.path.abspath(path))
    return folder


def start_cluster(attempts: int = 3) -> None:
    """A local Ray cluster; Ray gives its node 30 s to start, which a busy machine can miss."""
    # Ray starts its workers 15 steps nicer than itself, harmless on a node of its own; on a
    # shared machine it would hand plain `asr transcribe` a bigger share of the CPUs.
    os.environ["RAY_worker_niceness"] = "0"
    for attempt in range(1, attempts + 1):
        try:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
            return
        except Exception as error:  # Ray raises a bare Exception for a node that timed out
            if "timed out during startup" not in str(error) or attempt == attempts:
                raise
            ray.shutdown()


def timed(command: list[str]) -> float:
    """Wall-clock seconds of a command, which must succeed."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
    return seconds


def transcripts(folder: Path) -> dict[str, str]:
    lines = (folder / "transcripts.jsonl").read_text().splitlines()
    return {record["audio_filepath"]: record["text"] for record in map(json.loads, lines)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/fsdd-run/model/model.keras"))
    parser.add_argument("--manifest", type=Path, default=Path("work/fsdd/test.jsonl"))
    parser.add_argument("--repeat", type=int, default=8, help="copies of the manifest's files")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files-per-batch", type=int, default=256)
    args = parser.parse_args(argv)

    utterances = read_manifest(args.manifest)
    audio_seconds = args.repeat * sum(u.duration for u in utterances)
    model = str(args.model.resolve())
    started = time.perf_counter()
    start_cluster()
    cluster_start = time.perf_counter() - started
    address = ["--address", ray.get_runtime_context().gcs_address]
    plain = [sys.executable, "-m", "asr.cli", "transcribe", "--model", model, "--quiet"]
    systems = {"asr transcribe": plain}
    for workers in args.workers:
        systems[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = [
            sys.executable, "-m", "pipelines.ray_transcribe", "--model", model, "--quiet",
            "--workers", str(workers), "--files-per-batch", str(args.files_per_batch), *address]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        inputs = link_copies([u.audio_filepath for u in utterances], work / "in", args.repeat)
        first = str(next(iter(sorted(inputs.rglob("*.wav")))))
        print(f"{args.repeat} x {len(utterances)} files, {audio_seconds:.0f} s of audio, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
              f"local Ray cluster started in {cluster_start:.1f} s")
        print("| system | start-up s | wall s | audio-s/s | steady audio-s/s |\n|---|---|---|---|---|")
        results, timings = {}, {}
        for name, command in systems.items():
            out = work / name.replace(" ", "").replace(",", "-")
            start_up = timed([*command, first, "--output-dir", str(out / "first")])
            wall = timed([*command, str(inputs), "--output-dir", str(out / "all")])
            results[name] = transcripts(out / "all")
            print(f"| {name} | {start_up:.1f} | {wall:.1f} | {audio_seconds / wall:.0f} | "
                  f"{audio_seconds / max(wall - start_up, 1e-9):.0f} |", flush=True)
            timings[name] = wall
    reference = results["asr transcribe"]
    for name, wall in timings.items():
        same = sum(results[name].get(path) == text for path, text in reference.items())
        print(f"{name}: {timings['asr transcribe'] / wall:.2f}x the throughput of plain asr transcribe, "
              f"{same}/{len(reference)} transcripts the same")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
