"""Checkpoints: the reference's name-based TF1 files, one folder of them.

A checkpoint `model.ckpt-<step>` is a TF1 tensor bundle (`.index` and
`.data-00000-of-00001`) whose tensors carry the reference's variable names
(`conv1/weights`, ..., `global_step`, and for training `<var>/Adam`,
`<var>/Adam_1`, `beta1_power`, `beta2_power`), so the released checkpoints
load here and these files load in the reference. A training folder
(`train_dir`) holds such checkpoints and the `checkpoint` state file; `path`
is a checkpoint's prefix. Nothing here deletes a file unless asked, and a
checkpoint appears under its name only once complete: a crash at any moment
leaves every earlier checkpoint loadable.
"""

import contextlib
import os
import re
from typing import Dict, Iterator, List, Optional

import tensorflow as tf

import errors
import files
from models import model as model_lib

PREFIX = 'model.ckpt'
STATE_FILE = 'checkpoint'
# Suffix given to a broken checkpoint's files when training must write a new
# checkpoint of the same step (they are kept, renamed, never deleted).
BROKEN_SUFFIX = '.broken'
_DATA_SUFFIX = '.data-00000-of-00001'
# Marks a checkpoint an evaluation reads: `<prefix>.reading-<pid>`.
_READING_SUFFIX = '.reading-'
_STEP_PATTERN = re.compile(re.escape(PREFIX) + r'-(\d+)\.index$')


def train_folder(summary_dir: str) -> str:
  """An experiment's training folder, `summary_dir/train`."""
  if not summary_dir:
    raise errors.ConfigError(
        'summary_dir is required: pass --summary_dir=<experiment directory>')
  return os.path.join(summary_dir, 'train')


def step_path(train_dir: str, step: int) -> str:
  """The prefix of a training folder's checkpoint of a step."""
  return os.path.join(train_dir, f'{PREFIX}-{step}')


class CheckpointError(errors.UserError, ValueError):
  """A checkpoint cannot be used; the message says which and why."""


class MissingCheckpointError(errors.UserError, FileNotFoundError):
  """No checkpoint of that name."""


class CheckpointExistsError(errors.UserError, FileExistsError):
  """A loadable checkpoint of that name is there already."""


class CheckpointMismatchError(CheckpointError):
  """A checkpoint does not hold the variables this model needs."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint's files are truncated or damaged."""


def _damaged(path: str, error: Exception) -> CheckpointError:
  return CorruptCheckpointError(f'checkpoint {path} is damaged '
                                f'({files.first_line(error)}); use another '
                                f'checkpoint')


def require(path: str) -> str:
  """Returns path; raises MissingCheckpointError unless it is a checkpoint."""
  if not tf.io.gfile.exists(path + '.index'):
    raise MissingCheckpointError(
        f'cannot read checkpoint {path!r}: {path}.index does not exist; give '
        f'the prefix of an existing checkpoint (e.g. .../model.ckpt-1500, '
        f'without .index)')
  return path


def load(model: model_lib.Model, path: str, *,
         include_optimizer: bool = False) -> int:
  """Restores a built model's weights from a checkpoint; its global step.

  Every tensor is read, and checked, before any variable changes, so a
  damaged file leaves the model as it was. include_optimizer: also Adam's
  state as far as the checkpoint has it (beta powers it lacks become the
  reference's at the restored step).
  """
  model.require_built()
  require(path)
  try:
    reader = tf.train.load_checkpoint(path)
  except (tf.errors.OpError, ValueError, IndexError) as error:
    raise _damaged(path, error) from None
  shapes = reader.get_variable_to_shape_map()
  wanted = model.tf1_variable_map()
  problems = []
  for name, var in wanted.items():
    if name not in shapes:
      problems.append(f'{name} missing (model has {list(var.shape)})')
    elif list(shapes[name]) != list(var.shape):
      problems.append(f'{name} has shape {shapes[name]}, model needs '
                      f'{list(var.shape)}')
  if problems:
    raise CheckpointMismatchError(
        f'checkpoint {path} does not fit this {type(model).__name__} '
        f'(check the model, data set and hparams: --model, --dataset, '
        f'--hparams_override): ' +
        '; '.join(problems))
  if include_optimizer:
    wanted.update({name: var for name, var in model.slot_map().items()
                   if name in shapes})
  try:
    values = {name: reader.get_tensor(name) for name in wanted}
  except (tf.errors.OpError, IndexError) as error:
    raise _damaged(path, error) from None
  # The step first: it also sets the beta powers a checkpoint without
  # them implies; one with them (and include_optimizer) overrides those.
  step = int(values.pop(model_lib.GLOBAL_STEP))
  model.optimizer.set_step(step)
  for name, value in values.items():
    wanted[name].assign(tf.cast(value, wanted[name].dtype))
  return step


def write(model: model_lib.Model, path: str, *,
          include_optimizer: bool = True) -> str:
  """Writes a checkpoint (with Adam's state: resumable); returns `path`.

  Renamed into place from a temporary name, the index last. Raises
  ValueError for NaN or infinite variables (nothing is written),
  errors.StorageError when the files cannot be written (a full disk: the
  partial files are removed).
  """
  model.require_built()
  variables = dict(model.tf1_variable_map(),
                   **(model.slot_map() if include_optimizer else {}))
  tensors = {name: tf.convert_to_tensor(var)
             for name, var in variables.items()}
  # The reference's global_step is a float32 variable.
  tensors[model_lib.GLOBAL_STEP] = tf.cast(tensors[model_lib.GLOBAL_STEP],
                                           tf.float32)
  bad = [name for name, value in tensors.items()
         if not bool(tf.reduce_all(tf.math.is_finite(value)))]
  if bad:
    raise ValueError(f'refusing to write {path}: {", ".join(sorted(bad))} '
                     f'hold NaN or infinite values')
  names = sorted(tensors)
  temp = f'{path}.tmp{os.getpid()}'
  try:
    tf.raw_ops.SaveV2(
        prefix=temp, tensor_names=names, shape_and_slices=[''] * len(names),
        tensors=[tensors[name] for name in names])
    tf.io.gfile.rename(temp + _DATA_SUFFIX, path + _DATA_SUFFIX)
    tf.io.gfile.rename(temp + '.index', path + '.index')
  except (tf.errors.OpError, OSError) as error:
    for name in tf.io.gfile.glob(temp + '*'):
      tf.io.gfile.remove(name)  # Only this call's partial files.
    raise errors.StorageError(
        f'could not write the checkpoint {path} ({files.first_line(error)}); '
        f'free some disk space and rerun: the earlier checkpoints are '
        f'intact') from None
  return path


def list_steps(train_dir: str) -> Dict[int, str]:
  """Step to prefix of every `model.ckpt-<step>` of train_dir, ascending."""
  steps = {}
  if tf.io.gfile.isdir(train_dir):
    for name in tf.io.gfile.listdir(train_dir):
      match = _STEP_PATTERN.match(name)
      if match:
        steps[int(match.group(1))] = os.path.join(train_dir, name[:-6])
  return dict(sorted(steps.items()))


def _write_state(train_dir: str, latest: str) -> None:
  """Points the state file at `latest`; relative names, as TF1's Saver's."""
  names = [os.path.basename(prefix)
           for prefix in list_steps(train_dir).values()]
  state = f'model_checkpoint_path: "{os.path.basename(latest)}"\n' + ''.join(
      f'all_model_checkpoint_paths: "{name}"\n' for name in names)

  def write_state(temp):
    with tf.io.gfile.GFile(temp, 'w') as state_file:
      state_file.write(state)

  files.write_atomically(os.path.join(train_dir, STATE_FILE), write_state)


def restore_latest(model: model_lib.Model, train_dir: str) -> int:
  """Resumes from the newest checkpoint that loads; its step, or 0.

  A checkpoint newer than the one the state file names (a run killed between
  writing the checkpoint and the state file) is used, and the state file
  rewritten. A damaged checkpoint is named, left where it is, and the next
  older one tried.
  """
  candidates = list(reversed(list_steps(train_dir).values()))
  broken: List[str] = []
  for path in candidates:
    try:
      step = load(model, path, include_optimizer=True)
    except CorruptCheckpointError as error:
      print(f'{error}: left in place; trying an older checkpoint', flush=True)
      broken.append(os.path.basename(path))
      continue
    if tf.train.latest_checkpoint(train_dir) != path:
      _write_state(train_dir, path)
      print(f'{path} is complete but the state file did not name it; it '
            f'now does', flush=True)
    print(f'Resumed from {path} at step {step}', flush=True)
    return step
  if broken:
    raise CorruptCheckpointError(
        f'no checkpoint in {train_dir} loads ({", ".join(broken)} are '
        f'damaged); move them elsewhere to train from scratch, or use '
        f'another --summary_dir')
  return 0


def save(model: model_lib.Model, train_dir: str, *,
         keep: Optional[int] = None) -> str:
  """Writes `model.ckpt-<step>` to train_dir, names it in the state file.

  A damaged checkpoint of the same step (one `restore_latest` passed over,
  or a save cut short between its two renames) is kept under its name plus
  BROKEN_SUFFIX; a loadable one is never replaced (CheckpointExistsError).
  keep: then deletes all but the newest `keep` checkpoints, except one an
  evaluation is `reading`. Returns the checkpoint's prefix.
  """
  path = step_path(train_dir, int(model.global_step.numpy()))
  if tf.io.gfile.exists(path + '.index') or tf.io.gfile.exists(
      path + _DATA_SUFFIX):
    _keep_broken(path)
  write(model, path)
  if keep is not None:
    _delete_older(train_dir, keep=keep)
  _write_state(train_dir, path)
  return path


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
  """Marks a checkpoint being read, so that `save(keep=)` keeps it."""
  mark = f'{path}{_READING_SUFFIX}{os.getpid()}'
  with tf.io.gfile.GFile(mark, 'w') as file:
    file.write('')
  try:
    yield
  finally:
    tf.io.gfile.remove(mark)


def _delete_older(train_dir: str, *, keep: int) -> None:
  """Deletes every checkpoint but the newest `keep` and those being read."""
  for step, path in list(list_steps(train_dir).items())[:-keep]:
    if tf.io.gfile.glob(path + _READING_SUFFIX + '*'):
      continue
    # The index first: a deletion cut short leaves no checkpoint that
    # looks loadable and is not.
    for suffix in ('.index', _DATA_SUFFIX):
      tf.io.gfile.remove(path + suffix)
    print(f'Deleted {path} (--keep_checkpoints={keep})', flush=True)


def _unreadable(path: str) -> bool:
  try:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except (tf.errors.OpError, ValueError, IndexError):
    return True
  return False


def _keep_broken(path: str) -> None:
  """Renames a damaged checkpoint's files out of the way, keeping them."""
  if tf.io.gfile.exists(path + '.index') and not _unreadable(path):
    raise CheckpointExistsError(
        f'refusing to overwrite the checkpoint {path}; is another run '
        f'training in this folder?')
  for name in tf.io.gfile.glob(path + '.*'):
    if not name.endswith(BROKEN_SUFFIX):
      tf.io.gfile.rename(name, name + BROKEN_SUFFIX)
  print(f'{path} was damaged; its files are kept as *{BROKEN_SUFFIX}',
        flush=True)
