"""Decoding speed in ms of CPU per second of audio: greedy and prefix beam search with and
without a word LM, each giving its text and alignment (what transcription uses).

    python scripts/bench_decode.py                                   # synthetic logits
    python scripts/bench_decode.py --model model.keras --audio a.wav b.wav --lm words.arpa

Synthetic logits spell sentences of made-up words at about 14 characters per second
in 25 frames per second (10 ms hops subsampled 4x), with some frames made
ambiguous between two characters; a trigram LM is built from the same word
distribution, so the WER column shows what fusion buys.
"""

from __future__ import annotations

import argparse
import math
import string
import time

import jiwer
import numpy as np

from asr.decoding.ctc import log_softmax
from asr.decoding.decode import BeamSearchDecoder, GreedyDecoder
from asr.decoding.lm import build_kneser_ney, known_words, load_language_model
from asr.text import Vocabulary


def pseudo_words(rng: np.random.Generator, count: int) -> list[str]:
    lengths = rng.integers(2, 9, size=count)
    return sorted({"".join(rng.choice(list(string.ascii_lowercase), size=n)) for n in lengths})


def sentences(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    """Zipf-distributed words, 4-14 per sentence."""
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    return [" ".join(rng.choice(words, size=rng.integers(4, 15), p=weights)) for _ in range(count)]


def synthetic_logits(rng: np.random.Generator, text: str, vocabulary: Vocabulary,
                     ambiguity: float = 0.08) -> np.ndarray:
    """(frames, classes) logits spelling `text`: 1-2 frames a character, blanks between some."""
    labels = [0]
    for label in vocabulary.encode(text):
        if labels[-1] == label or rng.random() < 0.6:  # a repeat needs a blank in between
            labels.append(0)
        labels += [label] * (1 + (rng.random() < 0.2))
    labels.append(0)
    # Trained CTC models put most classes 10-20 nats below the winner.
    logits = rng.normal(scale=1.5, size=(len(labels), vocabulary.size))
    frames = np.arange(len(labels))
    logits[frames, labels] += rng.normal(13.0, 2.0, size=len(labels))
    confused = rng.random(len(labels)) < ambiguity
    rivals = rng.integers(1, vocabulary.size, size=len(labels))
    logits[frames[confused], rivals[confused]] = (logits[frames, labels][confused]
                                                  + rng.normal(0.0, 1.0, size=confused.sum()))
    return logits.astype(np.float32)


def model_logits(model_path: str, audio_paths: list[str]) -> tuple[list[np.ndarray], float, Vocabulary]:
    """Real (frames, classes) logits per file from a trained model, and the audio seconds."""
    from asr import audio, features
    from asr.model import load_model, predict_logits

    model = load_model(model_path)
    config = model.feature_config
    utterances, seconds = [], 0.0
    for path in audio_paths:
        samples = audio.load_audio(path, config.sample_rate)
        seconds += len(samples) / config.sample_rate
        extracted = features.extract(samples, config)
        inputs = {"features": extracted[None], "feature_lengths": np.array([len(extracted)], np.int32)}
        (logits, lengths), = predict_logits(model, [(inputs,)])
        utterances.append(np.asarray(logits[0, :lengths[0]]))
    return utterances, seconds, model.vocabulary


def pad(utterances: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(u) for u in utterances])
    batch = np.zeros((len(utterances), lengths.max(), utterances[0].shape[1]), np.float32)
    for row, utterance in zip(batch, utterances):
        row[:len(utterance)] = utterance
    return batch, lengths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained .keras model (default: synthetic logits)")
    parser.add_argument("--audio", nargs="+", default=[], help="audio files for --model")
    parser.add_argument("--lm", help="ARPA or KenLM file (default: a trigram built on the synthetic corpus)")
    parser.add_argument("--seconds", type=float, default=60.0, help="synthetic audio to decode")
    parser.add_argument("--frames-per-second", type=float, default=25.0)
    parser.add_argument("--repeats", type=int, default=3, help="time each decoder this often, keep the best")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    references = None
    if args.model:
        if not args.audio:
            parser.error("--model needs --audio files to transcribe")
        utterances, seconds, vocabulary = model_logits(args.model, args.audio)
        lm = load_language_model(args.lm) if args.lm else None
    else:
        vocabulary = Vocabulary()
        words = pseudo_words(rng, 2000)
        lm = load_language_model(args.lm) if args.lm else build_kneser_ney(
            sentences(rng, words, 5000), order=3)
        references, utterances, frame_count = [], [], 0
        while frame_count < args.seconds * args.frames_per_second:
            references += sentences(rng, words, 1)
            utterances.append(synthetic_logits(rng, references[-1], vocabulary))
            frame_count += len(utterances[-1])
        seconds = frame_count / args.frames_per_second

    batch, lengths = pad(utterances)
    decoders = [("greedy", 1, GreedyDecoder(vocabulary))]  # (name, beam width, decoder)
    for width in (16, 64):
        decoders.append(("prefix beam", width, BeamSearchDecoder(vocabulary, width)))
        if lm is not None:
            decoders.append(("prefix beam + LM", width, BeamSearchDecoder(vocabulary, width, lm)))
            decoders.append(("  + lexicon", width,
                             BeamSearchDecoder(vocabulary, width, lm, lexicon=known_words(lm))))

    log_probs = log_softmax(np.concatenate(utterances))
    tried = (log_probs[:, 1:] >= BeamSearchDecoder.prune_log_prob).sum(axis=1).mean()
    print(f"{len(utterances)} utterances, {seconds:.1f} s of audio, {vocabulary.size} classes, "
          f"{tried:.1f} characters above the prune threshold per frame")
    print(f"{'decoder':<18}{'beam':>5}{'LM':>5}{'ms/audio s':>12}{'x real-time':>13}"
          + ("    WER" if references else ""))
    for name, width, decoder in decoders:
        elapsed = math.inf
        for _ in range(args.repeats):  # the fastest run is the least disturbed by other load
            start = time.perf_counter()
            texts = [decoded.text for decoded in decoder.decode_batch(batch, lengths)]
            elapsed = min(elapsed, time.perf_counter() - start)
        fused = isinstance(decoder, BeamSearchDecoder) and decoder.lm is not None
        row = (f"{name:<18}{width:>5}{'yes' if fused else 'no':>5}"
               f"{1000 * elapsed / seconds:>12.3f}{seconds / elapsed:>13.0f}")
        print(row + (f"{jiwer.wer(references, texts):>7.3f}" if references else ""))


if __name__ == "__main__":
    main()
