import io
import json
import os

import pytest

from asr import audio
from asr.manifest import ManifestError
from asr.transcription.inputs import expand_inputs, find_audio, read_csv_manifest


@pytest.fixture
def tree(tmp_path, tone_wav):
    """a/one.wav, a/b/two.flac, a/b/renamed (OGG without extension), a/b/pcm.raw, a/notes.txt."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    files = [tone_wav("a/one.wav"), tone_wav("a/b/two.flac"),
             tone_wav("a/b/renamed", format="OGG", subtype="VORBIS")]
    (tmp_path / "a" / "b" / "pcm.raw").write_bytes(b"\x00\x01" * 800)
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    return {path.name: str(path) for path in [*files, tmp_path / "a" / "b" / "pcm.raw"]}


def test_folders_are_searched_recursively_for_audio_by_content(tmp_path, tree):
    assert find_audio(tmp_path / "a") == [tree["pcm.raw"], tree["renamed"], tree["two.flac"], tree["one.wav"]]


def test_a_broken_file_with_an_audio_name_is_found_so_that_it_is_reported(tmp_path, tree):
    """Before, a folder scan dropped `.wav` files libsndfile cannot parse without a word."""
    broken = tmp_path / "a" / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert str(broken) in find_audio(tmp_path / "a")
    assert str(tmp_path / "a" / "notes.txt") not in find_audio(tmp_path / "a")


def test_a_file_that_cannot_be_opened_is_found_not_taken_for_non_audio(tmp_path, tree, monkeypatch):
    with pytest.raises(FileNotFoundError):
        audio.is_audio(tmp_path / "missing")
    locked = str(tmp_path / "a" / "notes.txt")

    def is_audio(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_is_audio(path)

    real_is_audio = audio.is_audio
    monkeypatch.setattr(audio, "is_audio", is_audio)
    assert locked in find_audio(tmp_path / "a")


def test_csv_manifests_that_are_not_utf8_name_the_file(tmp_path):
    table = tmp_path / "list.csv"
    table.write_bytes("path\ncafé.wav\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=rf"^{table}: not UTF-8 text"):
        read_csv_manifest(table)


def test_globs_the_shell_left_alone_are_expanded(tmp_path, tree):
    assert expand_inputs([str(tmp_path / "a" / "**" / "*.flac")]) == [tree["two.flac"]]
    pattern = str(tmp_path / "nothing" / "*.wav")
    assert expand_inputs([pattern]) == [pattern]  # reported as missing, not dropped


def test_jsonl_and_csv_manifests_resolve_against_their_folder(tmp_path, tree):
    jsonl = tmp_path / "a" / "list.jsonl"
    jsonl.write_text(json.dumps({"audio_filepath": "one.wav", "text": "x"}) + "\n")
    csv_with_path = tmp_path / "a" / "list.csv"
    csv_with_path.write_text("path,speaker\nb/two.flac,s1\none.wav,s2\n")
    csv_nemo = tmp_path / "a" / "nemo.csv"
    csv_nemo.write_text('duration,audio_filepath\n1.0,"b/renamed"\n')
    expected = [tree["one.wav"], tree["two.flac"], tree["renamed"]]
    assert expand_inputs([jsonl, csv_with_path, csv_nemo]) == [os.path.realpath(p) for p in expected]


def test_csv_manifests_need_a_path_column_and_stay_in_their_folder(tmp_path):
    no_column = tmp_path / "x.csv"
    no_column.write_text("file,text\na.wav,hi\n")
    with pytest.raises(ManifestError, match="audio_filepath or path"):
        read_csv_manifest(no_column)
    escaping = tmp_path / "y.csv"
    escaping.write_text("path\n../../etc/passwd\n")
    with pytest.raises(ManifestError, match="y.csv:2.*escapes"):
        read_csv_manifest(escaping)


def test_paths_on_stdin_and_missing_files_are_kept_in_order_without_repeats(tmp_path, tree):
    stdin = io.StringIO(f"{tree['two.flac']}\n\n  {tmp_path / 'missing.wav'}  \n{tree['one.wav']}\n")
    found = expand_inputs([tree["one.wav"], "-", tmp_path / "a" / "b"], stdin=stdin)
    assert found == [tree["one.wav"], tree["two.flac"], str(tmp_path / "missing.wav"),
                     tree["pcm.raw"], tree["renamed"]]
