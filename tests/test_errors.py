"""exit_status: one line and the error's status for user errors; bugs keep their traceback."""

from __future__ import annotations

import pytest

from asr.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AsrError, JobFailed, exit_status


def raising(error: BaseException):
    def command() -> int:
        raise error
    return command


@pytest.mark.parametrize("error, status, line", [
    (AsrError("corpus.jsonl: line 3 is not JSON"), EXIT_USAGE, "asr: error: corpus.jsonl: line 3 is not JSON"),
    (JobFailed("run: training diverged"), EXIT_FAILED, "asr: error: run: training diverged"),
    (FileNotFoundError(2, "No such file or directory", "a.wav"), EXIT_USAGE,
     "asr: error: a.wav: No such file or directory"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "asr: interrupted"),
])
def test_user_errors_are_one_line_and_their_status(capsys, error, status, line):
    assert exit_status(raising(error)) == status
    assert capsys.readouterr().err == line + "\n"


def test_the_command_status_passes_through(capsys):
    assert exit_status(lambda: EXIT_OK) == EXIT_OK and exit_status(lambda: EXIT_FAILED) == EXIT_FAILED
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bug", [ValueError("shapes (3,) and (4,) differ"), OSError("no file named")])
def test_bugs_propagate(bug):
    with pytest.raises(type(bug)):
        exit_status(raising(bug))
