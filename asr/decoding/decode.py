"""CTC decoding of frame posteriors into text and its alignment.

Greedy (best path) decoding, and prefix beam search with word n-gram shallow
fusion and hotword boosting (`asr.decoding.decoder_config` picks one from command-line
style settings). Both decoders return a `Decoded`: the text
and the CTC path (a label per logit frame) that spells it, from which
`asr.transcription.timestamps` times words and rates their confidence.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from asr.config import ConfigError
from asr.decoding.ctc import collapse, ctc_alignment, emissions, greedy_decode, held_path, log_softmax
from asr.decoding.lm import BOS, EOS, LanguageModel
from asr.text import Vocabulary

# LMs score in log10; CTC scores are natural logs.
LN10 = math.log(10.0)


class Decoded(NamedTuple):
    """A decoder's best text and its alignment."""

    text: str
    path: np.ndarray  # (frames,) label per logit frame (0 = blank) that spells `text`


class Decoder:
    """What both decoders share: `decode` takes one utterance, `decode_batch` a padded batch."""

    def decode(self, logits: np.ndarray, length: int | None = None) -> Decoded:
        raise NotImplementedError

    def decode_batch(self, logits: np.ndarray, lengths=None) -> list[Decoded]:
        """(batch, frames, classes) logits with true frame counts -> one `Decoded` each."""
        lengths = [None] * len(logits) if lengths is None else [int(n) for n in lengths]
        return [self.decode(row, n) for row, n in zip(logits, lengths)]


def greedy_decode_batch(logits: np.ndarray, lengths, vocabulary: Vocabulary) -> list[str]:
    """(batch, frames, classes) logits with true frame counts -> one string each."""
    return [vocabulary.decode(greedy_decode(row, int(n))) for row, n in zip(logits, lengths)]


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) on Python floats.

    This is the search's innermost operation; np.logaddexp costs about 4x as much
    on scalars because of ufunc dispatch.
    """
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


@dataclass(frozen=True)
class Hypothesis:
    text: str
    score: float  # ln P_ctc + alpha ln P_lm + beta * words + hotword bonuses
    acoustic_score: float  # ln P_ctc(text | logits), summed over its alignments
    # The best single alignment among those the beam kept: (frame, label, rest) for
    # each character it emits, last first; None for no characters.
    alignment: tuple | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BeamSearchDecoder(Decoder):
    """CTC prefix beam search (Hannun et al., 2014) with optional shallow fusion.

    A hypothesis scores ln P_ctc(text) + alpha * ln P_lm(words) + beta * len(words)
    + hotword bonuses. A word enters the LM, and earns beta, once a space completes
    it; the last word and </s> do at the end of the utterance. beta applies only
    with an LM, whose cost per word it offsets.

    Hotwords are boosted while they are spelled: a partial word that begins a
    hotword earns weight * len(partial) / len(hotword), so the hypothesis survives
    pruning until the word is complete, which then keeps the full weight; a partial
    word that turns into another word loses the bonus. Weights are in nats.

    With a `lexicon` (Flashlight's lexicon-constrained search), a hypothesis
    spells only its words: a prefix survives pruning only while its last word is
    the start of one, and one that ends the utterance mid-word ranks below every
    hypothesis that ends on a whole word. Hotwords count as lexicon words. Should
    every hypothesis left at the end stop mid-word (a long "e" that never let "three"
    spell its second one), the likeliest are spelled out to the lexicon words they
    begin, each scored over all its alignments, so that a whole word can still win.

    In each frame, characters below `prune_log_prob` are not tried (the frame's
    best character always is).

    Alignment: a prefix's score sums over its alignments; beside it, each
    prefix keeps the frames that emit its characters in its most probable single
    alignment among those the beam kept (Viterbi). The result's path emits its
    characters there, each held while that beats a blank.
    """

    vocabulary: Vocabulary
    beam_width: int = 16
    lm: LanguageModel | None = None
    alpha: float = 0.5
    beta: float = 1.0
    hotwords: Mapping[str, float] | None = None
    prune_log_prob: float = -10.0
    lexicon: frozenset[str] | None = None
    _hotword_prefixes: dict[str, float] = field(init=False, repr=False, compare=False)
    # Each start of a lexicon word ("" included) -> whether it is a whole word.
    _spellings: dict[str, bool] | None = field(init=False, repr=False, compare=False)
    # The lexicon's words the vocabulary can spell, sorted: completions bisect it.
    _whole_words: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.beam_width < 1:
            raise ValueError(f"beam width must be at least 1, got {self.beam_width}")
        prefixes = {}
        for word, weight in (self.hotwords or {}).items():
            if not word or " " in word or not self.vocabulary.covers(word):
                raise ConfigError(f"hotword {word!r} is not a single word in the vocabulary")
            for end in range(1, len(word) + 1):
                prefixes[word[:end]] = max(prefixes.get(word[:end], 0.0), weight * end / len(word))
        object.__setattr__(self, "_hotword_prefixes", prefixes)
        spellings, whole_words = None, ()
        if self.lexicon is not None:
            words = {*self.lexicon, *(self.hotwords or {})}
            spellings = {word[:end]: False for word in words for end in range(len(word))}
            spellings.update(dict.fromkeys(words, True))
            whole_words = tuple(sorted(word for word in words if self.vocabulary.covers(word)))
        object.__setattr__(self, "_spellings", spellings)
        object.__setattr__(self, "_whole_words", whole_words)

    def decode(self, logits: np.ndarray, length: int | None = None) -> Decoded:
        """(frames, classes) logits; `length` ignores padded frames. Returns the best text and its path."""
        log_probs = self._log_probs(logits, length)
        best = self._search(log_probs)[0]
        return Decoded(best.text, held_path(log_probs, best.alignment))

    def search(self, logits: np.ndarray, length: int | None = None) -> list[Hypothesis]:
        """(frames, classes) logits or log-probabilities -> up to beam_width hypotheses, best first."""
        return self._search(self._log_probs(logits, length))

    def _log_probs(self, logits: np.ndarray, length: int | None) -> np.ndarray:
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != self.vocabulary.size:
            raise ValueError(f"expected logits of shape (frames, {self.vocabulary.size}), got {logits.shape}")
        return log_softmax(logits[:length])

    def _search(self, log_probs: np.ndarray) -> list[Hypothesis]:
        characters = self.vocabulary.characters
        scorer = _FusionScorer(self) if self.lm is not None or self.hotwords else None
        # prefix -> [ln P(its alignments ending in blank), ln P(those ending in its last
        # character), ln P of the best single alignment of each kind, those alignments]
        beams = {"": [0.0, -math.inf, 0.0, -math.inf, None, None]}
        for index, (frame, values) in enumerate(zip(log_probs, log_probs.tolist())):
            threshold = min(self.prune_log_prob, frame[1:].max())
            candidates = [(characters[i], i + 1, values[i + 1])
                          for i in np.flatnonzero(frame[1:] >= threshold)]
            beams = self._prune(_extend(beams, index, values[0], candidates), scorer)
        hypotheses = []
        for text, (blank, character, best_blank, best_character, blank_path, character_path) in beams.items():
            acoustic = _log_add(blank, character)
            fused = acoustic + scorer.final_score(text) if scorer else acoustic
            path = blank_path if best_blank >= best_character else character_path
            hypotheses.append(Hypothesis(text, fused, acoustic, path))
        if self.lexicon is None:
            def rank(hypothesis): return hypothesis.score
        else:
            if not any(self._ends_a_word(hypothesis.text) for hypothesis in hypotheses):
                hypotheses += self._completions(log_probs, hypotheses, scorer)

            def rank(hypothesis): return self._ends_a_word(hypothesis.text), hypothesis.score
        return sorted(hypotheses, key=rank, reverse=True)[:self.beam_width]

    def _completions(self, log_probs: np.ndarray, hypotheses: list[Hypothesis],
                     scorer: _FusionScorer | None) -> list[Hypothesis]:
        """Up to beam_width texts that end `hypotheses`' unfinished last words as lexicon
        words (fewest letters added, then likeliest, first), scored as the search scores
        its own (ln P_ctc over all alignments, plus fusion), with their Viterbi alignments."""
        words = self._whole_words
        candidates = {}
        for hypothesis in hypotheses:
            start = hypothesis.text.rfind(" ") + 1
            partial = hypothesis.text[start:]
            index = bisect.bisect_right(words, partial)  # sorted: the words it begins follow it
            while index < len(words) and words[index].startswith(partial):
                text = hypothesis.text[:start] + words[index]
                rank = len(words[index]) - len(partial), -hypothesis.score
                candidates[text] = min(rank, candidates.get(text, rank))
                index += 1
        completions = []
        for text in heapq.nsmallest(self.beam_width, candidates, key=candidates.get):
            acoustic, path = ctc_alignment(log_probs, self.vocabulary.encode(text))
            if path is not None:
                fused = acoustic + scorer.final_score(text) if scorer else acoustic
                completions.append(Hypothesis(text, fused, acoustic, emissions(path)))
        return completions

    def _spells_words(self, text: str) -> bool:
        """Whether `text`, whose prefixes do, keeps to the lexicon: a space ends a
        lexicon word (or none, as two spaces in a row do) and a letter begins one."""
        start = text.rfind(" ") + 1
        if start < len(text):
            return text[start:] in self._spellings
        return self._ends_a_word(text[:-1])

    def _ends_a_word(self, text: str) -> bool:
        last = text[text.rfind(" ") + 1:]
        return not last or self._spellings.get(last, False)

    def _prune(self, beams: dict, scorer: _FusionScorer | None) -> dict:
        if self.lexicon is not None:
            beams = {text: entry for text, entry in beams.items() if self._spells_words(text)}
        if scorer is None:
            def rank(item): return _log_add(item[1][0], item[1][1])
        else:
            def rank(item): return _log_add(item[1][0], item[1][1]) + scorer.prefix_score(item[0])
        kept = dict(heapq.nlargest(self.beam_width, beams.items(), key=rank))
        if scorer is not None:
            scorer.forget_all_but(kept)
        return kept


def _extend(beams: dict, frame: int, blank_log_prob: float, candidates: list[tuple[str, int, float]]) -> dict:
    """One frame of prefix beam search: each prefix takes a blank, repeats or grows.

    Beside the sums over alignments that rank prefixes, an entry keeps the best
    single alignment ending in blank and in its last character (Viterbi), as
    linked lists: (frame, label, the rest) per emitted character, last first.
    """
    never = -math.inf  # a local: read in the innermost loop
    extended = {}
    for text, (blank, character, best_blank, best_character, blank_path, character_path) in beams.items():
        total = _log_add(blank, character)
        best, path = ((best_blank, blank_path) if best_blank >= best_character
                      else (best_character, character_path))
        entry = extended.get(text)
        if entry is None:
            entry = extended[text] = [total + blank_log_prob, never, best + blank_log_prob, never, path, None]
        else:  # grown from a shorter prefix in this frame, so it has no blank ending yet
            entry[0], entry[2], entry[4] = total + blank_log_prob, best + blank_log_prob, path
        last = text[-1:]
        for next_character, label, log_prob in candidates:
            if next_character == last:
                # Repeats with no blank in between collapse into the same text;
                # only alignments ending in blank can spell the character twice.
                entry[1] = _log_add(entry[1], character + log_prob)
                if best_character + log_prob > entry[3]:
                    entry[3], entry[5] = best_character + log_prob, character_path
                if blank == never:
                    continue
                score, best_score, source_path = blank + log_prob, best_blank + log_prob, blank_path
            else:
                score, best_score, source_path = total + log_prob, best + log_prob, path
            child = text + next_character
            child_entry = extended.get(child)
            if child_entry is None:  # most children are new: skip the addition
                extended[child] = [never, score, never, best_score, None, (frame, label, source_path)]
            else:
                child_entry[1] = _log_add(child_entry[1], score)
                if best_score > child_entry[3]:
                    child_entry[3], child_entry[5] = best_score, (frame, label, source_path)
    return extended


class _FusionScorer:
    """LM and hotword scores of one utterance's prefixes, cached by text."""

    def __init__(self, decoder: BeamSearchDecoder):
        self.lm = decoder.lm
        self.lm_weight = decoder.alpha * LN10
        self.beta = decoder.beta
        self.hotwords = decoder.hotwords or {}
        self.hotword_prefixes = decoder._hotword_prefixes
        self.completed = {"": 0.0}  # text -> score of the words a space has completed

    def prefix_score(self, text: str) -> float:
        """Completed words plus the hotword bonus of the word being spelled."""
        partial = text[text.rfind(" ") + 1:]
        return self._completed_score(text) + self.hotword_prefixes.get(partial, 0.0)

    def forget_all_but(self, texts) -> None:
        """Drop cached prefixes other than `texts` (which were just scored), so a long
        utterance holds one frame's worth of them rather than all it has seen."""
        self.completed = {"": 0.0, **{text: self.completed[text] for text in texts}}

    def final_score(self, text: str) -> float:
        """The utterance has ended: its last word is complete and so is the sentence."""
        score = self._completed_score(text) + self._word_score(text)
        if self.lm is not None:
            score += self.lm_weight * self.lm.score(EOS, [BOS, *text.split()])
        return score

    def _completed_score(self, text: str) -> float:
        end = len(text)
        while text[:end] not in self.completed:  # "" always is
            end -= 1
        score = self.completed[text[:end]]
        for end in range(end + 1, len(text) + 1):
            if text[end - 1] == " ":
                score += self._word_score(text[:end - 1])
            self.completed[text[:end]] = score
        return score

    def _word_score(self, text: str) -> float:
        """What the last word of `text` earns once completed (nothing after a space)."""
        if not text or text[-1] == " ":
            return 0.0
        words = text.split()
        score = self.hotwords.get(words[-1], 0.0)
        if self.lm is not None:
            score += self.lm_weight * self.lm.score(words[-1], [BOS, *words[:-1]]) + self.beta
        return score


@dataclass(frozen=True)
class GreedyDecoder(Decoder):
    """Best-path decoding behind the same interface as BeamSearchDecoder."""

    vocabulary: Vocabulary

    def decode(self, logits: np.ndarray, length: int | None = None) -> Decoded:
        """(frames, classes) logits; `length` ignores padded frames. Returns the best
        path (argmax per frame) and the text it spells."""
        path = np.asarray(logits)[:length].argmax(axis=-1)
        return Decoded(self.vocabulary.decode(collapse(path)), path)
