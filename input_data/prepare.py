r"""Prepares the files a run reads, on demand, from whatever is at hand.

`datasets.input_fn` calls these functions before it reads a split, so that
on a fresh machine `pip install -r requirements.txt` and one `experiment.py`
command train a model. When the files of a split are missing they are made
from, in this order, the original files in data_dir, or tensorflow-datasets
(which downloads into ~/tensorflow_datasets when the machine is online):
- mnist: `{split}_{shift}shifted_mnist.tfrecords`, written by
  `mnist_shift`'s writer (`mnist_records`: the same records in the same
  order), from the idx files (`train-images-idx3-ubyte`, ..., gzipped or
  not), else tfds `mnist` (in tfds' order);
- norb: `{split}duo.tfrecords` as `norb_convert` writes them
  (`norb_records`), from the `smallnorb-*.mat` files (gzipped or not), else
  tfds `smallnorb` (in tfds' order);
- cifar10: nothing is written: the reader takes the binary batches when
  `cifar-10-batches-bin/` exists, else tfds `cifar10` directly (a copy in
  data_dir would only duplicate tfds' files).
Each step says what it reads and writes where, with a progress line every
PROGRESS_SECONDS while a file is written. The MNIST training records of all
60,000 digits (1.5 million records, 1.3 GB) take about 25 s on one core
(8 s measured for 19,690 digits, MNIST_DIR holding their idx files):

  D=$(mktemp -d) && ln -s MNIST_DIR/*.gz $D/ && time python -c \
      "from input_data import prepare; prepare.prepare_mnist('train', data_dir='$D')"

Nothing is overwritten or deleted: an existing file is used as it is, and a
file is written under a temporary name in its folder (`*.partial-*`) and
renamed when complete, so a preparation cut short never leaves a partial
file under the real name. Without the files and without network, a
MissingDataError names the files to place in data_dir within seconds.
"""

import contextlib
import os
import threading
import time
from typing import Callable, Iterator, Optional, Sequence, Tuple
import uuid

import numpy as np
import tensorflow as tf

import errors
from input_data.cifar10 import cifar10_input
from input_data.mnist import idx
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_records
from input_data.norb import norb_records
from input_data import records

# Where the data goes when no data_dir is given, beside tensorflow-datasets'
# ~/tensorflow_datasets.
DEFAULT_DATA_DIR = os.path.join(os.path.expanduser('~'), 'capsules_data')
CIFAR10_BIN_DIR = 'cifar-10-batches-bin'
# Seconds between two progress lines while a file is written.
PROGRESS_SECONDS = 10
# A TFRecord frames each record with its length (8 bytes) and two CRCs.
_RECORD_FRAMING_BYTES = 16


def _has_files(data_dir: str, names: Sequence[str]) -> bool:
  """Whether data_dir holds every file of names, each maybe gzipped."""
  paths = [os.path.join(data_dir, name) for name in names]
  return all(tf.io.gfile.exists(path) or tf.io.gfile.exists(path + '.gz')
             for path in paths)


def _prepare_tfds(name: str, *, server_url: str,
                  tfds_data_dir: Optional[str], data_dir: str,
                  files: str) -> None:
  """Prepares a tensorflow-datasets data set, downloading it when needed.

  Args:
    name: the tensorflow-datasets name.
    server_url: a file tensorflow-datasets downloads (see
      `records.prepare_tfds`).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).
    data_dir: the folder that lacks the original files.
    files: the original files, for the error message.

  Raises:
    errors.MissingDataError: if tensorflow-datasets cannot provide the data;
      the one-line message names the files to place in data_dir first.
  """
  try:
    records.prepare_tfds(name, tfds_data_dir=tfds_data_dir,
                         server_url=server_url)
  except FileNotFoundError as error:
    raise errors.MissingDataError(
        f'{data_dir} lacks {files}: place them there. Or else: {error}'
    ) from error


@contextlib.contextmanager
def _progress_lines(path: str, num_bytes: int, start: float) -> Iterator[None]:
  """Prints how much of path is written every PROGRESS_SECONDS meanwhile."""
  done = threading.Event()

  def report() -> None:
    while not done.wait(PROGRESS_SECONDS):
      if tf.io.gfile.exists(path):
        written = tf.io.gfile.stat(path).length
        print(f'  {written / num_bytes:.0%} ({written / 1e6:,.0f} MB) after '
              f'{time.monotonic() - start:.0f} s', flush=True)

  thread = threading.Thread(target=report, daemon=True)
  thread.start()
  try:
    yield
  finally:
    done.set()
    thread.join()


def _write_new(path: str, write: Callable[[str], object], *, what: str,
               num_bytes: int) -> None:
  """Writes a new file through a temporary one in the same folder.

  Args:
    path: the file to create.
    write: writes the contents to the path it is given.
    what: what the file holds, for the first line printed.
    num_bytes: the file's expected size, for the progress lines.
  """
  tf.io.gfile.makedirs(os.path.dirname(path) or '.')
  partial = f'{path}.partial-{uuid.uuid4().hex[:8]}'
  print(f'Writing {what} ({num_bytes / 1e6:,.0f} MB) to {path}', flush=True)
  start = time.monotonic()
  try:
    with _progress_lines(partial, num_bytes, start):
      write(partial)
    tf.io.gfile.rename(partial, path, overwrite=False)
    print(f'Wrote {path} in {time.monotonic() - start:.0f} s', flush=True)
  except tf.errors.AlreadyExistsError:
    print(f'Another preparation wrote {path} meanwhile; using that one',
          flush=True)
  finally:
    if tf.io.gfile.exists(partial):
      tf.io.gfile.remove(partial)


def mnist_digits(split: str, *, data_dir: str,
                 tfds_data_dir: Optional[str] = None
                ) -> Tuple[np.ndarray, np.ndarray]:
  """The MNIST digits of a split, from data_dir's idx files or else tfds.

  Args:
    split: one of `idx.SPLITS` (train, test, valid_train, valid_test); the
      validation splits index the training images in the order of the
      source.
    data_dir: directory that may hold the idx files (gzipped or not).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    uint8 images `[num_images, 28, 28]` and uint8 labels `[num_images]`: in
    the idx files' order, or in tensorflow-datasets' order.

  Raises:
    errors.ConfigError: for an unknown split.
    errors.DataError: for damaged idx files.
    errors.MissingDataError: if data_dir lacks the idx files and
      tensorflow-datasets cannot provide mnist (no network); the one-line
      message names the files to place in data_dir.
  """
  if prepare_mnist_digits(split, data_dir=data_dir,
                          tfds_data_dir=tfds_data_dir):
    print(f'Reading MNIST {split} from the idx files in {data_dir}',
          flush=True)
    return idx.read_byte_data(split, data_dir=data_dir)
  print(f'No MNIST idx files in {data_dir}; reading tensorflow-datasets\' '
        'mnist', flush=True)
  return idx.read_tfds_data(split, tfds_data_dir=tfds_data_dir)


def prepare_mnist_digits(split: str, *, data_dir: str,
                         tfds_data_dir: Optional[str] = None) -> bool:
  """Makes sure the MNIST digits of a split can be read, reading none.

  Args:
    split: one of `idx.SPLITS`.
    data_dir: directory that may hold the idx files (gzipped or not).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    True when data_dir holds the split's idx files; False when
    tensorflow-datasets' mnist is prepared instead (downloaded if needed).

  Raises:
    errors.ConfigError: for an unknown split.
    errors.MissingDataError: see `mnist_digits`.
  """
  if split not in idx.SPLITS:
    raise errors.ConfigError(
        f'split must be one of {", ".join(idx.SPLITS)}, got {split!r}')
  names = idx.MNIST_FILES[split]
  if _has_files(data_dir, names):
    return True
  _prepare_tfds(
      'mnist', server_url=f'{idx.MNIST_URL}{names[0]}.gz',
      tfds_data_dir=tfds_data_dir, data_dir=data_dir,
      files=(f'{" and ".join(n + "[.gz]" for n in names)} (from '
             f'{idx.MNIST_URL})'))
  return False


def prepare_mnist(split: str, *, data_dir: str, validate: bool = False,
                  tfds_data_dir: Optional[str] = None) -> str:
  """Writes the shifted MNIST records a split reads, unless they exist.

  Args:
    split: 'train' (shift 2) or 'test' (shift 0).
    data_dir: directory of the records (and maybe of the idx files).
    validate: the validation files instead: valid_train (training images
      10000 on) or valid_test (the first 10000).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    The path of the records, the one mnist_input_record reads.

  Raises:
    errors.ConfigError: for an unknown split.
    errors.MissingDataError, errors.DataError: see `mnist_digits`.
  """
  if split not in ('train', 'test'):
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  shift = (mnist_input_record.TRAIN_SHIFT if split == 'train' else
           mnist_input_record.TEST_SHIFT)
  file_split = f'valid_{split}' if validate else split
  path = os.path.join(data_dir, mnist_records.shifted_mnist_filename(
      file_split, shift=shift))
  if tf.io.gfile.exists(path):
    return path
  images, labels = mnist_digits(file_split, data_dir=data_dir,
                                tfds_data_dir=tfds_data_dir)
  num_records = len(images) * len(mnist_records.all_shifts(shift))
  record_bytes = (len(mnist_records.single_example(images[0],
                                                   label=labels[0])) +
                  _RECORD_FRAMING_BYTES)
  _write_new(
      path,
      lambda partial: mnist_records.shift_write_mnist(
          images, labels=labels, filename=partial, shift=shift, pad=0),
      what=f'{num_records:,} records', num_bytes=num_records * record_bytes)
  return path


def prepare_norb(split: str, *, data_dir: str,
                 tfds_data_dir: Optional[str] = None) -> str:
  """Writes the smallNORB records a split reads, unless they exist.

  Args:
    split: 'train' or 'test'.
    data_dir: directory of the records (and maybe of the .mat files).
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    The path of the records, the one norb_input_record reads.

  Raises:
    errors.ConfigError: for an unknown split.
    errors.DataError: for damaged .mat files.
    errors.MissingDataError: if data_dir lacks the .mat files and
      tensorflow-datasets cannot provide smallnorb (no network); the
      one-line message names the files to place in data_dir.
  """
  if split not in norb_records.SPLITS:
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  path = os.path.join(data_dir, norb_records.records_filename(split))
  if tf.io.gfile.exists(path):
    return path
  names = norb_records.split_filenames(split)
  if _has_files(data_dir, names):
    print(f'Reading smallNORB {split} from the .mat files in {data_dir}',
          flush=True)
    images, labels, info = norb_records.read_split(split, data_dir=data_dir)
  else:
    print(f'No smallNORB .mat files in {data_dir}; reading '
          'tensorflow-datasets\' smallnorb', flush=True)
    _prepare_tfds(
        'smallnorb', server_url=f'{norb_records.SMALLNORB_URL}{names[0]}.gz',
        tfds_data_dir=tfds_data_dir, data_dir=data_dir,
        files=(f'{", ".join(n + "[.gz]" for n in names)} (from '
               f'{norb_records.SMALLNORB_URL})'))
    images, labels, info = norb_records.read_tfds_split(
        split, tfds_data_dir=tfds_data_dir)
  record_bytes = (len(norb_records.norb_example(images[0], label=labels[0],
                                                meta=info[0])) +
                  _RECORD_FRAMING_BYTES)
  _write_new(
      path,
      lambda partial: norb_records.write_records(
          partial, images=images, labels=labels, info=info),
      what=f'{len(images):,} records', num_bytes=len(images) * record_bytes)
  return path


def cifar10_source(data_dir: str) -> str:
  """The `source` of cifar10_input.inputs that data_dir calls for.

  Args:
    data_dir: directory that may hold `cifar-10-batches-bin/`.

  Returns:
    'bin' when data_dir holds cifar-10-batches-bin/, else 'tfds'.
  """
  if tf.io.gfile.isdir(os.path.join(data_dir, CIFAR10_BIN_DIR)):
    return 'bin'
  return 'tfds'


def prepare_cifar10(*, data_dir: str,
                    tfds_data_dir: Optional[str] = None) -> str:
  """Chooses where CIFAR10 is read from, preparing tfds' copy when needed.

  Args:
    data_dir: directory that may hold `cifar-10-batches-bin/`.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default).

  Returns:
    `cifar10_source(data_dir)`: 'bin' when data_dir holds
    cifar-10-batches-bin/ (whose files the reader checks), else 'tfds'.

  Raises:
    errors.MissingDataError: if data_dir lacks the binary batches and
      tensorflow-datasets cannot provide cifar10 (no network); the one-line
      message names the folder to place in data_dir.
  """
  if cifar10_source(data_dir) == 'bin':
    return 'bin'
  print(f'No {CIFAR10_BIN_DIR}/ in {data_dir}; reading tensorflow-datasets\' '
        'cifar10', flush=True)
  _prepare_tfds('cifar10', server_url=cifar10_input.CIFAR_URL,
                tfds_data_dir=tfds_data_dir, data_dir=data_dir,
                files=(f'{CIFAR10_BIN_DIR}/ (extract '
                       f'{cifar10_input.CIFAR_URL} there)'))
  return 'tfds'
