"""Tuning a language model's fusion weights on a dev set.

`asr tune-lm` runs the acoustic model over a dev manifest once (and over
corrupted copies of it, `--perturb`), then decodes its logits at every
(alpha, beta) of a grid (alpha: LM weight, beta: word insertion bonus) and keeps
the pair with the lowest WER, as a `DecoderConfig` (which
`asr.decoding.decoder_config.save_decoder_config` writes for `--decode-config` to read back).
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asr.decoding.decode import BeamSearchDecoder, GreedyDecoder
from asr.decoding.decoder_config import DecoderConfig
from asr.decoding.lm import LanguageModel, build_kneser_ney, known_words, load_language_model, read_sentences
from asr.errors import UsageError
from asr.evaluation.metrics import error_rates
from asr.manifest import ManifestError, Utterance, read_manifest
from asr.text import Vocabulary
from asr.transcription.transcribe import BATCH_SIZE


@dataclass(frozen=True)
class GridPoint:
    alpha: float
    beta: float
    wer: float
    cer: float


@dataclass(frozen=True)
class Tuning:
    """Dev-set error rates of greedy decoding and of each grid point, in grid order."""

    points: tuple[GridPoint, ...]
    greedy_wer: float
    greedy_cer: float
    utterances: int
    conditions: tuple[str, ...] = ("clean",)  # the dev audio as it is, and how else it was corrupted

    @property
    def best(self) -> GridPoint:
        """Lowest WER; CER breaks ties, then the smaller alpha and beta (less reliance on the LM)."""
        return min(self.points, key=lambda point: (point.wer, point.cer, point.alpha, point.beta))


def grid_search(logits: Sequence[np.ndarray], references: Sequence[str], vocabulary: Vocabulary,
                lm: LanguageModel, alphas: Sequence[float], betas: Sequence[float], *,
                beam_width: int = DecoderConfig.beam_width,
                prune_log_prob: float = DecoderConfig.prune_log_prob, lexicon: bool = False,
                workers: int = 1) -> Tuning:
    """Decode every utterance at every (alpha, beta) and score it against its reference.

    logits: one (frames, classes) array per utterance, padding removed.
    With `lexicon`, the decoders spell only `lm`'s words.
    With `workers` > 1, grid points are decoded in that many processes.
    """
    if not alphas or not betas:
        raise UsageError("the grid needs at least one alpha and one beta")
    grid = [(alpha, beta) for alpha in alphas for beta in betas]
    words = known_words(lm) if lexicon else None
    decoders = [BeamSearchDecoder(vocabulary, beam_width, lm, alpha, beta, None, prune_log_prob, words)
                for alpha, beta in grid]
    transcripts = _decode_each(decoders, list(logits), workers)
    points = tuple(GridPoint(alpha, beta, *_rates(references, texts))
                   for (alpha, beta), texts in zip(grid, transcripts))
    greedy = [GreedyDecoder(vocabulary).decode(row).text for row in logits]
    return Tuning(points, *_rates(references, greedy), len(logits))


def _decode_each(decoders: list[BeamSearchDecoder], logits: list[np.ndarray],
                 workers: int) -> list[list[str]]:
    """Each decoder's texts for `logits`."""
    if workers <= 1 or len(decoders) == 1:
        return [_texts(decoder, logits) for decoder in decoders]
    # Spawned rather than forked: the parent has TensorFlow's threads running. The
    # workers import asr.evaluation.tune, whose TensorFlow imports wait inside functions. An executor,
    # not multiprocessing.Pool: a worker that dies on start-up raises BrokenProcessPool
    # instead of being restarted for ever.
    with ProcessPoolExecutor(min(workers, len(decoders)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = [pool.submit(_texts, decoder, logits) for decoder in decoders]
        return [result.result() for result in pending]


def _texts(decoder: BeamSearchDecoder, logits: list[np.ndarray]) -> list[str]:
    return [decoded.text for decoded in decoder.decode_batch(logits)]


def _rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    rates = error_rates(references, hypotheses)
    return rates["wer"], rates["cer"]


def dev_logits(model, utterances: list[Utterance], source,
               batch_size: int = BATCH_SIZE) -> tuple[list[np.ndarray], list[str]]:
    """Run `model` over labelled utterances (from `source`, named in messages) once.

    Returns (one (frames, classes) logits array per utterance, normalised references),
    shortest utterance first. Utterances the model cannot be scored on (unreadable
    audio, characters outside its vocabulary) are left out and logged.
    """
    # TensorFlow loads only here, so that `asr build-lm` and decoding-config readers never wait for it.
    from asr.data import filter_utterances, make_dataset
    from asr.model import predict_logits

    utterances, dropped = filter_utterances(utterances, model.vocabulary, model.feature_config,
                                            model.model_config.subsampling)
    if dropped:
        logging.getLogger(__name__).warning("%s: left out %s", source, dict(dropped))
    if not utterances:
        raise ManifestError(f"{source}: no utterance the model can be scored on ({dict(dropped)})")
    utterances.sort(key=lambda utterance: utterance.duration)  # batches of similar length pad less
    dataset = make_dataset(utterances, model.vocabulary, model.feature_config, batch_size=batch_size,
                           training=False, memory_bytes=0)
    logits = [np.asarray(row[:length]) for batch, lengths in predict_logits(model, dataset)
              for row, length in zip(batch, lengths)]
    return logits, [utterance.text for utterance in utterances]


# The word bonus that best offsets an LM weight grows with it (dev optimum near beta = 8 x alpha for
# the demo's trigram); up to beta 3 the demo's dev picked the grid's edge, so 30 points reach 6.
def tune(model_path, manifest, lm_path, alphas: Sequence[float] = (0, 0.25, 0.5, 0.75, 1),
         betas: Sequence[float] = (0, 1, 2, 3, 4, 6), *, perturbations: Sequence[str] = (),
         beam_width: int = DecoderConfig.beam_width, lexicon: bool = DecoderConfig.lexicon,
         batch_size: int = BATCH_SIZE, workers: int = 2) -> tuple[Tuning, DecoderConfig]:
    """Grid-search alpha and beta for `lm_path` on a dev manifest.

    With `perturbations` (`noise:10`, `reverb:0.5`, ...: `asr.augment.parse_perturbation`),
    the grid is scored on the dev audio as it is and on a corrupted copy for each,
    pooled: where a model is nearly perfect on clean dev, every point ties there
    and only the corrupted copies tell them apart.
    Returns (the tuning table, the decoding config of its best point).
    """
    lm = load_language_model(lm_path)  # before TensorFlow loads, so a bad LM path fails at once
    from asr.augment import parse_perturbation, perturbed_utterances
    from asr.model import load_model

    corruptions = [parse_perturbation(spec) for spec in perturbations]  # fail before the model loads
    model = load_model(model_path)
    utterances = read_manifest(manifest)
    logits, references = dev_logits(model, utterances, manifest, batch_size)
    with tempfile.TemporaryDirectory() as scratch:  # the copies are needed only for their logits
        for number, (spec, corruption) in enumerate(zip(perturbations, corruptions)):
            corrupted = perturbed_utterances(utterances, corruption, Path(scratch) / str(number),
                                             model.feature_config.sample_rate)
            more_logits, more_references = dev_logits(model, corrupted, f"{manifest} + {spec}",
                                                      batch_size)
            logits, references = logits + more_logits, references + more_references
    tuning = grid_search(logits, references, model.vocabulary, lm, alphas, betas,
                         beam_width=beam_width, lexicon=lexicon, workers=workers)
    tuning = replace(tuning, conditions=("clean", *perturbations))
    best = tuning.best
    return tuning, DecoderConfig("beam", beam_width, str(lm_path), best.alpha, best.beta, lexicon=lexicon)


def tune_transcript_lm(model_path, train_manifests: Sequence, dev_manifest, lm_path, *,
                       order: int = 3, **grid) -> tuple[Tuning, DecoderConfig]:
    """Build a Kneser-Ney LM of the training transcripts at `lm_path`, then `tune` it on dev.

    What a recipe without a text corpus of its own decodes with: the LM knows the
    training vocabulary, and with `lexicon=True` beam search spells only it, so
    near-misses ("thre") become words. `grid` goes to `tune` (alphas, betas,
    perturbations, beam_width, lexicon, batch_size, workers).
    """
    build_kneser_ney(read_sentences(manifests=train_manifests), order=order).save_arpa(lm_path)
    return tune(model_path, dev_manifest, lm_path, **grid)


def format_tuning(tuning: Tuning) -> str:
    """The WER grid as text: alphas down, betas across, the best point starred."""
    alphas = list(dict.fromkeys(point.alpha for point in tuning.points))
    betas = list(dict.fromkeys(point.beta for point in tuning.points))
    wer = {(point.alpha, point.beta): point.wer for point in tuning.points}
    best = tuning.best
    lines = [f"dev WER (%) on {tuning.utterances} utterances ({', '.join(tuning.conditions)}); "
             f"greedy {100 * tuning.greedy_wer:.2f}",
             "alpha \\ beta" + "".join(f"{beta:>9g}" for beta in betas)]
    starred = {(best.alpha, best.beta): "*"}
    for alpha in alphas:
        cells = [f"{100 * wer[alpha, beta]:>8.2f}" + starred.get((alpha, beta), " ") for beta in betas]
        lines.append(f"{alpha:<12g}" + "".join(cells))
    lines.append(f"best: alpha {best.alpha:g}, beta {best.beta:g}: WER {100 * best.wer:.2f}%, "
                 f"CER {100 * best.cer:.2f}% (greedy WER {100 * tuning.greedy_wer:.2f}%, "
                 f"CER {100 * tuning.greedy_cer:.2f}%)")
    return "\n".join(lines)
