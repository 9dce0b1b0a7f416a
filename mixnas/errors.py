"""The exceptions the command line turns into one line and an exit code.

- `UsageError` (a `ValueError`, as is `dataconf.ConfigError`): input the user can fix, a
  config value, a path, a file that is not what it should be. The message is the whole story:
  what is wrong (file, key or value named) and the fix. Exit code 2.
- `Interrupted`: SIGINT or SIGTERM arrived; whatever could be saved has been saved (a trainer
  writes a checkpoint first) and the message says how to continue. Exit code 128 + signal
  (130 for SIGINT, 143 for SIGTERM). A `BaseException`, like `KeyboardInterrupt`, so that
  `except Exception` clauses in library code never swallow it.
"""
from __future__ import annotations

import signal


class UsageError(ValueError):
    """A problem in the user's input (config, path, value, file): one line, exit code 2."""


class Interrupted(BaseException):
    """A signal stopped the work cleanly; `message` says what was saved and how to resume."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = int(signum)
        name = signal.Signals(self.signum).name
        super().__init__(message or f"stopped by {name}; finished work is saved, run the same command again to continue")

    def __reduce__(self):
        # Pickled with its signal (a retraining worker's Interrupted reaches the main process).
        return type(self), (self.signum, str(self))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
