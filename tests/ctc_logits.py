"""Hand-built CTC frame posteriors for decoder tests."""

import numpy as np

from asr.text import Vocabulary

VOCABULARY = Vocabulary()


def frames(*columns: dict[str, float]) -> np.ndarray:
    """(frames, classes) log-probabilities: one frame per {character: probability}, "" = blank."""
    probabilities = np.full((len(columns), VOCABULARY.size), 1e-4)
    for row, column in zip(probabilities, columns):
        for character, probability in column.items():
            row[VOCABULARY.encode(character)[0] if character else 0] = probability
    return np.log(probabilities / probabilities.sum(axis=-1, keepdims=True))


def spell(text: str) -> list[dict[str, float]]:
    """Confident frames for `text`, a blank after every character."""
    return [column for character in text for column in ({character: 0.95}, {"": 0.95})]


def forced_alignment(log_probs: np.ndarray, labels) -> np.ndarray:
    """The most probable CTC path that spells `labels` (Viterbi), an oracle for decoders'
    alignments: (frames, classes) log posteriors -> (frames,) label per frame."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    states = np.zeros(2 * len(labels) + 1, dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    states[1::2] = labels
    # A path may skip the blank between two different characters, never between repeats.
    can_skip = np.zeros(len(states), dtype=bool)
    can_skip[2:] = (states[2:] != 0) & (states[2:] != states[:-2])
    score = np.full(len(states), -np.inf)
    score[:2] = log_probs[0, states[:2]]
    moves = np.zeros((len(log_probs), len(states)), dtype=np.int64)
    for frame in range(1, len(log_probs)):
        candidates = np.full((3, len(states)), -np.inf)
        candidates[0] = score
        candidates[1, 1:] = score[:-1]
        candidates[2, 2:] = np.where(can_skip[2:], score[:-2], -np.inf)
        moves[frame] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[frame, states]
    state = len(states) - 1 if len(states) == 1 or score[-1] >= score[-2] else len(states) - 2
    path = np.empty(len(log_probs), dtype=np.int64)
    for frame in range(len(log_probs) - 1, -1, -1):
        path[frame] = states[state]
        state -= moves[frame, state]
    return path

