"""Word n-gram language models: ARPA files, backoff scoring and a modified Kneser-Ney builder.

`asr build-lm` builds one from the sentences `read_sentences` gathers from text
files and manifest transcripts.

Scores are log10 probabilities, as in ARPA files and KenLM. A context is the
preceding words, oldest first, starting with `<s>` at the start of a sentence.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from asr.errors import AsrError, first_line
from asr.manifest import read_manifest
from asr.text import normalize

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NEVER = -99.0  # ARPA's log10(0): <s> is a context but never predicted

NGram = tuple[str, ...]


class LanguageModelError(AsrError):
    """A language model file that cannot be used; the message names the file and the reason."""


class LanguageModel(Protocol):
    order: int

    @property
    def vocabulary(self) -> set[str]: ...

    def score(self, word: str, context: Sequence[str] = ()) -> float: ...

    def sentence_score(self, sentence: str) -> float: ...


@dataclass(frozen=True)
class NGramModel:
    """A backoff n-gram model: `ngrams[n - 1]` maps each n-gram to (log10 p, log10 backoff)."""

    ngrams: tuple[dict[NGram, tuple[float, float]], ...]

    @property
    def order(self) -> int:
        return len(self.ngrams)

    @property
    def vocabulary(self) -> set[str]:
        """Every word the model knows, `<s>`, `</s>` and `<unk>` included."""
        return {ngram[0] for ngram in self.ngrams[0]}

    def score(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 P(word | context), backing off to shorter contexts; unknown words read as <unk>."""
        unigrams = self.ngrams[0]
        word = word if (word,) in unigrams else UNK
        history = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        history = tuple(w if (w,) in unigrams else UNK for w in history)
        backoff = 0.0
        while True:
            entry = self.ngrams[len(history)].get(history + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not history:
                return backoff + NEVER  # neither the word nor <unk> is in the model
            entry = self.ngrams[len(history) - 1].get(history)
            if entry is not None:
                backoff += entry[1]
            history = history[1:]

    def sentence_score(self, sentence: str) -> float:
        """log10 P(<s> words </s>) for a whitespace-separated sentence."""
        context = [BOS]
        total = 0.0
        for word in [*sentence.split(), EOS]:
            total += self.score(word, context)
            context.append(word)
        return total

    def save_arpa(self, path) -> None:
        """Write an ARPA file (gzipped if the name ends in .gz); floats keep full precision."""
        with _open_text(Path(path), "w") as file:
            file.write("\\data\\\n")
            for n, table in enumerate(self.ngrams, 1):
                file.write(f"ngram {n}={len(table)}\n")
            for n, table in enumerate(self.ngrams, 1):
                file.write(f"\n\\{n}-grams:\n")
                for ngram, (log_prob, log_backoff) in sorted(table.items()):
                    line = f"{log_prob!r}\t{' '.join(ngram)}"
                    if log_backoff != 0.0:
                        line += f"\t{log_backoff!r}"
                    file.write(line + "\n")
            file.write("\n\\end\\\n")

    @classmethod
    def load_arpa(cls, path) -> NGramModel:
        """Read an ARPA file (plain or .gz); raises LanguageModelError on a malformed one."""
        path = Path(path)
        try:
            with _open_text(path, "r") as lines:
                return cls(_parse_arpa(lines, path))
        except OSError as error:
            raise LanguageModelError(f"{path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise LanguageModelError(f"{path}: not a UTF-8 text file") from None
        except (EOFError, zlib.error) as error:  # a damaged .gz (gzip raises these, not OSError)
            raise LanguageModelError(f"{path}: damaged gzip data ({error})") from None


def _parse_arpa(lines: Iterable[str], path: Path) -> tuple[dict, ...]:
    declared: dict[int, int] = {}
    tables: list[dict] = []
    section = None  # None before \data\, 0 in the header, n in the n-grams section
    for number, line in enumerate(lines, 1):
        line = line.strip()
        try:
            if line == "\\data\\":
                section = 0
            elif line == "\\end\\":
                break
            elif not line or section is None:
                continue  # ARPA allows free text before \data\
            elif line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:-len("-grams:")])
                if section != len(tables) + 1:
                    raise ValueError(f"section {line} out of order")
                tables.append({})
            elif section == 0:
                order, count = line.removeprefix("ngram ").split("=")
                declared[int(order)] = int(count)
            else:
                fields = line.split()
                if len(fields) not in (section + 1, section + 2):
                    raise ValueError(f"expected log10 p, {section} words and an optional backoff")
                backoff = _log10(fields[section + 1]) if len(fields) == section + 2 else 0.0
                tables[-1][tuple(fields[1:section + 1])] = (_log10(fields[0]), backoff)
        except ValueError as error:
            raise LanguageModelError(f"{path}:{number}: {error}") from None
    else:
        reason = "no \\data\\ header" if section is None else "missing \\end\\"
        raise LanguageModelError(f"{path}: not an ARPA file ({reason})")
    found = {n: len(table) for n, table in enumerate(tables, 1)}
    if not tables or found != declared:
        raise LanguageModelError(f"{path}: header declares n-gram counts {declared}, file has {found}")
    return tuple(tables)


def _log10(text: str) -> float:
    """An ARPA log10 weight: a number below +inf (-inf is log10 0), never NaN."""
    value = float(text)
    if math.isnan(value) or value == math.inf:
        raise ValueError(f"{text!r} is not a log10 weight")
    return value


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def kneser_ney_discounts(count_of_counts: Mapping[int, int]) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from n1..n4, the number of n-grams seen 1..4 times.

    Small corpora leave some n_k at zero or give a discount outside (0, k); those
    fall back to one absolute discount Y = n1 / (n1 + 2 n2) (Ney et al., 1994).
    """
    n1, n2, n3, n4 = (count_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    if n1 and n2 and n3 and n4:
        discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < discount < k for k, discount in enumerate(discounts, 1)):
            return discounts
    return (y, y, y)


def read_sentences(text_files: Iterable = (), manifests: Iterable = ()) -> list[str]:
    """Normalised sentences: each non-empty line of the text files, then each manifest transcript.

    Raises LanguageModelError naming a text file that cannot be read.
    """
    sentences = []
    for path in map(Path, text_files):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise LanguageModelError(f"{path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise LanguageModelError(f"{path}: not a UTF-8 text file") from None
        sentences += [normalize(line) for line in lines]
    for path in manifests:
        sentences += [normalize(utterance.text) for utterance in read_manifest(path)]
    return [sentence for sentence in sentences if sentence]


def build_kneser_ney(sentences: Iterable[str], order: int = 3) -> NGramModel:
    """Interpolated modified Kneser-Ney (Chen & Goodman, 1998), as KenLM's lmplz, without pruning.

    Below the top order an n-gram counts its distinct left neighbours (the contexts
    it continues) rather than its occurrences, except n-grams starting with <s>,
    which nothing precedes. Every order discounts with its own D1, D2, D3+; the mass
    they free is the context's backoff weight, and unigrams interpolate with a
    uniform distribution over the vocabulary (<unk> in, <s> out, so they sum to 1).
    """
    if order < 1:
        raise LanguageModelError(f"order must be at least 1, got {order}")
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        tokens = (BOS, *sentence.split(), EOS)
        for n, table in enumerate(counts, 1):
            table.update(tokens[start:start + n] for start in range(len(tokens) - n + 1))
    if not counts[0]:
        raise LanguageModelError("cannot build a language model from no sentences")
    for n in range(order - 1, 0, -1):  # continuation counts for orders below the top
        left_neighbours = Counter(ngram[1:] for ngram in counts[n])
        counts[n - 1] = Counter({ngram: count if ngram[0] == BOS else left_neighbours[ngram]
                                 for ngram, count in counts[n - 1].items()})
    del counts[0][(BOS,)]
    vocabulary_size = len(counts[0]) + ((UNK,) not in counts[0])

    probabilities: list[dict[NGram, float]] = []
    backoffs: list[dict[NGram, float]] = []  # backoffs[n - 1]: gamma of the n-1 word contexts
    for n, table in enumerate(counts, 1):
        discounts = kneser_ney_discounts(Counter(table.values()))
        totals, freed = defaultdict(float), defaultdict(float)
        for ngram, count in table.items():
            totals[ngram[:-1]] += count
            freed[ngram[:-1]] += discounts[min(count, 3) - 1]
        gammas = {context: freed[context] / totals[context] for context in totals}
        lower = probabilities[-1] if probabilities else None
        probabilities.append({
            ngram: (count - discounts[min(count, 3) - 1]) / totals[ngram[:-1]]
            + gammas[ngram[:-1]] * (lower[ngram[1:]] if lower else 1 / vocabulary_size)
            for ngram, count in table.items()})
        backoffs.append(gammas)
    # An unseen <unk> gets only its share of the uniform distribution.
    probabilities[0].setdefault((UNK,), backoffs[0][()] / vocabulary_size)

    tables = []
    for n, table in enumerate(probabilities, 1):
        gammas = backoffs[n] if n < order else {}
        tables.append({ngram: (math.log10(p), math.log10(gammas[ngram]) if ngram in gammas else 0.0)
                       for ngram, p in table.items()})
    if order > 1:
        tables[0][(BOS,)] = (NEVER, math.log10(backoffs[1][(BOS,)]))
    return NGramModel(tuple(tables))


class KenLMModel:
    """A KenLM binary (or ARPA) file read by the optional `kenlm` module."""

    def __init__(self, path):
        import kenlm

        self._kenlm = kenlm
        self.path = Path(path)
        try:
            self._model = kenlm.Model(str(path))
        except (OSError, RuntimeError, ValueError) as error:  # ValueError: its message is not UTF-8
            raise LanguageModelError(f"{path}: kenlm cannot read it ({first_line(error)})") from None
        self.order = self._model.order

    @property
    def vocabulary(self) -> set[str]:
        raise LanguageModelError(f"{self.path}: a KenLM binary does not list its words; "
                                 "use the ARPA file it was built from for a lexicon")

    def score(self, word: str, context: Sequence[str] = ()) -> float:
        history = list(context)[-(self.order - 1):] if self.order > 1 else []
        state, next_state = self._kenlm.State(), self._kenlm.State()
        if history and history[0] == BOS:
            self._model.BeginSentenceWrite(state)
            history = history[1:]
        else:
            self._model.NullContextWrite(state)
        for previous in history:
            self._model.BaseScore(state, previous, next_state)
            state, next_state = next_state, state
        return self._model.BaseScore(state, word, next_state)

    def sentence_score(self, sentence: str) -> float:
        return self._model.score(sentence, bos=True, eos=True)


def known_words(lm: LanguageModel) -> frozenset[str]:
    """The words `lm` knows, without <s>, </s> and <unk>: what a lexicon-constrained decoder spells."""
    return frozenset(lm.vocabulary - {BOS, EOS, UNK})


KENLM_MAGIC = b"mmap lm http://kheafield.com/code"  # how every KenLM binary begins (build_binary)


def load_language_model(path) -> LanguageModel:
    """ARPA files (plain or .gz) load in pure Python; KenLM binaries need the `kenlm` module."""
    path = Path(path)
    if not path.is_file():
        raise LanguageModelError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            head = file.read(1 << 16)
    except (OSError, EOFError, zlib.error) as error:  # the last two: a damaged .gz
        raise LanguageModelError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    if b"\\data\\" in head:
        return NGramModel.load_arpa(path)
    if not head.startswith(KENLM_MAGIC):  # kenlm would try it as ARPA, printing progress bars
        raise LanguageModelError(f"{path}: neither an ARPA file (no \\data\\ section) nor a KenLM binary")
    try:
        import kenlm  # noqa: F401
    except ImportError:
        raise LanguageModelError(
            f"{path}: not an ARPA file, and KenLM binaries need the optional kenlm module") from None
    return KenLMModel(path)
