"""Test-session setup shared by every test file.

TensorFlow fixes its devices at first use, so the two logical CPU devices that
the multi-replica tests need are made here, before any test touches TF.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
