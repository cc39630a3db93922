import collections
import os
import threading

import numpy as np
import pytest
import soundfile

from asr import audio
from asr.config import AugmentConfig, FeatureConfig
from asr.data import (BatchSampler, UtteranceLoader, ctc_feasible, filter_utterances, make_dataset,
                      sampled_dataset)
from asr.features import extract, num_frames
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
        expected_features = extract(audio.load_audio(utterance.audio_filepath), FEATURES)
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


def test_sampler_plans_depend_on_seed_and_epoch_only():
    durations = np.linspace(0.2, 2.0, 23)
    sampler = BatchSampler(durations, FEATURES, batch_size=4, shuffle=True,
                           bucket_boundaries=(0.8, 1.4), speed_factors=(0.9, 1.0, 1.1), seed=3)
    again = BatchSampler(durations, FEATURES, batch_size=4, shuffle=True,
                         bucket_boundaries=(0.8, 1.4), speed_factors=(0.9, 1.0, 1.1), seed=3)

    def order(plan):
        return [tuple(batch.indices) for batch in plan]

    assert order(sampler.plan(1)) == order(again.plan(1)) != order(sampler.plan(2))
    for epoch in range(3):
        plan = sampler.plan(epoch)
        assert sorted(np.concatenate([b.indices for b in plan])) == list(range(23))
        speeds = np.concatenate([b.speeds for b in plan])
        assert set(speeds) <= {np.float32(0.9), np.float32(1.0), np.float32(1.1)}
        for batch in plan:  # one bucket per batch, by the frames after the speed change
            assert len(set(np.digitize(batch.frames, [80, 140]))) == 1
            expected = [num_frames(int(d * 16000 / s), FEATURES)
                        for d, s in zip(durations[batch.indices], batch.speeds)]
            assert list(batch.frames) == expected
    sampler.set_epoch(2, skip=3)
    assert order(sampler) == order(sampler.plan(2))[3:]


def test_sampler_cuts_batches_to_a_multiple_of_the_replicas():
    sampler = BatchSampler([1.0] * 11, FEATURES, batch_size=4, shuffle=True, multiple_of=2)
    assert [len(batch.indices) for batch in sampler.plan(0)] == [4, 4, 2]


def test_loader_reads_features_back_from_the_disk_cache(corpus, tmp_path, monkeypatch):
    vocabulary = Vocabulary()
    first = UtteranceLoader(corpus, vocabulary, FEATURES, memory_bytes=0, cache_dir=tmp_path)
    feats, lengths, labels, label_lengths = first.batch([2, 0], [1.0, 1.1])
    assert list(lengths) == [num_frames(4800, FEATURES), num_frames(1600 * 10 // 11, FEATURES)]
    assert list(label_lengths) == [3, 4] and vocabulary.decode(labels[1]) == "zero"
    monkeypatch.setattr("asr.features.extract", lambda *args: pytest.fail("cache missed"))
    second = UtteranceLoader(corpus, vocabulary, FEATURES, memory_bytes=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.batch([2, 0], [1.0, 1.1])[0], feats)


def test_features_stay_in_memory_only_when_the_corpus_fits(corpus):
    frames = sum(num_frames(1600 * (i + 1), FEATURES) for i in range(len(corpus)))
    need = frames * FEATURES.size * 4  # 4.5 s of audio: 450 frames of 40 float32 bins
    fits = UtteranceLoader(corpus, Vocabulary(), FEATURES, memory_bytes=need + 4096)
    too_small = UtteranceLoader(corpus, Vocabulary(), FEATURES, memory_bytes=need - 4096)
    two_speeds = UtteranceLoader(corpus, Vocabulary(), FEATURES, memory_bytes=need + 4096,
                                 speed_factors=(0.9, 1.1))
    for epoch in range(2):
        for index in range(len(corpus)):
            np.testing.assert_array_equal(too_small.features(index), fits.features(index))
    assert fits.loaded == 9 and fits.memory.bytes == frames * FEATURES.size * 4
    assert too_small.loaded == 18 and too_small.memory.bytes == 0
    assert two_speeds.memory.limit_bytes == 0


def test_feasibility_allows_for_the_fastest_speed(tone_wav):
    utterance = Utterance(str(tone_wav(seconds=0.1)), 0.1, "abcdefghijk")  # 11 frames, 11 labels
    kept, _ = filter_utterances([utterance], Vocabulary(), FeatureConfig(), subsampling=1)
    assert len(kept) == 1
    kept, dropped = filter_utterances([utterance], Vocabulary(), FeatureConfig(), subsampling=1,
                                      fastest_speed=1.1)
    assert not kept and dropped == {"transcript too long for its audio": 1}


def test_training_batches_get_masks_that_repeat_with_the_epoch(corpus):
    sampler = BatchSampler([u.duration for u in corpus], FEATURES, batch_size=3, shuffle=True)
    loader = UtteranceLoader(corpus, Vocabulary(), FEATURES)
    masks = AugmentConfig(frequency_masks=2, frequency_mask_width=10, time_masks=1)
    plain, masked = (batches(sampled_dataset(sampler, loader, augmentation))
                     for augmentation in (AugmentConfig(), masks))
    zeros = [(batch[0]["features"] == 0).sum() for batch in masked]
    assert all(z > (p[0]["features"] == 0).sum() for z, p in zip(zeros, plain))

    def masked_counts():
        return [(b[0]["features"] == 0).sum() for b in batches(sampled_dataset(sampler, loader, masks))]

    assert masked_counts() == zeros
    sampler.set_epoch(1)
    assert masked_counts() != zeros


def test_weighted_corpora_give_each_its_share_of_an_epoch():
    corpora = [0] * 10 + [1] * 40 + [2] * 5
    sampler = BatchSampler(np.full(55, 0.5), FEATURES, 8, shuffle=True, corpora=corpora,
                           weights=(2.0, 0.25, 0.0), seed=3)
    picked = {}
    for epoch in range(3):
        indices = np.concatenate([batch.indices for batch in sampler.plan(epoch)])
        counts = collections.Counter(indices.tolist())
        assert all(counts[i] == 2 for i in range(10))  # weight 2: two whole passes
        second = sorted(i for i in counts if 10 <= i < 50)
        assert len(second) == 10 and all(counts[i] == 1 for i in second)  # a quarter, no repeats
        assert not any(50 <= i for i in counts)  # weight 0: left out
        picked[epoch] = second
    assert picked[0] != picked[1]  # a fresh subset each epoch
    again = BatchSampler(np.full(55, 0.5), FEATURES, 8, shuffle=True, corpora=corpora,
                         weights=(2.0, 0.25, 0.0), seed=3)
    assert [b.indices.tolist() for b in again.plan(1)] == [b.indices.tolist() for b in sampler.plan(1)]


def test_weights_must_cover_every_corpus():
    with pytest.raises(ValueError, match="weight"):
        BatchSampler([0.5] * 3, FEATURES, 2, shuffle=True, corpora=[0, 1, 1], weights=(1.0,))


def test_augmented_batches_repeat_with_the_seed_and_leave_padding_alone(corpus):
    config = AugmentConfig(noise_probability=1.0, noise_kinds=("pink", "babble"), babble_talkers=2,
                           reverb_probability=0.5, gain_probability=0.5, telephone_probability=0.5,
                           vtlp_probability=0.5)
    vocabulary = Vocabulary()
    loader = UtteranceLoader(corpus, vocabulary, FEATURES, augmentation=config)
    clean = UtteranceLoader(corpus, vocabulary, FEATURES)
    indices, speeds = np.arange(len(corpus)), np.ones(len(corpus), np.float32)
    features, lengths, labels, _ = loader.batch(indices, speeds, seed=np.array([4, 2]))
    again, *_ = loader.batch(indices, speeds, seed=np.array([4, 2]))
    other, *_ = loader.batch(indices, speeds, seed=np.array([4, 3]))
    reference, reference_lengths, reference_labels, _ = clean.batch(indices, speeds)
    np.testing.assert_array_equal(features, again)
    assert not np.allclose(features, other)
    np.testing.assert_array_equal(lengths, reference_lengths)  # lengths and labels untouched
    np.testing.assert_array_equal(labels, reference_labels)
    for row, length in enumerate(lengths):
        assert not features[row, length:].any()  # padding stays zero
        assert not np.allclose(features[row, :length], reference[row, :length])  # noise on every row
    np.testing.assert_array_equal(loader.batch(indices, speeds)[0], reference)  # no seed: clean


def test_edge_silence_lengthens_the_real_frames_and_leaves_padding_alone(corpus):
    config = AugmentConfig(silence_probability=1.0, silence_seconds=(0.1, 0.1))
    loader = UtteranceLoader(corpus, Vocabulary(), FEATURES, augmentation=config)
    indices, speeds = np.arange(len(corpus)), np.ones(len(corpus), np.float32)
    features, lengths, labels, _ = loader.batch(indices, speeds, seed=np.array([1, 0]))
    _, clean_lengths, clean_labels, _ = UtteranceLoader(corpus, Vocabulary(), FEATURES).batch(indices, speeds)
    added = round(0.2 * FEATURES.sample_rate) // FEATURES.hop_length  # 0.1 s at each end
    np.testing.assert_array_equal(lengths, clean_lengths + added)
    np.testing.assert_array_equal(labels, clean_labels)
    for row, length in enumerate(lengths):
        assert not features[row, length:].any()


def test_corrupting_loaders_read_each_waveform_once_when_the_corpus_fits(corpus, monkeypatch):
    config = AugmentConfig(noise_probability=1.0, noise_kinds=("babble",), babble_talkers=3,
                           reverb_probability=0.5)
    samples = round(sum(u.duration for u in corpus) * FEATURES.sample_rate)
    reads = collections.Counter()
    load_audio = audio.load_audio

    def counted(path, *args, **kwargs):
        reads[path] += 1
        return load_audio(path, *args, **kwargs)

    monkeypatch.setattr(audio, "load_audio", counted)
    fits = UtteranceLoader(corpus, Vocabulary(), FEATURES, memory_bytes=samples * 4 + 64, augmentation=config)
    too_small = UtteranceLoader(corpus, Vocabulary(), FEATURES, memory_bytes=samples * 4 - 64,
                                augmentation=config)
    indices, speeds = np.arange(len(corpus)), np.ones(len(corpus), np.float32)
    for epoch in range(2):
        seed = np.array([epoch, 0])
        np.testing.assert_array_equal(fits.batch(indices, speeds, seed)[0],
                                      too_small.batch(indices, speeds, seed)[0])
    assert fits.waveforms.bytes == samples * 4 and too_small.waveforms.bytes == 0
    reads.clear()
    fits.batch(indices, speeds, np.array([2, 0]))
    assert not reads  # every utterance, and every babble talker, from memory
    too_small.batch(indices, speeds, np.array([2, 0]))
    assert sum(reads.values()) >= 4 * len(corpus)  # each utterance and its 3 talkers from disk
    assert UtteranceLoader(corpus, Vocabulary(), FEATURES).waveforms.limit_bytes == 0  # clean: features only


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_training_batches_load_on_idle_priority_threads(corpus):
    def policy():
        return os.sched_getscheduler(threading.get_native_id())

    class Recording(UtteranceLoader):
        seen = []

        def batch(self, *args, **kwargs):
            self.seen.append((threading.get_native_id(), policy()))
            return super().batch(*args, **kwargs)

    ours = policy()
    sampler = BatchSampler([u.duration for u in corpus], FEATURES, batch_size=2, shuffle=True)
    assert len(batches(sampled_dataset(sampler, Recording(corpus, Vocabulary(), FEATURES)))) == 5
    assert len(Recording.seen) == 5 and threading.get_native_id() not in dict(Recording.seen)
    assert {value for _, value in Recording.seen} == {os.SCHED_IDLE} != {ours}
    assert policy() == ours  # the caller's thread, which runs the step, keeps its priority
