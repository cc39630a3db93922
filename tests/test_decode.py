import math

import numpy as np
import pytest

from asr.decode import (BeamSearchDecoder, DecoderConfig, GreedyDecoder, greedy_decode,
                        greedy_decode_batch, keras_beam_search, parse_hotwords)
from asr.lm import LanguageModelError, NGramModel, build_kneser_ney
from asr.text import Vocabulary
from ctc_logits import frames, spell

VOCABULARY = Vocabulary()
CORPUS = ["the cat sat on the mat", "the cat ran", "a cat sat", "the dog sat on the mat"]


def peaked_logits(rng, frame_count: int, margin: float = 8.0) -> np.ndarray:
    logits = rng.normal(size=(frame_count, VOCABULARY.size))
    logits[np.arange(frame_count), rng.integers(0, VOCABULARY.size, frame_count)] += margin
    return logits


# Acoustically "the kat" (k 0.55, c 0.45); only an LM or a hotword says "cat".
AMBIGUOUS = frames(*spell("the "), {"k": 0.55, "c": 0.45}, {"": 0.95}, *spell("at"))


@pytest.fixture(scope="module")
def lm() -> NGramModel:
    return build_kneser_ney(CORPUS, order=3)


def test_language_model_flips_the_acoustic_answer(lm):
    assert VOCABULARY.decode(greedy_decode(AMBIGUOUS)) == "the kat"
    assert BeamSearchDecoder(VOCABULARY).decode(AMBIGUOUS) == "the kat"
    assert BeamSearchDecoder(VOCABULARY, lm=lm).decode(AMBIGUOUS) == "the cat"
    assert BeamSearchDecoder(VOCABULARY, lm=lm, alpha=0.0, beta=0.0).decode(AMBIGUOUS) == "the kat"


def test_fused_score_adds_weighted_lm_and_word_bonus(lm):
    hypothesis = BeamSearchDecoder(VOCABULARY, lm=lm, alpha=0.5, beta=1.0).search(AMBIGUOUS)[0]
    lm_score = lm.sentence_score("the cat") * math.log(10)
    assert hypothesis.score == pytest.approx(hypothesis.acoustic_score + 0.5 * lm_score + 2 * 1.0)


def test_hotword_flips_an_ambiguous_word():
    assert BeamSearchDecoder(VOCABULARY, hotwords={"cat": 1.0}).decode(AMBIGUOUS) == "the cat"


def test_hotword_boost_while_spelling_keeps_it_in_a_one_wide_beam():
    # Boosting only completed words would lose "c" at the first pruning.
    assert BeamSearchDecoder(VOCABULARY, beam_width=1, hotwords={"cat": 3.0}).decode(AMBIGUOUS) == "the cat"


def test_a_hotword_prefix_that_becomes_another_word_loses_its_bonus():
    assert BeamSearchDecoder(VOCABULARY, hotwords={"cab": 3.0}).decode(AMBIGUOUS) == "the kat"


def test_acoustic_scores_sum_over_alignments():
    vocabulary = Vocabulary("ab")
    probabilities = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]])  # blank, a, b
    hypotheses = BeamSearchDecoder(vocabulary, beam_width=10).search(np.log(probabilities))
    found = {h.text: math.exp(h.acoustic_score) for h in hypotheses}
    # "a": a a, a -, - a; "b": b b, b -, - b; "" needs two blanks; "aa" is impossible.
    assert found == pytest.approx({"a": 0.44, "b": 0.22, "": 0.2, "ba": 0.08, "ab": 0.06})
    assert [h.text for h in hypotheses] == ["a", "b", "", "ba", "ab"]


@pytest.mark.parametrize("beam_width", [1, 16])
def test_beam_search_matches_greedy_on_peaked_logits(beam_width):
    rng = np.random.default_rng(0)
    decoder = BeamSearchDecoder(VOCABULARY, beam_width=beam_width)
    for _ in range(10):
        logits = peaked_logits(rng, 50)
        assert decoder.decode(logits) == VOCABULARY.decode(greedy_decode(logits))


def test_repeated_characters_need_a_blank_between_them():
    decoder = BeamSearchDecoder(VOCABULARY)
    assert decoder.decode(frames({"a": 0.95}, {"a": 0.95})) == "a"
    assert decoder.decode(frames({"a": 0.95}, {"": 0.95}, {"a": 0.95})) == "aa"


def test_empty_input_decodes_to_empty_text(lm):
    nothing = np.zeros((0, VOCABULARY.size))
    assert BeamSearchDecoder(VOCABULARY, lm=lm, hotwords={"cat": 1.0}).decode(nothing) == ""
    assert BeamSearchDecoder(VOCABULARY).decode(AMBIGUOUS, length=0) == ""
    assert GreedyDecoder(VOCABULARY).decode(nothing) == ""


def test_batch_decoding_ignores_padded_frames(lm):
    short = frames(*spell("a cat"))
    padding = frames(*spell("zz"), *([{"": 0.95}] * (len(AMBIGUOUS) - len(short) - 4)))
    batch = np.stack([AMBIGUOUS, np.concatenate([short, padding])])
    lengths = np.array([len(AMBIGUOUS), len(short)])
    assert BeamSearchDecoder(VOCABULARY, lm=lm).decode_batch(batch, lengths) == ["the cat", "a cat"]
    assert GreedyDecoder(VOCABULARY).decode_batch(batch, lengths) == ["the kat", "a cat"]


def test_keras_beam_search_agrees_with_prefix_beam_search():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2.0, size=(20, 15, VOCABULARY.size))
    lengths = rng.integers(5, 16, size=20)
    ours = BeamSearchDecoder(VOCABULARY, beam_width=16).decode_batch(logits, lengths)
    theirs = keras_beam_search(logits, lengths, VOCABULARY, beam_width=16)
    assert sum(a == b for a, b in zip(ours, theirs)) >= 16  # merging rules differ slightly
    peaked = np.stack([peaked_logits(rng, 30) for _ in range(4)])
    assert keras_beam_search(peaked, [30] * 4, VOCABULARY) == greedy_decode_batch(peaked, [30] * 4, VOCABULARY)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="beam width"):
        BeamSearchDecoder(VOCABULARY, beam_width=0)
    with pytest.raises(ValueError, match="hotword 'new york'"):
        BeamSearchDecoder(VOCABULARY, hotwords={"new york": 1.0})
    with pytest.raises(ValueError, match=r"shape \(frames, 29\)"):
        BeamSearchDecoder(VOCABULARY).decode(np.zeros((5, 10)))


def test_parse_hotwords():
    assert parse_hotwords("Cat:2.5, kat,") == {"cat": 2.5, "kat": 5.0}
    with pytest.raises(ValueError, match="not a single word"):
        parse_hotwords("new york")
    with pytest.raises(ValueError, match="not a number"):
        parse_hotwords("cat:loud")


def test_decoder_config_builds_greedy_and_beam_decoders(lm, tmp_path):
    assert isinstance(DecoderConfig().build(VOCABULARY), GreedyDecoder)
    lm.save_arpa(tmp_path / "words.arpa")
    decoder = DecoderConfig("beam", beam_width=8, lm_path=tmp_path / "words.arpa").build(VOCABULARY)
    assert decoder.beam_width == 8 and decoder.lm == lm
    assert decoder.decode_batch(AMBIGUOUS[None], [len(AMBIGUOUS)]) == ["the cat"]


def test_decoder_config_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown decoder 'wide'"):
        DecoderConfig("wide")
    with pytest.raises(ValueError, match="need the beam decoder"):
        DecoderConfig("greedy", lm_path="words.arpa")
    with pytest.raises(LanguageModelError, match="missing.arpa: no such file"):
        DecoderConfig("beam", lm_path=tmp_path / "missing.arpa").build(VOCABULARY)
