
import numpy as np
import pytest

from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.manifest_index import ManifestIndex


def test_index_matches_read_manifest_and_reads_single_records(tmp_path):
    utterances = [Utterance(str(tmp_path / f"audio/{i}.wav"), 0.5 + i, f"text {i}", id=f"u{i}") for i in range(5)]
    write_manifest(utterances, tmp_path / "m.jsonl")
    with open(tmp_path / "m.jsonl", "a") as out:
        out.write("\n")  # a trailing blank line is no record
    expected = read_manifest(tmp_path / "m.jsonl")
    index = ManifestIndex(tmp_path / "m.jsonl")
    assert len(index) == 5
    np.testing.assert_allclose(index.durations, [u.duration for u in expected])
    assert [index[i] for i in (4, 0, 2)] == [expected[i] for i in (4, 0, 2)]
    assert list(index.read(1, 3)) == expected[1:3]


def test_index_rejects_escaping_paths_like_read_manifest(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "../x.wav", "duration": 1}\n')
    with pytest.raises(ManifestError, match="record 1: audio path '../x.wav' escapes"):
        ManifestIndex(tmp_path / "m.jsonl")[0]
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "x.wav", "duration": "long"}\n')
    with pytest.raises(ManifestError, match="m.jsonl:1: bad field"):
        ManifestIndex(tmp_path / "m.jsonl")


@pytest.mark.parametrize("duration, seconds", [('"1.5"', 1.5), ("2", 2.0), ("-3", None), ("1e999", None),
                                               ("true", None), ('"long"', None)])
def test_index_checks_durations_as_read_manifest_does(tmp_path, duration, seconds):
    """A numeric string had been refused and a negative duration taken."""
    (tmp_path / "m.jsonl").write_text(f'{{"audio_filepath": "x.wav", "duration": {duration}}}\n')
    if seconds is None:
        for read in (ManifestIndex, read_manifest):
            with pytest.raises(ManifestError, match="m.jsonl:1: bad field"):
                read(tmp_path / "m.jsonl")
    else:
        assert ManifestIndex(tmp_path / "m.jsonl").durations.tolist() == [seconds]
        assert read_manifest(tmp_path / "m.jsonl")[0].duration == seconds


def test_a_record_that_is_not_utf8_is_a_manifest_error(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(b'{"audio_filepath": "x.wav", "duration": 1, "text": "\xff"}\n')
    index = ManifestIndex(tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match="record 1: not UTF-8 text"):
        index[0]
