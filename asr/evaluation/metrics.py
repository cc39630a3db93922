"""Word and character error rates, their uncertainty, and where the errors are.

Alignment and edit counts come from jiwer (`process_words`, `process_characters`);
corpus rates are computed from the summed counts with jiwer's own formulas, so
they equal `jiwer.process_words(...).wer` and `jiwer.cer(...)` on the same data.

Empty references: an utterance with an empty reference adds its insertions to the
error count and nothing to the reference word count, as jiwer and NIST sclite
score it, so a corpus with some empty references keeps a finite WER (it can
exceed 1). A rate whose reference count is zero is undefined and reported as
None, or 0.0 when there is nothing to insert either; for an all-empty reference
set jiwer would instead return the bare insertion count as its "rate".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np

RATES = ("wer", "cer", "mer", "wil")
COUNTS = ("hits", "substitutions", "deletions", "insertions", "character_errors", "reference_characters")


@dataclass(frozen=True)
class Scored:
    """One utterance's reference and hypothesis (already normalised)."""

    id: str
    reference: str
    hypothesis: str
    duration: float | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class AlignedSpan:
    """A run of jiwer's word alignment: `op` is equal, substitute, delete or insert."""

    op: str
    reference: tuple[str, ...]
    hypothesis: tuple[str, ...]


@dataclass(frozen=True)
class UtteranceErrors:
    """Word edit counts, character edit counts and word alignment of one utterance."""

    hits: int
    substitutions: int
    deletions: int
    insertions: int
    character_errors: int
    reference_characters: int
    alignment: tuple[AlignedSpan, ...] = ()

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_words(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_words(self) -> int:
        return self.hits + self.substitutions + self.insertions

    @property
    def wer(self) -> float | None:
        return _ratio(self.errors, self.reference_words)

    @property
    def cer(self) -> float | None:
        return _ratio(self.character_errors, self.reference_characters)


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str]) -> list[UtteranceErrors]:
    """Align each hypothesis with its reference, by words and by characters.

    Returns one `UtteranceErrors` per pair, in input order.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no utterances to score")
    words = jiwer.process_words(list(references), list(hypotheses))
    characters = jiwer.process_characters(list(references), list(hypotheses))
    scored = []
    for ref, hyp, spans, char_spans in zip(words.references, words.hypotheses,
                                           words.alignments, characters.alignments):
        alignment = tuple(AlignedSpan(span.type, tuple(ref[span.ref_start_idx:span.ref_end_idx]),
                                      tuple(hyp[span.hyp_start_idx:span.hyp_end_idx])) for span in spans)
        edits = _edit_counts(spans)
        char_edits = _edit_counts(char_spans)
        scored.append(UtteranceErrors(
            hits=edits["equal"], substitutions=edits["substitute"], deletions=edits["delete"],
            insertions=edits["insert"],
            character_errors=char_edits["substitute"] + char_edits["delete"] + char_edits["insert"],
            reference_characters=char_edits["equal"] + char_edits["substitute"] + char_edits["delete"],
            alignment=alignment))
    return scored


def corpus_rates(errors: Sequence[UtteranceErrors]) -> dict:
    """WER, CER, MER, WIL and the summed edit counts of a set of utterances."""
    sums = _counts(errors).sum(axis=0)
    rates = {name: _defined(value) for name, value in _rates(sums).items()}
    counts = {name: int(value) for name, value in zip(COUNTS, sums)}
    return {
        **rates, **counts,
        "errors": counts["substitutions"] + counts["deletions"] + counts["insertions"],
        "reference_words": counts["hits"] + counts["substitutions"] + counts["deletions"],
        "hypothesis_words": counts["hits"] + counts["substitutions"] + counts["insertions"],
        "utterances": len(errors),
    }


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Corpus-level rates and counts: wer, cer, mer, wil, hits, substitutions, ..."""
    return corpus_rates(utterance_errors(references, hypotheses))


def bootstrap_intervals(errors: Sequence[UtteranceErrors], *, resamples: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap interval of each corpus rate, resampling whole utterances.

    Each resample recomputes the corpus rate from summed counts (e.g. WER =
    sum(errors) / sum(reference words)), so long utterances weigh as they do in
    the point estimate. Resamples with an undefined rate are left out.
    """
    sums = _resampled_sums(_counts(errors), resamples, seed)
    return {name: _interval(values, confidence) for name, values in _rates(sums).items()}


def paired_bootstrap(a: Sequence[UtteranceErrors], b: Sequence[UtteranceErrors], *, resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, dict]:
    """Paired bootstrap of system B against system A on the same utterances (same order).

    Both systems are scored on the same resampled utterances each time. For each
    rate, `p_value` is two-sided: twice the smaller share of resamples in which
    B - A falls on either side of zero (capped at 1), so a small value means the
    difference, better or worse, is unlikely to be luck of the test set.
    `interval` brackets B - A.
    """
    if len(a) != len(b):
        raise ValueError(f"paired bootstrap needs the same utterances: {len(a)} vs {len(b)}")
    columns = len(COUNTS)
    sums = _resampled_sums(np.concatenate([_counts(a), _counts(b)], axis=1), resamples, seed)
    rates_a, rates_b = _rates(sums[:, :columns]), _rates(sums[:, columns:])
    point_a, point_b = corpus_rates(a), corpus_rates(b)
    result = {}
    for name in RATES:
        delta = rates_b[name] - rates_a[name]
        delta = delta[np.isfinite(delta)]
        defined = point_a[name] is not None and point_b[name] is not None
        result[name] = {
            "a": point_a[name], "b": point_b[name],
            "delta": point_b[name] - point_a[name] if defined else None,
            "interval": _interval(delta, confidence),
            "p_value": _two_sided(delta) if delta.size else None,
        }
    return result


def _two_sided(delta: np.ndarray) -> float:
    return float(min(1.0, 2 * min(np.mean(delta >= 0), np.mean(delta <= 0))))


def group_rates(errors: Sequence[UtteranceErrors], groups: Sequence[Hashable | None]) -> dict:
    """Corpus rates per group (e.g. speaker); utterances whose group is None are left out."""
    members: dict = {}
    for utterance, group in zip(errors, groups, strict=True):
        if group is not None:
            members.setdefault(group, []).append(utterance)
    return {group: corpus_rates(utterances) for group, utterances in members.items()}


def confusion_pairs(errors: Sequence[UtteranceErrors], top: int = 20) -> dict[str, list[dict]]:
    """Most frequent substituted (reference -> hypothesis), deleted and inserted words."""
    substitutions, deletions, insertions = Counter(), Counter(), Counter()
    for utterance in errors:
        for span in utterance.alignment:
            if span.op == "substitute":
                substitutions.update(zip(span.reference, span.hypothesis))
            elif span.op == "delete":
                deletions.update(span.reference)
            elif span.op == "insert":
                insertions.update(span.hypothesis)

    def most_common(counter):
        # Ties break alphabetically so reports do not depend on utterance order.
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]

    return {
        "substitutions": [{"reference": ref, "hypothesis": hyp, "count": count}
                          for (ref, hyp), count in most_common(substitutions)],
        "deletions": [{"word": word, "count": count} for word, count in most_common(deletions)],
        "insertions": [{"word": word, "count": count} for word, count in most_common(insertions)],
    }


def _edit_counts(spans) -> Counter:
    counts = Counter({"equal": 0, "substitute": 0, "delete": 0, "insert": 0})
    for span in spans:
        if span.type == "insert":
            counts["insert"] += span.hyp_end_idx - span.hyp_start_idx
        else:
            counts[span.type] += span.ref_end_idx - span.ref_start_idx
    return counts


def _counts(errors: Sequence[UtteranceErrors]) -> np.ndarray:
    """Edit counts as a float64 array of shape (utterances, len(COUNTS))."""
    return np.array([[getattr(utterance, name) for name in COUNTS] for utterance in errors],
                    dtype=np.float64).reshape(len(errors), len(COUNTS))


def _rates(sums: np.ndarray) -> dict[str, np.ndarray]:
    """jiwer's formulas on summed counts of shape (..., len(COUNTS)); NaN where undefined."""
    columns = np.moveaxis(sums, -1, 0)
    hits, substitutions, deletions, insertions, character_errors, reference_characters = columns
    errors = substitutions + deletions + insertions
    reference_words = hits + substitutions + deletions
    hypothesis_words = hits + substitutions + insertions
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = np.where(reference_words > 0, errors / reference_words, np.where(errors > 0, np.nan, 0.0))
        cer = np.where(reference_characters > 0, character_errors / reference_characters,
                       np.where(character_errors > 0, np.nan, 0.0))
        mer = np.where(errors + hits > 0, errors / (errors + hits), 0.0)
        # Same operation order as jiwer, so the floats match exactly.
        wip = np.where((reference_words > 0) & (hypothesis_words > 0),
                       (hits / reference_words) * (hits / hypothesis_words),
                       np.where((reference_words == 0) & (hypothesis_words == 0), 1.0, 0.0))
    return {"wer": wer, "cer": cer, "mer": mer, "wil": 1 - wip}


def _resampled_sums(counts: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column sums of `resamples` bootstrap resamples of the rows of `counts`."""
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    rng = np.random.default_rng(seed)
    size = len(counts)
    sums = np.empty((resamples, counts.shape[1]))
    # Gather in chunks to bound memory at about (chunk, size, columns) floats.
    step = max(1, 200_000 // size)
    for start in range(0, resamples, step):
        stop = min(start + step, resamples)
        sums[start:stop] = counts[rng.integers(0, size, size=(stop - start, size))].sum(axis=1)
    return sums


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _ratio(errors: int, total: int) -> float | None:
    """errors / total, with 0 / 0 = 0.0 and errors / 0 undefined (None)."""
    if total:
        return errors / total
    return None if errors else 0.0


def _defined(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
