"""asr: speech recognition with a bidirectional-LSTM CTC model on Keras."""
