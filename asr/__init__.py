"""asr: speech recognition with a bidirectional-LSTM CTC model on Keras."""

from asr.export import export
from asr.transcription.transcribe import Transcript, Word, transcribe

__all__ = ["Transcript", "Word", "export", "transcribe"]
