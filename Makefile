# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
INSTALLED = $(VENV)/.installed

.PHONY: demo test fsdd bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(INSTALLED)  ## synthesise speech, train, transcribe unseen voices, write a WER report
	$(BIN)/asr demo

test: $(INSTALLED)  ## the test suite CI runs (slow tests excluded)
	$(BIN)/python -m pytest

fsdd: $(INSTALLED)  ## FSDD connected-digit recipe (needs ../shared/data/fsdd), with the eSpeak digit voices it borrows
	$(BIN)/asr prepare synthetic --out work/espeak-digits --digit-share 1 --utterances 4000 100 100 --extra-voices
	$(BIN)/python -m pipelines.fsdd

bench: $(INSTALLED)  ## speed benchmarks (transcription needs work/fsdd and a model; see scripts/)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python scripts/bench_layers.py

clean:
	rm -rf $(VENV) work
