"""Each importer on a tiny replica of its corpus's published layout, audio generated here."""

import tarfile

import pytest
import soundfile

from asr.corpora.fsdd import CorpusError
from asr.corpora.importers import import_common_voice, import_csv, import_librispeech, import_ljspeech
from asr.manifest import read_manifest
from conftest import make_tone


def write_audio(path, seconds=0.25, format=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, make_tone(seconds), 16000, format=format)


def librispeech(root):
    """LibriSpeech/<subset>/<reader>/<chapter>/ with a .trans.txt and FLAC files."""
    for subset, reader, chapter, count in [("dev-clean", "84", "121123", 2),
                                           ("train-clean-100", "19", "198", 3)]:
        folder = root / "LibriSpeech" / subset / reader / chapter
        lines = []
        for index in range(count):
            key = f"{reader}-{chapter}-{index:04d}"
            write_audio(folder / f"{key}.flac", seconds=0.2 + 0.1 * index)
            lines.append(f"{key} GO DO YOU HEAR {index}")
        (folder / f"{reader}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root / "LibriSpeech"


def test_librispeech_folder(tmp_path):
    corpus = librispeech(tmp_path)
    manifests = import_librispeech(corpus, corpus)
    assert sorted(manifests) == ["dev-clean", "train-clean-100"]
    train = read_manifest(manifests["train-clean-100"])
    assert [u.id for u in train] == ["19-198-0000", "19-198-0001", "19-198-0002"]
    assert train[2].text == "GO DO YOU HEAR 2" and train[2].speaker == "19"
    assert train[2].duration == pytest.approx(0.4)
    assert train[0].audio_filepath.endswith("LibriSpeech/train-clean-100/19/198/19-198-0000.flac")


def test_librispeech_archive_is_extracted_under_out(tmp_path):
    corpus = librispeech(tmp_path / "source")
    archive = tmp_path / "dev-clean.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(corpus, arcname="LibriSpeech")
    manifests = import_librispeech(archive, tmp_path / "out")
    assert len(read_manifest(manifests["dev-clean"])) == 2
    assert (tmp_path / "out" / "LibriSpeech" / "dev-clean").is_dir()


def test_a_folder_outside_out_is_refused(tmp_path):
    corpus = librispeech(tmp_path / "source")
    with pytest.raises(CorpusError, match="must lie inside the output folder"):
        import_librispeech(corpus, tmp_path / "elsewhere")


def test_common_voice_with_mp3_clips_and_a_missing_one(tmp_path, caplog):
    folder = tmp_path / "cv-corpus" / "en"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\n"
    for split, clips in [("train", ["a", "b"]), ("dev", ["c"]), ("test", ["d", "absent"])]:
        for clip in clips:
            if clip != "absent":
                write_audio(folder / "clips" / f"common_voice_en_{clip}.mp3", format="MP3")
        (folder / f"{split}.tsv").write_text(header + "".join(
            f"speaker-{clip}\tcommon_voice_en_{clip}.mp3\t\"Quoted\" words, {clip}!\t2\t0\n"
            for clip in clips))
    manifests = import_common_voice(tmp_path / "cv-corpus", tmp_path)
    train = read_manifest(manifests["train"])
    assert [(u.id, u.speaker, u.text) for u in train] == [
        ("common_voice_en_a", "speaker-a", '"Quoted" words, a!'),
        ("common_voice_en_b", "speaker-b", '"Quoted" words, b!')]
    assert train[0].duration == pytest.approx(0.25, abs=0.06)  # MP3 frames pad a little
    assert [u.id for u in read_manifest(manifests["test"])] == ["common_voice_en_d"]
    assert "skipped 1 utterance(s): {'no such file': 1}" in caplog.text


def test_ljspeech_split_is_stable(tmp_path):
    folder = tmp_path / "LJSpeech-1.1"
    lines = []
    for index in range(60):
        key = f"LJ001-{index:04d}"
        write_audio(folder / "wavs" / f"{key}.wav", seconds=0.1)
        lines.append(f'{key}|Printing, in the only sense {index}|Printing, "in" the only sense {index}')
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    manifests = import_ljspeech(folder, folder, dev_percent=10, test_percent=10)
    splits = {name: read_manifest(path) for name, path in manifests.items()}
    assert sum(map(len, splits.values())) == 60 and all(splits.values())
    assert splits["dev"][0].text.startswith('Printing, "in" the only sense')
    again = import_ljspeech(folder, folder, dev_percent=10, test_percent=10)
    assert {n: read_manifest(p) for n, p in again.items()} == splits


def test_csv_table(tmp_path):
    write_audio(tmp_path / "audio" / "one.wav")
    write_audio(tmp_path / "audio" / "two.wav")
    table = tmp_path / "corpus.csv"
    table.write_text("file,transcript,who\n"
                     "audio/one.wav,hello there,ann\naudio/two.wav,general kenobi,ben\n")
    manifest = import_csv(table, audio_column="file", text_column="transcript", speaker_column="who")
    assert manifest == tmp_path / "corpus.jsonl"
    assert [(u.text, u.speaker) for u in read_manifest(manifest)] == [
        ("hello there", "ann"), ("general kenobi", "ben")]


def test_files_left_out_of_a_manifest_are_each_named(tmp_path, caplog):
    """They had been counted by reason only; a file of no samples had gone in with duration 0."""
    write_audio(tmp_path / "one.wav")
    write_audio(tmp_path / "silent.wav", seconds=0.0)
    (tmp_path / "notes.wav").write_text("not audio")
    table = tmp_path / "corpus.csv"
    table.write_text("audio_filepath,text\none.wav,one\nsilent.wav,two\nnotes.wav,three\nabsent.wav,four\n")
    assert [u.text for u in read_manifest(import_csv(table))] == ["one"]
    for name, reason in [("silent.wav", "contains no samples"), ("notes.wav", "not a recognised audio format"),
                         ("absent.wav", "no such file")]:
        assert f"{tmp_path / name}: {reason}" in caplog.text
    assert "skipped 3 utterance(s)" in caplog.text


@pytest.mark.parametrize("content, message", [
    ("path,text\nx.wav,hi\n", "no column\\(s\\) audio_filepath \\(found: path, text\\)"),
    ("audio_filepath,text\n\n../outside.wav,hi\n", ":3: audio .* lies outside the manifest's folder"),
    ("audio_filepath,text\na.wav,hi\nb.wav\n", "corpus.csv:3: a short row, without text"),  # was a TypeError
])
def test_csv_mistakes_are_named(tmp_path, content, message):
    (tmp_path / "sub").mkdir()
    table = tmp_path / "sub" / "corpus.csv"
    table.write_text(content)
    with pytest.raises(CorpusError, match=message):
        import_csv(table)
