import random

import jiwer
import pytest

from asr.evaluation.metrics import (bootstrap_intervals, confusion_pairs, corpus_rates, error_rates,
                                    group_rates, paired_bootstrap, utterance_errors)

WORDS = "the cat sat on a mat and dog ran far away".split()


def noisy_corpus(size: int, error_rate: float, seed: int) -> tuple[list[str], list[str]]:
    """References of 3-15 words and hypotheses with about `error_rate` word edits."""
    rng = random.Random(seed)
    references = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) for _ in range(size)]
    return references, corrupt(references, error_rate, seed)


def corrupt(references: list[str], error_rate: float, seed: int) -> list[str]:
    """Substitute, delete and insert words, each with probability error_rate / 3."""
    rng = random.Random(seed)
    hypotheses = []
    for reference in references:
        hypothesis = []
        for word in reference.split():
            draw = rng.random()
            if draw < error_rate / 3:
                hypothesis.append(rng.choice(WORDS) + "s")
            elif draw < 2 * error_rate / 3:
                continue
            else:
                hypothesis.append(word)
            if rng.random() < error_rate / 3:
                hypothesis.append(rng.choice(WORDS))
        hypotheses.append(" ".join(hypothesis))
    return hypotheses


def assert_matches_jiwer(references, hypotheses):
    rates = error_rates(references, hypotheses)
    expected = jiwer.process_words(references, hypotheses)
    assert rates["wer"] == expected.wer
    assert rates["mer"] == expected.mer
    assert rates["wil"] == expected.wil
    assert rates["cer"] == jiwer.cer(references, hypotheses)
    for name in ("hits", "substitutions", "deletions", "insertions"):
        assert rates[name] == getattr(expected, name)
    assert rates["reference_words"] == sum(len(words) for words in expected.references)
    return rates


def test_corpus_rates_equal_jiwer():
    references, hypotheses = noisy_corpus(60, 0.3, seed=1)
    rates = assert_matches_jiwer(references, hypotheses)
    assert rates["utterances"] == 60 and 0.1 < rates["wer"] < 0.6


def test_utterance_counts_sum_to_corpus_and_match_jiwer_per_pair():
    references, hypotheses = noisy_corpus(20, 0.3, seed=2)
    errors = utterance_errors(references, hypotheses)
    assert sum(utterance.errors for utterance in errors) == error_rates(references, hypotheses)["errors"]
    for reference, hypothesis, utterance in zip(references, hypotheses, errors):
        assert utterance.wer == pytest.approx(jiwer.wer(reference, hypothesis))
        assert utterance.cer == pytest.approx(jiwer.cer(reference, hypothesis))


def test_alignment_reconstructs_both_sides():
    [utterance] = utterance_errors(["the cat sat on the mat"], ["so the bat sat on mat"])
    reference = [word for span in utterance.alignment for word in span.reference]
    hypothesis = [word for span in utterance.alignment for word in span.hypothesis]
    assert " ".join(reference) == "the cat sat on the mat"
    assert " ".join(hypothesis) == "so the bat sat on mat"
    assert (utterance.substitutions, utterance.deletions, utterance.insertions) == (1, 1, 1)


def test_some_empty_references_score_their_insertions_like_jiwer():
    rates = assert_matches_jiwer(["the cat", "", "a dog"], ["the cat", "uh huh", "a"])
    assert rates["wer"] == pytest.approx(3 / 4)  # two insertions + one deletion over four words
    empty = utterance_errors(["", ""], ["uh huh", ""])
    assert [utterance.wer for utterance in empty] == [None, 0.0]


def test_all_empty_references_have_undefined_rates():
    rates = error_rates(["", ""], ["uh", ""])
    assert rates["wer"] is None and rates["cer"] is None
    assert rates["insertions"] == 1 and rates["mer"] == 1.0 and rates["wil"] == 1.0
    silent = error_rates(["", ""], ["", ""])
    assert silent["wer"] == 0.0 and silent["cer"] == 0.0 and silent["wil"] == 0.0


def test_empty_hypotheses_are_all_deletions():
    rates = assert_matches_jiwer(["the cat sat", "a dog"], ["", ""])
    assert rates["deletions"] == 5 and rates["wer"] == 1.0 and rates["cer"] == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="no utterances"):
        error_rates([], [])
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded():
    errors = utterance_errors(*noisy_corpus(80, 0.3, seed=3))
    point = corpus_rates(errors)
    intervals = bootstrap_intervals(errors, resamples=500, seed=7)
    for name in ("wer", "cer", "mer", "wil"):
        low, high = intervals[name]
        assert low < point[name] < high
    assert intervals == bootstrap_intervals(errors, resamples=500, seed=7)
    assert intervals != bootstrap_intervals(errors, resamples=500, seed=8)


def test_bootstrap_interval_of_undefined_rate_is_none():
    assert bootstrap_intervals(utterance_errors([""], ["uh"]), resamples=10)["wer"] is None


def test_paired_bootstrap_separates_better_from_identical_systems():
    references, worse = noisy_corpus(100, 0.4, seed=4)
    better = corrupt(references, 0.1, seed=5)
    a = utterance_errors(references, worse)
    b = utterance_errors(references, better)
    improved = paired_bootstrap(a, b, resamples=500)["wer"]
    assert improved["delta"] < 0 and improved["p_value"] < 0.01
    assert improved["interval"][1] < 0
    worse = paired_bootstrap(b, a, resamples=500)["wer"]
    assert worse["delta"] > 0 and worse["p_value"] < 0.01  # two-sided: worse is significant too
    same = paired_bootstrap(a, a, resamples=500)["wer"]
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_group_rates_skip_unknown_groups():
    errors = utterance_errors(["a b", "c d", "e f"], ["a b", "c x", "y"])
    groups = group_rates(errors, ["alice", "bob", None])
    assert set(groups) == {"alice", "bob"}
    assert groups["alice"]["wer"] == 0.0 and groups["bob"]["wer"] == 0.5


def test_confusion_pairs_count_substitutions_deletions_insertions():
    errors = utterance_errors(["the cat sat", "the cat ran", "a dog"],
                              ["the bat sat", "the bat ran", "a dog barked"])
    confusions = confusion_pairs(errors)
    assert confusions["substitutions"] == [{"reference": "cat", "hypothesis": "bat", "count": 2}]
    assert confusions["insertions"] == [{"word": "barked", "count": 1}]
    assert confusions["deletions"] == []
    deletions = confusion_pairs(utterance_errors(["x y z", "y z"], ["", ""]), top=2)["deletions"]
    assert deletions == [{"word": "y", "count": 2}, {"word": "z", "count": 2}]
