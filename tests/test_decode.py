import itertools
import math

import numpy as np
import pytest

from asr.config import ConfigError
from asr.decoding.ctc import ctc_alignment, greedy_decode, log_softmax
from asr.decoding.decode import BeamSearchDecoder, GreedyDecoder
from asr.decoding.decoder_config import DecoderConfig
from asr.decoding.lm import NGramModel, build_kneser_ney, known_words
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
    assert BeamSearchDecoder(VOCABULARY).decode(AMBIGUOUS).text == "the kat"
    assert BeamSearchDecoder(VOCABULARY, lm=lm).decode(AMBIGUOUS).text == "the cat"
    assert BeamSearchDecoder(VOCABULARY, lm=lm, alpha=0.0, beta=0.0).decode(AMBIGUOUS).text == "the kat"


def test_fused_score_adds_weighted_lm_and_word_bonus(lm):
    hypothesis = BeamSearchDecoder(VOCABULARY, lm=lm, alpha=0.5, beta=1.0).search(AMBIGUOUS)[0]
    lm_score = lm.sentence_score("the cat") * math.log(10)
    assert hypothesis.score == pytest.approx(hypothesis.acoustic_score + 0.5 * lm_score + 2 * 1.0)


def test_hotword_flips_an_ambiguous_word():
    assert BeamSearchDecoder(VOCABULARY, hotwords={"cat": 1.0}).decode(AMBIGUOUS).text == "the cat"


def test_hotword_boost_while_spelling_keeps_it_in_a_one_wide_beam():
    # Boosting only completed words would lose "c" at the first pruning.
    assert BeamSearchDecoder(VOCABULARY, beam_width=1, hotwords={"cat": 3.0}).decode(AMBIGUOUS).text == "the cat"


def test_a_hotword_prefix_that_becomes_another_word_loses_its_bonus():
    assert BeamSearchDecoder(VOCABULARY, hotwords={"cab": 3.0}).decode(AMBIGUOUS).text == "the kat"


def test_a_lexicon_spells_its_words_where_the_acoustics_prefer_another(lm):
    lexicon = known_words(lm)
    assert BeamSearchDecoder(VOCABULARY, lm=lm, alpha=0.0, beta=0.0, lexicon=lexicon).decode(AMBIGUOUS).text == (
        "the cat")
    assert BeamSearchDecoder(VOCABULARY, lexicon=frozenset({"the", "cat"})).decode(AMBIGUOUS).text == "the cat"
    assert BeamSearchDecoder(VOCABULARY, lexicon=frozenset({"the"}), hotwords={"kat": 0.1}).decode(
        AMBIGUOUS).text == "the kat"  # a hotword is a lexicon word


def test_lexicon_hypotheses_spell_only_its_words_and_whole_words_rank_first(lm):
    rng = np.random.default_rng(0)
    lexicon = known_words(lm)
    starts = {word[:end] for word in lexicon for end in range(len(word) + 1)}
    decoder = BeamSearchDecoder(VOCABULARY, lm=lm, lexicon=lexicon)
    for _ in range(5):
        hypotheses = decoder.search(peaked_logits(rng, 40, margin=2.0))
        assert hypotheses
        for hypothesis in hypotheses:
            *words, last = hypothesis.text.split(" ")
            assert set(words) <= lexicon | {""} and last in starts
        whole = [not h.text or h.text.split(" ")[-1] in lexicon | {""} for h in hypotheses]
        assert whole == sorted(whole, reverse=True)
    # Cut off mid-word: "the ca" is by far the likeliest text, but "the cat" ranks above it.
    hypotheses = BeamSearchDecoder(VOCABULARY, lexicon=frozenset({"the", "cat"})).search(frames(*spell("the ca")))
    assert hypotheses[0].text == "the cat"
    assert max(hypotheses, key=lambda hypothesis: hypothesis.score).text == "the ca"


def test_a_search_left_mid_word_completes_it_to_a_lexicon_word(lm):
    # One long "e": "three" needs a blank inside it, which a one-wide beam never keeps.
    logits = frames(*spell("thr"), *[{"e": 0.95}] * 4)
    lexicon = frozenset({"three", "two", "thread"})
    assert BeamSearchDecoder(VOCABULARY, beam_width=1).decode(logits).text == "thre"
    decoded = BeamSearchDecoder(VOCABULARY, beam_width=1, lexicon=lexicon).decode(logits)
    assert decoded.text == "three"
    assert VOCABULARY.decode([label for label, _ in itertools.groupby(decoded.path)]) == "three"
    (best,) = BeamSearchDecoder(VOCABULARY, beam_width=1, lexicon=lexicon).search(logits)
    assert best.acoustic_score == pytest.approx(ctc_alignment(logits, VOCABULARY.encode("three"))[0])
    # Too few frames to spell any completion: the unfinished word is kept.
    short = frames(*spell("th")[:-1], {"r": 0.95}, {"e": 0.95})
    assert BeamSearchDecoder(VOCABULARY, beam_width=1, lexicon=lexicon).decode(short).text == "thre"


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
        assert decoder.decode(logits).text == VOCABULARY.decode(greedy_decode(logits))


def test_repeated_characters_need_a_blank_between_them():
    decoder = BeamSearchDecoder(VOCABULARY)
    assert decoder.decode(frames({"a": 0.95}, {"a": 0.95})).text == "a"
    assert decoder.decode(frames({"a": 0.95}, {"": 0.95}, {"a": 0.95})).text == "aa"


def test_empty_input_decodes_to_empty_text(lm):
    nothing = np.zeros((0, VOCABULARY.size))
    assert BeamSearchDecoder(VOCABULARY, lm=lm, hotwords={"cat": 1.0}).decode(nothing).text == ""
    assert BeamSearchDecoder(VOCABULARY).decode(AMBIGUOUS, length=0).text == ""
    assert GreedyDecoder(VOCABULARY).decode(nothing).text == ""


def test_batch_decoding_ignores_padded_frames(lm):
    short = frames(*spell("a cat"))
    padding = frames(*spell("zz"), *([{"": 0.95}] * (len(AMBIGUOUS) - len(short) - 4)))
    batch = np.stack([AMBIGUOUS, np.concatenate([short, padding])])
    lengths = np.array([len(AMBIGUOUS), len(short)])
    for decoder, texts in ((BeamSearchDecoder(VOCABULARY, lm=lm), ["the cat", "a cat"]),
                           (GreedyDecoder(VOCABULARY), ["the kat", "a cat"])):
        decoded = decoder.decode_batch(batch, lengths)
        assert [d.text for d in decoded] == texts
        assert len(decoded[1].path) == len(short)  # padding has no frames in the path


def test_greedy_decoding_gives_the_best_path_with_its_text():
    logits = frames({"a": 0.9}, {"a": 0.9}, {"": 0.9}, {"a": 0.6, "": 0.4}, {"": 0.9}, {" ": 0.9},
                    {"b": 0.7, "": 0.3}, {"b": 0.9})
    decoded = GreedyDecoder(VOCABULARY).decode(logits)
    assert decoded.text == "aa b"
    np.testing.assert_array_equal(decoded.path, logits.argmax(axis=-1))


def test_beam_alignment_places_a_text_the_best_path_does_not_spell(lm):
    decoded = BeamSearchDecoder(VOCABULARY, lm=lm).decode(AMBIGUOUS)
    assert decoded.text == "the cat"
    assert VOCABULARY.decode(decoded.path) == "the cat"  # one frame per character, blanks between
    assert decoded.path[8] == VOCABULARY.encode("c")[0]  # the frame where "k" was likelier


def test_beam_alignment_is_the_forced_alignment_of_its_text():
    """Against Viterbi forced alignment of the beam's own text: the most probable
    path that spells it."""
    rng = np.random.default_rng(0)
    labels = rng.choice(VOCABULARY.size, size=(20, 60), p=[0.5] + [0.5 / (VOCABULARY.size - 1)] * (VOCABULARY.size - 1))
    for path in labels:
        logits = rng.normal(scale=1.5, size=(60, VOCABULARY.size))
        logits[np.arange(60), path] += rng.normal(6.0, 2.0, size=60)  # peaky, with close calls
        decoded = BeamSearchDecoder(VOCABULARY, beam_width=16).decode(logits)
        _, oracle = ctc_alignment(log_softmax(logits), VOCABULARY.encode(decoded.text))
        assert len(decoded.text) > 10
        np.testing.assert_array_equal(decoded.path, oracle)


@pytest.mark.parametrize("beam_width", [1, 16])
def test_beam_and_greedy_paths_agree_on_peaked_logits(beam_width):
    rng = np.random.default_rng(2)
    for _ in range(10):
        logits = peaked_logits(rng, 50)
        beam = BeamSearchDecoder(VOCABULARY, beam_width=beam_width).decode(logits)
        np.testing.assert_array_equal(beam.path, GreedyDecoder(VOCABULARY).decode(logits).path)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="beam width"):
        BeamSearchDecoder(VOCABULARY, beam_width=0)
    with pytest.raises(ConfigError, match="hotword 'new york'"):
        BeamSearchDecoder(VOCABULARY, hotwords={"new york": 1.0})
    with pytest.raises(ValueError, match=r"shape \(frames, 29\)"):
        BeamSearchDecoder(VOCABULARY).decode(np.zeros((5, 10)))


def test_decoder_config_builds_greedy_and_beam_decoders(lm, tmp_path):
    assert isinstance(DecoderConfig().build(VOCABULARY), GreedyDecoder)
    lm.save_arpa(tmp_path / "words.arpa")
    decoder = DecoderConfig("beam", beam_width=8, lm_path=tmp_path / "words.arpa").build(VOCABULARY)
    assert decoder.beam_width == 8 and decoder.lm == lm and decoder.lexicon is None
    assert [d.text for d in decoder.decode_batch(AMBIGUOUS[None], [len(AMBIGUOUS)])] == ["the cat"]
    constrained = DecoderConfig("beam", lm_path=tmp_path / "words.arpa", lexicon=True).build(VOCABULARY)
    assert constrained.lexicon == known_words(lm) == {"the", "cat", "sat", "on", "mat", "ran", "a", "dog"}


def test_decoder_config_loads_its_language_model_once(lm, tmp_path):
    lm.save_arpa(tmp_path / "words.arpa")
    config = DecoderConfig("beam", lm_path=tmp_path / "words.arpa")
    first = config.build(VOCABULARY)
    (tmp_path / "words.arpa").unlink()  # a worker keeps decoding with the LM it loaded
    assert config.build(VOCABULARY).lm is first.lm is not None
