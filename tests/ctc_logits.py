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
