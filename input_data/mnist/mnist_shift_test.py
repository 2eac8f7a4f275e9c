"""Tests for the mnist_shift command line."""

import os
import subprocess
import sys
import tempfile

from absl import flags
import numpy as np
import tensorflow as tf

from input_data.mnist import generated_input
from input_data.mnist import idx
from input_data.mnist.idx_test import write_mnist_idx
from input_data.mnist import mnist_input_record
from input_data.mnist.mnist_record_writer_test import read_records
from input_data.mnist import mnist_shift

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class MnistShiftTest(tf.test.TestCase):

  def testCommandLine(self):
    """The documented command writes the file that the reader opens."""
    tmp = tempfile.mkdtemp(dir=self.get_temp_dir())
    count = idx.VALIDATION_SIZE + 2
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 10, 10] = 200
    write_mnist_idx(tmp, images, np.arange(count) % 10)
    output_dir = os.path.join(tmp, 'records')
    command = [sys.executable, '-m', 'input_data.mnist.mnist_shift',
               f'--data_dir={tmp}', f'--output_dir={output_dir}',
               '--split=valid_train', '--shift=2']
    # Both commands at once: each process spends seconds starting TF.
    processes = [subprocess.Popen(arguments, cwd=_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for arguments in (
                     command,
                     # --seed: the pairs generated_input makes from it.
                     command + ['--multi_targets', '--num_pairs=1',
                                '--max_shard=1', '--shift=6', '--pad=4',
                                '--seed=3'])]
    outputs = [process.communicate() for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
      self.assertEqual(0, process.returncode, stderr)
    self.assertEqual(
        'Wrote 50 records to '
        f'{output_dir}/valid_train_2shifted_mnist.tfrecords\n', outputs[0][0])
    self.assertEqual(
        'Wrote 2 pairs to '
        f'{output_dir}/multivalid_train_6shifted_mnist.tfrecords@2\n',
        outputs[1][0])
    dataset = mnist_input_record.inputs('train', data_dir=output_dir,
                                        batch_size=10, validate=True)
    batch = next(iter(dataset))
    self.assertEqual((10, 1, 28, 28), batch['images'].shape)
    self.assertAllClose(np.full(10, 200 / 255), tf.reduce_sum(
        batch['images'], axis=[1, 2, 3]))
    self.assertLen(read_records(os.path.join(
        output_dir, 'valid_train_2shifted_mnist.tfrecords')), 2 * 25)
    written = list(mnist_input_record.inputs(
        'test', data_dir=os.path.join(
            output_dir, 'multivalid_train_6shifted_mnist.tfrecords@2'),
        batch_size=2, num_targets=2))[0]
    generated = next(iter(generated_input.multi_mnist_inputs(
        'test', images=images[10000:], labels=np.arange(10000, count) % 10,
        batch_size=2, shift='reference', num_pairs=1, seed=3, eval_size=2)))
    for key in generated:
      self.assertAllEqual(generated[key], written[key])

  def testMultiTargetsNeedsPairsAndShards(self):
    """The flags' own check (the command line reports it in one line)."""
    flag_values = flags.FlagValues()
    mnist_shift._define_flags(flag_values)  # pylint: disable=protected-access
    with self.assertRaisesRegex(
        flags.IllegalFlagValueError,
        '--multi_targets needs --num_pairs > 0 and --max_shard > 0'):
      flag_values(['mnist_shift', '--multi_targets', '--num_pairs=1'])
    flag_values(['mnist_shift', '--multi_targets', '--num_pairs=1',
                 '--max_shard=1'])
    self.assertEqual((True, 1, 1), (flag_values.multi_targets,
                                    flag_values.num_pairs,
                                    flag_values.max_shard))


if __name__ == '__main__':
  tf.test.main()
