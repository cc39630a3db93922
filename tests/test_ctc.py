"""CTC paths against brute force over every path, and Keras's CTC loss."""

import itertools
import math

import keras
import numpy as np
import pytest

from asr.decoding.ctc import collapse, ctc_alignment, emissions, greedy_decode, held_path, log_softmax
from asr.text import Vocabulary

VOCABULARY = Vocabulary()


def test_collapse_merges_repeats_and_drops_blanks():
    np.testing.assert_array_equal(collapse(np.array([0, 1, 1, 0, 1, 2, 2, 0])), [1, 1, 2])
    assert greedy_decode(np.eye(3)[[1, 1, 0, 2, 0]]) == [1, 2]
    assert greedy_decode(np.eye(3)[[1, 1, 0, 2, 2]], length=3) == [1]


def test_log_softmax_normalises_and_keeps_log_probabilities():
    logits = np.random.default_rng(0).normal(size=(4, 5)) * 30
    log_probs = log_softmax(logits)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=-1), 1.0)
    np.testing.assert_allclose(log_softmax(log_probs), log_probs, atol=1e-12)


def test_ctc_alignment_sums_and_maximises_over_the_paths_that_spell_the_labels():
    """Against every path of a tiny vocabulary, and Keras's CTC loss on a longer input."""
    vocabulary, rng = Vocabulary("ab"), np.random.default_rng(0)
    log_probs = log_softmax(rng.normal(size=(5, vocabulary.size)))
    for text in ("", "a", "ab", "aa", "aba", "aaa", "aaab"):  # "aaab" needs 6 frames: a-a-ab
        spelling = [np.array(path) for path in itertools.product(range(3), repeat=5)
                    if vocabulary.decode(greedy_decode(np.eye(3)[list(path)])) == text]
        scores = [log_probs[np.arange(5), path].sum() for path in spelling]
        log_likelihood, best = ctc_alignment(log_probs, vocabulary.encode(text))
        if not spelling:
            assert log_likelihood == -math.inf and best is None
            continue
        assert log_likelihood == pytest.approx(np.logaddexp.reduce(scores))
        np.testing.assert_array_equal(best, spelling[int(np.argmax(scores))])
    logits = rng.normal(scale=2.0, size=(1, 60, VOCABULARY.size)).astype(np.float32)
    labels = np.array([VOCABULARY.encode("hello world")], np.int32)
    loss = keras.ops.convert_to_numpy(keras.ops.ctc_loss(labels, logits, np.array([11]), np.array([60]),
                                                         mask_index=0))
    assert ctc_alignment(log_softmax(logits[0]), labels[0])[0] == pytest.approx(-float(loss[0]), rel=1e-4)
    assert ctc_alignment(log_softmax(logits[0, :3]), VOCABULARY.encode("hello")) == (-math.inf, None)


def test_a_path_is_held_again_from_its_emissions():
    """Emissions keep where each character starts; holding them again as the Viterbi
    path given those starts gives back the best path (here, the frames' argmax)."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        log_probs = log_softmax(rng.normal(scale=3.0, size=(12, 4)))
        path = log_probs.argmax(axis=-1)
        starts = emissions(path)
        np.testing.assert_array_equal(held_path(log_probs, starts), path)
        frames, labels = [], []
        while starts is not None:
            frame, label, starts = starts
            frames.insert(0, frame)
            labels.insert(0, label)
        np.testing.assert_array_equal(labels, collapse(path))
        assert all(path[frame] == label for frame, label in zip(frames, labels))
