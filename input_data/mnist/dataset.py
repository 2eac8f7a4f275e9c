"""mnist (single digits, MultiMNIST) and expanded_mnist, see `interface`.

mnist reads the records of `mnist_input_record`, which `write_records` makes
when missing with `mnist_shift`'s writer; MultiMNIST reads the shards of a
`path@N` data_dir, or is generated (`generated_input`) when data_dir is a
directory, as expanded_mnist always is. The digits come from data_dir's idx
files (`idx`), else tensorflow-datasets' mnist (in its order).
"""

import functools
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

import errors
from input_data import interface
from input_data import prepare as prepare_lib
from input_data import records
from input_data.mnist import generated_input
from input_data.mnist import idx
from input_data.mnist import mnist_input_record
from input_data.mnist import mnist_record_writer
from input_data import tfds_data


def prepare_digits(split: str, options: interface.Options) -> bool:
  """Whether data_dir holds the split's idx files; else prepares tfds'."""
  split = options.file_split(split)
  if split not in idx.SPLITS:
    raise errors.ConfigError(
        f'split must be one of {", ".join(idx.SPLITS)}, got {split!r}')
  names = idx.mnist_files(split)
  if prepare_lib.has_files(options.data_dir, names):
    return True
  tfds_data.tfds_instead(
      'mnist', options, server_url=f'{idx.MNIST_URL}{names[0]}.gz',
      files_named=(f'{" and ".join(n + "[.gz]" for n in names)} (from '
                   f'{idx.MNIST_URL})'))
  return False


@functools.lru_cache(maxsize=None)
def digits(split: str,
           options: interface.Options) -> Tuple[np.ndarray, np.ndarray]:
  """uint8 digits `[n, 28, 28]` and labels `[n]`, from idx files or tfds.

  Read once per process: training builds its pipeline twice, first for the
  shapes alone.
  """
  data_dir, file_split = options.data_dir, options.file_split(split)
  if prepare_digits(split, options):
    print(f'Reading MNIST {file_split} from the idx files in {data_dir}',
          flush=True)
    return idx.read_byte_data(file_split, data_dir=data_dir)
  print(f'No MNIST idx files in {data_dir}; reading tensorflow-datasets\' '
        'mnist', flush=True)
  return idx.read_tfds_data(file_split, tfds_data_dir=options.tfds_data_dir)


def write_records(split: str, options: interface.Options) -> str:
  """Writes the shifted records a split reads unless they exist; the path."""
  records.train_split(split)
  path, _, shift = mnist_input_record.single_file(
      options.data_dir, split, validate=options.validate)
  if tf.io.gfile.exists(path):
    return path
  images, labels = digits(split, options)
  return prepare_lib.write_new(
      path, mnist_record_writer.shifted_examples(images, labels=labels,
                                                 shift=shift, pad=0),
      num_records=len(images) * len(mnist_record_writer.all_shifts(shift)))


def _generates_multi_mnist(options: interface.Options) -> bool:
  """Whether mnist is MultiMNIST made on the fly, not read from records."""
  return options.num_targets == 2 and '@' not in options.data_dir


def prepare(split: str, options: interface.Options) -> Optional[str]:
  if options.num_targets not in (1, 2):
    raise errors.ConfigError(
        f'num_targets must be 1 or 2, got {options.num_targets}')
  if options.num_targets == 1:
    return write_records(split, options)
  if _generates_multi_mnist(options):
    prepare_digits(split, options)
  else:
    mnist_input_record.require_multi_records(options.data_dir)
  return None


def inputs(split: str, options: interface.Options, *, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  if _generates_multi_mnist(options):
    images, labels = digits(split, options)
    return generated_input.multi_mnist_inputs(
        split, images=images, labels=labels, batch_size=batch_size,
        shift=options.multi_mnist_shift, num_pairs=options.num_pairs,
        seed=options.seed, eval_size=options.eval_size,
        input_context=input_context)
  return mnist_input_record.inputs(
      split, data_dir=options.data_dir, batch_size=batch_size,
      num_targets=options.num_targets, height=None,
      validate=options.validate, input_context=input_context)


def expanded_inputs(split: str, options: interface.Options, *,
                    batch_size: int,
                    input_context: Optional[tf.distribute.InputContext] = None
                   ) -> tf.data.Dataset:
  images, labels = digits(split, options)
  return generated_input.expanded_mnist_inputs(
      split, images=images, labels=labels, batch_size=batch_size,
      seed=options.seed, eval_size=options.eval_size,
      input_context=input_context)
