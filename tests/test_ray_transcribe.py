"""pipelines.ray_transcribe on a local Ray cluster with two workers, against `asr transcribe`.

One Ray cluster (started here, as on a real cluster) serves every run, so the test pays
Ray's start-up once; each run is a separate driver process, as `ray job submit` starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.cli import main as asr_main
from asr.config import load_config
from asr.decoding.lm import build_kneser_ney
from asr.model import build_model
from asr.text import Vocabulary
from conftest import TINY_MODEL, make_tone

ray = pytest.importorskip("ray")
RATE = 16000
GOOD, BROKEN = 26, 4  # broken: empty, not audio, a bare header, missing
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_address():
    """A two-CPU Ray cluster for this module; its address for the drivers to join."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """An untrained tiny model, 30 inputs (tones in bursts in nested folders, 4 of them broken)
    and decoding options: beam search with an LM and hotwords, 1-second chunks."""
    root = tmp_path_factory.mktemp("corpus")
    config = load_config(None, TINY_MODEL)
    build_model(Vocabulary(), config.features, config.model).save(root / "model.keras")
    build_kneser_ney(["a b", "b a c", "hello world"], order=2).save_arpa(root / "lm.arpa")
    decoding = ["--decoder", "beam", "--beam-width", "4", "--lm", str(root / "lm.arpa"),
                "--hotwords", "hello:3,world", "--chunk-seconds", "1"]
    rng = np.random.default_rng(0)
    for number in range(GOOD):
        folder = root / "in" / ("a", "a/b", "c")[number % 3]
        folder.mkdir(parents=True, exist_ok=True)
        seconds = rng.uniform(0.3, 3.0)
        samples = make_tone(seconds, RATE, frequency=rng.uniform(150, 900), seed=number)[:, 0]
        samples *= (np.sin(np.arange(samples.size) / RATE * rng.uniform(2, 8)) > 0)  # word-like bursts
        soundfile.write(folder / f"clip{number:02d}.{'flac' if number % 4 == 0 else 'wav'}", samples, RATE)
    broken = root / "in" / "c"
    (broken / "empty.wav").write_bytes(b"")
    (broken / "notes.wav").write_text("not audio\n")
    (broken / "header.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    inputs = [str(root / "in"), *(str(broken / name) for name in ("empty.wav", "notes.wav", "header.wav")),
              str(root / "in" / "missing.wav")]
    return root / "model.keras", inputs, decoding


def pipeline_command(corpus, out: Path, address: str, *options: str) -> list[str]:
    model, inputs, decoding = corpus
    return [sys.executable, "-m", "pipelines.ray_transcribe", *inputs, "--model", str(model), *decoding,
            "--output-dir", str(out), "--format", "all", "--workers", "2", "--address", address, *options]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPOSITORY)


def outputs(folder: Path) -> dict[str, bytes]:
    """Every output file by relative path; the JSONL summaries' lines sorted (their order is the
    order files finished in)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".jsonl":
                data = b"".join(sorted(data.splitlines(keepends=True)))
            found[str(path.relative_to(folder))] = data
    return found


def test_killed_run_resumes_to_the_outputs_of_asr_transcribe(corpus, ray_address, tmp_path, capsys):
    model, inputs, decoding = corpus
    assert asr_main(["transcribe", *inputs, "--model", str(model), *decoding,
                     "--output-dir", str(tmp_path / "plain"), "--format", "all", "--quiet"]) == 1
    expected = outputs(tmp_path / "plain")
    assert len([name for name in expected if name.endswith(".json")]) == GOOD
    assert len(expected["failures.jsonl"].splitlines()) == BROKEN
    out = tmp_path / "ray"
    command = pipeline_command(corpus, out, ray_address, "--files-per-batch", "2")

    started = time.monotonic()
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPOSITORY)
    while not list(out.rglob("*.vtt")) and time.monotonic() - started < 600:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)  # the driver, mid-run: workers may still be writing
    assert killed.wait(timeout=60) == -signal.SIGKILL
    summary = out / "transcripts.jsonl"  # written at the end, or every 30 s
    assert list(out.rglob("*.vtt")) and len(summary.read_text().splitlines() if summary.exists() else ()) < GOOD

    resumed = run(command)
    assert resumed.returncode == 1, resumed.stderr
    assert resumed.stdout.endswith(f"{BROKEN} failed -> {out}\n")
    failed = [line for line in resumed.stderr.splitlines() if line.startswith("asr: error: ")]
    assert len(failed) == BROKEN
    assert outputs(out) == expected  # text, word times, confidences: byte for byte; nothing twice
    assert not list(out.rglob("*.tmp"))

    mtimes = {path: path.stat().st_mtime_ns for path in out.rglob("*.json")}
    rerun = run(command)
    assert rerun.returncode == 1, rerun.stderr
    assert rerun.stdout == f"0 transcribed, {GOOD} already done, {BROKEN} failed -> {out}\n"
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*.json")} == mtimes
    assert outputs(out) == expected


def test_a_file_that_kills_its_worker_fails_alone(corpus, ray_address, tmp_path):
    model, inputs, _ = corpus
    clips = sorted(Path(inputs[0]).rglob("clip0*.wav"))  # 7 good files
    poison = tmp_path / "poison.wav"
    soundfile.write(poison, make_tone(0.5, RATE)[:, 0], RATE)
    hook = {"env_vars": {"PYTHONPATH": os.pathsep.join(map(str, (Path(__file__).parent, REPOSITORY)))},
            "worker_process_setup_hook": "ray_worker_crash.install"}  # workers die on poison*
    out = tmp_path / "out"
    result = run([sys.executable, "-m", "pipelines.ray_transcribe", *map(str, clips[:4]), str(poison),
                  *map(str, clips[4:]), "--model", str(model), "--output-dir", str(out), "--workers", "2",
                  "--files-per-batch", "4", "--task-retries", "0", "--address", ray_address,
                  "--runtime-env", json.dumps(hook)])
    assert result.returncode == 1, result.stderr
    assert result.stdout.endswith(f"{len(clips)} transcribed, 0 already done, 1 failed -> {out}\n")
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [failure["audio_filepath"] for failure in failures] == [str(poison)]
    assert failures[0]["error"] == f"{poison}: the worker transcribing it died or failed (tries: 1)"
    assert len(list(out.rglob("clip*.txt"))) == len(clips)  # its batch's other files are done


def test_usage_errors_exit_with_2(corpus, tmp_path, capsys):
    from pipelines.ray_transcribe import main

    model, inputs, _ = corpus
    for options, message in [(["--format", "docx"], "unknown output format 'docx'"),
                             (["--decoder", "greedy", "--hotwords", "one"], "need the beam decoder"),
                             (["--model", str(tmp_path / "none.keras")], "no such model file"),
                             (["--decoder", "beam", "--lm", str(tmp_path / "none.arpa")], "no such language model")]:
        assert main([*inputs, "--model", str(model), "--output-dir", str(tmp_path), *options]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main([*inputs, "--model", str(model), "--workers", "0"])
    assert exit.value.code == 2 and "expected a positive whole number, got '0'" in capsys.readouterr().err
