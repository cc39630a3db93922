"""Fuzzing the readers of untrusted files: audio (WAV, FLAC), manifests, ARPA language models.

Each generated input either loads, into values of the promised types, or raises
the reader's own typed error (AudioError, ManifestError, LanguageModelError);
anything else is a bug. CI runs the `fuzz-ci` hypothesis profile of every
target; `pytest -m slow` runs `fuzz-nightly`: inputs per target, registered below.
Each run asserts that it tried at least the profile's number of inputs.
"""

import gzip
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import AudioError, load_audio
from asr.decoding.lm import LanguageModelError, NGramModel, build_kneser_ney
from asr.manifest import ManifestError, read_manifest

UNBOUNDED = {"deadline": None, "print_blob": True,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("fuzz-ci", max_examples=800, **UNBOUNDED)
settings.register_profile("fuzz-nightly", max_examples=4000, **UNBOUNDED)
PROFILES = [pytest.param("fuzz-ci", id="ci"),
            pytest.param("fuzz-nightly", id="nightly", marks=pytest.mark.slow)]


def fuzz(profile: str, strategy, check) -> int:
    """Run `check` on `profile`'s number of inputs drawn from `strategy`; returns how many ran."""
    runs = []

    @settings(settings.get_profile(profile))
    @given(strategy)
    def run(value):
        runs.append(1)
        check(value)

    run()
    assert len(runs) >= settings.get_profile(profile).max_examples
    print(f"{profile}: {len(runs)} inputs")  # shown with -s or -rP
    return len(runs)


# --- audio -------------------------------------------------------------------------------

def encoded(format: str, subtype: str, sample_rate: int, channels: int) -> bytes:
    time = np.arange(sample_rate // 20) / sample_rate  # 50 ms keeps each trial cheap
    tone = 0.4 * np.sin(2 * np.pi * 440 * time)[:, None] * np.ones(channels)
    buffer = io.BytesIO()
    soundfile.write(buffer, tone.astype(np.float32), sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


def wav_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the RIFF size, every `fmt ` field and the data size."""
    fmt, chunk = data.index(b"fmt "), data.index(b"data")
    return [(4, 4), (fmt + 4, 4), (fmt + 8, 2), (fmt + 10, 2), (fmt + 12, 4), (fmt + 16, 4),
            (fmt + 20, 2), (fmt + 22, 2), (chunk + 4, 4)]


# FLAC's STREAMINFO block (after "fLaC" and its 4-byte header): block sizes, frame sizes, then
# 20 bits of rate, 3 of channels, 5 of bits per sample and 36 of total samples, then the MD5.
FLAC_FIELDS = [(4, 4), (8, 2), (10, 2), (12, 3), (15, 3), (18, 1), (19, 1), (20, 1), (21, 1),
               (22, 4), (26, 16)]

WAVS = [encoded("WAV", subtype, rate, channels) for subtype, rate, channels in [
    ("PCM_16", 16000, 1), ("PCM_U8", 8000, 1), ("PCM_24", 22050, 2), ("PCM_32", 16000, 1),
    ("FLOAT", 44100, 2), ("DOUBLE", 16000, 1), ("ULAW", 8000, 1), ("ALAW", 8000, 1),
    ("IMA_ADPCM", 16000, 1), ("MS_ADPCM", 16000, 2)]]
FLACS = [encoded("FLAC", subtype, rate, channels) for subtype, rate, channels in [
    ("PCM_16", 16000, 1), ("PCM_24", 48000, 2), ("PCM_S8", 8000, 1)]]


@st.composite
def mutated(draw, originals: list[bytes], fields, byteorder: str) -> bytes:
    """An original with 1-4 mutations: bit flips (header-heavy), header fields set to edge
    values, truncation, and runs of bytes inserted or deleted."""
    original = draw(st.sampled_from(originals))
    data = bytearray(original)
    places = fields(original) if callable(fields) else fields
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "field", "field", "truncate", "splice"]))
        if kind == "flip":
            end = draw(st.sampled_from([min(64, len(data)), len(data)]))
            data[draw(st.integers(0, end - 1))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "field":
            offset, size = draw(st.sampled_from(places))
            top = (1 << 8 * size) - 1
            value = draw(st.sampled_from([0, 1, top, top >> 1, top >> 1 ^ top]) | st.integers(0, top))
            data[offset:offset + size] = value.to_bytes(size, byteorder)
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data) - 1)):]
        else:
            start = draw(st.integers(0, len(data)))
            data[start:start + draw(st.integers(0, 16))] = draw(st.binary(max_size=16))
    return bytes(data)


def audio_check(path):
    def check(data: bytes):
        path.write_bytes(data)
        try:
            audio = load_audio(path)
        except AudioError:
            return
        assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
        assert np.isfinite(audio).all()
    return check


@pytest.mark.parametrize("profile", PROFILES)
def test_mutated_wav_files_load_or_raise_audio_error(profile, tmp_path):
    fuzz(profile, mutated(WAVS, wav_fields, "little"), audio_check(tmp_path / "fuzzed.wav"))


@pytest.mark.parametrize("profile", PROFILES)
def test_mutated_flac_files_load_or_raise_audio_error(profile, tmp_path):
    fuzz(profile, mutated(FLACS, FLAC_FIELDS, "big"), audio_check(tmp_path / "fuzzed.flac"))


# --- manifests -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-10**400, 10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8)
PATHS = st.text() | st.sampled_from(["a.wav", "sub/b.flac", "../escape.wav", "/etc/passwd",
                                     "a\x00b.wav", "", ".", "..", "//", "a/../../b.wav"])
RECORDS = st.fixed_dictionaries(
    {"audio_filepath": PATHS | JSON_VALUES},
    optional={"duration": st.floats(0, 30) | JSON_VALUES, "text": st.text() | JSON_VALUES,
              "speaker": st.text() | JSON_VALUES, "id": st.text() | JSON_VALUES,
              "extra": JSON_VALUES})


def manifest_line(record) -> st.SearchStrategy[bytes]:
    return st.sampled_from([json.dumps(record).encode(), json.dumps(record, ensure_ascii=False)
                            .encode("utf-8", "surrogatepass")])


MANIFEST_LINES = (RECORDS.flatmap(manifest_line) | JSON_VALUES.map(lambda v: json.dumps(v).encode())
                  | st.binary(max_size=40) | st.text(max_size=40).map(str.encode)
                  | st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth))


def manifest_check(path):
    def check(lines: list[bytes]):
        path.write_bytes(b"\n".join(lines))
        try:
            utterances = read_manifest(path)
        except ManifestError as error:
            assert str(path) in str(error)
            return
        for utterance in utterances:
            assert isinstance(utterance.audio_filepath, str)
            assert utterance.audio_filepath.startswith(str(path.parent.resolve()))
            assert type(utterance.duration) is float and 0 <= utterance.duration < math.inf
            assert isinstance(utterance.text, str)
            assert utterance.speaker is None or isinstance(utterance.speaker, str)
            assert utterance.id is None or isinstance(utterance.id, str)
    return check


@pytest.mark.parametrize("profile", PROFILES)
def test_fuzzed_manifests_load_typed_or_raise_manifest_error(profile, tmp_path):
    fuzz(profile, st.lists(MANIFEST_LINES, min_size=1, max_size=4),
         manifest_check(tmp_path / "fuzzed.jsonl"))


# --- ARPA language models ------------------------------------------------------------------

def arpa_text() -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lm.arpa"
        build_kneser_ney(["the cat sat", "the dog sat on the mat", "a cat"], order=3).save_arpa(path)
        return path.read_text(encoding="utf-8")


ARPA_LINES = arpa_text().splitlines()
TOKENS = st.sampled_from(["nan", "inf", "-inf", "1e999", "-99", "", "x", "\\data\\", "\\end\\",
                          "\\1-grams:", "\\4-grams:", "ngram", "ngram 1=", "ngram 2=99999999999",
                          "=", "<s>", "</s>", "<unk>", "\t"]) | st.text(max_size=8)


@st.composite
def arpa_files(draw) -> tuple[str, bytes]:
    """(file name, bytes): ARPA text with lines deleted, repeated or moved, tokens replaced,
    text inserted, then maybe byte-level damage, and maybe gzipped (and the gzip damaged)."""
    lines = list(ARPA_LINES)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "repeat", "move", "token", "insert"]))
        if kind == "delete":
            del lines[index]
        elif kind == "repeat":
            lines.insert(index, lines[index])
        elif kind == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(index))
        elif kind == "token":
            tokens = lines[index].split()
            tokens[draw(st.integers(0, max(len(tokens) - 1, 0))):][:1] = [draw(TOKENS)]
            lines[index] = draw(st.sampled_from([" ", "\t"])).join(tokens)
        else:
            lines.insert(index, " ".join(draw(st.lists(TOKENS, max_size=4))))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = draw(mutated([data], [(0, 1)], "big"))
    if draw(st.booleans()):
        return "lm.arpa", data
    data = gzip.compress(data, mtime=0)
    return "lm.arpa.gz", draw(st.just(data) | mutated([data], [(3, 1), (4, 4), (len(data) - 8, 8)], "little"))


def arpa_check(folder):
    def check(file: tuple[str, bytes]):
        name, data = file
        path = folder / name
        path.write_bytes(data)
        try:
            model = NGramModel.load_arpa(path)
        except LanguageModelError as error:
            assert str(path) in str(error)
            return
        for sentence in ("the cat sat", "an unknown word", ""):
            score = model.sentence_score(sentence)
            assert isinstance(score, float) and not math.isnan(score)
    return check


@pytest.mark.parametrize("profile", PROFILES)
def test_fuzzed_arpa_files_load_or_raise_language_model_error(profile, tmp_path):
    fuzz(profile, arpa_files(), arpa_check(tmp_path))
