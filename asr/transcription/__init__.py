"""Batch transcription: `inputs` (which files), `chunking` (long audio in windows), `transcribe`,
`timestamps` (word times from CTC), `writers` and `subtitles` (output formats)."""
