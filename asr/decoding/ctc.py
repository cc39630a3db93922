"""CTC paths: the label per logit frame from which text and timing are read.

A path over (frames, classes) log posteriors, label 0 the blank, spells the
labels left when repeats are merged and blanks dropped (`collapse`). Here are
the best path (`greedy_decode`), the sum over and the best of the paths that
spell given labels (`ctc_alignment`: forward algorithm and Viterbi), and the
conversions between a path and its emissions, the (frame, label) where each
character starts, as the beam search (`asr.decoding.decode`) keeps them: linked lists
(frame, label, the rest), last first.
"""

from __future__ import annotations

import math

import numpy as np


def label_frames(labels) -> int:
    """The fewest frames a CTC path spelling `labels` (ids or characters) needs: one a label,
    plus a blank between each pair of repeats."""
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def greedy_decode(logits: np.ndarray, length: int | None = None) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks (0).

    logits: (frames, classes) for one utterance; `length` ignores padded frames.
    Returns label ids.
    """
    return collapse(np.asarray(logits)[:length].argmax(axis=-1)).tolist()


def collapse(path: np.ndarray) -> np.ndarray:
    """(frames,) CTC path -> the labels it spells: repeats merged, blanks dropped."""
    emits = path != 0
    emits[1:] &= path[1:] != path[:-1]
    return path[emits]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(..., classes) logits -> log-probabilities (which pass through unchanged), float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def held_path(log_probs: np.ndarray, alignment) -> np.ndarray:
    """The CTC path that emits an alignment's characters at its frames: (frames,) labels.

    Each character is held from its frame for as long as that scores better
    than blanks up to the next character (which, if it is the same character,
    needs a blank in between): the Viterbi path given where each is emitted.
    """
    starts = []  # (frame, label), last first
    while alignment is not None:
        frame, label, alignment = alignment
        starts.append((frame, label))
    path = np.zeros(len(log_probs), dtype=np.int64)
    following = len(log_probs), 0
    for frame, label in starts:
        gap = log_probs[frame + 1:following[0]]
        # ln P of holding the label for i more frames, then blanks: i = 0 .. len(gap)
        held = np.concatenate([[0.0], np.cumsum(gap[:, label])])
        blanks = np.concatenate([np.cumsum(gap[::-1, 0])[::-1], [0.0]])
        choices = held + blanks
        if following[1] == label:
            choices = choices[:-1]
        path[frame:frame + int(choices.argmax()) + 1] = label
        following = frame, label
    return path


def ctc_alignment(log_probs: np.ndarray, labels) -> tuple[float, np.ndarray | None]:
    """ln P(labels) over all CTC paths that spell them, and the most probable such path.

    (frames, classes) log posteriors, (length,) label ids -> (the forward algorithm's
    log-likelihood, (frames,) label per frame by Viterbi); (-inf, None) when no path
    of that many frames spells them (repeats need a blank in between).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    states = np.zeros(2 * len(labels) + 1, dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    states[1::2] = labels
    if not len(log_probs):
        return (0.0, np.zeros(0, np.int64)) if not len(labels) else (-math.inf, None)
    # A path may skip the blank between two different characters, never between repeats.
    can_skip = np.zeros(len(states), dtype=bool)
    can_skip[2:] = (states[2:] != 0) & (states[2:] != states[:-2])
    total = np.full(len(states), -np.inf)
    total[:2] = log_probs[0, states[:2]]
    best = total.copy()
    moves = np.zeros((len(log_probs), len(states)), dtype=np.int64)  # states each best path stepped
    for frame in range(1, len(log_probs)):
        totals, bests = np.full((3, len(states)), -np.inf), np.full((3, len(states)), -np.inf)
        for scores, shifted in ((total, totals), (best, bests)):
            shifted[0], shifted[1, 1:] = scores, scores[:-1]
            shifted[2, 2:] = np.where(can_skip[2:], scores[:-2], -np.inf)
        moves[frame] = bests.argmax(axis=0)
        total = np.logaddexp.reduce(totals, axis=0) + log_probs[frame, states]
        best = bests.max(axis=0) + log_probs[frame, states]
    ends = [len(states) - 1, len(states) - 2][:len(states)]  # a path ends on the last label or blank
    log_likelihood = float(np.logaddexp.reduce(total[ends]))
    if log_likelihood == -math.inf:
        return log_likelihood, None
    state = max(ends, key=best.__getitem__)
    path = np.empty(len(log_probs), dtype=np.int64)
    for frame in range(len(log_probs) - 1, -1, -1):
        path[frame] = states[state]
        state -= moves[frame, state]
    return log_likelihood, path


def emissions(path: np.ndarray) -> tuple | None:
    """A CTC path -> where it emits each character: (frame, label, the rest), last first."""
    alignment, previous = None, 0
    for frame, label in enumerate(path.tolist()):
        if label and label != previous:
            alignment = (frame, label, alignment)
        previous = label
    return alignment
