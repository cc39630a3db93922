import json

import numpy as np
import pytest

from asr.cli import main
from asr.decode import load_decoder_config
from asr.lm import LanguageModelError, build_kneser_ney, load_language_model
from asr.text import Vocabulary
from asr.errors import UsageError
from asr.tune import format_tuning, grid_search, tune_transcript_lm
from ctc_logits import frames, spell

VOCABULARY = Vocabulary()
ALPHAS, BETAS = (0.0, 0.1, 0.5, 2.0), (0.0, 1.0)


@pytest.fixture(scope="module")
def dev_set():
    """Two utterances that need an LM, but a light one.

    "the cat sat" sounds slightly more like "the kat sat", which any LM weight fixes;
    "the cot sat" sounds clearly like itself, but a heavy LM, which has never seen
    "cot", turns it into "cat".
    """
    lm = build_kneser_ney(["the cat sat", "the cat ran", "a cat sat on the mat", "the dog ran"])
    logits = [frames(*spell("the "), {"k": 0.55, "c": 0.45}, {"": 0.95}, *spell("at sat")),
              frames(*spell("the c"), {"o": 0.8, "a": 0.2}, {"": 0.95}, *spell("t sat"))]
    return logits, ["the cat sat", "the cot sat"], lm


def test_grid_search_picks_the_weight_that_minimises_wer(dev_set):
    logits, references, lm = dev_set
    tuning = grid_search(logits, references, VOCABULARY, lm, ALPHAS, BETAS, beam_width=8)
    wer = {(point.alpha, point.beta): point.wer for point in tuning.points}
    one_error = 1 / 6
    assert wer == pytest.approx({(alpha, beta): 0.0 if alpha == 0.1 else one_error
                                 for alpha in ALPHAS for beta in BETAS})
    assert tuning.greedy_wer == pytest.approx(one_error) and tuning.utterances == 2
    assert (tuning.best.alpha, tuning.best.beta) == (0.1, 0.0)  # ties go to the smaller beta
    table = format_tuning(tuning)
    assert "0.00*" in table and "best: alpha 0.1, beta 0: WER 0.00%" in table


def test_a_process_pool_gives_the_same_table(dev_set):
    logits, references, lm = dev_set
    alone = grid_search(logits, references, VOCABULARY, lm, ALPHAS, BETAS, beam_width=8)
    pooled = grid_search(logits, references, VOCABULARY, lm, ALPHAS, BETAS, beam_width=8, workers=2)
    assert pooled == alone


def test_grid_search_rejects_an_empty_grid(dev_set):
    logits, references, lm = dev_set
    with pytest.raises(UsageError, match="at least one alpha"):
        grid_search(logits, references, VOCABULARY, lm, (), BETAS)


def test_tune_lm_writes_the_config_that_evaluate_reads(trained_model, speech_corpus, tmp_path, capsys):
    lm, config = tmp_path / "words.arpa", tmp_path / "decode.yaml"
    assert main(["build-lm", "--manifest", str(speech_corpus["train"]), "--out", str(lm)]) == 0
    assert main(["tune-lm", "--model", str(trained_model), "--manifest", str(speech_corpus["dev"]),
                 "--lm", str(lm), "--alphas", "0,0.5", "--betas", "1", "--beam-width", "4",
                 "--workers", "1", "--output", str(config)]) == 0
    assert "alpha \\ beta" in capsys.readouterr().out
    tuned = load_decoder_config(config)
    assert (tuned.decoder, tuned.beam_width, tuned.beta) == ("beam", 4, 1.0) and tuned.alpha in (0.0, 0.5)

    def decoder_used(*flags) -> str:
        assert main(["evaluate", "--model", str(trained_model), "--manifest", str(speech_corpus["test"]),
                     "--output-dir", str(tmp_path / "report"), "--decode-config", str(config), *flags]) == 0
        return json.loads((tmp_path / "report" / "report.json").read_text())["metadata"]["decoder"]

    assert decoder_used() == f"beam search (width 4, LM {lm} (alpha {tuned.alpha}, beta 1.0))"
    assert decoder_used("--beam-width", "2", "--beta", "0") == (
        f"beam search (width 2, LM {lm} (alpha {tuned.alpha}, beta 0.0))")
    assert decoder_used("--decoder", "greedy") == "greedy"


def test_a_transcript_lm_knows_the_training_words_and_is_tuned_on_dev(trained_model, speech_corpus,
                                                                       tmp_path):
    lm_path = tmp_path / "transcripts.arpa"
    tuning, decoder = tune_transcript_lm(trained_model, [speech_corpus["train"]], speech_corpus["dev"],
                                         lm_path, order=2, alphas=(0.0, 0.5), betas=(1.0,), workers=1)
    words = {word for line in speech_corpus["train"].read_text().splitlines()
             for word in json.loads(line)["text"].split()}
    assert load_language_model(lm_path).vocabulary == words | {"<s>", "</s>", "<unk>"}
    assert (decoder.decoder, decoder.lm_path) == ("beam", str(lm_path))
    assert (decoder.alpha, decoder.beta) == (tuning.best.alpha, tuning.best.beta)
    assert len(tuning.points) == 2
