"""Exported graphs (SavedModel, TFLite, ONNX) against the Keras path: features, logits, transcripts."""

import json
import subprocess
import sys
import sysconfig

import keras
import numpy as np
import pytest
import soundfile

from asr import features
from asr.cli import main
from asr.config import FeatureConfig, ModelConfig
from asr.data import pad
from asr.export import ExportError, export, load_exported, texts
from asr.model import build_model, forward_function, load_model
from asr.text import Vocabulary
from asr.transcription.transcribe import transcribe

RATE = 16000
pytestmark = pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa, on the 0.02 s clip

# Runs where asr cannot be imported: isolated mode, no site processing (so no editable
# install hook), only site-packages on the path.
WITHOUT_ASR = """
import json, sys
sys.path.append(sys.argv[1])
try:
    import asr
except ImportError:
    pass
else:
    sys.exit("asr is importable")
import numpy as np
import tensorflow as tf

clips = np.load(sys.argv[2])
serve = tf.saved_model.load(sys.argv[3]).signatures["serving_default"]
outputs = serve(audio=tf.constant(clips["audio"]), lengths=tf.constant(clips["lengths"]))
print(json.dumps([text.decode("utf-8") for text in outputs["text"].numpy()]))
"""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny untrained model whose sharpened, space-biased output layer spells varied text
    (leading, trailing and double spaces included), so transcripts test the whole decoding.
    Its log-mel has a 10 dB dynamic range (a fifth of the values floored): that floor (a max
    and a maximum) is all the front end runs beyond log(mel + LOG_FLOOR)."""
    keras.utils.set_random_seed(1)
    model = build_model(Vocabulary(), FeatureConfig(n_mels=40, dynamic_range_db=10.0),
                        ModelConfig(conv_channels=4, lstm_units=16, lstm_layers=1, dropout=0.0))
    model.classifier.kernel.assign(model.classifier.kernel * 30)
    bias = np.zeros(model.vocabulary.size, np.float32)
    bias[:2] = 5.0, 10.0  # blank, space
    model.classifier.bias.assign(bias)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """WAV files of noise, 0.02 s (below one FFT: no text) to 2.2 s."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    paths = []
    for index, seconds in enumerate((1.0, 2.2, 0.3, 0.02, 1.37)):
        paths.append(folder / f"clip{index}.wav")
        soundfile.write(paths[-1], 0.1 * rng.standard_normal(round(seconds * RATE)), RATE, subtype="FLOAT")
    return paths


@pytest.fixture(scope="module")
def reference(model_path, clips):
    """The Keras path: `asr transcribe` (greedy) texts, and features and logits per clip."""
    model = load_model(model_path)
    results = {t.path: t for t in transcribe(clips, model)}
    extracted = [features.extract(soundfile.read(path, dtype="float32")[0], model.feature_config)
                 for path in clips]
    logits = [forward_function(model)(f[None], np.array([len(f)], np.int32)).numpy()[0] for f in extracted]
    seconds_per_frame = model.feature_config.hop_length * model.model_config.subsampling / RATE
    return {"texts": [results[str(path)].text for path in clips], "features": extracted, "logits": logits,
            "words": [results[str(path)].words for path in clips], "seconds_per_frame": seconds_per_frame}


@pytest.fixture(scope="module")
def exports(model_path, tmp_path_factory):
    """exports(format, quantize=False) -> `Exported`, each written once per module."""
    done = {}

    def get(format, quantize=False):
        if (format, quantize) not in done:
            folder = tmp_path_factory.mktemp(format + ("-int8" if quantize else ""))
            done[format, quantize] = export(model_path, folder, format, quantize=quantize)
        return done[format, quantize]

    return get


@pytest.fixture(scope="module")
def batch(clips):
    return pad([soundfile.read(path, dtype="float32")[0] for path in clips], np.float32)


def check_against_keras(outputs, reference, lengths):
    assert texts(outputs) == reference["texts"]
    assert sum(" " in text for text in reference["texts"]) >= 2
    for row, words in enumerate(reference["words"]):  # asr.transcribe's times, capped at the audio's end
        count, seconds = outputs["word_counts"][row], reference["seconds_per_frame"]
        assert count == len(words)
        assert np.allclose(outputs["word_starts"][row, :count] * seconds, [w.start for w in words], atol=1e-3)
        ends = np.minimum(outputs["word_ends"][row, :count] * seconds, lengths[row] / RATE)
        assert np.allclose(ends, [w.end for w in words], atol=1e-3)
    for row, (expected_features, expected_logits) in enumerate(zip(reference["features"], reference["logits"])):
        frames = outputs["feature_lengths"][row]
        if lengths[row] < FeatureConfig().n_fft:  # too short for asr.transcribe, which leaves it out
            assert frames == 0 and reference["texts"][row] == ""
            continue
        assert frames == len(expected_features)
        assert np.abs(outputs["features"][row, :frames] - expected_features).max() < 1e-3
        logit_frames = outputs["logit_lengths"][row]
        assert np.abs(outputs["logits"][row, :logit_frames] - expected_logits).max() < 1e-3


def test_cli_saved_model_transcribes_like_keras_where_asr_cannot_be_imported(
        model_path, batch, reference, tmp_path):
    output = tmp_path / "serving" / "1"
    assert main(["export", str(model_path), "--format", "saved_model", "--output", str(output)]) == 0
    outputs = load_exported(output)(*batch)
    check_against_keras(outputs, reference, batch[1])

    np.savez(tmp_path / "clips.npz", audio=batch[0], lengths=batch[1])
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", WITHOUT_ASR, sysconfig.get_paths()["purelib"],
         str(tmp_path / "clips.npz"), str(output)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == reference["texts"]
    assert main(["export", str(model_path), "--format", "saved_model", "--output", str(output)]) == 2


@pytest.mark.parametrize("format", ["tflite", "onnx"])
def test_exported_graph_transcribes_like_keras(format, exports, batch, reference):
    exported = exports(format)
    assert exported.path.name == f"model.{format}" and exported.bytes == exported.path.stat().st_size
    check_against_keras(load_exported(exported.path.parent)(*batch), reference, batch[1])


def test_quantized_tflite_is_smaller_and_keeps_float_features(exports, batch, reference):
    quantized = exports("tflite", quantize=True)
    assert quantized.bytes < exports("tflite").bytes
    outputs = load_exported(quantized.path)(*batch)
    for row, expected in enumerate(reference["features"][:3]):  # the STFT and mel constants stay float
        assert np.abs(outputs["features"][row, :len(expected)] - expected).max() < 1e-3


def test_bad_requests_fail_with_one_line(model_path, tmp_path, capsys):
    with pytest.raises(ExportError, match="tflite format only"):
        export(model_path, tmp_path, "onnx", quantize=True)
    assert main(["export", str(tmp_path / "absent.keras"), "--format", "onnx", "--output", str(tmp_path)]) == 2
    assert "absent.keras" in capsys.readouterr().err
    with pytest.raises(ExportError, match="not an exported model"):
        load_exported(tmp_path / "model.bin")


def test_a_full_disk_is_one_line_and_leaves_no_half_model(model_path, tmp_path, monkeypatch):
    """TensorFlow's writers raise ResourceExhaustedError there, which had ended in a traceback."""
    import tensorflow as tf

    def full(*args):
        raise tf.errors.ResourceExhaustedError(None, None, "out/variables: No space left on device")

    monkeypatch.setattr(sys.modules["asr.export"], "_archive", full)  # asr.export is also a function
    with pytest.raises(ExportError, match=r"served: cannot be written \(out/variables: No space left"):
        export(model_path, tmp_path / "served", "saved_model")
    assert list(tmp_path.iterdir()) == []
