r"""Preparing the data a run reads: the data directory, original files, writes.

Each data set's `prepare` (in its folder's `dataset.py`) runs before a split
is read, so that on a fresh machine `pip install -r requirements.txt` and
one `experiment.py` command train a model. Missing files are made from, in
this order, the original files in data_dir, or tensorflow-datasets
(`tfds_data`, which downloads into ~/tensorflow_datasets when the machine is
online); without either and without network, a MissingDataError names the
files to place in data_dir within seconds.

Nothing is overwritten or deleted: an existing file is used as it is, and
`write_new` writes through `files.write_atomically`. The MNIST training
records of all 60,000 digits (1.5 million records, 1.3 GB) take about 25 s
on one core (8 s measured for 19,690 digits, MNIST_DIR holding their idx
files):

  D=$(mktemp -d) && ln -s MNIST_DIR/*.gz $D/ && time python -c \
      "from input_data import datasets; \
      datasets.prepare_split('mnist', 'train', data_dir='$D')"
"""

import gzip
import itertools
import os
import time
from typing import BinaryIO, Iterable, Sequence

import tensorflow as tf

import errors
import files
from input_data import records
import progress

# Where the data goes when no data_dir is given, beside tensorflow-datasets'
# ~/tensorflow_datasets.
DEFAULT_DATA_DIR = os.path.join(os.path.expanduser('~'), 'capsules_data')
# A TFRecord frames each record with its length (8 bytes) and two CRCs.
RECORD_FRAMING_BYTES = 16


def has_files(data_dir: str, names: Sequence[str]) -> bool:
  """Whether data_dir holds every file of names, each maybe gzipped."""
  paths = [os.path.join(data_dir, name) for name in names]
  return all(tf.io.gfile.exists(path) or tf.io.gfile.exists(path + '.gz')
             for path in paths)


def open_maybe_gzipped(path: str, how_to_get: str) -> BinaryIO:
  """Opens path, or path.gz; MissingDataError with how_to_get if neither."""
  if os.path.exists(path):
    return open(path, 'rb')
  if os.path.exists(path + '.gz'):
    return gzip.open(path + '.gz', 'rb')
  raise errors.MissingDataError(
      f'{path} (or {path}.gz) does not exist. Get it with:\n  {how_to_get}')


def write_new(path: str, serialized: Iterable[bytes], *,
              num_records: int) -> str:
  """Writes records, each about the first's size, to a new path, showing
  their progress; keeps a file that another preparation wrote meanwhile."""
  serialized = iter(serialized)
  first = next(serialized)
  serialized = itertools.chain([first], serialized)
  num_bytes = num_records * (len(first) + RECORD_FRAMING_BYTES)
  print(f'Writing {num_records:,} records ({num_bytes / 1e6:,.0f} MB) to '
        f'{path}', flush=True)
  start = time.monotonic()
  serialized = progress.Progress('Writing', total=num_records,
                                 unit='records').each(serialized)
  if files.write_atomically(
      path, lambda temp: records.write_tfrecords(temp, serialized),
      overwrite=False):
    print(f'Wrote {path} in {time.monotonic() - start:.0f} s', flush=True)
  else:
    print(f'Another preparation wrote {path} meanwhile; using that one',
          flush=True)
  return path
