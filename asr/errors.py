"""The errors asr reports to its users, and the exit status each one means.

An `AsrError` is about what the user gave asr (a file, a setting, a corpus) or
about a job that could not finish (a diverged training run). Its message is one
line naming the file or setting and the reason, and the command line prints just
that line. Any other exception escaping a command is a bug in asr, and the
command line shows its traceback: a bug must never look like a typo.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class AsrError(Exception):
    """Input asr cannot use: the command cannot run as given (exit status 2)."""

    exit_code = EXIT_USAGE


class UsageError(AsrError):
    """Command-line arguments that do not fit together, or that select nothing."""


class JobFailed(AsrError):
    """The job started but could not finish, e.g. a training run diverged (exit status 1)."""

    exit_code = EXIT_FAILED


def exit_status(command: Callable[[], int]) -> int:
    """Run a command-line job: its own status, or one line on stderr and the error's status.

    An `AsrError` prints its message; an `OSError` about a file the user named prints
    the file and the reason (exit 2); Ctrl-C exits 130, also when the interrupt was
    lost on its way (see `_remembered_interrupts`). Anything else propagates with its
    traceback, as a bug.
    """
    with _remembered_interrupts() as interrupts:
        try:
            status = command()
        except AsrError as error:
            print(f"asr: error: {error}", file=sys.stderr)
            return error.exit_code
        except OSError as error:
            if error.filename is None:  # not about a file the user named: a bug, shown in full
                raise
            print(f"asr: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            interrupts.append(signal.SIGINT)
    if interrupts:
        print("asr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


@contextmanager
def _remembered_interrupts() -> Iterator[list[int]]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is also noted in the list yielded.

    Python drops an exception raised inside a garbage-collector callback or a `__del__`
    ("Exception ignored in ..."). JAX registers such a callback, and TensorFlow Lite
    imports JAX where it is installed, so a Ctrl-C that landed there was lost and the
    batch ran on to exit 0. Left alone where SIGINT is not Python's default (ignored
    in a background job, or the caller's own handler) or off the main thread.
    """
    interrupts: list[int] = []

    def note_and_raise(signum, frame):
        interrupts.append(signum)
        raise KeyboardInterrupt

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupts
        return
    previous = signal.signal(signal.SIGINT, note_and_raise)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)
