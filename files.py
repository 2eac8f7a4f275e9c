"""Writing files so that a reader never sees half of one, and error lines.

Every file this project writes for a user (prepared data, downloads, the
checkpoint state file, results) goes through `write_atomically`, so that an
interrupted or failed write leaves the old file, or none, never a torn one.
"""

import os
import uuid
from typing import Callable

import tensorflow as tf


def first_line(error: BaseException) -> str:
  """An error's first line, or its type's name when it says nothing."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0]


def write_atomically(path: str, write: Callable[[str], object], *,
                     overwrite: bool = True) -> bool:
  """Calls `write(temp)` for a temporary file beside path, then renames it.

  `write` may make a folder instead. The temporary file or folder is removed when `write` or the rename fails. With
  overwrite=False an existing path is kept (another process wrote it
  meanwhile) and False returned; otherwise True.
  """
  tf.io.gfile.makedirs(os.path.dirname(path) or '.')
  temp = f'{path}.partial-{uuid.uuid4().hex[:8]}'
  try:
    write(temp)
    tf.io.gfile.rename(temp, path, overwrite=overwrite)
    return True
  except tf.errors.AlreadyExistsError:
    return False
  finally:
    if tf.io.gfile.isdir(temp):
      tf.io.gfile.rmtree(temp)
    elif tf.io.gfile.exists(temp):
      tf.io.gfile.remove(temp)
