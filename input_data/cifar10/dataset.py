"""cifar10, see `interface`.

Nothing is written: the reader (`cifar10_input`) takes the binary batches
when data_dir holds `cifar-10-batches-bin/`, else tensorflow-datasets'
cifar10 directly (a copy in data_dir would only duplicate tfds' files).
"""

import os
from typing import Optional

import tensorflow as tf

from input_data import interface
from input_data.cifar10 import cifar10_input
from input_data import tfds_data

CIFAR10_BIN_DIR = 'cifar-10-batches-bin'


def source(data_dir: str) -> str:
  """'bin' when data_dir holds cifar-10-batches-bin/, else 'tfds'."""
  if tf.io.gfile.isdir(os.path.join(data_dir, CIFAR10_BIN_DIR)):
    return 'bin'
  return 'tfds'


def prepare(split: str, options: interface.Options) -> str:
  """`source(data_dir)`; the reader checks the binary batches' files."""
  del split  # Both splits come from the same folder or tfds data set.
  if source(options.data_dir) == 'bin':
    return 'bin'
  print(f'No {CIFAR10_BIN_DIR}/ in {options.data_dir}; reading '
        'tensorflow-datasets\' cifar10', flush=True)
  tfds_data.tfds_instead(
      'cifar10', options, server_url=cifar10_input.CIFAR_URL,
      files_named=(f'{CIFAR10_BIN_DIR}/ (extract {cifar10_input.CIFAR_URL} '
                   'there)'))
  return 'tfds'


def inputs(split: str, options: interface.Options, *, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  return cifar10_input.inputs(
      split, data_dir=os.path.join(options.data_dir, CIFAR10_BIN_DIR),
      batch_size=batch_size, source=source(options.data_dir),
      tfds_data_dir=options.tfds_data_dir, input_context=input_context)
