"""Score a model on a labelled manifest and write the WER/CER report."""

from __future__ import annotations

from pathlib import Path

from asr.decoding.decoder_config import DecoderConfig
from asr.evaluation.metrics import Scored
from asr.evaluation.report import (build_report, compare_reports, read_pairs, read_report, write_comparison,
                                   write_report)
from asr.manifest import ManifestError, read_manifest
from asr.text import scoring_normalizer
from asr.transcription.transcribe import BATCH_SIZE, transcribe


def evaluate(model_path, manifest, output_dir, *, decoder: DecoderConfig = DecoderConfig(),
             batch_size: int = BATCH_SIZE, normalizer: str = "training", perturbation: str | None = None,
             seed: int = 0):
    """Transcribe `manifest`'s audio, score it against its texts, write report.{json,md,html}.

    `normalizer` names the text normaliser applied to references and hypotheses
    before scoring (`asr.text.scoring_normalizer`). Returns (report dict, paths
    written, failed transcripts). Files that fail to load are scored as empty
    hypotheses, so they count against the model, and are listed in the report.
    With `perturbation` (`noise:10`, `reverb:0.5`, `telephone`, ...:
    `asr.augment.parse_perturbation`), the audio is corrupted first, the same
    way for the same `seed`; the copies are kept in `output_dir/perturbed/`.
    """
    # TensorFlow loads only when a model is scored
    from asr.augment import parse_perturbation, perturbed_copies
    from asr.model import load_model

    scoring = scoring_normalizer(normalizer)
    corruptions = parse_perturbation(perturbation) if perturbation else None  # fail before loading
    utterances = read_manifest(manifest)
    if not utterances:
        raise ManifestError(f"{manifest}: no utterances to score")
    model = load_model(model_path)
    paths = [u.audio_filepath for u in utterances]
    data = str(manifest)
    if corruptions:
        paths = perturbed_copies(paths, corruptions, Path(output_dir) / "perturbed",
                                 model.feature_config.sample_rate, seed)
        data = f"{manifest} + {perturbation} (seed {seed})"
    results = {t.path: t for t in transcribe(paths, model, batch_size=batch_size, decoder=decoder)}
    rows = [Scored(id=u.key, reference=scoring(u.text), hypothesis=scoring(results[path].text or ""),
                   duration=u.duration or results[path].duration, speaker=u.speaker)
            for u, path in zip(utterances, paths)]
    failures = [t for t in results.values() if not t.ok]
    report = build_report(rows, model=str(model_path), data=data,
                          normalization=scoring.description, decoder=describe(decoder))
    report["failures"] = [{"audio_filepath": t.path, "error": t.error} for t in failures]
    return report, write_report(report, Path(output_dir)), failures


def score_hypotheses(references, hypotheses, output_dir, normalizer: str = "training"):
    """Score any system's JSONL output against a manifest (`asr evaluate --ref --hyp`).

    Returns (report, paths written). Utterances with no hypothesis count as
    empty hypotheses and are listed as missing in the report.
    """
    scoring = scoring_normalizer(normalizer)
    pairs = read_pairs(references, hypotheses, normalizer=scoring)
    report = build_report(pairs, model=str(hypotheses), data=str(references),
                          normalization=scoring.description, missing=pairs.missing,
                          unmatched=pairs.unmatched)
    return report, write_report(report, Path(output_dir))


def compare(report_a, report_b, output_dir):
    """Paired-bootstrap comparison of two report.json files; returns (comparison, paths)."""
    comparison = compare_reports(read_report(report_a), read_report(report_b),
                                 names=(str(report_a), str(report_b)))
    return comparison, write_comparison(comparison, Path(output_dir))


def describe(decoder: DecoderConfig) -> str:
    """One line naming the decoder and the settings that matter for it."""
    if decoder.decoder == "greedy":
        return "greedy"
    lm = f", LM {decoder.lm_path} (alpha {decoder.alpha}, beta {decoder.beta})" if decoder.lm_path else ""
    hotwords = f", hotwords {dict(decoder.hotwords)}" if decoder.hotwords else ""
    lexicon = ", the LM's words only" if decoder.lexicon else ""
    return f"beam search (width {decoder.beam_width}{lm}{hotwords}{lexicon})"
