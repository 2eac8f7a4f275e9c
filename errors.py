"""The user's mistakes, as error types of their own.

A command reports a `UserError` in one line that says what to do (`cli`);
any other exception is a bug in the code, or in a researcher's new layer,
and keeps its traceback. Each type also derives from the built-in error a
caller would catch for it (`ValueError`, `FileNotFoundError`, `OSError`).

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
