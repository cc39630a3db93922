"""Score a model on a labelled manifest and write the WER/CER report."""

from __future__ import annotations

from pathlib import Path

from asr.decode import DecoderConfig
from asr.manifest import read_manifest
from asr.metrics import Scored
from asr.model import load_model
from asr.report import (build_report, compare_reports, read_pairs, read_report, write_comparison,
                        write_report)
from asr.text import normalize
from asr.transcribe import transcribe

NORMALIZATION = ("asr.text.normalize: NFKD accent stripping, lower case, digits spelled as words, "
                 "punctuation except inner apostrophes removed, whitespace collapsed")


def evaluate(model_path, manifest, output_dir, *, decoder: DecoderConfig = DecoderConfig(),
             batch_size: int = 16):
    """Transcribe `manifest`'s audio, score it against its texts, write report.{json,md,html}.

    Returns (report dict, paths written, failed transcripts). Files that fail to
    load are scored as empty hypotheses, so they count against the model, and
    are listed in the report.
    """
    model = load_model(model_path)
    utterances = read_manifest(manifest)
    results = {t.path: t for t in transcribe([u.audio_filepath for u in utterances], model,
                                             batch_size=batch_size, decoder=decoder)}
    rows = [Scored(id=u.key, reference=normalize(u.text), hypothesis=results[u.audio_filepath].text or "",
                   duration=u.duration or results[u.audio_filepath].duration, speaker=u.speaker)
            for u in utterances]
    failures = [t for t in results.values() if not t.ok]
    report = build_report(rows, model=str(model_path), data=str(manifest), normalization=NORMALIZATION,
                          decoder=describe(decoder))
    report["failures"] = [{"audio_filepath": t.path, "error": t.error} for t in failures]
    return report, write_report(report, Path(output_dir)), failures


def score_hypotheses(references, hypotheses, output_dir):
    """Score any system's JSONL output against a manifest (`asr evaluate --ref --hyp`).

    Returns (report, paths written). Utterances with no hypothesis count as
    empty hypotheses and are listed as missing in the report.
    """
    pairs = read_pairs(references, hypotheses)
    report = build_report(pairs, model=str(hypotheses), data=str(references),
                          normalization=NORMALIZATION, missing=pairs.missing)
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
    return f"beam search (width {decoder.beam_width}{lm}{hotwords})"
