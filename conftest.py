"""Test-session setup shared by every test file.

TensorFlow fixes its devices at first use, so the two logical CPU devices that
the multi-replica tests need are made here, before any test touches TF.
"""

import cli

cli.quiet_tensorflow_start()  # Also in each pytest-xdist worker.

import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(scope='session')
def two_cpu_strategy():
  """One MirroredStrategy over the two logical CPUs for every test.

  Two strategies over the same devices in one process can hand their
  collective all-reduces the same instance keys, and a later one then
  fails with a shape mismatch: the tests share this one.
  """
  return tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
