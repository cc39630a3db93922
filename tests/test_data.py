import collections

import numpy as np
import pytest
import soundfile

from asr.config import FeatureConfig
from asr.data import ctc_feasible, filter_utterances, load_example, make_dataset
from asr.features import num_frames
from asr.manifest import Utterance
from asr.text import Vocabulary

FEATURES = FeatureConfig(n_mels=40)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


@pytest.fixture
def corpus(tone_wav):
    """Nine tones of 0.1 s to 0.9 s, each transcribed with a distinct word."""
    return [
        Utterance(str(tone_wav(f"{word}.wav", seconds=0.1 * (i + 1), seed=i)), 0.1 * (i + 1), word)
        for i, word in enumerate(WORDS)
    ]


def batches(dataset) -> list[tuple[dict, dict]]:
    return list(dataset.as_numpy_iterator())


def words_in(batch, vocabulary: Vocabulary) -> list[str]:
    _, targets = batch
    return [vocabulary.decode(labels[:length])
            for labels, length in zip(targets["labels"], targets["label_lengths"])]


@pytest.mark.parametrize("labels, logit_frames, feasible", [
    ([1, 1], 2, False),  # repeats need a blank between them
    ([1, 1], 3, True),
    ([1, 2], 2, True),
    ([1, 2, 2, 2, 3], 6, False),
    ([1, 2, 2, 2, 3], 7, True),
    ([5], 0, False),
])
def test_ctc_feasible(labels, logit_frames, feasible):
    assert ctc_feasible(labels, logit_frames) is feasible


@pytest.mark.parametrize("text, seconds, subsampling, kept", [
    ("aa", 0.015, 1, False),  # 240 samples: 2 frames
    ("ab", 0.015, 1, True),
    ("aa", 0.025, 1, True),  # 400 samples: 3 frames
    ("ab", 0.055, 4, True),  # 880 samples: 6 frames, 2 after subsampling
    ("aa", 0.075, 4, False),  # 1200 samples: 8 frames, 2 after subsampling
    ("aa", 0.085, 4, True),  # 1360 samples: 9 frames, 3 after subsampling
])
def test_transcripts_too_long_for_their_audio(text, seconds, subsampling, kept, tone_wav):
    utterance = Utterance(str(tone_wav(seconds=seconds)), seconds, text)
    accepted, dropped = filter_utterances([utterance], Vocabulary(), FeatureConfig(), subsampling)
    assert len(accepted) == kept
    assert dropped == ({} if kept else {"transcript too long for its audio": 1})


def test_filter_counts_every_reason(tmp_path, tone_wav):
    good = str(tone_wav("good.wav", seconds=1.0))
    long = str(tone_wav("long.wav", seconds=25.0))
    short = str(tone_wav("short.wav", seconds=0.02))
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(0, np.float32), 16000)
    utterances = [
        Utterance(good, 1.0, "Hello, World!"),
        Utterance(good, 7.0, "duration from the header"),
        Utterance(good, 1.0, " ?! "),
        Utterance(good, 1.0, "it's"),
        Utterance(long, 25.0, "too long for training"),
        Utterance(short, 0.02, "far too many letters"),
        Utterance(str(not_audio), 0.0, "not audio"),
        Utterance(str(tmp_path / "absent.wav"), 0.0, "absent"),
        Utterance(str(silent), 0.0, "silent"),
    ]
    no_apostrophe = Vocabulary(" abcdefghijklmnopqrstuvwxyz")
    kept, dropped = filter_utterances(utterances, no_apostrophe, FeatureConfig(), subsampling=4,
                                      max_duration=20.0)
    assert [u.text for u in kept] == ["hello world", "duration from the header"]
    assert kept[1].duration == pytest.approx(1.0)
    assert dropped == {
        "empty transcript": 1,
        "characters outside the vocabulary": 1,
        "longer than max_duration": 1,
        "transcript too long for its audio": 1,
        "unreadable audio": 2,
        "empty audio": 1,
    }


def test_eval_batches(corpus):
    vocabulary = Vocabulary()
    dataset = make_dataset(corpus, vocabulary, FEATURES, batch_size=4, training=False)
    loaded = batches(dataset)
    assert [len(batch[0]["feature_lengths"]) for batch in loaded] == [4, 4, 1]
    inputs, targets = loaded[0]
    assert set(inputs) == {"features", "feature_lengths"}
    assert set(targets) == {"labels", "label_lengths"}
    assert inputs["features"].dtype == np.float32 and inputs["features"].shape[2] == 40
    assert inputs["feature_lengths"].dtype == np.int32
    assert targets["labels"].dtype == np.int32 and targets["label_lengths"].dtype == np.int32
    assert inputs["features"].shape[1] == max(inputs["feature_lengths"])
    assert targets["labels"].shape[1] == max(targets["label_lengths"])
    for row, utterance in enumerate(corpus[:4]):
        frames, length = inputs["feature_lengths"][row], targets["label_lengths"][row]
        expected_features, expected_labels = load_example(
            utterance.audio_filepath, utterance.text, vocabulary, FEATURES)
        assert frames == num_frames(round(utterance.duration * 16000), FEATURES)
        np.testing.assert_allclose(inputs["features"][row, :frames], expected_features, atol=1e-6)
        assert not inputs["features"][row, frames:].any()
        assert length == len(utterance.text)
        assert list(targets["labels"][row, :length]) == vocabulary.encode(utterance.text)
        assert not targets["labels"][row, length:].any()


def test_eval_order_is_preserved_without_bucketing(corpus):
    vocabulary = Vocabulary()
    dataset = make_dataset(corpus, vocabulary, FEATURES, batch_size=2, training=False)
    assert [word for batch in batches(dataset) for word in words_in(batch, vocabulary)] == list(WORDS)


def test_training_buckets_see_every_utterance_once_per_epoch(corpus):
    vocabulary = Vocabulary()
    boundaries = (0.3, 0.6)  # 30 and 60 frames at a 10 ms hop
    dataset = make_dataset(corpus, vocabulary, FEATURES, batch_size=2, training=True,
                           bucket_boundaries=boundaries, seed=1)
    for _ in range(2):
        seen = collections.Counter()
        for batch in batches(dataset):
            seen.update(words_in(batch, vocabulary))
            buckets = np.digitize(batch[0]["feature_lengths"], [30, 60], right=False)
            assert len(set(buckets)) == 1, batch[0]["feature_lengths"]
        assert seen == collections.Counter(WORDS)
