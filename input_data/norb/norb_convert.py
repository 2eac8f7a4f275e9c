"""Writes smallNORB `{split}duo.tfrecords` from the original smallNORB files.

The command line of `norb_record_writer` (see there for the files and the
records), of the files of --split in --data_dir.

Usage (the records go to --output_dir, by default --data_dir):
  python -m input_data.norb.norb_convert --data_dir=DIR --split=train
  python -m input_data.norb.norb_convert --data_dir=DIR --split=test
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
from typing import List

from absl import flags

import files
from input_data.norb import norb_record_writer as writer
from models import devices
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defines the tool's flags (only when run as a script, see mnist_shift)."""
  flags.DEFINE_string('data_dir', None,
                      'Directory of the smallnorb-*.mat files.')
  flags.DEFINE_string('output_dir', None,
                      'Directory for the records; default: --data_dir.')
  flags.DEFINE_enum('split', 'train', list(writer.SPLITS),
                    'The split to convert.')
  flags.mark_flag_as_required('data_dir')


def main(argv: List[str]) -> None:
  del argv  # Unused.
  devices.allow_gpu_memory_growth()
  images, labels, info = writer.read_split(FLAGS.split,
                                           data_dir=FLAGS.data_dir)
  path = os.path.join(FLAGS.output_dir or FLAGS.data_dir,
                      writer.records_filename(FLAGS.split))
  files.write_atomically(path, lambda temp: writer.write_records(
      temp, images=images, labels=labels, info=info))
  print(f'Wrote {len(images)} records to {path}')


if __name__ == '__main__':
  cli.run(main, program='norb_convert', define_flags=_define_flags)
