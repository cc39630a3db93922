import json
import math
import random

import pytest

from asr.cli import main
from asr.decoding.lm import (BOS, EOS, UNK, KenLMModel, LanguageModelError, NGramModel, build_kneser_ney,
                             kneser_ney_discounts, known_words, load_language_model, read_sentences)

WORDS = "the a cat dog sat ran on mat big small".split()


def random_corpus(sentences=300, seed=0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(sentences)]


@pytest.fixture(scope="module")
def trigram() -> NGramModel:
    return build_kneser_ney(random_corpus(), order=3)


def probability(model, word, context=()):
    return 10 ** model.score(word, context)


def test_discounts_follow_chen_and_goodman():
    # Y = 10 / (10 + 2 * 5) = 0.5; D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3
    assert kneser_ney_discounts({1: 10, 2: 5, 3: 3, 4: 2}) == pytest.approx((0.5, 1.1, 3 - 4 / 3))


def test_discounts_fall_back_to_absolute_discounting_when_counts_of_counts_are_missing():
    assert kneser_ney_discounts({1: 4, 2: 2}) == (0.5, 0.5, 0.5)
    assert kneser_ney_discounts({1: 3}) == (0.5, 0.5, 0.5)


def test_unigram_model_matches_hand_computation():
    # Counts a 1, b 2, c 3, d 4, </s> 1: n1..n4 = 2, 1, 1, 1, so Y = 0.5 and D = 0.5, 0.5, 1.
    # Total 11; freed mass (0.5 * 2 + 0.5 * 1 + 1 * 2) / 11 = 3.5 / 11 spread over 6 words.
    model = build_kneser_ney(["a b b c c c d d d d"], order=1)
    assert probability(model, "d") == pytest.approx(3 / 11 + 3.5 / 66)
    assert probability(model, "a") == pytest.approx(0.5 / 11 + 3.5 / 66)
    assert probability(model, UNK) == pytest.approx(3.5 / 66)
    assert probability(model, "zebra") == probability(model, UNK)


def test_bigram_model_matches_hand_computation():
    # Unigram continuation counts a 1, b 2, c 1, </s> 2 (total 6, D = 1/3);
    # bigram counts <s> a 2, <s> b 1, a b 1, a c 1, b </s> 2, c </s> 1 (D = 1/2).
    model = build_kneser_ney(["a b", "a c", "b"], order=2)
    unigram_b = (2 - 1 / 3) / 6 + (4 / 3 / 6) / 5
    unigram_a = (1 - 1 / 3) / 6 + (4 / 3 / 6) / 5
    unigram_end = unigram_b
    assert probability(model, "b") == pytest.approx(unigram_b)
    assert probability(model, "b", ["a"]) == pytest.approx(0.5 / 2 + 0.5 * unigram_b)
    assert probability(model, EOS, ["b"]) == pytest.approx(1.5 / 2 + 0.25 * unigram_end)
    assert probability(model, "a", ["b"]) == pytest.approx(0.25 * unigram_a)  # backs off


def test_lower_orders_count_contexts_not_occurrences():
    model = build_kneser_ney(["san francisco"] * 5 + ["the cat", "a cat", "my cat"], order=2)
    assert probability(model, "francisco") < probability(model, "cat")
    assert probability(model, "francisco", ["san"]) > 0.5


@pytest.mark.parametrize("context", [(), (BOS,), (BOS, "the"), ("cat", "sat"), ("mat", "zebra"),
                                     ("zebra", "the"), (EOS,)])
def test_probabilities_over_the_vocabulary_sum_to_one(trigram, context):
    vocabulary = trigram.vocabulary - {BOS}
    assert sum(probability(trigram, word, context) for word in vocabulary) == pytest.approx(1.0)


def test_unknown_words_read_as_unk(trigram):
    assert trigram.score("zebra", [BOS, "the"]) == trigram.score(UNK, [BOS, "the"])
    assert trigram.score("cat", ["zebra", "the"]) == trigram.score("cat", [UNK, "the"])


def test_known_words_leave_out_the_sentence_markers_and_unk(trigram):
    assert known_words(trigram) == set(WORDS) and {BOS, EOS, UNK} < trigram.vocabulary


def test_sentence_score_sums_word_scores(trigram):
    expected = (trigram.score("the", [BOS]) + trigram.score("cat", [BOS, "the"])
                + trigram.score(EOS, ["the", "cat"]))
    assert trigram.sentence_score("the cat") == pytest.approx(expected)


@pytest.mark.parametrize("name", ["model.arpa", "model.arpa.gz"])
def test_arpa_round_trip_keeps_every_score(trigram, tmp_path, name):
    trigram.save_arpa(tmp_path / name)
    loaded = NGramModel.load_arpa(tmp_path / name)
    assert loaded == trigram
    for sentence in random_corpus(20, seed=1):
        assert loaded.sentence_score(sentence) == trigram.sentence_score(sentence)
    assert isinstance(load_language_model(tmp_path / name), NGramModel)


def test_arpa_file_has_header_counts_and_sentence_markers(trigram, tmp_path):
    trigram.save_arpa(tmp_path / "model.arpa")
    text = (tmp_path / "model.arpa").read_text()
    assert text.startswith("\\data\\\n") and text.rstrip().endswith("\\end\\")
    for n, table in enumerate(trigram.ngrams, 1):
        assert f"ngram {n}={len(table)}\n" in text
    assert trigram.score(BOS) == -99.0
    # Every n-gram's context and suffix are in the model, as ARPA readers expect.
    for n in (2, 3):
        for ngram in trigram.ngrams[n - 1]:
            assert ngram[:-1] in trigram.ngrams[n - 2] and ngram[1:] in trigram.ngrams[n - 2]


@pytest.mark.parametrize("content, reason", [
    ("hello\n", "not an ARPA file"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\n\\end\\\n", "header declares"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta b c\n\n\\end\\\n", ":5: expected"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nhigh\ta\n\n\\end\\\n", ":5: could not convert"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta\n", "missing \\end\\"),
])
def test_malformed_arpa_files_name_the_file_and_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.arpa"
    path.write_text(content)
    with pytest.raises(LanguageModelError, match="bad.arpa") as error:
        NGramModel.load_arpa(path)
    assert reason in str(error.value)


def test_load_language_model_rejects_missing_and_unknown_files(tmp_path):
    with pytest.raises(LanguageModelError, match="missing.arpa: no such file"):
        load_language_model(tmp_path / "missing.arpa")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\x01not a model" + random.Random(0).randbytes(3000))
    with pytest.raises(LanguageModelError, match="model.bin: neither an ARPA file .* nor a KenLM binary"):
        load_language_model(binary)  # kenlm had been handed it: progress bars, then a UnicodeDecodeError
    with pytest.raises(LanguageModelError, match="not a file"):
        load_language_model(tmp_path)


def test_builder_rejects_empty_input():
    with pytest.raises(LanguageModelError, match="no sentences"):
        build_kneser_ney([])
    with pytest.raises(LanguageModelError, match="order"):
        build_kneser_ney(["a"], order=0)


@pytest.mark.ci  # kenlm is in the dev extra
def test_kenlm_reads_our_arpa_files_with_the_same_scores(trigram, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    trigram.save_arpa(tmp_path / "model.arpa")
    reference = kenlm.Model(str(tmp_path / "model.arpa"))
    for sentence in random_corpus(20, seed=2):
        assert reference.score(sentence, bos=True, eos=True) == pytest.approx(
            trigram.sentence_score(sentence), abs=1e-4)
    wrapped = KenLMModel(tmp_path / "model.arpa")
    for context in ([BOS, "the"], ["the", "cat"], [BOS], []):
        assert math.isclose(wrapped.score("sat", context), trigram.score("sat", context), abs_tol=1e-4)
    with pytest.raises(LanguageModelError, match="model.arpa: a KenLM binary does not list its words"):
        known_words(wrapped)


# Found by fuzzing (tests/test_fuzz.py).

@pytest.mark.parametrize("damage", [lambda data: data[:len(data) // 2], lambda data: data[:10] + b"\x00" * 20 + data[30:]])
def test_damaged_gzip_raises_language_model_error(trigram, tmp_path, damage):
    """A truncated or corrupted .gz raised EOFError or zlib.error."""
    path = tmp_path / "model.arpa.gz"
    trigram.save_arpa(path)
    path.write_bytes(damage(path.read_bytes()))
    for load in (NGramModel.load_arpa, load_language_model):  # the latter had let EOFError out
        with pytest.raises(LanguageModelError, match="model.arpa.gz"):
            load(path)


def test_nan_weight_is_rejected(trigram, tmp_path):
    path = tmp_path / "model.arpa"
    trigram.save_arpa(path)
    lines = path.read_text().splitlines()
    number = next(n for n, line in enumerate(lines) if line.startswith("-") and "\t" in line)
    lines[number] = "nan" + lines[number][lines[number].index("\t"):]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LanguageModelError, match=f"model.arpa:{number + 1}: 'nan'"):
        NGramModel.load_arpa(path)


def test_read_sentences_normalises_text_and_transcripts(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("The Cat sat.\n\n  Call 911!\n")
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "text": "A dog, RAN"}) + "\n")
    assert read_sentences([text], [manifest]) == ["the cat sat", "call nine one one", "a dog ran"]
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00text")
    with pytest.raises(LanguageModelError, match="binary.txt: not a UTF-8 text file"):
        read_sentences([tmp_path / "binary.txt"])


def test_build_lm_writes_a_loadable_arpa_file(tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("The cat sat.\nthe cat ran\n")
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "a.wav", "text": "4 dogs"}) + "\n")
    out = tmp_path / "lm" / "words.arpa"
    assert main(["build-lm", "--text", str(text), "--manifest", str(manifest), "--order", "2",
                 "--out", str(out)]) == 0
    assert f"3 sentences -> {out}" in capsys.readouterr().out
    lm = load_language_model(out)
    assert lm.order == 2 and {"cat", "four", "dogs"} <= lm.vocabulary
    assert lm.score("sat", ["cat"]) > lm.score("sat", ["four"])
    assert main(["build-lm", "--out", str(out)]) == 2
    assert main(["build-lm", "--text", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    assert "missing.txt: No such file" in capsys.readouterr().err
