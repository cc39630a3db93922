import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.audio import load_audio
from asr.corpora import fsdd
from asr.corpora.fsdd import (CONNECTED_DIGITS, CorpusError, Protocol, Split, draw_split, held_out_protocol,
                              prepare_fsdd)
from asr.errors import EXIT_INTERRUPTED, EXIT_OK, exit_status
from asr.manifest import read_manifest
from asr.text import DIGIT_WORDS
from conftest import lose_an_interrupt

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"

# The real protocol's shape at a size that generates in a fraction of a second:
# shared speakers with disjoint take ranges, plus one unseen speaker.
TINY = Protocol(splits=(
    Split("train", ("ann", "bob"), first_take=2, last_take=4, count=24),
    Split("dev", ("ann", "bob"), first_take=1, last_take=1, count=6),
    Split("test", ("ann", "bob"), first_take=0, last_take=0, count=6),
    Split("test-unseen", ("cid",), first_take=0, last_take=2, count=6),
))


def make_source(root: Path, protocol: Protocol = TINY) -> Path:
    """Write one short 8 kHz tone per (speaker, digit, take), each of a distinct length."""
    recordings = root / "recordings"
    recordings.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split in protocol.splits:
        for speaker in split.speakers:
            for digit in range(10):
                for take in split.takes:
                    samples = 600 + 40 * digit + 7 * take + int(rng.integers(20))
                    time = np.arange(samples) / 8000
                    tone = 0.4 * np.sin(2 * np.pi * (300 + 50 * digit) * time)
                    path = recordings / f"{digit}_{speaker}_{take}.wav"
                    soundfile.write(path, tone + 0.01 * rng.standard_normal(samples), 8000,
                                    subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    source = make_source(root / "source")
    manifests = prepare_fsdd(source, root / "out", seed=0, protocol=TINY)
    return source, root / "out", manifests


def compositions(out: Path) -> dict[str, dict]:
    lines = (out / "composition.jsonl").read_text().splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def drawn(protocol: Protocol, name: str, seed: int = 0, digits_only: bool = False) -> list:
    draws = draw_split(protocol.split(name), protocol, seed)
    if digits_only:
        return [[stem.split("_")[0] for stem in stems] for _, stems, _ in draws]
    return [(speaker, stems, list(gaps)) for speaker, stems, gaps in draws]


def test_splits_follow_the_protocol(prepared):
    _, out, manifests = prepared
    composed = compositions(out)
    used = {}
    assert list(manifests) == [split.name for split in TINY.splits]
    for split in TINY.splits:
        utterances = read_manifest(manifests[split.name])
        assert len(utterances) == split.count
        used[split.name] = set()
        for utterance in utterances:
            record = composed[utterance.id]
            assert record["split"] == split.name
            assert 1 <= len(record["sources"]) <= 7
            digits, speakers, takes = zip(*(s.split("_") for s in record["sources"]))
            assert set(speakers) == {utterance.speaker} <= set(split.speakers)
            assert all(int(take) in split.takes for take in takes)
            assert utterance.text == " ".join(DIGIT_WORDS[int(d)] for d in digits)
            used[split.name].update(record["sources"])
    assert not used["train"] & used["dev"]
    assert not used["train"] & used["test"]
    assert not used["dev"] & used["test"]
    assert len(composed) == sum(split.count for split in TINY.splits)


def test_audio_is_the_takes_joined_by_50_to_250_ms_of_silence(prepared):
    source, out, manifests = prepared
    composed = compositions(out)
    for utterance in read_manifest(manifests["train"]) + read_manifest(manifests["test-unseen"]):
        info = soundfile.info(utterance.audio_filepath)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        audio, _ = soundfile.read(utterance.audio_filepath, dtype="float32")
        assert utterance.duration == pytest.approx(len(audio) / 16000)
        record = composed[utterance.id]
        gaps = record["gap_samples"]
        assert len(gaps) == len(record["sources"]) - 1
        assert all(800 <= gap <= 4000 for gap in gaps)
        start = 0
        for index, stem in enumerate(record["sources"]):
            take = load_audio(source / "recordings" / f"{stem}.wav", 16000)
            np.testing.assert_allclose(audio[start:start + len(take)], take, atol=1e-4)
            start += len(take)
            if index < len(gaps):
                assert not audio[start:start + gaps[index]].any()
                start += gaps[index]
        assert start == len(audio)


def test_draws_depend_only_on_seed_and_split(prepared, tmp_path):
    source, out, _ = prepared
    again = prepare_fsdd(source, tmp_path / "again", seed=0, protocol=TINY)
    assert compositions(tmp_path / "again") == compositions(out)
    assert again["test"].read_text() == (out / "test.jsonl").read_text()
    assert drawn(TINY.with_counts(train=5), "train") == drawn(TINY, "train")[:5]
    assert drawn(TINY, "train", seed=1) != drawn(TINY, "train")
    # Splits draw from their own streams, not from one shared sequence of digits.
    assert drawn(TINY, "dev", digits_only=True) != drawn(TINY, "test", digits_only=True)


def test_finished_preparation_is_reused_and_an_interrupted_one_rebuilt(tmp_path):
    source = make_source(tmp_path / "source")
    protocol = TINY.with_counts(train=4, dev=2, test=2)
    manifests = prepare_fsdd(source, tmp_path / "out", protocol=protocol)
    wav = Path(read_manifest(manifests["dev"])[0].audio_filepath)
    original = wav.read_bytes()

    wav.write_bytes(b"damaged")
    prepare_fsdd(source, tmp_path / "out", protocol=protocol)
    assert wav.read_bytes() == b"damaged"  # protocol.json matched: nothing redone

    (tmp_path / "out" / "protocol.json").unlink()  # as if interrupted before the end
    prepare_fsdd(source, tmp_path / "out", protocol=protocol)
    assert wav.read_bytes() == original

    prepare_fsdd(source, tmp_path / "out", protocol=protocol.with_counts(dev=1))
    assert len(read_manifest(manifests["dev"])) == 1
    assert sorted(p.name for p in (tmp_path / "out" / "dev").iterdir()) == ["dev-0000.wav"]


def test_unusable_sources_are_named(tmp_path):
    with pytest.raises(CorpusError, match="recordings: no such folder"):
        prepare_fsdd(tmp_path, tmp_path / "out", protocol=TINY)
    source = make_source(tmp_path / "source")
    (source / "recordings" / "3_bob_1.wav").unlink()
    with pytest.raises(CorpusError, match=r"1 takes of split 'dev' are missing, e\.g\. 3_bob_1"):
        prepare_fsdd(source, tmp_path / "out", protocol=TINY)
    assert not (tmp_path / "out").exists()


def test_connected_digits_protocol_keeps_splits_apart():
    splits = {split.name: split for split in CONNECTED_DIGITS.splits}
    seen = [splits[name] for name in ("train", "dev", "test")]
    for index, split in enumerate(seen):
        assert split.speakers == seen[0].speakers
        for other in seen[index + 1:]:
            assert not set(split.takes) & set(other.takes)
    assert not set(splits["test-unseen"].speakers) & set(seen[0].speakers)


def test_held_out_speaker_is_left_out_of_training_and_scored_on_none_of_its_test_takes():
    fold = held_out_protocol("lucas")
    train, dev, held_out = (fold.split(name) for name in ("train", "dev", "held-out"))
    assert train.speakers == dev.speakers == ("george", "jackson", "yweweler")
    assert (train.count, dev.count, held_out.count) == (3000, 225, 300)  # per speaker as before
    assert held_out.speakers == ("lucas",) and set(held_out.takes) == set(range(5, 50))
    assert not set(held_out.takes) & set(CONNECTED_DIGITS.split("test").takes)
    assert {split.name for split in fold.splits} == {"train", "dev", "held-out"}
    with pytest.raises(ValueError, match="'theo' is not a training speaker"):
        held_out_protocol("theo")


def test_held_out_fold_prepares(tmp_path):
    fold = held_out_protocol("bob", TINY)
    manifests = prepare_fsdd(make_source(tmp_path / "source"), tmp_path / "out", protocol=fold)
    speakers = {name: {u.speaker for u in read_manifest(path)} for name, path in manifests.items()}
    assert speakers == {"train": {"ann"}, "dev": {"ann"}, "held-out": {"bob"}}


def test_real_fsdd_has_protocol_counts(tmp_path):
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD}")
    manifests = prepare_fsdd(FSDD, tmp_path, seed=0)
    counts = {name: len(read_manifest(path)) for name, path in manifests.items()}
    assert counts == {"train": 4000, "dev": 300, "test": 500, "test-unseen": 500}
    speakers = {u.speaker for u in read_manifest(manifests["test-unseen"])}
    assert speakers == {"theo", "nicolas"}


def test_a_lost_interrupt_stops_preparation_at_the_next_utterance(tmp_path, monkeypatch, python_sigint):
    source, out = make_source(tmp_path / "source"), tmp_path / "out"
    join = fsdd.concatenate

    def join_and_lose_an_interrupt(*args):
        lose_an_interrupt()
        return join(*args)

    def job() -> int:
        prepare_fsdd(source, out, protocol=TINY)
        return EXIT_OK

    monkeypatch.setattr(fsdd, "concatenate", join_and_lose_an_interrupt)
    assert exit_status(job) == EXIT_INTERRUPTED
    assert len(list(out.rglob("*.wav"))) == 1 and not (out / "protocol.json").exists()
