import pytest

from asr.text import BLANK, DEFAULT_CHARACTERS, Vocabulary, VocabularyError, normalize


@pytest.mark.parametrize("raw, expected", [
    ("Hello WORLD", "hello world"),
    ("Café naïve Ångström", "cafe naive angstrom"),
    ("Hello, world! (Really?) Yes; no: \"maybe\".", "hello world really yes no maybe"),
    ("room 42", "room four two"),
    ("x2y", "x two y"),
    ("don't it\u2019s O'Brien", "don't it's o'brien"),
    ("'quoted' words' 'end", "quoted words end"),
    ("well-known", "well known"),
    ("  tabs\tand\nnewlines   here ", "tabs and newlines here"),
    ("?!...", ""),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_can_keep_digits_out_of_the_text():
    assert normalize("room 42", spell_digits=False) == "room"


def test_normalize_is_idempotent():
    text = normalize("It's 3 o'clock — Zoë's café!")
    assert normalize(text) == text


def test_vocabulary_puts_blank_first():
    vocabulary = Vocabulary()
    assert vocabulary.size == len(DEFAULT_CHARACTERS) + 1 == 29
    assert vocabulary.tokens[0] == BLANK
    assert vocabulary.tokens[1:] == list(DEFAULT_CHARACTERS)


def test_encode_decode_round_trip():
    vocabulary = Vocabulary()
    text = normalize("The quick brown fox can't jump 9 times")
    ids = vocabulary.encode(text)
    assert min(ids) >= 1 and max(ids) < vocabulary.size
    assert vocabulary.decode(ids) == text
    assert vocabulary.encode("a b") == [3, 1, 4]


def test_decode_skips_blanks():
    vocabulary = Vocabulary("ab")
    assert vocabulary.decode([0, 1, 0, 0, 2, 1, 0]) == "aba"


def test_encode_rejects_unknown_characters_by_name():
    with pytest.raises(ValueError, match="'x' is not in the vocabulary"):
        Vocabulary("ab ").encode("abx")


def test_covers():
    vocabulary = Vocabulary("ab ")
    assert vocabulary.covers("ab ba")
    assert not vocabulary.covers("abc")


def test_repeated_characters_are_rejected():
    with pytest.raises(VocabularyError, match="repeated"):
        Vocabulary("abca")
