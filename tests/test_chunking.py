import numpy as np
import pytest
import soundfile

from asr import audio
from asr.transcription import chunking
from asr.transcription.chunking import Chunk, chunks, read_blocks, split

RATE = 16000


def bursts_and_pauses(seconds=180.0, seed=0):
    """Loud 1-4 s bursts separated by faint 0.3-0.8 s pauses; returns (samples, pause intervals)."""
    rng = np.random.default_rng(seed)
    pieces, pauses, position = [], [], 0
    while position < seconds * RATE:
        burst = round(rng.uniform(1.0, 4.0) * RATE)
        tone = 0.3 * np.sin(np.arange(burst) * rng.uniform(0.05, 0.3))
        pieces.append(tone + 0.05 * rng.standard_normal(burst))
        pause = round(rng.uniform(0.3, 0.8) * RATE)
        pieces.append(0.003 * rng.standard_normal(pause))
        pauses.append((position + burst, position + burst + pause))
        position += burst + pause
    return np.concatenate(pieces).astype(np.float32), pauses


def test_chunks_are_cut_inside_pauses_and_cover_the_audio_exactly():
    samples, pauses = bursts_and_pauses()
    blocks = np.array_split(samples, 37)  # block edges fall anywhere
    found = list(split(blocks, RATE, max_seconds=20.0))
    np.testing.assert_array_equal(np.concatenate([c.samples for c in found]), samples)
    assert [c.offset for c in found] == list(np.cumsum([0] + [c.samples.size for c in found[:-1]]))
    assert all(10 * RATE <= c.samples.size <= 20 * RATE for c in found[:-1])
    assert len(found) >= 9
    for chunk in found[1:]:
        assert any(start <= chunk.offset < end for start, end in pauses), chunk.offset / RATE


def test_streamed_blocks_equal_loading_the_whole_file(tmp_path):
    """Block-wise downmixing and resampling (8 kHz stereo -> 16 kHz mono) match the one-shot path."""
    rng = np.random.default_rng(1)
    path = tmp_path / "long.wav"
    soundfile.write(path, 0.1 * rng.standard_normal((8000 * 25, 2)).astype(np.float32), 8000, subtype="FLOAT")
    streamed = np.concatenate(list(read_blocks(path, RATE, block_seconds=3.3)))
    np.testing.assert_allclose(streamed, audio.load_audio(path, RATE), atol=1e-6)


def test_long_files_are_streamed_not_loaded(tmp_path, monkeypatch):
    samples, _ = bursts_and_pauses(seconds=70.0)
    path = tmp_path / "long.wav"
    soundfile.write(path, samples, RATE, subtype="FLOAT")

    def load_whole(*args, **kwargs):
        raise AssertionError("a long file was loaded whole")

    monkeypatch.setattr(audio, "load_audio", load_whole)
    found = list(chunks(path, RATE, max_seconds=20.0, stream_above=60.0))
    np.testing.assert_array_equal(np.concatenate([c.samples for c in found]), samples)


def test_short_files_are_one_chunk_or_cut_alike(tmp_path):
    samples, _ = bursts_and_pauses(seconds=45.0, seed=2)
    path = tmp_path / "short.wav"
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    loaded = [c.offset for c in chunks(path, RATE, max_seconds=20.0)]
    streamed = [c.offset for c in chunks(path, RATE, max_seconds=20.0, stream_above=1.0)]
    assert loaded == streamed and len(loaded) > 1
    (whole,) = chunks(path, RATE, max_seconds=None)
    assert whole.offset == 0 and whole.samples.size == samples.size


def test_a_bad_block_fails_the_file_after_the_good_chunks(tmp_path):
    samples, _ = bursts_and_pauses(seconds=70.0)
    samples[-RATE] = np.nan
    path = tmp_path / "nan_late.wav"
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    stream = chunks(path, RATE, max_seconds=20.0)
    assert next(stream).offset == 0
    with pytest.raises(audio.NonFiniteAudio, match="NaN"):
        list(stream)


def test_headerless_pcm_streams_by_extension(tmp_path):
    samples = (0.2 * np.sin(np.arange(RATE * 3) / 5)).astype(np.float32)
    path = tmp_path / "clip.raw"
    path.write_bytes((samples * 32767).astype("<i2").tobytes())
    streamed = np.concatenate(list(read_blocks(path, RATE, block_seconds=1.0)))
    np.testing.assert_allclose(streamed, samples, atol=1e-4)


def test_only_digital_silence_counts_as_silent():
    assert Chunk(0, np.zeros(RATE, np.float32)).silent
    assert not Chunk(0, np.full(RATE, 1e-3, np.float32)).silent
    assert chunking.quietest_point(np.zeros(10, np.float32), RATE) == 5
