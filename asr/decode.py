"""CTC decoding of frame posteriors into text."""

from __future__ import annotations

import numpy as np

from asr.text import Vocabulary


def greedy_decode(logits: np.ndarray, length: int | None = None) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks (0).

    logits: (frames, classes) for one utterance; `length` ignores padded frames.
    Returns label ids.
    """
    best = np.asarray(logits)[:length].argmax(axis=-1)
    if best.size == 0:
        return []
    keep = np.ones_like(best, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(i) for i in best[keep] if i != 0]


def greedy_decode_batch(logits: np.ndarray, lengths, vocabulary: Vocabulary) -> list[str]:
    """(batch, frames, classes) logits with true frame counts -> one string each."""
    return [vocabulary.decode(greedy_decode(row, int(n))) for row, n in zip(logits, lengths)]
