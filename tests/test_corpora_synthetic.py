import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from asr.audio import load_audio
from asr.corpora.espeak import variants
from asr.corpora.synthetic import EXTRA_VOICES, TEST_VOICES, TRAIN_VOICES, make_synthetic_corpus
from asr.manifest import read_manifest
from asr.text import normalize

SIZES = {"train_utterances": 12, "dev_utterances": 4, "test_utterances": 6}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    manifests = make_synthetic_corpus(folder, seed=3, **SIZES)
    return folder, manifests, {split: read_manifest(path) for split, path in manifests.items()}


def test_splits_have_the_requested_sizes(corpus):
    _, manifests, utterances = corpus
    assert sorted(manifests) == ["dev", "test", "train"]
    assert [len(utterances[split]) for split in ("train", "dev", "test")] == [12, 4, 6]


def test_audio_is_16khz_mono_pcm_and_not_silent(corpus):
    for utterance in [u for split in corpus[2].values() for u in split]:
        info = soundfile.info(utterance.audio_filepath)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        audio = load_audio(utterance.audio_filepath)
        assert np.all(np.isfinite(audio))
        assert np.sqrt(np.mean(audio**2)) > 0.01, utterance.audio_filepath
        assert utterance.duration == pytest.approx(info.frames / 16000, abs=1e-6)
        assert 0.4 < utterance.duration < 10.0


def test_audio_has_padding_and_noise_around_the_speech(corpus):
    audio = load_audio(corpus[2]["train"][0].audio_filepath)
    edge = audio[:800]  # the first 50 ms are always padding
    assert 0 < np.sqrt(np.mean(edge**2)) < 0.1 * np.sqrt(np.mean(audio**2))


def test_texts_are_normalised_and_varied(corpus):
    texts = [u.text for split in corpus[2].values() for u in split]
    assert all(text and normalize(text) == text for text in texts)
    assert len(set(texts)) > len(texts) // 2


def test_test_speakers_are_held_out(corpus):
    speakers = {split: {u.speaker for u in utterances} for split, utterances in corpus[2].items()}
    assert speakers["test"] == {voice.name for voice in TEST_VOICES}
    assert speakers["train"] <= {voice.name for voice in TRAIN_VOICES}
    assert speakers["dev"] <= speakers["train"]
    assert not speakers["test"] & speakers["train"]


def test_dev_and_test_sentences_are_not_in_train(corpus):
    train = {u.text for u in corpus[2]["train"]}
    assert not train & {u.text for split in ("dev", "test") for u in corpus[2][split]}


def test_default_voices_exist_in_the_bundled_data():
    available = set(variants())
    assert {voice.variant for voice in TRAIN_VOICES + EXTRA_VOICES + TEST_VOICES} <= available
    assert not {v.variant for v in EXTRA_VOICES} & {v.variant for v in TEST_VOICES}


def test_same_seed_gives_the_same_bytes(corpus, tmp_path):
    folder, manifests, _ = corpus
    time.sleep(1.0)  # eSpeak seeds its breath noise from the clock (in seconds) unless told not to
    again = make_synthetic_corpus(tmp_path, seed=3, workers=2, **SIZES)
    for split, path in manifests.items():
        assert again[split].read_text() == path.read_text()
    for wav in sorted(folder.glob("*/*.wav")):
        assert (tmp_path / wav.relative_to(folder)).read_bytes() == wav.read_bytes(), wav.name


def test_different_seed_gives_a_different_corpus(corpus, tmp_path):
    other = make_synthetic_corpus(tmp_path, seed=4, **SIZES)
    texts = [u.text for u in read_manifest(other["train"])]
    assert texts != [u.text for u in corpus[2]["train"]]


def test_rerun_reuses_the_corpus_and_rebuilds_what_is_missing(tmp_path):
    manifests = make_synthetic_corpus(tmp_path, **SIZES)
    first = read_manifest(manifests["dev"])[0].audio_filepath
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}

    assert make_synthetic_corpus(tmp_path, **SIZES) == manifests
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == stamps

    json.loads((tmp_path / "corpus.json").read_text())  # a readable record of the parameters
    (tmp_path / "dev" / "dev-00000.wav").unlink()
    make_synthetic_corpus(tmp_path, **SIZES)
    assert soundfile.info(first).frames > 0


def test_changed_parameters_rebuild(tmp_path):
    make_synthetic_corpus(tmp_path, **SIZES)
    manifests = make_synthetic_corpus(tmp_path, **{**SIZES, "train_utterances": 13})
    assert len(read_manifest(manifests["train"])) == 13


def test_digit_share_one_makes_a_connected_digit_corpus(tmp_path):
    manifests = make_synthetic_corpus(tmp_path, digit_share=1.0, **SIZES)
    words = {word for path in manifests.values() for u in read_manifest(path) for word in u.text.split()}
    assert words <= {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="test_utterances"):
        make_synthetic_corpus(tmp_path, test_utterances=0)
    with pytest.raises(ValueError, match="held out"):
        make_synthetic_corpus(tmp_path, test_voices=TRAIN_VOICES[:1])
    with pytest.raises(ValueError, match="digit_share"):
        make_synthetic_corpus(tmp_path, digit_share=1.5)


def test_a_caller_spawned_workers_cannot_import_fails_instead_of_hanging(tmp_path):
    # Spawned workers re-import the caller's main script; from stdin there is none to import.
    script = ("from asr.corpora.synthetic import make_synthetic_corpus\n"
              f"make_synthetic_corpus({str(tmp_path)!r}, train_utterances=2, dev_utterances=1, "
              "test_utterances=1)\n")
    run = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "BrokenProcessPool" in run.stderr
