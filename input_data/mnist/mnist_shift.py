r"""Writes shifted MNIST and MultiMNIST tfrecords from the MNIST idx files.

The command line of `mnist_record_writer`, which describes the records, of
the images of --split (see `idx`). Each file is written whole
(`files.write_atomically`).

Usage (the records go to --output_dir, by default --data_dir):
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=train --shift=2
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=test --shift=0
  python -m input_data.mnist.mnist_shift --data_dir=DIR --split=test \
      --shift=6 --pad=4 --multi_targets --num_pairs=1000 --max_shard=100000
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
from typing import List

from absl import flags

import files
from input_data.mnist import idx
from input_data.mnist import mnist_record_writer as writer
from models import devices
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def _define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines the tool's flags in flag_values."""
  # Only when run as a script: experiment.py defines a --data_dir too, and
  # absl refuses a flag defined twice in one process (e.g. one pytest run);
  # a test defines them in a FlagValues of its own.
  flags.DEFINE_string('data_dir', '/tmp/tensorflow/mnist/input_data',
                      'Directory of the MNIST idx files (gzipped or not).',
                      flag_values=flag_values)
  flags.DEFINE_string('output_dir', None,
                      'Directory for the records; default: --data_dir.',
                      flag_values=flag_values)
  flags.DEFINE_enum('source', 'idx', ['idx', 'tfds'],
                    'Read the idx files in --data_dir, or '
                    'tensorflow-datasets\' mnist.', flag_values=flag_values)
  flags.DEFINE_string('tfds_data_dir', None,
                      'tensorflow-datasets\' data directory for '
                      '--source=tfds; default ~/tensorflow_datasets.',
                      flag_values=flag_values)
  flags.DEFINE_integer('shift', 2, 'Maximum shift range.', lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_integer('pad', 0, 'Padding size.', lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_boolean('multi_targets', False,
                       'If set generate multi digit MNIST.',
                       flag_values=flag_values)
  flags.DEFINE_integer('max_shard', 0,
                       'Maximum number of examples in each file.',
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_integer('num_pairs', 0,
                       'Number of generated pairs for each image.',
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_enum('split', 'train', list(idx.SPLITS),
                    'The split of data to process.', flag_values=flag_values)
  flags.DEFINE_integer('seed', 0,
                       'Seed of the MultiMNIST draws; the input pipelines '
                       '(input_data.datasets) generate the same pairs from '
                       'the same seed.', lower_bound=0,
                       flag_values=flag_values)
  flags.register_multi_flags_validator(
      ['multi_targets', 'num_pairs', 'max_shard'],
      lambda f: not f['multi_targets'] or (f['num_pairs'] > 0 and
                                           f['max_shard'] > 0),
      message='--multi_targets needs --num_pairs > 0 and --max_shard > 0',
      flag_values=flag_values)


def main(argv: List[str]) -> None:
  del argv  # Unused.
  devices.allow_gpu_memory_growth()
  if FLAGS.source == 'tfds':
    images, labels = idx.read_tfds_data(FLAGS.split,
                                        tfds_data_dir=FLAGS.tfds_data_dir)
  else:
    images, labels = idx.read_byte_data(FLAGS.split, data_dir=FLAGS.data_dir)
  path = os.path.join(
      FLAGS.output_dir or FLAGS.data_dir, writer.shifted_mnist_filename(
          FLAGS.split, shift=FLAGS.shift, multi_targets=FLAGS.multi_targets))
  if FLAGS.multi_targets:
    written = writer.shift_write_multi_mnist(
        images, labels=labels, file_prefix=path, shift=FLAGS.shift,
        pad=FLAGS.pad, max_shard=FLAGS.max_shard, num_pairs=FLAGS.num_pairs,
        seed=FLAGS.seed)
    print(f'Wrote {len(images) * FLAGS.num_pairs} pairs to '
          f'{path}@{len(written)}')
  else:
    files.write_atomically(path, lambda temp: writer.shift_write_mnist(
        images, labels=labels, filename=temp, shift=FLAGS.shift,
        pad=FLAGS.pad))
    count = len(images) * len(writer.all_shifts(FLAGS.shift))
    print(f'Wrote {count} records to {path}')


if __name__ == '__main__':
  cli.run(main, program='mnist_shift', define_flags=_define_flags)
