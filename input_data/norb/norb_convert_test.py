"""Tests for the norb_convert command line."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from input_data.norb import norb_record_writer
from input_data.norb.norb_record_writer_test import write_norb_mat

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class NorbConvertTest(tf.test.TestCase):

  def testCommandLineWritesTheSameBytesInEveryProcess(self):
    """The documented command writes the records `write_records` does.

    Protobuf draws its map order at random in each process, so two tool
    processes and this one must serialize the pairs alike.
    """
    data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 2, 8, 8), np.uint8)
    labels = np.array([4, 0, 2])
    info = rng.integers(0, 18, (3, 4))
    write_norb_mat(data_dir, 'test', images, labels, info)
    output_dirs = [os.path.join(data_dir, f'out{i}') for i in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, '-m', 'input_data.norb.norb_convert',
             f'--data_dir={data_dir}', f'--output_dir={output_dir}',
             '--split=test'], cwd=_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        for output_dir in output_dirs]
    outputs = [process.communicate() for process in processes]
    for process, (stdout, stderr), output_dir in zip(processes, outputs,
                                                     output_dirs):
      self.assertEqual(0, process.returncode, stderr)
      self.assertEqual(
          f'Wrote 3 records to {output_dir}/testduo.tfrecords\n', stdout)
    expected = os.path.join(data_dir, 'testduo.tfrecords')
    norb_record_writer.write_records(expected, images=images, labels=labels,
                                     info=info)
    written = []
    for path in [expected] + [os.path.join(output_dir, 'testduo.tfrecords')
                              for output_dir in output_dirs]:
      with open(path, 'rb') as f:
        written.append(f.read())
    self.assertEqual([written[0]] * 3, written)


if __name__ == '__main__':
  tf.test.main()
