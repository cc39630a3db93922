import numpy as np
import pytest

from asr.text import Vocabulary
from asr.transcription.timestamps import Word, words

VOCABULARY = Vocabulary()


def log_posteriors(frame_labels, confidence=0.9):
    """(frames, classes) log posteriors whose best label per frame is `frame_labels`."""
    probs = np.full((len(frame_labels), VOCABULARY.size), (1 - confidence) / (VOCABULARY.size - 1))
    probs[np.arange(len(frame_labels)), frame_labels] = confidence
    return np.log(probs)


def spell(*pieces):
    """'_' is blank, other characters are themselves: spell('__ab_', ' ', 'c') -> label ids."""
    return [0 if ch == "_" else VOCABULARY.encode(ch)[0] for ch in "".join(pieces)]


def test_words_span_their_characters_frames_and_are_shifted_by_the_offset():
    path = np.array(spell("_hh_i__", " ", "__yo_u_"))
    found = words(path, log_posteriors(path), VOCABULARY, seconds_per_frame=0.04, offset=10.0)
    assert [w.text for w in found] == ["hi", "you"]
    hi, you = found
    assert (hi.start, hi.end) == (10.04, 10.2)  # frames 1..4
    assert (you.start, you.end) == (10.4, 10.56)  # frames 10..13
    assert hi.confidence == pytest.approx(0.9) and isinstance(hi, Word)


def test_confidence_is_the_geometric_mean_of_the_emitting_frames():
    path = np.array(spell("_ab_"))
    log_probs = log_posteriors(path)
    log_probs[1, path[1]] = np.log(0.4)
    log_probs[0, 0] = np.log(0.01)  # blank frames do not count
    (word,) = words(path, log_probs, VOCABULARY, 0.04)
    assert word.confidence == pytest.approx(np.sqrt(0.4 * 0.9), abs=1e-4)


def test_repeated_letters_need_a_blank_between_them():
    path = np.array(spell("_ll_l_"))
    assert [w.text for w in words(path, log_posteriors(path), VOCABULARY, 0.04)] == ["ll"]
