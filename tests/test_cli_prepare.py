"""`asr prepare CORPUS`: each command forwards to its library function and prints what it wrote."""

import soundfile

from asr.cli import main
from asr.corpora.synthetic import TRAIN_VOICES
from asr.manifest import read_manifest
from conftest import make_tone


def test_prepare_csv_prints_the_manifest(tmp_path, capsys):
    soundfile.write(tmp_path / "one.wav", make_tone(0.25), 16000)
    table = tmp_path / "corpus.tsv"
    table.write_text("clip\tsentence\none.wav\thello there\n")
    assert main(["prepare", "csv", "--table", str(table), "--audio-column", "clip",
                 "--text-column", "sentence"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "corpus.jsonl")
    assert [u.text for u in read_manifest(tmp_path / "corpus.jsonl")] == ["hello there"]


def test_prepare_csv_names_a_missing_column_on_one_line(tmp_path, capsys):
    table = tmp_path / "corpus.csv"
    table.write_text("path,text\none.wav,hi\n")
    assert main(["prepare", "csv", "--table", str(table)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no column(s) audio_filepath" in error


def test_prepare_synthetic_extra_voices_widen_training_only(tmp_path, capsys):
    def speakers(out, *flags):
        assert main(["prepare", "synthetic", "--out", str(out), "--utterances", "12", "2", "2",
                     "--digit-share", "1", *flags]) == 0
        return {split: {u.speaker for u in read_manifest(out / f"{split}.jsonl")}
                for split in ("train", "test")}

    known = {voice.name for voice in TRAIN_VOICES}
    plain, extra = speakers(tmp_path / "plain"), speakers(tmp_path / "extra", "--extra-voices")
    assert plain["train"] <= known and extra["train"] - known  # seeded: some of 12 from the 30 more
    assert plain["test"] == extra["test"] and not plain["test"] & (known | extra["train"])
    assert "train: " in capsys.readouterr().out
