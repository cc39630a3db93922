
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
