"""The errors asr reports to its users, and the exit status each one means.

An `AsrError` is about what the user gave asr (a file, a setting, a corpus) or
about a job that could not finish (a diverged training run). Its message is one
line naming the file or setting and the reason, and the command line prints just
that line. Any other exception escaping a command is a bug in asr, and the
command line shows its traceback: a bug must never look like a typo.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class AsrError(Exception):
    """Input asr cannot use: the command cannot run as given (exit status 2)."""

    exit_code = EXIT_USAGE


class UsageError(AsrError):
    """Command-line arguments that do not fit together, or that select nothing."""


class JobFailed(AsrError):
    """The job started but could not finish, e.g. a training run diverged (exit status 1)."""

    exit_code = EXIT_FAILED
