"""What a training run reads: its training utterances, numbered by corpus, and dev.

Training reads `data.train_store`'s feature stores when set, else
`data.train_manifest`'s manifests: their audio, or with
`augment.corrupted_copies`, stores built from them in the run's `stores/`.
Dev is `data.dev_manifest` pooled with a copy under each of
`data.dev_perturbations`, written to the run's `dev-perturbed/`.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.augment import parse_perturbation, perturbed_utterances
from asr.config import AugmentConfig, ConfigError, DataConfig, ExperimentConfig
from asr.data import UtteranceLoader, filter_utterances
from asr.manifest import ManifestError, Utterance, read_manifest
from asr.text import Vocabulary
from asr.training.store import build_store
from asr.training.store_loader import StoreLoader

log = logging.getLogger(__name__)
DEV_COPIES = "dev-perturbed"  # dev's corrupted copies, per data.dev_perturbations
STORES = "stores"  # the training manifests' feature stores, per augment.corrupted_copies


@dataclass(frozen=True)
class TrainingData:
    loader: UtteranceLoader | StoreLoader  # the training utterances
    corpora: np.ndarray  # (utterances,) corpus number of each, in data.train_weights' order
    dev: list[Utterance]  # shortest first, so that similar lengths batch together
    dropped: dict[str, dict[str, int]]  # utterances filtered out, by split ("train", "dev") and reason


def training_data(config: ExperimentConfig, vocabulary: Vocabulary, run_folder: Path) -> TrainingData:
    """The training loader and dev utterances of `config.data`, stores and dev copies in `run_folder`.

    A bad `data.dev_perturbations` spec fails before any audio is read.
    """
    perturbations = dev_perturbations(config.data)
    sources = train_sources(config.data)
    if not sources or not config.data.dev_manifest:
        raise ConfigError("data.dev_manifest and data.train_manifest (or data.train_store) must be set")
    if config.data.train_store:
        loader, corpora, dropped = _store_loader(config, vocabulary, sources)
    elif config.augment.corrupted_copies:
        stores = _built_stores(config, sources, run_folder / STORES)
        loader, corpora, dropped = _store_loader(config, vocabulary, stores)
    else:
        loader, corpora, dropped = _audio_loader(config, vocabulary, sources)
    dev, dropped_dev = _usable(config, vocabulary, config.data.dev_manifest)
    dev = sorted(dev, key=lambda u: u.duration)  # the order dev's copies are numbered in
    dev = _perturbed_dev(dev, perturbations, run_folder / DEV_COPIES, config.features.sample_rate)
    return TrainingData(loader, corpora, dev, {"train": dropped, "dev": dropped_dev})


def dev_perturbations(data: DataConfig) -> list[tuple[str, AugmentConfig]]:
    """(spec, corruption) for each of data.dev_perturbations."""
    try:
        return [(spec, parse_perturbation(spec)) for spec in data.dev_perturbations]
    except ConfigError as error:
        raise ConfigError(f"data.dev_perturbations: {error}") from None


def train_sources(data: DataConfig) -> tuple[str, ...]:
    """data.train_store, else data.train_manifest, as a tuple checked against data.train_weights."""
    name = "data.train_store" if data.train_store else "data.train_manifest"
    sources = data.train_store or data.train_manifest
    sources = (sources,) if isinstance(sources, str) else tuple(sources or ())
    weights = data.train_weights
    if weights and (len(weights) != len(sources) or min(weights) < 0 or not sum(weights)):
        raise ConfigError(f"data.train_weights: need {len(sources)} weight(s) >= 0, not all zero, "
                          f"one per {name}; got {list(weights)}")
    return sources


def _store_loader(config: ExperimentConfig, vocabulary: Vocabulary, stores):
    """(loader, corpus numbers, dropped counts) of the feature stores `stores`."""
    loader = StoreLoader(stores, vocabulary, config.features, speed_factors=config.augment.speed_factors,
                         subsampling=config.model.subsampling, augmentation=config.augment,
                         max_duration=config.train.max_duration,
                         memory_bytes=config.train.memory_cache_bytes)
    return loader, loader.corpora, _checked(", ".join(map(str, stores)), len(loader), loader.dropped)


def _audio_loader(config: ExperimentConfig, vocabulary: Vocabulary, manifests):
    """(loader, corpus numbers, dropped counts) of the manifests' audio."""
    speeds = config.augment.speed_factors
    kept, counts, reasons = [], [], collections.Counter()
    for manifest in manifests:
        usable, dropped = _usable(config, vocabulary, manifest, max(speeds, default=1.0))
        kept, counts = kept + usable, counts + [len(usable)]
        reasons.update(dropped)
    loader = UtteranceLoader(kept, vocabulary, config.features,
                             memory_bytes=config.train.memory_cache_bytes,
                             cache_dir=config.train.cache_dir, speed_factors=speeds,
                             augmentation=config.augment)
    return loader, np.repeat(np.arange(len(manifests)), counts), dict(reasons)


def _built_stores(config: ExperimentConfig, manifests, folder: Path) -> list[Path]:
    """Stores of `manifests`, with augment.corrupted_copies corrupted copies, in folder/0, folder/1, ...

    Built by all of this machine's cores; a resumed run finishes or reuses them.
    """
    if config.train.strategy == "multi_worker":  # every worker would build them all
        raise ConfigError("augment.corrupted_copies: with train.strategy multi_worker, build the "
                          "stores first (`asr prepare-features`) and train from data.train_store")
    folders = [folder / str(number) for number in range(len(manifests))]
    for manifest, store in zip(manifests, folders):
        build_store(manifest, store, config.features, speeds=config.augment.speed_factors or (1.0,),
                    augmentation=config.augment, seed=config.train.seed)
    return folders


def _perturbed_dev(dev: list[Utterance], perturbations, folder: Path, sample_rate: int) -> list[Utterance]:
    """`dev` and a copy of it under each of `perturbations` ((spec, corruption)), shortest first.

    The copies are written to `folder/0/`, `folder/1/`, ... (each utterance drawn as
    `asr evaluate --perturb` draws it), and keep their utterance's id with "+spec".
    """
    pooled = list(dev)
    for number, (spec, corruption) in enumerate(perturbations):
        pooled += perturbed_utterances(dev, corruption, folder / str(number), sample_rate, f"+{spec}")
    if perturbations:
        log.info("dev: %d utterances, %d of them perturbed (%s)", len(pooled), len(pooled) - len(dev),
                 ", ".join(spec for spec, _ in perturbations))
    return sorted(pooled, key=lambda u: u.duration)


def _usable(config: ExperimentConfig, vocabulary: Vocabulary, manifest, fastest: float = 1.0):
    """(the utterances of `manifest` training can use, dropped counts by reason)."""
    kept, reasons = filter_utterances(read_manifest(manifest), vocabulary, config.features,
                                      config.model.subsampling, config.train.max_duration,
                                      fastest_speed=fastest)
    return kept, _checked(manifest, len(kept), reasons)


def _checked(source, count: int, reasons) -> dict[str, int]:
    if not count:
        raise ManifestError(f"{source}: no usable utterances ({dict(reasons)})")
    if reasons:
        log.warning("%s: dropped %d utterance(s): %s", source, sum(reasons.values()), dict(reasons))
    return dict(reasons)
