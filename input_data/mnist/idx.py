"""The MNIST digits as arrays: from the idx files, or tensorflow-datasets.

The idx files (`train-images-idx3-ubyte`, ..., gzipped or not, from
MNIST_URL) hold a big-endian header and then unsigned bytes. The splits:
train and test are the whole files; valid_train is the training images from
index VALIDATION_SIZE on and valid_test the first VALIDATION_SIZE. The image
count comes from the header, so smaller files work too.
"""

import os
from typing import BinaryIO, Optional, Tuple

import numpy as np

import errors
from input_data import prepare
from input_data import tfds_data

# First rows of the training images held out by the validation splits.
VALIDATION_SIZE = 10000
SPLITS = ('train', 'test', 'valid_train', 'valid_test')
# Magic numbers of the idx headers: unsigned bytes (0x08) in 3 or 1 dims.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_IDX_HEADER_WORD_BYTES = 4

# Image index ranges [start, end) of each split; None: to the end of the file.
MNIST_RANGE = {
    'train': (0, None),
    'valid_train': (VALIDATION_SIZE, None),
    'valid_test': (0, VALIDATION_SIZE),
    'test': (0, None),
}
MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'

_TFDS_READ_BATCH = 10000


def mnist_files(split: str) -> Tuple[str, str]:
  """The names of a split's image and label idx files."""
  prefix = 't10k' if split == 'test' else 'train'
  return f'{prefix}-images-idx3-ubyte', f'{prefix}-labels-idx1-ubyte'


def parse_idx(data: bytes, *, expected_magic: int, name: str) -> np.ndarray:
  """The uint8 array of an idx file's bytes, shaped by its header."""
  word = _IDX_HEADER_WORD_BYTES
  magic = int.from_bytes(data[:word], 'big')
  if magic != expected_magic:
    raise errors.DataError(
        f'{name} is not an MNIST idx file of the expected kind: magic number '
        f'{magic:#010x}, expected {expected_magic:#010x}')
  num_dims = magic & 0xff  # the magic's last byte counts the dimensions
  header_size = word * (1 + num_dims)
  shape = tuple(int.from_bytes(data[word * (1 + i):word * (2 + i)], 'big')
                for i in range(num_dims))
  size = int(np.prod(shape))
  if len(data) < header_size + size:
    raise errors.DataError(
        f'{name} is truncated: the header announces {shape} '
        f'({size} bytes), the file holds {len(data) - header_size}')
  return np.frombuffer(data, np.uint8, size, header_size).reshape(shape)


def select_split(split: str, *, images: np.ndarray,
                 labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """The images and labels of a split's range of a whole file's."""
  if len(images) != len(labels):
    raise errors.DataError(
        f'{len(images)} images but {len(labels)} labels for split {split}')
  start, end = MNIST_RANGE[split]
  if split.startswith('valid') and len(images) <= VALIDATION_SIZE:
    raise errors.DataError(
        f'the validation splits need more than {VALIDATION_SIZE} training '
        f'images, found {len(images)}')
  return images[start:end], labels[start:end]


def _open_idx(data_dir: str, name: str) -> BinaryIO:
  """Opens the idx file `name` (or `name.gz`) in data_dir."""
  return prepare.open_maybe_gzipped(
      os.path.join(data_dir, name),
      f'wget -P {data_dir} {MNIST_URL}{name}.gz   (or pass --source=tfds)')


def read_byte_data(split: str, *,
                   data_dir: str) -> Tuple[np.ndarray, np.ndarray]:
  """uint8 images `[n, 28, 28]` and labels `[n]` of a split of SPLITS."""
  image_name, label_name = mnist_files(split)
  with _open_idx(data_dir, image_name) as f:
    images = parse_idx(f.read(), expected_magic=IMAGES_MAGIC, name=image_name)
  with _open_idx(data_dir, label_name) as f:
    labels = parse_idx(f.read(), expected_magic=LABELS_MAGIC, name=label_name)
  return select_split(split, images=images, labels=labels)


def read_tfds_data(split: str, *, tfds_data_dir: Optional[str] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """`read_byte_data` from tensorflow-datasets' mnist (`tfds_data.load_tfds`).

  The validation ranges index tensorflow-datasets' stored order, which is not
  the order of the idx files.
  """
  dataset = tfds_data.load_tfds('mnist', 'test' if split == 'test' else 'train',
                                tfds_data_dir=tfds_data_dir)
  images, labels = [], []
  for batch in dataset.batch(_TFDS_READ_BATCH).as_numpy_iterator():
    images.append(batch['image'][..., 0])
    labels.append(batch['label'].astype(np.uint8))
  return select_split(split, images=np.concatenate(images),
                      labels=np.concatenate(labels))
