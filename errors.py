"""The user's mistakes, as error types of their own (`cli` says why).

Each type also derives from the built-in error a caller would catch for it
(`ValueError`, `FileNotFoundError`, `OSError`).

This module imports nothing, so every other module can use it.
"""


class UserError(Exception):
  """A mistake in what the user gave: a flag, data, a checkpoint, a folder."""


class ConfigError(UserError, ValueError):
  """A flag, hparam or argument value that cannot work."""


class DataError(UserError, ValueError):
  """Data that is there but cannot be used (truncated, wrong layout)."""


class MissingDataError(UserError, FileNotFoundError):
  """Data that is not there; the message names what to place where."""


class StorageError(UserError, OSError):
  """A file could not be written (a full disk, say); nothing is lost."""


class Interrupted(Exception):
  """The user (Ctrl-C) or the system (SIGTERM) asked the run to stop.

  Not a mistake: the command's one line, and the shell's exit code for the
  signal.
  """

  def __init__(self, message: str, *, signum: int):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self) -> int:
    return 128 + self.signum
