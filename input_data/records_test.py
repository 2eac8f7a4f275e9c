"""Tests for records: file names, checks, reading order."""

import os
import tempfile

import numpy as np
import tensorflow as tf

import errors
from input_data import records


def _write_records(path, values):
  with tf.io.TFRecordWriter(path) as writer:
    for value in values:
      writer.write(value)


class RecordsTest(tf.test.TestCase):

  def _tmpdir(self):
    return tempfile.mkdtemp(dir=self.get_temp_dir())

  def testShardedFilenames(self):
    self.assertEqual(['/d/x.tfrecords-00000-of-00002',
                      '/d/x.tfrecords-00001-of-00002'],
                     records.sharded_filenames('/d/x.tfrecords', 2))

  def testExpandShardedPattern(self):
    self.assertEqual(records.sharded_filenames('/d/x.tfrecords', 3),
                     records.expand_sharded_pattern('/d/x.tfrecords@3'))
    for bad in ('/d/x.tfrecords', '/d/x.tfrecords@', '/d/x@0', '@2', '/d@x'):
      with self.assertRaisesRegex(errors.ConfigError, 'sharded pattern'):
        records.expand_sharded_pattern(bad)

  def testRequireFilesNamesPathAndCommand(self):
    present = os.path.join(self._tmpdir(), 'a')
    open(present, 'wb').close()
    records.require_files([present], 'make it')
    missing = present + '_missing'
    with self.assertRaisesRegex(errors.MissingDataError,
                                f'{missing} does not exist.*\n  make it'):
      records.require_files([present, missing], 'make it')

  def testCountTfrecords(self):
    tmp = self._tmpdir()
    paths = [os.path.join(tmp, name) for name in ('a', 'b', 'c')]
    for path, count in zip(paths, (3, 0, 5000)):
      _write_records(path, [b'%d' % i for i in range(count)])
    self.assertEqual([3, 0, 5000], records.count_tfrecords(paths, 'cmd'))

  def testCountTfrecordsNamesTruncatedFile(self):
    path = os.path.join(self._tmpdir(), 'cut.tfrecords')
    _write_records(path, [b'x' * 100] * 10)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:-30])
    with self.assertRaisesRegex(errors.DataError,
                                f'{path} is truncated or corrupt.*\n  cmd'):
      records.count_tfrecords([path], 'cmd')

  def testCountTfrecordsNamesCorruptFile(self):
    path = os.path.join(self._tmpdir(), 'bad.tfrecords')
    _write_records(path, [b'x' * 100] * 10)
    with open(path, 'rb') as f:
      data = bytearray(f.read())
    data[500] ^= 0xff  # inside the 5th record's payload: a checksum mismatch
    with open(path, 'wb') as f:
      f.write(bytes(data))
    with self.assertRaisesRegex(errors.DataError, path):
      records.count_tfrecords([path], 'cmd')

  def testCountTfrecordsMissingFile(self):
    with self.assertRaises(errors.MissingDataError):
      records.count_tfrecords(['/nonexistent/x.tfrecords'], 'cmd')

  def testFirstExample(self):
    path = os.path.join(self._tmpdir(), 'x.tfrecords')
    _write_records(path, [records.serialize({'height': h}) for h in (36, 28)])
    self.assertEqual(36, records.example_int(records.first_example(path),
                                             'height'))
    empty = path + '.empty'
    _write_records(empty, [])
    with self.assertRaisesRegex(errors.DataError, 'holds no records'):
      records.first_example(empty)

  def testReadFilesTestOrder(self):
    tmp = self._tmpdir()
    paths = [os.path.join(tmp, f'shard{i}') for i in range(3)]
    for i, path in enumerate(paths):
      _write_records(path, [b'%d-%d' % (i, j) for j in range(4)])
    read = list(records.read_files(paths, train=False).as_numpy_iterator())
    self.assertEqual([b'%d-%d' % (i, j) for i in range(3) for j in range(4)],
                     read)

  def testReadFilesTrainReadsEveryFile(self):
    tmp = self._tmpdir()
    paths = [os.path.join(tmp, f'shard{i}') for i in range(6)]
    for i, path in enumerate(paths):
      _write_records(path, [b'%d-%d' % (i, j) for j in range(4)])
    read = list(records.read_files(paths, train=True).as_numpy_iterator())
    self.assertCountEqual(
        [b'%d-%d' % (i, j) for i in range(6) for j in range(4)], read)

  def testReadFilesSharesFilesOrRecordsAmongPipelines(self):
    tmp = self._tmpdir()
    for num_files in (4, 1):  # Files per pipeline, or every N-th record.
      paths = [os.path.join(tmp, f'{num_files}shard{i}')
               for i in range(num_files)]
      for i, path in enumerate(paths):
        _write_records(path, [b'%d-%d' % (i, j) for j in range(6)])
      shares = [
          list(records.read_files(
              paths, train=True,
              input_context=tf.distribute.InputContext(
                  num_input_pipelines=2, input_pipeline_id=pipeline)
          ).as_numpy_iterator())
          for pipeline in range(2)]
      self.assertEmpty(set(shares[0]) & set(shares[1]))
      self.assertCountEqual(shares[0] + shares[1],
                            [b'%d-%d' % (i, j) for i in range(num_files)
                             for j in range(6)])
      self.assertLen(shares[0], 3 * num_files)

  def testBatchDatasetTest(self):
    batches = list(records.batch_dataset(
        tf.data.Dataset.range(10), lambda x: x, batch_size=4, train=False,
        shuffle_buffer=5000).as_numpy_iterator())
    self.assertEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]],
                     [b.tolist() for b in batches])

  def testBatchDatasetTrain(self):
    dataset = records.batch_dataset(tf.data.Dataset.range(10), lambda x: x,
                                    batch_size=4, train=True,
                                    shuffle_buffer=5000)
    self.assertEqual([4], dataset.element_spec.shape.as_list())
    values = np.concatenate(list(dataset.take(50).as_numpy_iterator()))
    # Shuffled, endless, and every example about equally often.
    self.assertNotEqual(list(range(10)) * 2, values[:20].tolist())
    self.assertEqual(list(range(10)), sorted(set(values.tolist())))
    self.assertEqual(list(range(10)), sorted(values[:10].tolist()))


if __name__ == '__main__':
  tf.test.main()
