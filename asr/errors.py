"""The errors asr reports to its users, and the exit status each one means.

An `AsrError` is about what the user gave asr (a file, a setting, a corpus) or
about a job that could not finish (a diverged training run). Its message is one
line naming the file or setting and the reason, and the command line prints just
that line. Any other exception escaping a command is a bug in asr, and the
command line shows its traceback: a bug must never look like a typo.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def first_line(error: BaseException) -> str:
    """A library's exception as the reason in a one-line message: its first line, else its type."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    the file and the reason (exit 2); Ctrl-C exits 130, also when Python lost the
    interrupt on its way (see `_kept_interrupts`). Anything else propagates with its
    traceback, as a bug.
    """
    with _kept_interrupts() as note:
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
            note.received = True
    if note.received:
        print("asr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if `exit_status` noted a Ctrl-C that did not stop the job.

    For the loops of long jobs, once per item (`asr.transcribe` per file, training per batch):
    where Python lost the interrupt (see `_kept_interrupts`) the job stops at the next item
    instead of running to its end. Outside `exit_status`, nothing is noted: a no-op.
    """
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, _InterruptNote) and handler.received:
        raise KeyboardInterrupt


class _InterruptNote:
    """SIGINT's handler while `exit_status` runs a job: raises KeyboardInterrupt and notes it."""

    def __init__(self):
        self.received = False

    def __call__(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt


@contextmanager
def _kept_interrupts() -> Iterator[_InterruptNote]:
    """Ctrl-C raises KeyboardInterrupt as usual, is noted in the note yielded, and is raised
    again where Python drops it.

    Python cannot raise an exception out of a garbage-collector callback or a `__del__`: it
    hands it to `sys.unraisablehook` ("Exception ignored in ...") and goes on. JAX registers
    such a callback, and TensorFlow Lite imports JAX where it is installed; native code may
    also clear an exception it did not expect. Either way an interrupted batch ran on to exit
    0. The note keeps the status honest however the interrupt was lost, and
    `raise_if_interrupted` lets a job's loop stop; the hook resends it in the first case.
    SIGINT is left alone where it is not Python's default (ignored in a background job, or
    a caller's own handler) or off the main thread.
    """
    note, resends = _InterruptNote(), []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield note  # not installed: only exit_status itself notes what reaches it
        return

    def resend_dropped(unraisable) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            # Raised here it would be dropped again, so from another thread a moment later,
            # once the callback has returned; should it land in one again, it comes back here.
            resends.append(threading.Timer(0.05, _thread.interrupt_main))
            resends[-1].start()
        else:
            previous_hook(unraisable)

    previous_handler, previous_hook = signal.signal(signal.SIGINT, note), sys.unraisablehook
    sys.unraisablehook = resend_dropped
    try:
        yield note
    finally:  # a job that finished all the same has nothing left to interrupt
        signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook
        for resend in resends:
            resend.cancel()
