"""Shared pieces of the input code: data files, records, order, batching.

Every reader in `input_data/` finds its files with these helpers, so a missing
file, a damaged file and a data set that tensorflow-datasets cannot provide
fail the same way everywhere: with the path and the command that makes it.
"""

import gzip
import os
from typing import BinaryIO, Callable, List, Optional, Sequence
import urllib.error
import urllib.parse
import urllib.request

import tensorflow as tf
import tensorflow_datasets as tfds

import errors

# Files read at once when the training input interleaves several shards.
_INTERLEAVE_FILES = 4
# Records counted per step while a file is checked; large batches keep the
# per-record overhead of tf.data out of the check.
_CHECK_BATCH = 4096
# Seconds to wait for a download server to answer.
_CONNECT_TIMEOUT_SECONDS = 10


def sharded_filenames(prefix: str, num_shards: int) -> List[str]:
  """Names of the shards `prefix-0000i-of-0000N`, as mnist_shift writes them.

  Args:
    prefix: path of the sharded file without the shard suffix.
    num_shards: number of shards N.

  Returns:
    The N shard paths in order.
  """
  return ['{}-{:0>5d}-of-{:0>5d}'.format(prefix, i, num_shards)
          for i in range(num_shards)]


def expand_sharded_pattern(pattern: str) -> List[str]:
  """Expands `path/name.tfrecords@N` into the N shard paths.

  Args:
    pattern: a path, an `@` and the number of shards.

  Returns:
    The shard paths in order.

  Raises:
    errors.ConfigError: if the pattern has no `@N` suffix with a positive N.
  """
  prefix, _, count = pattern.rpartition('@')
  if not prefix or not count.isdigit() or int(count) < 1:
    raise errors.ConfigError(
        f'expected a sharded pattern like path/name.tfrecords@N, got '
        f'{pattern!r}')
  return sharded_filenames(prefix, int(count))


def open_maybe_gzipped(path: str, how_to_get: str) -> BinaryIO:
  """Opens `path`, or `path.gz` when only the gzipped file is there.

  Args:
    path: the file without the .gz suffix.
    how_to_get: the command that downloads it, for the error message.

  Returns:
    A binary file object of the uncompressed contents.

  Raises:
    errors.MissingDataError: if neither file exists.
  """
  if os.path.exists(path):
    return open(path, 'rb')
  if os.path.exists(path + '.gz'):
    return gzip.open(path + '.gz', 'rb')
  raise errors.MissingDataError(
      f'{path} (or {path}.gz) does not exist. Get it with:\n  {how_to_get}')


def int64_feature(values: Sequence[int]) -> tf.train.Feature:
  """A tf.train.Feature holding int64 values."""
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def bytes_feature(value: bytes) -> tf.train.Feature:
  """A tf.train.Feature holding one bytes value."""
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def require_files(paths: Sequence[str], how_to_create: str) -> None:
  """Raises MissingDataError naming the first missing path and its remedy.

  Args:
    paths: the files a pipeline is about to read.
    how_to_create: the command (or steps) that produce the files.

  Raises:
    errors.MissingDataError: if any path does not exist.
  """
  for path in paths:
    if not tf.io.gfile.exists(path):
      raise errors.MissingDataError(
          f'{path} does not exist. Create it with:\n  {how_to_create}')


def count_tfrecords(paths: Sequence[str], how_to_create: str) -> List[int]:
  """Reads every record of every file once and returns the record counts.

  TensorFlow reports a truncated or corrupt record without naming the file
  (`DataLossError: corrupted record at 476`), and only when the pipeline
  reaches it. Reading each file up front (about 0.4 GB/s on 2 CPU cores:
  1 s for the 440 MB shift-2 training file of 19,690 digits) names the file
  and fails before training starts.

  Args:
    paths: TFRecord files.
    how_to_create: the command that recreates them, for the error message.

  Returns:
    The number of records in each file.

  Raises:
    errors.MissingDataError: if a file does not exist.
    errors.DataError: if a file is truncated or a record is corrupt; the
      message names the file.
  """
  require_files(paths, how_to_create)
  counts = []
  for path in paths:
    batches = tf.data.TFRecordDataset(path).batch(_CHECK_BATCH)
    try:
      count = batches.reduce(
          tf.constant(0, tf.int64),
          lambda total, batch: total + tf.shape(batch, out_type=tf.int64)[0])
    except tf.errors.DataLossError as error:
      raise errors.DataError(
          f'{path} is truncated or corrupt ({error.message.strip()}). '
          f'Recreate it with:\n  {how_to_create}') from error
    counts.append(int(count))
  return counts


def first_example(path: str) -> tf.train.Example:
  """Parses the first record of a TFRecord file, e.g. to learn image sizes.

  Args:
    path: a TFRecord file holding tf.train.Example records.

  Returns:
    The first example.

  Raises:
    errors.DataError: if the file holds no records.
  """
  for record in tf.data.TFRecordDataset(path).take(1):
    return tf.train.Example.FromString(record.numpy())
  raise errors.DataError(f'{path} holds no records')


def example_int(example: tf.train.Example, key: str) -> int:
  """Returns the single int64 value stored under `key` in `example`."""
  return int(example.features.feature[key].int64_list.value[0])


def read_files(
    paths: Sequence[str], *, train: bool,
    reader: Callable[[tf.Tensor], tf.data.Dataset] = tf.data.TFRecordDataset,
    input_context: Optional[tf.distribute.InputContext] = None
) -> tf.data.Dataset:
  """Records of `paths`: in file order, or interleaved for training.

  Args:
    paths: record files.
    train: read the files in a shuffled order, several at once (the records
      are shuffled later by `batch_dataset`); otherwise one after the other.
    reader: makes the dataset of one file's records from its path.
    input_context: this input pipeline's place among several (multi-worker
      training); None: read everything.

  Returns:
    A dataset of scalar tf.string records: with an input_context, this
    pipeline's share, taken before any record is parsed.
  """
  files = tf.data.Dataset.from_tensor_slices(list(paths))
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  share_files = num_pipelines > 1 and len(paths) >= num_pipelines
  if share_files:
    files = files.shard(num_pipelines, input_context.input_pipeline_id)
  if not train:
    dataset = files.flat_map(reader)
  else:
    files = files.shuffle(len(paths), reshuffle_each_iteration=True)
    # In the order the pipeline's `tf.data.Options.deterministic` asks for:
    # experiment.train turns it off (faster) unless the run is seeded.
    dataset = files.interleave(
        reader,
        cycle_length=min(len(paths), _INTERLEAVE_FILES),
        num_parallel_calls=tf.data.AUTOTUNE)
  return shard(dataset, input_context) if not share_files else dataset


def shard(dataset: tf.data.Dataset,
          input_context: Optional[tf.distribute.InputContext]
         ) -> tf.data.Dataset:
  """This input pipeline's share of unparsed examples (every N-th one)."""
  if input_context is None or input_context.num_input_pipelines == 1:
    return dataset
  return dataset.shard(input_context.num_input_pipelines,
                       input_context.input_pipeline_id)


def batch_dataset(dataset: tf.data.Dataset, *, batch_size: int, train: bool,
                  shuffle_buffer: int) -> tf.data.Dataset:
  """Batches examples for training (shuffled, endless) or testing (in order).

  Training shuffles with `shuffle_buffer` examples, repeats forever and drops
  the last partial batch so that every batch has exactly `batch_size`
  examples. Testing reads every example exactly once, in order, and keeps the
  final partial batch.

  Args:
    dataset: unbatched examples.
    batch_size: examples per batch.
    train: training or test order.
    shuffle_buffer: examples held by the shuffle buffer (training only).

  Returns:
    The batched dataset.
  """
  if train:
    dataset = dataset.shuffle(shuffle_buffer, reshuffle_each_iteration=True)
    return dataset.repeat().batch(batch_size, drop_remainder=True)
  return dataset.batch(batch_size)


def _check_reachable(url: str) -> None:
  """Raises ConnectionError unless the server of url answers in time.

  Args:
    url: a file on the server.

  Raises:
    ConnectionError: if the server does not answer within
      _CONNECT_TIMEOUT_SECONDS.
  """
  try:
    with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'),
                                timeout=_CONNECT_TIMEOUT_SECONDS):
      pass
  except urllib.error.HTTPError:
    pass  # The server answered, if only to refuse the request.
  except OSError as error:
    raise ConnectionError(
        f'cannot reach {urllib.parse.urlsplit(url).netloc}: {error}'
    ) from error


def prepare_tfds(name: str, *, tfds_data_dir: Optional[str] = None,
                 server_url: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """Returns a tensorflow-datasets builder, preparing its data when needed.

  Args:
    name: the tensorflow-datasets name, e.g. 'mnist' or 'cifar10'.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default,
      ~/tensorflow_datasets).
    server_url: a file that tensorflow-datasets downloads; when given, its
      server must answer within _CONNECT_TIMEOUT_SECONDS before the download
      starts, which without network retries for minutes (3.5 for mnist).

  Returns:
    The builder of the prepared data set.

  Raises:
    errors.MissingDataError: if the data set is not prepared and cannot be
      downloaded (no network); the one-line message says what to download
      where.
  """
  builder = tfds.builder(name, data_dir=tfds_data_dir)
  if not builder.is_prepared():
    # builder.data_dir is ROOT/name/version.
    root = os.path.dirname(os.path.dirname(builder.data_dir))
    try:
      if server_url:
        _check_reachable(server_url)
      builder.download_and_prepare()
    # A download can fail in many ways (no network, a missing optional
    # dependency of the downloader); all of them call for the same remedy.
    except Exception as error:  # pylint: disable=broad-except
      raise errors.MissingDataError(
          f'tensorflow-datasets has no prepared {name!r} in {root} and could '
          f'not download it ({error}). On a machine with network access run '
          f'`python -c "import tensorflow_datasets as tfds; '
          f'tfds.builder({name!r}, data_dir=\'DIR\').download_and_prepare()"` '
          f'and copy DIR/{name} into {root}.') from error
  return builder


def load_tfds(name: str, split: str, *,
              tfds_data_dir: Optional[str] = None) -> tf.data.Dataset:
  """Loads a tensorflow-datasets split, preparing it first when needed.

  Args:
    name: the tensorflow-datasets name, e.g. 'mnist' or 'cifar10'.
    split: the split, e.g. 'train' or 'test'.
    tfds_data_dir: tensorflow-datasets' data directory (None: its default,
      ~/tensorflow_datasets).

  Returns:
    A dataset of the split's feature dictionaries, in the stored order.

  Raises:
    errors.MissingDataError: see `prepare_tfds`.
  """
  return prepare_tfds(name, tfds_data_dir=tfds_data_dir).as_dataset(
      split=split, shuffle_files=False)
