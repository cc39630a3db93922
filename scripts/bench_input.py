"""Is the input pipeline out of the way? Three figures, each with its target.

* padding: the fraction of computed frames that are padding, length-bucketed
  batches against plain `padded_batch` over the same shuffled order (target ≤ 0.5×);
* feature cache: feeding an epoch whose features are in the on-disk cache,
  against the first epoch that computes and writes them, both reading their
  files from the disk (target ≥ 5× faster);
* training step: through `sampled_dataset` with the config's augmentation on,
  as the recipe trains, against the same batches already held in memory
  (target ≤ 1.05×). With `augment.corrupted_copies`, the loader reads a store of
  the utterances and their corrupted copies (built first, and timed), from its
  files every time; the step with corruptions drawn afresh by the loader (clean
  features warm in memory, corrupted ones computed) is shown for comparison.
  Pipeline and in-memory steps alternate in one process, each first in turn, so
  load from other processes hits both alike; a pipeline step counts the wait for
  its batch, and the two sets' total times are compared: what the pipeline adds
  to a training run. The wait is also shown: on a CPU-only machine most of
  the difference is the loader competing with the step for cores, so the cores
  the in-memory step keeps busy and the CPU time the loader takes for a batch,
  alone on one thread, are shown too, and so is a step whose batches were all
  loaded beforehand: the pipeline's own cost.

Uses the FSDD training manifest when it is there, else synthesised tones.

    python scripts/bench_input.py                        # work/fsdd/train.jsonl, 512 utterances
    python scripts/bench_input.py --utterances 96 --repeats 2
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the log level, which TensorFlow reads at import)
import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from asr.config import load_config  # noqa: E402
from asr.data import BatchSampler, UtteranceLoader, filter_utterances, sampled_dataset  # noqa: E402
from asr.manifest import Utterance, read_manifest, write_manifest  # noqa: E402
from asr.model import build_model  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.training.store import build_store  # noqa: E402
from asr.training.store_loader import StoreLoader  # noqa: E402
from asr.training.train import configure_process  # noqa: E402

FSDD = Path("work/fsdd/train.jsonl")


def synthetic_utterances(folder: Path, count: int, seed: int = 0) -> list[Utterance]:
    """Noisy tones of 0.5-6 s, each 'transcribed' with one word per second."""
    rng = np.random.default_rng(seed)
    utterances = []
    for index in range(count):
        seconds = float(rng.uniform(0.5, 6.0))
        instants = np.arange(int(seconds * 16000)) / 16000
        samples = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * instants)
        samples += 0.01 * rng.standard_normal(samples.size)
        path = folder / f"{index:05d}.wav"
        soundfile.write(path, samples.astype(np.float32), 16000)
        utterances.append(Utterance(str(path), seconds, " ".join(["five"] * max(1, int(seconds)))))
    return utterances


def padded_fraction(plan) -> float:
    """Padding frames / all frames computed, over a planned epoch."""
    real = sum(int(batch.frames.sum()) for batch in plan)
    computed = sum(int(batch.frames.max()) * len(batch.frames) for batch in plan)
    return 1 - real / computed


def feeding_seconds(dataset) -> float:
    started = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - started


def step_seconds(model, pipeline, in_memory) -> dict[str, list[float]]:
    """One epoch: a step on the pipeline's next batch and one on the same batch in memory,
    each going first in turn: the second of two steps on the same shapes ran 0.5-2% faster
    (the same batch in memory stepped twice, 2026-12-07), which favoured the in-memory step.

    "wait" is the part of each pipeline step spent waiting for its batch; the
    rest of the difference is CPU the loader's threads take from the step.
    """
    timings = {"pipeline": [], "memory": [], "wait": []}
    batches = iter(pipeline)

    def pipeline_step():
        started = time.perf_counter()
        batch = next(batches)
        timings["wait"].append(time.perf_counter() - started)
        model.train_on_batch(*batch)
        timings["pipeline"].append(time.perf_counter() - started)

    def memory_step(inputs, targets):
        started = time.perf_counter()
        model.train_on_batch(inputs, targets)
        timings["memory"].append(time.perf_counter() - started)

    for number, (inputs, targets) in enumerate(in_memory):
        if number % 2:
            memory_step(inputs, targets)
            pipeline_step()
        else:
            pipeline_step()
            memory_step(inputs, targets)
    return timings


def busy_cores(model, in_memory) -> float:
    """Cores the in-memory step keeps busy (process CPU time / wall time over one pass), nothing
    else loading: what is left of the machine is all a loader can have without slowing the step."""
    started, cpu = time.perf_counter(), time.process_time()
    for inputs, targets in in_memory:
        model.train_on_batch(inputs, targets)
    return (time.process_time() - cpu) / (time.perf_counter() - started)


def loading_seconds(loader, plan) -> list[float]:
    """CPU seconds of this thread that `loader` takes to load each planned batch."""
    seconds = []
    for batch in plan:
        started = time.thread_time()
        loader.batch(batch.indices, batch.speeds, batch.seed)
        seconds.append(time.thread_time() - started)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/fsdd.yaml"))
    parser.add_argument("--manifest", type=Path, default=FSDD)
    parser.add_argument("--utterances", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    configure_process(config.train)  # threads and allocator as training runs the step
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.manifest.is_file():
            utterances, source = read_manifest(args.manifest)[:args.utterances], str(args.manifest)
        else:
            utterances, source = synthetic_utterances(scratch, args.utterances), "synthetic tones"
        utterances, _ = filter_utterances(utterances, Vocabulary(), config.features,
                                          config.model.subsampling)
        print(f"{len(utterances)} utterances from {source}, batch {config.train.batch_size}, "
              f"intra-op threads {config.train.intra_op_threads or 'all'}")
        padding(config, utterances)
        feature_cache(config, utterances, scratch / "cache")
        training_steps(config, utterances, scratch, args.repeats)
    return 0


def shuffled_sampler(config, utterances, **options) -> BatchSampler:
    """The training run's sampler over `utterances` (batch size, buckets, seed), `options` overriding."""
    options = {"bucket_boundaries": config.train.bucket_boundaries, **options}
    return BatchSampler([u.duration for u in utterances], config.features, config.train.batch_size,
                        shuffle=True, seed=config.train.seed, **options)


def padding(config, utterances) -> None:
    """Report the padding fraction of length-bucketed batches against plain ones."""
    plain = padded_fraction(shuffled_sampler(config, utterances, bucket_boundaries=()).plan(0))
    bucketed = padded_fraction(shuffled_sampler(config, utterances).plan(0))
    report("padding fraction, bucketed / padded_batch", bucketed / plain, "<=", 0.5,
           f"{bucketed:.1%} vs {plain:.1%}")


def feature_cache(config, utterances, folder: Path) -> None:
    """Report an epoch fed from the on-disk feature cache against the one that writes it, each
    reading its files from the disk, not the OS's page cache: as a corpus larger than memory is
    read (with the audio left in the page cache the figure was 4.45x, read cold 74x, 2026-12-07)."""
    def epoch_seconds(files):  # a new run each time, with the same cache folder
        evict(files)
        loader = UtteranceLoader(utterances, Vocabulary(), config.features, memory_bytes=0,
                                 cache_dir=folder)
        return feeding_seconds(sampled_dataset(shuffled_sampler(config, utterances), loader))

    first = epoch_seconds([Path(u.audio_filepath) for u in utterances])
    cached = epoch_seconds([path for path in folder.rglob("*") if path.is_file()])
    report("feeding an epoch, first / cached", first / cached, ">=", 5.0,
           f"{first:.2f} s vs {cached:.2f} s, files read from the disk")


def evict(paths) -> None:
    """Write `paths` out and drop them from the OS's page cache (Linux; elsewhere nothing)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # dirty pages are not dropped
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def training_steps(config, utterances, scratch: Path, repeats: int) -> None:
    """Report the training step through the recipe's loader against the step in memory."""
    vocabulary, features = Vocabulary(), config.features
    augmented = shuffled_sampler(config, utterances, speed_factors=config.augment.speed_factors)
    model = build_model(vocabulary, features, config.model)
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
    afresh = UtteranceLoader(utterances, vocabulary, features, memory_bytes=2**40,
                             speed_factors=config.augment.speed_factors,
                             augmentation=replace(config.augment, corrupted_copies=0))
    loaders = {"corruptions drawn afresh": afresh}
    if config.augment.corrupted_copies:  # the recipe's way, last: the target is its
        loaders["corrupted copies read from a store"] = stored_loader(config, utterances, scratch / "store")
    for number, (name, training_loader) in enumerate(loaders.items(), 1):
        ratio, detail = step_ratio(model, augmented, training_loader, config, repeats)
        if number == len(loaders):
            report(f"training step, {name}", ratio, "<=", 1.05, detail)
        else:
            print(f"{'training step, ' + name:48s} {ratio:6.2f}x  (for comparison)  {detail}")
        loading = statistics.median(loading_seconds(training_loader, augmented.plan(0)))
        print(f"{'  loader CPU per batch, alone':48s} {loading * 1e3:6.1f} ms")
    prepared = PreparedBatches(training_loader, augmented.plan(0))
    ratio, detail = step_ratio(model, augmented, prepared, config, repeats)
    print(f"{'training step, batches loaded beforehand':48s} {ratio:6.2f}x  (the pipeline's "
          f"own cost, for comparison)  {detail}")


class PreparedBatches:
    """A loader whose batches of `plan` were all loaded before timing: what a step through
    `sampled_dataset` then costs beyond one in memory is the pipeline's own (tf.data's
    threads, `numpy_function`, SpecAugment)."""

    def __init__(self, loader, plan):
        self.feature_config = loader.feature_config
        self.batches = {(tuple(batch.indices), tuple(batch.seed)):
                        loader.batch(batch.indices, batch.speeds, batch.seed) for batch in plan}

    def batch(self, indices, speeds, seed):
        return self.batches[tuple(indices), tuple(seed)]


def stored_loader(config, utterances, folder: Path) -> StoreLoader:
    """A store of `utterances` with the config's corrupted copies, built here (and timed), and
    a loader reading every record from its files, as a corpus larger than memory is read."""
    audio = folder / "audio"  # beside the store's manifest: its paths may not leave its folder
    audio.mkdir(parents=True)
    copies = [replace(u, audio_filepath=shutil.copy(u.audio_filepath, audio / f"{n:05d}.wav"))
              for n, u in enumerate(utterances)]
    write_manifest(copies, folder / "train.jsonl")
    started = time.perf_counter()
    build_store(folder / "train.jsonl", folder / "store", config.features,
                speeds=config.augment.speed_factors or (1.0,), augmentation=config.augment,
                seed=config.train.seed)
    print(f"{'store of ' + str(config.augment.corrupted_copies) + ' corrupted copies, built':48s} "
          f"{time.perf_counter() - started:6.1f} s  (once, before training, on {os.cpu_count()} cores)")
    return StoreLoader(folder / "store", Vocabulary(), config.features, memory_bytes=0,
                       speed_factors=config.augment.speed_factors, augmentation=config.augment)


def step_ratio(model, sampler, loader, config, repeats: int) -> tuple[float, str]:
    """Total pipeline step time / total in-memory step time over `repeats` epochs, with its figures.

    Totals, not medians: step times cluster by batch length, and the two sets' medians could fall
    in different clusters (the same code measured 1.04-1.26x as a ratio of medians, 1.05-1.08x as
    one of totals, 2026-12-07). Each epoch's own ratio is shown too, as the run-to-run spread.
    """
    pipeline = sampled_dataset(sampler, loader, config.augment)
    in_memory = list(pipeline)  # also warms the loader's memory cache
    step_seconds(model, pipeline, in_memory)  # traces the step for the shapes it meets
    timings, epochs = collections.defaultdict(list), []
    for _ in range(repeats):
        epoch = step_seconds(model, pipeline, in_memory)
        epochs.append(sum(epoch["pipeline"]) / sum(epoch["memory"]))
        for name, seconds in epoch.items():
            timings[name] += seconds
    pipeline_total, memory_total = sum(timings["pipeline"]), sum(timings["memory"])
    wait = statistics.median(timings["wait"])
    cores = busy_cores(model, in_memory)  # the pipeline's epochs are done: its threads are idle
    return pipeline_total / memory_total, (
        f"{pipeline_total:.1f} s vs {memory_total:.1f} s over {len(timings['memory'])} steps, "
        f"epochs {min(epochs):.2f}-{max(epochs):.2f}x (a median {wait * 1e3:.1f} ms of a step "
        f"waiting for its batch; the in-memory step keeps {cores:.2f} of {os.cpu_count()} cores busy)")


def report(name: str, value: float, relation: str, target: float, detail: str) -> None:
    met = value <= target if relation == "<=" else value >= target
    print(f"{name:48s} {value:6.2f}x  (target {relation} {target}x: {'met' if met else 'MISSED'})  "
          f"{detail}")


if __name__ == "__main__":
    raise SystemExit(main())
