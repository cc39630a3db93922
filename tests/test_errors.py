"""exit_status: one line and the error's status for user errors; bugs keep their traceback."""

from __future__ import annotations

import signal
import time

import pytest

from asr.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AsrError, JobFailed, exit_status,
                        raise_if_interrupted)
from conftest import lose_an_interrupt


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


class RaisesInterruptWhenCollected:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler's KeyboardInterrupt is dropped here


def test_an_interrupt_python_drops_is_raised_again(capsys, python_sigint):
    went_on = []

    def command() -> int:
        RaisesInterruptWhenCollected()  # collected at once, as a garbage-collector callback runs
        deadline = time.monotonic() + 10  # well past the resend; its next turn raises it
        while time.monotonic() < deadline:
            pass
        went_on.append(True)
        return EXIT_OK

    assert exit_status(command) == EXIT_INTERRUPTED and not went_on
    assert capsys.readouterr().err == "asr: interrupted\n"


def test_an_interrupt_lost_to_native_code_still_exits_130(capsys, python_sigint):
    def finishes_after_a_lost_interrupt() -> int:
        lose_an_interrupt()
        return EXIT_OK

    assert exit_status(finishes_after_a_lost_interrupt) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "asr: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_loop_that_checks_stops_after_a_lost_interrupt(capsys, python_sigint):
    done = []

    def loop() -> int:
        for item in range(5):
            raise_if_interrupted()
            if item == 2:
                lose_an_interrupt()
            done.append(item)
        return EXIT_OK

    assert exit_status(loop) == EXIT_INTERRUPTED and done == [0, 1, 2]
    raise_if_interrupted()  # outside a job: nothing noted
