import json

import numpy as np
import pytest

from asr.cli import main
from asr.decoding.decoder_config import load_decoder_config
from asr.decoding.lm import build_kneser_ney, load_language_model
from asr.errors import UsageError
from asr.evaluation.tune import format_tuning, grid_search, tune, tune_transcript_lm
from asr.text import Vocabulary
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


def test_a_lexicon_grid_never_spells_a_word_the_lm_has_not_seen(dev_set):
    logits, references, lm = dev_set
    tuning = grid_search(logits, references, VOCABULARY, lm, ALPHAS, BETAS, beam_width=8, lexicon=True)
    # "cot" is not in the LM: every weight, even 0, writes "cat", one error in six words.
    assert [point.wer for point in tuning.points] == pytest.approx([1 / 6] * len(tuning.points))


def test_grid_search_rejects_an_empty_grid(dev_set):
    logits, references, lm = dev_set
    with pytest.raises(UsageError, match="at least one alpha"):
        grid_search(logits, references, VOCABULARY, lm, (), BETAS)


def test_tune_lm_writes_the_config_that_evaluate_reads(trained_model, speech_corpus, tmp_path, capsys):
    lm, config = tmp_path / "words.arpa", tmp_path / "decode.yaml"
    assert main(["build-lm", "--manifest", str(speech_corpus["train"]), "--out", str(lm)]) == 0
    assert main(["tune-lm", "--model", str(trained_model), "--manifest", str(speech_corpus["dev"]),
                 "--lm", str(lm), "--alphas", "0,0.5", "--betas", "1", "--beam-width", "4",
                 "--workers", "1", "--output", str(config), "--perturb", "telephone", "--lexicon"]) == 0
    assert "(clean, telephone)" in capsys.readouterr().out
    assert "16 utterances: clean, telephone" in config.read_text()
    tuned = load_decoder_config(config)
    assert (tuned.decoder, tuned.beam_width, tuned.beta, tuned.lexicon) == ("beam", 4, 1.0, True)
    assert tuned.alpha in (0.0, 0.5)

    def decoder_used(*flags) -> str:
        assert main(["evaluate", "--model", str(trained_model), "--manifest", str(speech_corpus["test"]),
                     "--output-dir", str(tmp_path / "report"), "--decode-config", str(config), *flags]) == 0
        return json.loads((tmp_path / "report" / "report.json").read_text())["metadata"]["decoder"]

    lm_words = "the LM's words only"
    assert decoder_used() == f"beam search (width 4, LM {lm} (alpha {tuned.alpha}, beta 1.0), {lm_words})"
    assert decoder_used("--beam-width", "2", "--beta", "0") == (
        f"beam search (width 2, LM {lm} (alpha {tuned.alpha}, beta 0.0), {lm_words})")
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


def test_tuning_pools_dev_with_its_corrupted_copies(trained_model, speech_corpus, tmp_path):
    from dataclasses import replace

    from asr.augment import parse_perturbation, perturbed_copies
    from asr.manifest import read_manifest, write_manifest

    perturbations, grid = ("noise:0", "telephone"), dict(alphas=(0.5,), betas=(1.0,), workers=1)
    tuning, _ = tune_transcript_lm(trained_model, [speech_corpus["train"]], speech_corpus["dev"],
                                   tmp_path / "lm.arpa", order=2, perturbations=perturbations, **grid)
    assert tuning.conditions == ("clean", *perturbations) and tuning.utterances == 3 * 8
    assert "(clean, noise:0, telephone)" in format_tuning(tuning)
    # Each condition tuned on its own manifest: the copies written by hand, with the same seed.
    dev = read_manifest(speech_corpus["dev"])
    manifests = [speech_corpus["dev"]]
    for perturbation in perturbations:
        copies = perturbed_copies([u.audio_filepath for u in dev], parse_perturbation(perturbation),
                                  tmp_path / perturbation.replace(":", ""))
        manifests.append(tmp_path / f"{perturbation.replace(':', '')}.jsonl")
        write_manifest([replace(u, audio_filepath=copy) for u, copy in zip(dev, copies)], manifests[-1])
    alone = [tune(trained_model, manifest, tmp_path / "lm.arpa", **grid)[0] for manifest in manifests]
    # The same references under each condition: pooled error rates are the conditions' mean.
    assert tuning.greedy_cer == pytest.approx(np.mean([one.greedy_cer for one in alone]))
    assert tuning.points[0].wer == pytest.approx(np.mean([one.points[0].wer for one in alone]))
    assert len({one.greedy_cer for one in alone}) > 1  # the corruptions changed what the model heard


def test_a_bad_perturbation_is_named_before_the_model_loads(speech_corpus, tmp_path):
    from asr.config import ConfigError

    lm = tmp_path / "lm.arpa"
    build_kneser_ney(["one two"]).save_arpa(lm)
    with pytest.raises(ConfigError, match="fog:3"):
        tune_transcript_lm(tmp_path / "missing.keras", [speech_corpus["train"]], speech_corpus["dev"], lm,
                           perturbations=("fog:3",))
