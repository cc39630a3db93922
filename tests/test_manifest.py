import json

import pytest

from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest


def write_lines(path, *records) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


def test_round_trip_stores_relative_paths(tmp_path):
    audio = tmp_path / "audio" / "a.wav"
    utterances = [
        Utterance(str(audio), 1.5, "hello", speaker="ann", id="a-1"),
        Utterance(str(tmp_path / "audio" / "b.wav"), 0.25, "world"),
    ]
    path = tmp_path / "train.jsonl"
    write_manifest(utterances, path)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"audio_filepath": "audio/a.wav", "duration": 1.5, "text": "hello",
                     "speaker": "ann", "id": "a-1"}
    assert "speaker" not in json.loads(path.read_text().splitlines()[1])
    assert read_manifest(path) == utterances
    assert not list(tmp_path.glob(".tmp-*"))


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_lines(folder / "m.jsonl", {"audio_filepath": "clips/x.wav", "duration": 2})
    monkeypatch.chdir(tmp_path)
    [utterance] = read_manifest("corpus/m.jsonl")
    assert utterance.audio_filepath == str((folder / "clips" / "x.wav").resolve())
    assert utterance.duration == 2.0 and isinstance(utterance.duration, float)
    assert utterance.text == ""


def test_absolute_path_inside_the_root_is_accepted(tmp_path):
    inside = tmp_path / "clips" / "x.wav"
    write_lines(tmp_path / "m.jsonl", {"audio_filepath": str(inside), "duration": 1.0})
    assert read_manifest(tmp_path / "m.jsonl")[0].audio_filepath == str(inside.resolve())


def test_blank_lines_are_skipped(tmp_path):
    write_lines(tmp_path / "m.jsonl", {"audio_filepath": "a.wav"}, "", "  ", {"audio_filepath": "b.wav"})
    assert [u.key for u in read_manifest(tmp_path / "m.jsonl")] == ["a", "b"]


def test_parent_escape_is_rejected_with_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    write_lines(path, {"audio_filepath": "ok.wav"}, {"audio_filepath": "sub/../../secret.wav"})
    with pytest.raises(ManifestError, match="escapes the manifest root") as caught:
        read_manifest(path)
    assert str(caught.value).startswith(f"{path}:2: ")


def test_absolute_path_outside_the_root_is_rejected(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    write_lines(root / "m.jsonl", {"audio_filepath": str(tmp_path / "elsewhere.wav")})
    with pytest.raises(ManifestError, match=":1: audio path"):
        read_manifest(root / "m.jsonl")
    outside = read_manifest(root / "m.jsonl", allow_outside_root=True)
    assert outside[0].audio_filepath == str((tmp_path / "elsewhere.wav").resolve())


def test_explicit_root_anchors_relative_paths(tmp_path):
    (tmp_path / "lists").mkdir()
    write_lines(tmp_path / "lists" / "m.jsonl", {"audio_filepath": "clips/x.wav"})
    [utterance] = read_manifest(tmp_path / "lists" / "m.jsonl", root=tmp_path)
    assert utterance.audio_filepath == str((tmp_path / "clips" / "x.wav").resolve())


@pytest.mark.parametrize("line, reason", [
    ('{"audio_filepath": "a.wav", ', "not a manifest record"),
    ('{"duration": 1.0}', "not a manifest record"),
    ('["a.wav", 1.0]', "not a manifest record"),
    ('{"audio_filepath": 5}', "non-empty string"),
    ('{"audio_filepath": ""}', "non-empty string"),
    ('{"audio_filepath": "a.wav", "duration": "long"}', "bad field"),
    # Found by fuzzing (tests/test_fuzz.py): the first three raised other exceptions, the rest loaded.
    ("[" * 5000 + "]" * 5000, "not a manifest record"),  # RecursionError
    ('{"audio_filepath": "a\\u0000b.wav"}', "without NUL"),  # ValueError from Path.resolve
    ('{"audio_filepath": "a.wav", "duration": 1' + "0" * 400 + "}", "duration"),  # OverflowError
    ('{"audio_filepath": "a.wav", "duration": NaN}', "duration"),
    ('{"audio_filepath": "a.wav", "duration": -1}', "duration"),
    ('{"audio_filepath": "a.wav", "duration": true}', "duration"),
    ('{"audio_filepath": "a.wav", "text": ["a", "b"]}', "text must be a string"),
    ('{"audio_filepath": "a.wav", "speaker": {"name": "ann"}}', "speaker must be a string"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, reason):
    path = tmp_path / "m.jsonl"
    write_lines(path, {"audio_filepath": "ok.wav"}, line)
    with pytest.raises(ManifestError, match=reason) as caught:
        read_manifest(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ") and "\n" not in message


def test_invalid_utf8_and_missing_files_name_the_manifest(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"audio_filepath": "a.wav", "text": "ok"}\n'
                     + '{"audio_filepath": "b.wav", "text": "café"}\n'.encode("latin-1"))
    with pytest.raises(ManifestError, match=rf"^{path}:2: not UTF-8 text \(byte 41 of the line\)$"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=rf"^{tmp_path / 'missing.jsonl'}: cannot be read"):
        read_manifest(tmp_path / "missing.jsonl")


def test_key_prefers_the_id_then_the_file_stem():
    assert Utterance("/data/clips/one.flac", 1.0, id="utt-7").key == "utt-7"
    assert Utterance("/data/clips/one.flac", 1.0).key == "one"


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"audio_filepath": "ok.wav"}\n{"audio_filepath": "\xff.wav"}\n')
    with pytest.raises(ManifestError, match="not UTF-8") as caught:
        read_manifest(path)
    assert str(caught.value).startswith(f"{path}:2: ")


def test_numeric_speaker_and_id_read_as_strings(tmp_path):
    path = tmp_path / "m.jsonl"
    write_lines(path, {"audio_filepath": "a.wav", "speaker": 103, "id": 7, "text": None})
    [utterance] = read_manifest(path)
    assert (utterance.speaker, utterance.id, utterance.text) == ("103", "7", "")
