"""The official affNIST test set, for evaluation only.

affNIST (https://www.cs.toronto.edu/~tijmen/affNIST/) transforms each of the
10,000 MNIST test digits 32 times by random affine maps onto a 40x40 canvas:
320,000 test images. The paper evaluates a model trained on expanded MNIST
(`expanded_mnist`, never trained on affNIST) on them. The files are MATLAB
.mat files, the whole set or in 32 batches; get one of them with
  wget https://www.cs.toronto.edu/~tijmen/affNIST/32x/transformed/test.mat.zip
  unzip test.mat.zip -d DATA_DIR        # DATA_DIR/test.mat
or test_batches.zip (DATA_DIR/test_batches/1.mat ... 32.mat).

Each file holds a struct `affNISTdata` with, among others, the fields
  image: uint8 `[1600, N]`, one image per column;
  label_int: `[1, N]`, the digits;
  label_one_of_n: `[10, N]`, the same one-hot.
Within a column the 1600 pixels run row by row (40 rows of 40), which is
how the public readers that display the digits read them.

Each batch is the single-digit feature dictionary of `mnist_input_record`:
images `[batch, 1, 40, 40]` in [0, 1], one-hot labels, recons_image,
recons_label.
"""

import os
import re
from typing import List, Optional, Tuple

import numpy as np
from scipy import io as scipy_io
import tensorflow as tf

import errors
from input_data.mnist import mnist_input_record
from input_data import records

IMAGE_SIZE = 40
AFFNIST_URL = 'https://www.cs.toronto.edu/~tijmen/affNIST/32x/transformed/'


def test_files(data_dir: str) -> List[str]:
  """The test set's .mat files in data_dir: test.mat, or the batches.

  Args:
    data_dir: holds test.mat or test_batches/{1..32}.mat.

  Returns:
    The paths, batches in their numeric order.

  Raises:
    errors.MissingDataError: if neither is there; the message says what to
      get.
  """
  whole = os.path.join(data_dir, 'test.mat')
  if os.path.exists(whole):
    return [whole]
  batch_dir = os.path.join(data_dir, 'test_batches')
  names = (os.listdir(batch_dir) if os.path.isdir(batch_dir) else [])
  batches = sorted((n for n in names if re.fullmatch(r'\d+\.mat', n)),
                   key=lambda n: int(n[:-len('.mat')]))
  if not batches:
    raise errors.MissingDataError(
        f'{whole} (or {batch_dir}/1.mat ...) does not exist. Get it with:\n'
        f'  wget {AFFNIST_URL}test.mat.zip && unzip test.mat.zip -d '
        f'{data_dir}')
  return [os.path.join(batch_dir, name) for name in batches]


def read_mat(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """Reads the images and labels of one affNIST .mat file.

  Args:
    path: a file holding the struct `affNISTdata`.

  Returns:
    uint8 images `[num_images, 40, 40]` and uint8 labels `[num_images]`.

  Raises:
    errors.DataError: if the struct is missing or its image and label
      fields disagree with affNIST's layout.
  """
  contents = scipy_io.loadmat(path)
  if 'affNISTdata' not in contents:
    raise errors.DataError(f'{path} holds no affNISTdata struct, only '
                     f'{sorted(k for k in contents if not k.startswith("__"))}')
  data = contents['affNISTdata'][0, 0]
  pixels, labels = data['image'], data['label_int'].ravel()
  if pixels.shape != (IMAGE_SIZE * IMAGE_SIZE, len(labels)):
    raise errors.DataError(
        f'{path}: affNISTdata.image is {pixels.shape}, expected '
        f'[{IMAGE_SIZE * IMAGE_SIZE}, {len(labels)}] for {len(labels)} labels')
  # Column n is image n, its pixels row by row.
  images = pixels.T.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
  return images.astype(np.uint8), labels.astype(np.uint8)


def inputs(split: str, *, data_dir: str, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  """The affNIST test set, in file order, once.

  Args:
    split: 'test', the only split.
    data_dir: holds test.mat or test_batches/ (see `test_files`).
    batch_size: images per batch; the last batch may be smaller.
    input_context: this input pipeline's place among several; it reads
      every N-th image. None: all.

  Returns:
    A dataset of `mnist_input_record.digit_features` dictionaries.

  Raises:
    errors.ConfigError: for a split other than 'test'.
    errors.MissingDataError: see `test_files`.
    errors.DataError: see `read_mat`.
  """
  if split != 'test':
    raise errors.ConfigError(f'affNIST has a test split only, got {split!r}')
  images, labels = zip(*(read_mat(path) for path in test_files(data_dir)))
  dataset = tf.data.Dataset.from_tensor_slices(
      (np.concatenate(images), np.concatenate(labels).astype(np.int32)))
  dataset = records.shard(dataset, input_context).batch(batch_size)
  return dataset.map(
      lambda pixels, label: mnist_input_record.digit_features(
          mnist_input_record.to_images(pixels), label),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
