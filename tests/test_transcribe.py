import numpy as np
import soundfile

from asr.manifest import read_manifest
from asr.transcribe import expand_inputs, transcribe


def test_every_input_gets_a_result_and_bad_files_do_not_stop_the_batch(trained_model, speech_corpus, tmp_path):
    good = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is text")
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    paths = [*good, str(not_audio), str(nan), str(tmp_path / "absent.wav")]

    results = {r.path: r for r in transcribe(paths, trained_model, batch_size=3)}

    assert set(results) == set(paths)
    assert all(results[p].ok and isinstance(results[p].text, str) for p in good)
    assert "not a recognised audio format" in results[str(not_audio)].error
    assert "NaN" in results[str(nan)].error
    assert results[str(tmp_path / "absent.wav")].error.endswith("no such file")
    assert all("\n" not in r.error for r in results.values() if not r.ok)


def test_batching_does_not_change_transcripts(trained_model, speech_corpus):
    paths = [u.audio_filepath for u in read_manifest(speech_corpus["test"])]
    one_by_one = {r.path: r.text for r in transcribe(paths, trained_model, batch_size=1)}
    batched = {r.path: r.text for r in transcribe(paths, trained_model, batch_size=8)}
    assert one_by_one == batched


def test_expand_inputs_finds_audio_by_content(tmp_path, tone_wav, speech_corpus):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    audio = tone_wav("a/b/clip.ogg_without_extension", format="OGG", subtype="VORBIS")
    (tmp_path / "a" / "readme.txt").write_text("not audio")
    manifest_paths = [u.audio_filepath for u in read_manifest(speech_corpus["dev"])]

    found = expand_inputs([tmp_path, speech_corpus["dev"], "missing.wav"])

    assert found == [str(audio), *manifest_paths, "missing.wav"]
