"""asr: speech recognition with a bidirectional-LSTM CTC model on Keras."""

from asr.transcribe import Transcript, Word, transcribe

__all__ = ["Transcript", "Word", "transcribe"]
