"""affnist and affine_mnist, test sets only, see `interface`.

affnist is the official affNIST test set. affNIST
(https://www.cs.toronto.edu/~tijmen/affNIST/) transforms each of the 10,000
MNIST test digits 32 times by random affine maps onto a 40x40 canvas:
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

The batches of both are the single-digit feature dictionaries of
`mnist_input_record`, images `[batch, 1, 40, 40]`. affine_mnist is MNIST's
test digits under affine maps of our own (`affine_mnist`), NOT affNIST.
"""

import os
import re
from typing import List, Optional, Tuple

import numpy as np
from scipy import io as scipy_io
import tensorflow as tf

import errors
from input_data.affnist import affine_mnist
from input_data import interface
from input_data.mnist import dataset as mnist_dataset
from input_data.mnist import mnist_input_record
from input_data import records

IMAGE_SIZE = 40
AFFNIST_URL = 'https://www.cs.toronto.edu/~tijmen/affNIST/32x/transformed/'


def test_files(data_dir: str) -> List[str]:
  """data_dir's test.mat, or test_batches/{1..32}.mat in numeric order."""
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
  """uint8 images `[n, 40, 40]` and labels `[n]` of one affNIST .mat file."""
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


def prepare(split: str, options: interface.Options) -> List[str]:
  del split  # The test split is the only one.
  return test_files(options.data_dir)


def inputs(split: str, options: interface.Options, *, batch_size: int,
           input_context: Optional[tf.distribute.InputContext] = None
          ) -> tf.data.Dataset:
  if split != 'test':
    raise errors.ConfigError(f'affNIST has a test split only, got {split!r}')
  images, labels = zip(*(read_mat(path)
                         for path in test_files(options.data_dir)))
  dataset = tf.data.Dataset.from_tensor_slices(
      (np.concatenate(images), np.concatenate(labels).astype(np.int32)))
  return records.map_batches(
      records.shard(dataset, input_context).batch(batch_size),
      lambda pixels, label: mnist_input_record.digit_features(
          mnist_input_record.to_images(pixels), label))


def affine_inputs(split: str, options: interface.Options, *, batch_size: int,
                  input_context: Optional[tf.distribute.InputContext] = None
                 ) -> tf.data.Dataset:
  images, labels = mnist_dataset.digits(split, options)
  return affine_mnist.inputs(
      split, images=images, labels=labels, batch_size=batch_size,
      seed=options.seed, eval_size=options.eval_size,
      input_context=input_context)
