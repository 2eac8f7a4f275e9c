"""Record files: names, examples, checks, order, sharding, batching.

Every reader in `input_data/` checks and reads its files with these helpers,
so a missing or damaged file fails the same way everywhere: with the path
and the command that makes it.
"""

from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

import numpy as np
import tensorflow as tf

import errors

# Files read at once when the training input interleaves several shards.
_INTERLEAVE_FILES = 4
# Records counted per step while a file is checked; large batches keep the
# per-record overhead of tf.data out of the check.
_CHECK_BATCH = 4096


def train_split(split: str) -> bool:
  """Whether split is 'train'; raises ConfigError unless train or test."""
  if split not in ('train', 'test'):
    raise errors.ConfigError(f'split must be train or test, got {split!r}')
  return split == 'train'


def sharded_filenames(prefix: str, num_shards: int) -> List[str]:
  """The shards `prefix-0000i-of-0000N`, in order, as mnist_shift names them."""
  return ['{}-{:0>5d}-of-{:0>5d}'.format(prefix, i, num_shards)
          for i in range(num_shards)]


def expand_sharded_pattern(pattern: str) -> List[str]:
  """The shard paths of `path/name.tfrecords@N`; ConfigError if no `@N`."""
  prefix, _, count = pattern.rpartition('@')
  if not prefix or not count.isdigit() or int(count) < 1:
    raise errors.ConfigError(
        f'expected a sharded pattern like path/name.tfrecords@N, got '
        f'{pattern!r}')
  return sharded_filenames(prefix, int(count))


def serialize(features: Mapping[str, object]) -> bytes:
  """A serialized tf.train.Example of bytes values and ints (or int arrays)."""
  feature = {}
  for key, value in features.items():
    if isinstance(value, bytes):
      feature[key] = tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[value]))
    else:
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(
          value=[int(v) for v in np.ravel(value)]))
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  # Sorted map keys: protobuf otherwise orders the features differently in
  # every process, and the same example would not give the same bytes.
  return example.SerializeToString(deterministic=True)


def require_files(paths: Sequence[str], how_to_create: str) -> None:
  """Raises MissingDataError naming the first missing path and its remedy."""
  for path in paths:
    if not tf.io.gfile.exists(path):
      raise errors.MissingDataError(
          f'{path} does not exist. Create it with:\n  {how_to_create}')


def count_tfrecords(paths: Sequence[str], how_to_create: str) -> List[int]:
  """The record count of each file, every record read once.

  TensorFlow reports a truncated or corrupt record without naming the file
  (`DataLossError: corrupted record at 476`), and only when the pipeline
  reaches it. Reading each file up front (about 0.4 GB/s on 2 CPU cores:
  1 s for the 440 MB shift-2 training file of 19,690 digits) names the file
  and fails before training starts: MissingDataError or DataError, with
  how_to_create.
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


def decode_pixels(raw: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
  """uint8 `[batch, *shape]` of a batch of byte strings `[batch]`."""
  pixels = tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, *shape])
  # Keeps the static batch size of training batches, which reshape loses.
  pixels.set_shape(raw.shape.concatenate(shape))
  return pixels


def write_tfrecords(path: str, serialized: Iterable[bytes]) -> int:
  """Writes serialized records to path, in order; their count."""
  count = 0
  with tf.io.TFRecordWriter(path) as writer:
    for record in serialized:
      writer.write(record)
      count += 1
  return count


def first_example(path: str) -> tf.train.Example:
  """The first record of a TFRecord file; DataError if it holds none."""
  for record in tf.data.TFRecordDataset(path).take(1):
    return tf.train.Example.FromString(record.numpy())
  raise errors.DataError(f'{path} holds no records')


def example_int(example: tf.train.Example, key: str) -> int:
  return int(example.features.feature[key].int64_list.value[0])


def check_records(paths: Sequence[str],
                  how_to_create: str) -> Tuple[int, int, int]:
  """(height, width, depth) of the first record, once all are counted."""
  if sum(count_tfrecords(paths, how_to_create)) == 0:
    raise errors.DataError(f'{", ".join(paths)} hold no records; recreate '
                           f'with:\n  {how_to_create}')
  example = first_example(paths[0])
  return tuple(example_int(example, key)
               for key in ('height', 'width', 'depth'))


def read_files(
    paths: Sequence[str], *, train: bool,
    reader: Callable[[tf.Tensor], tf.data.Dataset] = tf.data.TFRecordDataset,
    input_context: Optional[tf.distribute.InputContext] = None
) -> tf.data.Dataset:
  """Records of `paths`: in file order, or interleaved for training.

  Training reads the files in a shuffled order, several at once (the records
  are shuffled later by `batch_dataset`). `reader` makes the dataset of one
  file's records from its path. This pipeline's share (see `interface`) is
  whole files when there are enough of them, else every N-th record.
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


def batch_dataset(dataset: tf.data.Dataset,
                  features: Callable[..., Dict[str, tf.Tensor]], *,
                  batch_size: int, train: bool,
                  shuffle_buffer: int) -> tf.data.Dataset:
  """The features of batches for training or testing, as `interface` says."""
  if train:
    dataset = dataset.shuffle(shuffle_buffer, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)
  else:
    dataset = dataset.batch(batch_size)
  return map_batches(dataset, features)


def map_batches(batches: tf.data.Dataset,
                features: Callable[..., Dict[str, tf.Tensor]]
               ) -> tf.data.Dataset:
  """The feature dictionaries of batches, made in parallel, prefetched."""
  return batches.map(features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
      tf.data.AUTOTUNE)
