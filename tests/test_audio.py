import json
import os
import struct

import numpy as np
import pytest
import soundfile

from asr.audio import (AudioError, BadSampleRate, EmptyAudio, NonFiniteAudio, NotAudio, RawLayout,
                       UnreadableAudio, duration, is_audio, load_audio, resample)
from asr.transcription.chunking import chunks


def peak_frequency(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.argmax(spectrum) * sample_rate / audio.size)


def assert_names_file(error: AudioError, path) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert error.path == str(path)


@pytest.mark.parametrize("name, subtype, tolerance", [
    ("pcm16.wav", "PCM_16", 1 / 2**15),
    ("pcm24.wav", "PCM_24", 1 / 2**23),
    ("float.wav", "FLOAT", 0.0),
    ("pcm16.flac", "PCM_16", 1 / 2**15),
    ("pcm24.flac", "PCM_24", 1 / 2**23),
])
def test_lossless_formats_round_trip(tone_wav, tone, name, subtype, tolerance):
    path = tone_wav(name, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    np.testing.assert_allclose(audio, tone()[:, 0], rtol=0, atol=tolerance)


def test_ogg_vorbis_keeps_the_tone(tone_wav):
    if "OGG" not in soundfile.available_formats():
        pytest.skip("this libsndfile has no OGG support")
    audio = load_audio(tone_wav("tone.ogg", subtype="VORBIS", seconds=1.0))
    assert audio.dtype == np.float32 and audio.size == 16000
    assert peak_frequency(audio, 16000) == pytest.approx(440, abs=2)


def test_stereo_downmix_by_mean_and_by_channel(tone_wav):
    path = tone_wav(channels=2, seconds=1.0)
    stereo, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_allclose(load_audio(path), stereo.mean(axis=1), atol=1e-7)
    left, right = load_audio(path, channel=0), load_audio(path, channel=1)
    assert peak_frequency(left, 16000) == pytest.approx(440, abs=2)
    assert peak_frequency(right, 16000) == pytest.approx(880, abs=2)


def test_missing_channel_is_an_audio_error(tone_wav):
    path = tone_wav(channels=2)
    with pytest.raises(AudioError, match="has no channel 2") as caught:
        load_audio(path, channel=2)
    assert_names_file(caught.value, path)


@pytest.mark.parametrize("source_rate, frequency", [(8000, 1000.0), (44100, 3000.0)])
def test_resampling_keeps_length_and_pitch(tone_wav, source_rate, frequency):
    path = tone_wav(sample_rate=source_rate, frequency=frequency, seconds=1.0, channels=2)
    audio = load_audio(path, channel=0)
    assert audio.dtype == np.float32
    assert audio.size == 16000
    assert peak_frequency(audio, 16000) == pytest.approx(frequency, abs=2)


def test_resampling_removes_content_above_the_new_nyquist(tone):
    above = tone(1.0, 44100, frequency=10000.0)[:, 0]
    resampled = resample(above, 44100, 16000)
    assert np.sqrt(np.mean(resampled**2)) < 0.02 * np.sqrt(np.mean(above**2))


def test_resample_at_the_same_rate_is_a_no_op(tone):
    audio = tone()[:, 0]
    assert resample(audio, 16000, 16000) is audio


def test_raw_pcm_by_extension(tmp_path, tone):
    samples = tone()
    path = tmp_path / "speech.raw"
    soundfile.write(path, samples, 16000, format="RAW", subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path), samples[:, 0], atol=1 / 2**15)
    assert duration(path) == pytest.approx(0.5)


def test_raw_pcm_with_an_explicit_layout(tmp_path, tone):
    layout = RawLayout(samplerate=8000, channels=2, subtype="PCM_24", endian="BIG")
    samples = tone(1.0, 8000, frequency=500.0, channels=2)
    path = tmp_path / "speech.bin"
    soundfile.write(path, samples, 8000, format="RAW", subtype="PCM_24", endian="BIG")
    left = load_audio(path, raw=layout, channel=0)
    assert left.size == 16000
    assert peak_frequency(left, 16000) == pytest.approx(500, abs=2)
    assert duration(path, raw=layout) == pytest.approx(1.0)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.wav"
    with pytest.raises(UnreadableAudio, match="no such file") as caught:
        load_audio(path)
    assert_names_file(caught.value, path)


def test_a_file_name_that_is_not_utf8_loads(tmp_path, tone):
    """soundfile encodes str names as strict UTF-8: such a name had stopped a whole batch."""
    path, samples = os.fsdecode(bytes(tmp_path / "caf") + b"\xe9.wav"), tone(0.5)[:, 0]
    soundfile.write(os.fsencode(path), samples, 16000)
    assert duration(path) == pytest.approx(0.5)
    np.testing.assert_allclose(load_audio(path), samples, atol=1 / 2**15)
    assert [chunk.samples.size for chunk in chunks(path)] == [samples.size]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_not_read_but_reported(tmp_path):
    """Opening one waited for a writer forever, --file-timeout or not."""
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(UnreadableAudio, match="not a regular file") as caught:
        load_audio(tmp_path / "pipe.wav")
    assert_names_file(caught.value, tmp_path / "pipe.wav")
    assert not is_audio(tmp_path / "pipe.wav")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(EmptyAudio, match="0 bytes") as caught:
        load_audio(path)
    assert_names_file(caught.value, path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are meeting notes, not audio\n" * 20)
    with pytest.raises(NotAudio) as caught:
        load_audio(path)
    assert_names_file(caught.value, path)
    with pytest.raises(NotAudio):
        duration(path)


def test_header_without_samples(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudio) as caught:
        load_audio(path)
    assert_names_file(caught.value, path)


def test_float_wav_with_nan(tmp_path, tone):
    samples = tone()
    samples[100, 0] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudio) as caught:
        load_audio(path)
    assert_names_file(caught.value, path)


@pytest.mark.parametrize("kept_bytes", [2000, 2001])
def test_truncated_wav_loads_what_is_there_or_raises(tone_wav, tone, tmp_path, kept_bytes):
    """The header promises 8,000 samples; libsndfile reads the ones present."""
    whole = tone_wav().read_bytes()
    path = tmp_path / "truncated.wav"
    path.write_bytes(whole[:44 + kept_bytes])
    try:
        audio = load_audio(path)
    except AudioError as error:
        assert_names_file(error, path)
    else:
        assert audio.size == kept_bytes // 2
        np.testing.assert_allclose(audio, tone()[:audio.size, 0], atol=1 / 2**15)


@pytest.mark.parametrize("rate", [500, 1_000_000])
def test_absurd_sample_rate(tmp_path, rate):
    path = tmp_path / "odd-rate.wav"
    soundfile.write(path, np.zeros(1000, np.float32), rate)
    with pytest.raises(BadSampleRate, match=f"{rate} Hz") as caught:
        load_audio(path)
    assert_names_file(caught.value, path)
    with pytest.raises(BadSampleRate):
        duration(path)


def test_absurd_sample_rate_in_a_patched_header(tone_wav):
    path = tone_wav()
    header = bytearray(path.read_bytes())
    header[24:28] = struct.pack("<I", 5_000_000)  # the fmt chunk's sample-rate field
    path.write_bytes(bytes(header))
    with pytest.raises(BadSampleRate):
        load_audio(path)


def test_duration_from_header(tone_wav):
    assert duration(tone_wav(seconds=0.75, sample_rate=8000)) == pytest.approx(0.75)


def raw_layouts(shared_data) -> dict[str, RawLayout]:
    lines = (shared_data / "realworld" / "transcripts.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return {record["audio"]: RawLayout(**record["raw"]) for record in records if "raw" in record}


def test_realworld_formats_load_as_16k_mono(shared_data):
    folder = shared_data / "realworld" / "formats"
    layouts = raw_layouts(shared_data)
    paths = sorted(folder.iterdir())
    assert len(paths) >= 5
    lengths = {}
    for path in paths:
        audio = load_audio(path, raw=layouts.get(f"formats/{path.name}"))
        assert audio.dtype == np.float32 and audio.ndim == 1, path.name
        assert audio.size > 16000 and np.all(np.isfinite(audio)), path.name
        assert 0 < np.abs(audio).max() <= 1.0, path.name
        lengths[path.name] = audio.size
    # One sentence stored at 16 kHz mono, 8 kHz mono and 44.1 kHz stereo.
    sentence = [size for name, size in lengths.items() if name.startswith("LDC93S1")]
    assert len(sentence) == 3 and max(sentence) - min(sentence) <= 2


def test_realworld_malformed_files_raise_one_line_errors(shared_data):
    paths = sorted((shared_data / "realworld" / "malformed").iterdir())
    assert paths
    for path in paths:
        with pytest.raises(AudioError) as caught:
            load_audio(path)
        assert_names_file(caught.value, path)


# Found by fuzzing (tests/test_fuzz.py).

def test_flac_header_claiming_billions_of_samples_is_not_audio(tmp_path, tone):
    """The header's 36-bit total-samples field sized the read: 256 GiB, a MemoryError."""
    path = tmp_path / "huge.flac"
    soundfile.write(path, tone(0.1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[21] |= 0x0F  # STREAMINFO total samples: the low nibble of byte 21, then bytes 22-25
    data[22:26] = b"\xff\xff\xff\xff"
    path.write_bytes(data)
    with pytest.raises(NotAudio) as caught:  # libsndfile then fails to seek to the claimed end
        load_audio(path)
    assert_names_file(caught.value, path)


def test_one_sample_at_a_high_rate_is_empty_after_resampling(tmp_path):
    path = tmp_path / "one.wav"
    soundfile.write(path, np.full(1, 0.5, np.float32), 32001, subtype="PCM_U8")
    with pytest.raises(EmptyAudio, match="shorter than one sample at 16000 Hz") as caught:
        load_audio(path)
    assert_names_file(caught.value, path)
