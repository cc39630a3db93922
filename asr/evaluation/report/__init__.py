"""Evaluation reports: scored utterances -> report.json, report.md and report.html.

A report keeps every utterance's edit counts and alignment, so two reports can
be compared later by paired bootstrap over the utterances they share, and any
system's JSONL output can be scored against a manifest with `read_pairs`.
The pages are rendered by `asr.evaluation.report.markdown` and `asr.evaluation.report.html` (with
`asr.evaluation.report.plots`' figures).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from asr import fileio
from asr.errors import AsrError
from asr.evaluation.metrics import (COUNTS, Scored, UtteranceErrors, bootstrap_intervals, confusion_pairs,
                                    corpus_rates, group_rates, paired_bootstrap, utterance_errors)
from asr.evaluation.report.html import render_html
from asr.evaluation.report.markdown import comparison_markdown, render_markdown
from asr.manifest import read_manifest
from asr.text import normalize

CONFIDENCE = 0.95
DURATION_EDGES = (0, 2, 4, 6, 8, 10, 15, 20, 30)  # seconds
WORD_EDGES = (0, 6, 11, 21, 41)  # reference words


class ReportError(AsrError):
    """Input that cannot be scored or compared; the message names the file and the reason."""


class Pairs(list):
    """Scored rows in reference order, with the ids that did not pair up.

    `missing`: references without a hypothesis (scored as empty hypotheses).
    `unmatched`: hypotheses whose id matches no reference (not scored).
    """

    def __init__(self, rows: Iterable[Scored], missing: Iterable[str] = (), unmatched: Iterable[str] = ()):
        super().__init__(rows)
        self.missing = list(missing)
        self.unmatched = list(unmatched)


def read_pairs(ref_jsonl, hyp_jsonl, normalizer: Callable[[str], str] = normalize) -> Pairs:
    """Pair a NeMo manifest's texts with hypotheses from JSONL, both normalised.

    Hypothesis lines carry `text` and `id` or `audio_filepath`; they match a
    reference by id (the reference's `id`, else its audio file stem), else by
    audio file stem. References left without a hypothesis get an empty one, so
    their words count as deletions, and are listed in `missing`.
    """
    references = read_manifest(ref_jsonl, allow_outside_root=True)
    if not references:
        raise ReportError(f"{ref_jsonl}: no utterances to score")
    by_key, by_stem = {}, {}
    for index, utterance in enumerate(references):
        if utterance.key in by_key:
            raise ReportError(f"{ref_jsonl}: utterance id {utterance.key!r} appears more than once")
        by_key[utterance.key] = index
        by_stem.setdefault(Path(utterance.audio_filepath).stem, []).append(index)
    hypotheses, unmatched = {}, []
    for where, record in _jsonl(hyp_jsonl):
        key, audio, text = record.get("id"), record.get("audio_filepath"), record.get("text")
        if not isinstance(text, str) or (key is None and not audio):
            raise ReportError(f"{where}: a hypothesis needs a string 'text' and an 'id' or 'audio_filepath'")
        index = by_key.get(str(key)) if key is not None else None
        if index is None and audio:
            candidates = by_stem.get(Path(audio).stem, [])
            if len(candidates) > 1:
                raise ReportError(f"{where}: audio file stem {Path(audio).stem!r} matches several references")
            index = candidates[0] if candidates else None
        if index is None:
            unmatched.append(str(key if key is not None else audio))
        elif index in hypotheses:
            raise ReportError(f"{where}: a second hypothesis for utterance {references[index].key!r}")
        else:
            hypotheses[index] = text
    rows = [Scored(id=utterance.key, reference=normalizer(utterance.text),
                   hypothesis=normalizer(hypotheses.get(index, "")),
                   duration=utterance.duration if utterance.duration > 0 else None,
                   speaker=None if utterance.speaker is None else str(utterance.speaker))
            for index, utterance in enumerate(references)]
    missing = [references[index].key for index in range(len(references)) if index not in hypotheses]
    return Pairs(rows, missing, unmatched)


def build_report(rows: Sequence[Scored], *, model: str | None, data: str | None, normalization: str,
                 decoder: str | None = None, bootstrap: int = 1000, seed: int = 0,
                 missing: Iterable[str] = (), unmatched: Iterable[str] = ()) -> dict:
    """Score `rows` into a JSON-serialisable report.

    `missing` names utterances whose hypothesis was absent (their empty
    hypotheses are scored as deletions); they are flagged and counted.
    `unmatched` names hypotheses of no reference, which are counted only.
    """
    ids = [row.id for row in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted(key for key, count in Counter(ids).items() if count > 1)
        raise ReportError(f"utterance ids must be unique; repeated: {', '.join(repeated[:5])}")
    errors = utterance_errors([row.reference for row in rows], [row.hypothesis for row in rows])
    missing = set(missing)
    durations = [row.duration for row in rows if row.duration is not None]
    speakers = group_rates(errors, [row.speaker for row in rows])
    return {
        "metadata": {
            "model": model, "data": data, "decoder": decoder, "normalization": normalization,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "jiwer": version("jiwer"),
            "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": CONFIDENCE},
        },
        "summary": corpus_rates(errors),
        "intervals": bootstrap_intervals(errors, resamples=bootstrap, seed=seed, confidence=CONFIDENCE),
        "counts": {
            "utterances": len(rows),
            "missing_hypotheses": sum(row.id in missing for row in rows),
            "unmatched_hypotheses": len(list(unmatched)),
            "empty_references": sum(not utterance.reference_words for utterance in errors),
            "empty_hypotheses": sum(not utterance.hypothesis_words for utterance in errors),
            "duration_seconds": sum(durations) if len(durations) == len(rows) else None,
        },
        "speakers": sorted(({"speaker": speaker, **rates} for speaker, rates in speakers.items()),
                           key=_worst_first),
        "lengths": _length_bins(rows, errors),
        "confusions": confusion_pairs(errors),
        "utterances": [_utterance_row(row, utterance, row.id in missing)
                       for row, utterance in zip(rows, errors)],
    }


def write_report(report: dict, out_dir) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"report.{suffix}" for kind, suffix in
             (("json", "json"), ("markdown", "md"), ("html", "html"))}
    fileio.write_text(paths["json"], _report_json(report))
    fileio.write_text(paths["markdown"], render_markdown(report))
    fileio.write_text(paths["html"], render_html(report))
    return paths


def read_report(path) -> dict:
    """Load a report.json written by `write_report`, checking it has per-utterance counts."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: cannot read the report ({error})") from None
    rows = report.get("utterances") if isinstance(report, dict) else None
    needed = {"id", "reference", *COUNTS}
    if not isinstance(rows, list) or not all(isinstance(row, dict) and needed <= row.keys() for row in rows):
        raise ReportError(f"{path}: not an evaluation report (no per-utterance counts)")
    return report


def compare_reports(a: dict, b: dict, *, names: tuple[str, str] = ("A", "B"), resamples: int = 1000,
                    seed: int = 0) -> dict:
    """Paired bootstrap of report B against report A on the utterances they share (by id)."""
    rows_b = {row["id"]: row for row in b["utterances"]}
    shared = [(row, rows_b[row["id"]]) for row in a["utterances"] if row["id"] in rows_b]
    if not shared:
        raise ReportError("the two reports share no utterance ids")
    metrics = paired_bootstrap([_counts(row) for row, _ in shared], [_counts(row) for _, row in shared],
                               resamples=resamples, seed=seed, confidence=CONFIDENCE)
    for result in metrics.values():
        result["significant"] = result["p_value"] is not None and result["p_value"] < 1 - CONFIDENCE
    warnings = []
    mismatched = sum(row_a["reference"] != row_b["reference"] for row_a, row_b in shared)
    if mismatched:
        warnings.append(f"{mismatched} shared utterances have different reference texts")
    if a.get("metadata", {}).get("normalization") != b.get("metadata", {}).get("normalization"):
        warnings.append("the reports were normalised differently")
    return {
        "systems": [{"name": name, "model": report.get("metadata", {}).get("model"),
                     "data": report.get("metadata", {}).get("data"), "utterances": len(report["utterances"])}
                    for name, report in zip(names, (a, b))],
        "matched": len(shared),
        "only_a": len(a["utterances"]) - len(shared),
        "only_b": len(rows_b) - len(shared),
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE},
        "metrics": metrics,
        "warnings": warnings,
    }


def write_comparison(comparison: dict, out_dir) -> dict[str, Path]:
    """Write comparison.json and comparison.md into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "comparison.json", "markdown": out_dir / "comparison.md"}
    fileio.write_text(paths["json"], json.dumps(comparison, indent=1, ensure_ascii=False) + "\n")
    fileio.write_text(paths["markdown"], comparison_markdown(comparison))
    return paths


def _report_json(report: dict) -> str:
    """Indented JSON, except one line per utterance: readable at the top, greppable below."""
    text = json.dumps({**report, "utterances": []}, indent=1, ensure_ascii=False)
    head, tail = text.rsplit('"utterances": []', 1)
    rows = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in report["utterances"])
    return f'{head}"utterances": [\n{rows}\n ]{tail}\n'


def _utterance_row(row: Scored, utterance: UtteranceErrors, missing: bool) -> dict:
    return {
        "id": row.id, "reference": row.reference, "hypothesis": row.hypothesis,
        "duration": row.duration, "speaker": row.speaker, "missing": missing,
        **{name: getattr(utterance, name) for name in COUNTS},
        "reference_words": utterance.reference_words, "errors": utterance.errors,
        "wer": utterance.wer, "cer": utterance.cer,
        "alignment": [{"op": span.op, "reference": list(span.reference),
                       "hypothesis": list(span.hypothesis)} for span in utterance.alignment],
    }


def _length_bins(rows: Sequence[Scored], errors: Sequence[UtteranceErrors]) -> dict:
    """Rates by utterance duration when every row has one, else by reference word count."""
    if all(row.duration is not None for row in rows):
        unit, edges, lengths = "seconds", DURATION_EDGES, [row.duration for row in rows]
        labels = [f"{low}–{high} s" for low, high in zip(edges, edges[1:])]
        labels.append(f"≥{edges[-1]} s")
    else:
        unit, edges, lengths = "words", WORD_EDGES, [utterance.reference_words for utterance in errors]
        labels = [f"{low}–{high - 1} words" for low, high in zip(edges, edges[1:])]
        labels.append(f"≥{edges[-1]} words")
    bins = [max(bisect.bisect_right(edges, length) - 1, 0) for length in lengths]
    rates = group_rates(errors, bins)
    return {"unit": unit, "bins": [{"label": labels[index], **rates[index]} for index in sorted(rates)]}


def _worst_first(group: dict) -> tuple:
    # An undefined WER (insertions against empty references only) is the worst of all.
    return -(math.inf if group["wer"] is None else group["wer"]), group["speaker"]


def _counts(row: dict) -> UtteranceErrors:
    return UtteranceErrors(**{name: row[name] for name in COUNTS})


def _jsonl(path) -> Iterable[tuple[str, dict]]:
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)  # bytes: JSON's own UTF-8 rules
            except json.JSONDecodeError as error:  # its own "line 2" would count within this line
                raise ReportError(f"{path}:{number}: not JSON "
                                  f"({error.msg} at character {error.pos + 1})") from None
            except ValueError as error:  # UnicodeDecodeError
                raise ReportError(f"{path}:{number}: not JSON ({error})") from None
            if not isinstance(record, dict):
                raise ReportError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", record
