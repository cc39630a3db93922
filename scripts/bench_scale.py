"""Does training stay flat as the corpus grows? Corpora of 2,000, 20,000 and 100,000 utterances.

The 2,000-utterance corpus is the head of the FSDD training manifest, its features
built into a store (`asr.training.store.build_store`, three speeds). The larger corpora are
that store repeated: their index has 10x and 50x the rows, new ids, and points at
the same shard files, so they cost no extraction and no disk (and their reads come
from the page cache, as the smaller one's do). Each size trains 300 steps of a
small model from its store in a fresh process (the 2k corpus repeats its
129-batch epoch), three rounds in turn (2k, 20k, 100k, 2k, ...), since one
process's step time varied by 10-20% from run to run; per size, the median over
rounds of:

* peak RSS (target: 100k <= 1.2x 2k),
* median ms per step after the first 50 (TensorFlow's kernels warm up to each
  new padded length; target: within 10% of 2k),
* seconds from the start of data loading to the end of the first step, against
  the seconds to index the same corpus's manifest (target: grows no faster).

Then the input pipeline alone, in audio hours per second per core (CPU seconds
of this process), from raw audio and from the store, at speed 1.0 and with
speed perturbation (0.9/1.1 computed on the fly vs read as stored entries);
and the time to index a 1M-line manifest and plan its epoch. The last line is
`rss_ratio=<100k/2k> step_ratio=<100k/2k>`. Run it with `nice`:

    nice python scripts/bench_scale.py --manifest /work/base/fsdd/data/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from asr.config import FeatureConfig, load_config  # noqa: E402
from asr.manifest import read_manifest, write_manifest  # noqa: E402
from asr.manifest_index import ManifestIndex  # noqa: E402

SIZES = (2_000, 20_000, 100_000)
SPEEDS = (0.9, 1.0, 1.1)
WARM_UP_STEPS = 50
MODEL = ("model.conv_channels=8", "model.lstm_units=32", "model.lstm_layers=1", "model.dropout=0.0",
         "features.n_mels=40", "train.batch_size=16", "train.bucket_boundaries=[1,2,3,4]")


def replicate(source: Path, folder: Path, times: int, manifest: Path) -> None:
    """A store (and manifest) of `times` copies of `source`'s utterances, sharing its shards."""
    folder.mkdir(parents=True)
    for shard in source.glob("shard-*.tfrecord"):
        (folder / shard.name).symlink_to(shard.resolve())
    index = np.load(source / "index.npy")
    width = index.dtype["id"].itemsize + 6
    copies = np.tile(index.astype([("id", f"S{width}"), *index.dtype.descr[1:]]), times)
    copy_number = np.repeat(np.arange(times), len(index))
    copies["id"] = [b"%s-%d" % (key, n) for key, n in zip(copies["id"], copy_number)]
    copies["position"] += copy_number * (index["position"].max() + 1)
    np.save(folder / "index.npy", copies)
    settings = json.loads((source / "store.json").read_text())
    settings.update(entries=len(copies), utterances=settings["utterances"] * times)
    (folder / "store.json").write_text(json.dumps(settings))
    lines = (source / "manifest.jsonl").read_text().splitlines()
    manifest.write_text("".join(f"{line}\n" for _ in range(times) for line in lines))


def train_steps(store: Path, dev: Path, steps: int) -> dict:
    """In this process: `steps` training steps from `store`; RSS, step times, first-step delay."""
    import keras

    from asr.data import BatchSampler, sampled_dataset
    from asr.model import build_model
    from asr.text import Vocabulary
    from asr.training.store_loader import StoreLoader

    # No memory cache: the 2k corpus would fit it and the larger ones not, so every size
    # reads the store and the ratios compare like with like.
    config = load_config(None, [*MODEL, f"augment.speed_factors={list(SPEEDS)}",
                                f"data.dev_manifest={dev}", "train.memory_cache_mb=0"])
    started = time.perf_counter()
    loader = StoreLoader(store, Vocabulary(), config.features, speed_factors=SPEEDS,
                         subsampling=config.model.subsampling, max_duration=20.0,
                         memory_bytes=config.train.memory_cache_bytes)
    sampler = BatchSampler(loader.durations, config.features, config.train.batch_size,
                           shuffle=True, bucket_boundaries=config.train.bucket_boundaries,
                           speed_factors=SPEEDS)
    model = build_model(Vocabulary(), config.features, config.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    ends = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    model.fit(sampled_dataset(sampler, loader, config.augment).repeat(), epochs=1,
              steps_per_epoch=steps, verbose=0, callbacks=[timer])
    steps_ms = np.diff(ends[WARM_UP_STEPS:]) * 1e3
    return {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ms_per_step": float(np.median(steps_ms)), "first_step_s": ends[0] - started,
            "planned_batches": len(sampler)}


def input_rate(loader, speeds, batches: int = 40) -> float:
    """Audio hours per CPU-second loading `batches` planned batches (no model)."""
    from asr.data import BatchSampler

    sampler = BatchSampler(loader.durations, loader.feature_config, 16, shuffle=True,
                           speed_factors=speeds, bucket_boundaries=(1, 2, 3, 4))
    plan = sampler.plan(0)[:batches]
    before = os.times()
    for batch in plan:
        loader.batch(batch.indices, batch.speeds)
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    seconds = float(loader.durations[np.concatenate([b.indices for b in plan])].sum())
    return seconds / 3600 / cpu


def input_pipeline(store: Path, manifest: Path) -> dict[str, float]:
    from asr.data import UtteranceLoader
    from asr.text import Vocabulary
    from asr.training.store_loader import StoreLoader

    features = load_config(None, MODEL).features
    utterances = read_manifest(manifest)
    rates = {}
    for label, speeds in (("speed 1.0", (1.0,)), ("speeds 0.9/1.0/1.1", SPEEDS)):
        raw = UtteranceLoader(utterances, Vocabulary(), features, memory_bytes=0)
        stored = StoreLoader(store, Vocabulary(), features, speed_factors=speeds, memory_bytes=0)
        rates[f"raw audio, {label}"] = input_rate(raw, speeds)
        rates[f"store, {label}"] = input_rate(stored, speeds)
    return rates


def million(folder: Path, line: str) -> tuple[float, float]:
    """Seconds to index a 1M-line manifest, and to plan one epoch of it."""
    from asr.data import BatchSampler

    path = folder / "million.jsonl"
    path.write_text(line * 1_000_000)
    started = time.perf_counter()
    index = ManifestIndex(path)
    indexed = time.perf_counter() - started
    sampler = BatchSampler(index.durations, FeatureConfig(), 32, shuffle=True,
                           bucket_boundaries=(1, 2, 3, 4, 6, 8, 12), speed_factors=SPEEDS)
    started = time.perf_counter()
    sampler.plan(0)
    path.unlink()
    return indexed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("/work/base/fsdd/data/train.jsonl"))
    parser.add_argument("--dev", type=Path, default=Path("/work/base/fsdd/data/dev.jsonl"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("work/bench_scale"))
    parser.add_argument("--child", nargs=2, metavar=("STORE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_steps(Path(args.child[0]), args.dev, int(args.child[1]))))
        return
    from asr.training.store import build_store

    work = args.work  # kept: a second run reuses its store and audio
    for folder in work.glob("store-*0000"):  # the replicated stores are rebuilt
        shutil.rmtree(folder)
    (work / "audio").mkdir(parents=True, exist_ok=True)  # a manifest's audio lies in its folder
    head = [replace(u, audio_filepath=shutil.copy(u.audio_filepath, work / "audio"))
            for u in read_manifest(args.manifest)[:SIZES[0]]]
    write_manifest(head, work / "2000.jsonl")
    reused = (work / "store-2000" / "index.npy").exists()  # the build resumes: nothing left to do
    started = time.perf_counter()
    build_store(work / "2000.jsonl", work / "store-2000", load_config(None, MODEL).features,
                speeds=SPEEDS, jobs=args.jobs)
    built = time.perf_counter() - started
    shutil.copy(work / "2000.jsonl", work / "store-2000" / "manifest.jsonl")
    audio_hours = sum(u.duration for u in head) / 3600
    store_bytes = sum(p.stat().st_size for p in (work / "store-2000").iterdir())
    how = "reused from an earlier run" if reused else f"built in {built:.1f} s with {args.jobs} processes"
    print(f"store: {len(head)} utterances ({audio_hours:.2f} h) x {len(SPEEDS)} speeds {how}; "
          f"{store_bytes / 2**20:.1f} MiB "
          f"= {store_bytes / 2**30 / audio_hours / len(SPEEDS):.3f} GiB per audio hour and speed")
    for size in SIZES[1:]:
        replicate(work / "store-2000", work / f"store-{size}", size // SIZES[0], work / f"{size}.jsonl")
    rounds = {size: [] for size in SIZES}
    for _ in range(args.rounds):
        for size in SIZES:
            started = time.perf_counter()
            ManifestIndex(work / f"{size}.jsonl")
            indexing = time.perf_counter() - started
            child = subprocess.run([sys.executable, __file__, "--dev", str(args.dev),
                                    "--child", str(work / f"store-{size}"), str(args.steps)],
                                   capture_output=True, text=True)
            if child.returncode:
                sys.exit(child.stderr[-3000:])
            rounds[size].append({**json.loads(child.stdout.splitlines()[-1]), "index_s": indexing})
    results = {size: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for size, runs in rounds.items()}
    for size, r in results.items():
        each = ", ".join(f"{run['ms_per_step']:.1f}" for run in rounds[size])
        print(f"{size:>7} utterances: peak RSS {r['rss_mb']:.0f} MB, {r['ms_per_step']:.1f} ms/step "
              f"(rounds: {each}), "
              f"first step after {r['first_step_s']:.2f} s (indexing its manifest: "
              f"{r['index_s']:.3f} s; {r['planned_batches']:.0f} batches planned)")
    for name, rate in input_pipeline(work / "store-2000", work / "2000.jsonl").items():
        print(f"input pipeline, {name}: {rate:.3f} audio hours/s/core")
    line = (work / "2000.jsonl").read_text().splitlines()[0] + "\n"
    indexed, planned = million(work, line)
    print(f"1M-line manifest: indexed in {indexed:.2f} s, epoch planned in {planned:.2f} s")
    small, large = results[SIZES[0]], results[SIZES[-1]]
    print(f"2k -> 100k: first step {large['first_step_s'] - small['first_step_s']:+.2f} s "
          f"(x{large['first_step_s'] / small['first_step_s']:.2f}), indexing the manifest "
          f"{large['index_s'] - small['index_s']:+.2f} s (x{large['index_s'] / small['index_s']:.0f})")
    print(f"rss_ratio={large['rss_mb'] / small['rss_mb']:.3f} "
          f"step_ratio={large['ms_per_step'] / small['ms_per_step']:.3f}")


if __name__ == "__main__":
    main()
