"""Decoder settings: hotword specs, validation, the YAML form and the flags over it."""

import dataclasses

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.cli import main
from asr.config import ConfigError
from asr.decoding.decoder_config import (DecoderConfig, load_decoder_config, override_decoder_config,
                                         parse_hotwords, save_decoder_config)
from asr.decoding.lm import LanguageModelError
from asr.text import Vocabulary


def test_parse_hotwords():
    assert parse_hotwords("Cat:2.5, kat,") == {"cat": 2.5, "kat": 5.0}
    with pytest.raises(ConfigError, match="not a single word"):
        parse_hotwords("new york")
    with pytest.raises(ConfigError, match="not a number"):
        parse_hotwords("cat:loud")


def test_decoder_config_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="decoder: expected one of 'greedy', 'beam', got 'wide'"):
        DecoderConfig("wide")
    with pytest.raises(ConfigError, match="beam_width: must be at least 1"):
        DecoderConfig("beam", beam_width=0)
    with pytest.raises(ConfigError, match="need the beam decoder"):
        DecoderConfig("greedy", lm_path="words.arpa")
    with pytest.raises(ConfigError, match="lexicon is the language model's words: it needs an LM"):
        DecoderConfig("beam", lexicon=True)
    with pytest.raises(LanguageModelError, match="missing.arpa: no such file"):
        DecoderConfig("beam", lm_path=tmp_path / "missing.arpa").build(Vocabulary())
    # NaN and infinite weights had decoded nonsense ("tiree e fiheee") with exit status 0.
    with pytest.raises(ConfigError, match="alpha: expected a number, got nan"):
        DecoderConfig("beam", alpha=float("nan"))
    with pytest.raises(ConfigError, match="beta: inf is not a finite weight"):
        DecoderConfig("beam", beta=float("inf"))
    with pytest.raises(ConfigError, match="hotwords.five: -inf is not a finite weight"):
        DecoderConfig("beam", hotwords={"five": float("-inf")})


def test_decoder_config_round_trips_through_yaml(tmp_path):
    (tmp_path / "lms").mkdir()
    config = DecoderConfig("beam", 32, tmp_path / "lms" / "words.arpa", 0.75, 2.0, {"cat": 3.0}, -8.0, True)
    save_decoder_config(config, tmp_path / "decode.yaml", comment="tuned on dev\nWER 1%")
    text = (tmp_path / "decode.yaml").read_text()
    assert text.startswith("# tuned on dev\n# WER 1%\n") and "lm_path: lms/words.arpa" in text
    loaded = load_decoder_config(tmp_path / "decode.yaml")
    assert loaded == DecoderConfig("beam", 32, str(tmp_path / "lms" / "words.arpa"), 0.75, 2.0,
                                   {"cat": 3.0}, -8.0, True)


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
    from_file = DecoderConfig("beam", 32, "words.arpa", 0.75, 2.0, lexicon=True)
    assert override_decoder_config(from_file, beam_width=4, alpha=None) == DecoderConfig(
        "beam", 4, "words.arpa", 0.75, 2.0, lexicon=True)
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
