"""norb: smallNORB, see `interface`.

Reads `{split}duo.tfrecords` (`norb_input_record`), which `prepare` writes
when missing as `norb_convert` does (`norb_record_writer`), from the
`smallnorb-*.mat` files in data_dir (gzipped or not), else from
tensorflow-datasets' smallnorb (in its order).
"""

import os
from typing import Optional

import tensorflow as tf

from input_data import interface
from input_data import prepare as prepare_lib
from input_data import records
from input_data.norb import norb_input_record
from input_data.norb import norb_record_writer as writer
from input_data import tfds_data


def prepare(split: str, options: interface.Options) -> str:
  """Writes the records a split reads unless they exist; their path."""
  records.train_split(split)
  data_dir = options.data_dir
  path = os.path.join(data_dir, writer.records_filename(split))
  if tf.io.gfile.exists(path):
    return path
  names = writer.split_filenames(split)
  if prepare_lib.has_files(data_dir, names):
    print(f'Reading smallNORB {split} from the .mat files in {data_dir}',
          flush=True)
    images, labels, info = writer.read_split(split, data_dir=data_dir)
  else:
    print(f'No smallNORB .mat files in {data_dir}; reading '
          'tensorflow-datasets\' smallnorb', flush=True)
    tfds_data.tfds_instead(
        'smallnorb', options,
        server_url=f'{writer.SMALLNORB_URL}{names[0]}.gz',
        files_named=(f'{", ".join(n + "[.gz]" for n in names)} (from '
                     f'{writer.SMALLNORB_URL})'))
    images, labels, info = writer.read_tfds_split(
        split, tfds_data_dir=options.tfds_data_dir)
  return prepare_lib.write_new(
      path, writer.norb_examples(images, labels=labels, info=info),
      num_records=len(images))


def inputs(split: str, options: interface.Options, *, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """`norb_input_record.inputs` with the reference's 48 and distortion."""
  return norb_input_record.inputs(split, data_dir=options.data_dir,
                                  batch_size=batch_size,
                                  input_context=input_context)
