import dataclasses
import math

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.cli import main
from asr.decode import (BeamSearchDecoder, DecoderConfig, GreedyDecoder, greedy_decode,
                        load_decoder_config, log_softmax, override_decoder_config, parse_hotwords,
                        save_decoder_config)
from asr.config import ConfigError
from asr.lm import LanguageModelError, NGramModel, build_kneser_ney
from asr.text import Vocabulary
from ctc_logits import forced_alignment, frames, spell

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
        oracle = forced_alignment(log_softmax(logits), VOCABULARY.encode(decoded.text))
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


def test_parse_hotwords():
    assert parse_hotwords("Cat:2.5, kat,") == {"cat": 2.5, "kat": 5.0}
    with pytest.raises(ConfigError, match="not a single word"):
        parse_hotwords("new york")
    with pytest.raises(ConfigError, match="not a number"):
        parse_hotwords("cat:loud")


def test_decoder_config_builds_greedy_and_beam_decoders(lm, tmp_path):
    assert isinstance(DecoderConfig().build(VOCABULARY), GreedyDecoder)
    lm.save_arpa(tmp_path / "words.arpa")
    decoder = DecoderConfig("beam", beam_width=8, lm_path=tmp_path / "words.arpa").build(VOCABULARY)
    assert decoder.beam_width == 8 and decoder.lm == lm
    assert [d.text for d in decoder.decode_batch(AMBIGUOUS[None], [len(AMBIGUOUS)])] == ["the cat"]


def test_decoder_config_loads_its_language_model_once(lm, tmp_path):
    lm.save_arpa(tmp_path / "words.arpa")
    config = DecoderConfig("beam", lm_path=tmp_path / "words.arpa")
    first = config.build(VOCABULARY)
    (tmp_path / "words.arpa").unlink()  # a worker keeps decoding with the LM it loaded
    assert config.build(VOCABULARY).lm is first.lm is not None


def test_decoder_config_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="decoder: expected one of 'greedy', 'beam', got 'wide'"):
        DecoderConfig("wide")
    with pytest.raises(ConfigError, match="beam_width: must be at least 1"):
        DecoderConfig("beam", beam_width=0)
    with pytest.raises(ConfigError, match="need the beam decoder"):
        DecoderConfig("greedy", lm_path="words.arpa")
    with pytest.raises(LanguageModelError, match="missing.arpa: no such file"):
        DecoderConfig("beam", lm_path=tmp_path / "missing.arpa").build(VOCABULARY)


def test_decoder_config_round_trips_through_yaml(tmp_path):
    (tmp_path / "lms").mkdir()
    config = DecoderConfig("beam", 32, tmp_path / "lms" / "words.arpa", 0.75, 2.0, {"cat": 3.0}, -8.0)
    save_decoder_config(config, tmp_path / "decode.yaml", comment="tuned on dev\nWER 1%")
    text = (tmp_path / "decode.yaml").read_text()
    assert text.startswith("# tuned on dev\n# WER 1%\n") and "lm_path: lms/words.arpa" in text
    loaded = load_decoder_config(tmp_path / "decode.yaml")
    assert loaded == DecoderConfig("beam", 32, str(tmp_path / "lms" / "words.arpa"), 0.75, 2.0,
                                   {"cat": 3.0}, -8.0)


@pytest.mark.parametrize("content, reason", [
    ("decoder: beam\nwidth: 8\n", "unknown key(s) width"),
    ("decoder: beam\nbeam_width: wide\n", "beam_width: expected an integer, got 'wide'"),
    ("decoder: beam\nbeam_width: 2.5\n", "beam_width: expected an integer, got 2.5"),
    ("decoder: beam\nalpha: true\n", "alpha: expected a number, got True"),
    ("decoder: beam\nhotwords: [cat]\n", "hotwords: expected a mapping of strings to numbers, or null"),
    ("decoder: beam\nhotwords: {cat: loud}\n", "hotwords.cat: expected a number, got 'loud'"),
    ("decoder: beam\nhotwords: new york\n", "hotword 'new york' is not a single word"),
    ("decoder: greedy\nlm_path: words.arpa\n", "need the beam decoder"),
    ("- beam\n", "expected a mapping"),
    ("decoder: wide\n", "decoder: expected one of 'greedy', 'beam', got 'wide'"),
    ("decoder: [beam\n", "cannot read decoding config"),
])
def test_bad_decoding_configs_name_the_file_and_the_reason(tmp_path, content, reason):
    (tmp_path / "decode.yaml").write_text(content)
    with pytest.raises(ConfigError) as error:
        load_decoder_config(tmp_path / "decode.yaml")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'decode.yaml'}: ") and reason in message and "\n" not in message


def test_a_missing_decoding_config_is_a_usage_error(trained_model, speech_corpus, tmp_path, capsys):
    with pytest.raises(ConfigError, match="missing.yaml: cannot read decoding config"):
        load_decoder_config(tmp_path / "missing.yaml")
    assert main(["evaluate", "--model", str(trained_model), "--manifest", str(speech_corpus["test"]),
                 "--decode-config", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_flags_override_the_file_and_greedy_drops_its_lm():
    from_file = DecoderConfig("beam", 32, "words.arpa", 0.75, 2.0)
    assert override_decoder_config(from_file, beam_width=4, alpha=None) == DecoderConfig(
        "beam", 4, "words.arpa", 0.75, 2.0)
    greedy = override_decoder_config(from_file, decoder="greedy")
    assert greedy == DecoderConfig("greedy", 32, None, 0.75, 2.0)
    with pytest.raises(ConfigError, match="need the beam decoder"):
        override_decoder_config(from_file, decoder="greedy", lm_path="other.arpa")


@pytest.mark.parametrize("examples", [pytest.param(500, id="500"),
                                      pytest.param(10_000, id="10000", marks=pytest.mark.slow)])
def test_fuzzed_decoding_configs_load_or_raise_config_error(tmp_path, examples):
    keys = [field.name for field in dataclasses.fields(DecoderConfig)]
    scalars = (st.none() | st.booleans() | st.integers(-10**400, 10**400) | st.floats()
               | st.text(max_size=10) | st.sampled_from(["greedy", "beam", "cat:2,dog", "words.arpa"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3), max_leaves=6)
    trees = values | st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), values, max_size=7)

    @settings(max_examples=examples, deadline=None, database=None)
    @given(tree=trees, cut=st.integers(0, 100), noise=st.binary(max_size=6))
    def check(tree, cut, noise):
        text = yaml.safe_dump(tree).encode()
        path = tmp_path / "decode.yaml"
        path.write_bytes(text[:cut] + noise + text[cut:])
        try:
            config = load_decoder_config(path)
        except ConfigError as error:
            assert "\n" not in str(error)
            return
        save_decoder_config(config, tmp_path / "saved.yaml")
        assert load_decoder_config(tmp_path / "saved.yaml").decoder == config.decoder

    check()
