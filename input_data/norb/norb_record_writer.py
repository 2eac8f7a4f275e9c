"""smallNORB's original files as arrays, and the arrays as tfrecords.

The original files (https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/) hold,
per split, the stereo images (`-dat.mat`, uint8 `[n, 2, 96, 96]`), the
categories (`-cat.mat`, `[n]`) and the instance, elevation, azimuth and
lighting of each pair (`-info.mat`, `[n, 4]`), gzipped or not. Each pair
becomes one tf.train.Example with image_raw (the `[2, 96, 96]` bytes), label,
height, width, depth and meta (the 4 info values), in file order, in
`{split}duo.tfrecords`. `read_tfds_split` reads the same values from
tensorflow-datasets' smallnorb (`dataset.prepare` uses it when the original
files are not at hand).

`norb_convert` is the command line of these functions.
"""

import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

import errors
from input_data import prepare
from input_data import records
from input_data import tfds_data

SPLITS = ('train', 'test')
SMALLNORB_FILES = {
    'train': 'smallnorb-5x46789x9x18x6x2x96x96-training-{}.mat',
    'test': 'smallnorb-5x01235x9x18x6x2x96x96-testing-{}.mat',
}
SMALLNORB_URL = 'https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/'
# Magic numbers of the binary matrix headers and the element type of each.
MATRIX_DTYPES = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype('<i4'),
}
FILE_KINDS = ('dat', 'cat', 'info')
# The header stores at least this many dimensions, 1 for the unused ones.
_MIN_HEADER_DIMS = 3
_HEADER_WORD_BYTES = 4
_TFDS_READ_BATCH = 1000


def records_filename(split: str) -> str:
  return f'{split}duo.tfrecords'


def split_filenames(split: str) -> List[str]:
  """Names of a split's original files (each may also be gzipped)."""
  return [SMALLNORB_FILES[split].format(kind) for kind in FILE_KINDS]


def parse_matrix(data: bytes, *, name: str) -> np.ndarray:
  """The uint8 or int32 matrix of a smallNORB file's bytes (header first)."""
  words = np.frombuffer(data, '<i4', 2)
  magic, num_dims = int(words[0]), int(words[1])
  if magic not in MATRIX_DTYPES:
    raise errors.DataError(f'{name} is not a smallNORB matrix: magic number '
                           f'{magic:#010x}')
  dtype = MATRIX_DTYPES[magic]
  stored_dims = max(num_dims, _MIN_HEADER_DIMS)
  shape = tuple(int(d) for d in np.frombuffer(
      data, '<i4', num_dims, 2 * _HEADER_WORD_BYTES))
  offset = (2 + stored_dims) * _HEADER_WORD_BYTES
  count = int(np.prod(shape))
  if len(data) < offset + count * dtype.itemsize:
    raise errors.DataError(
        f'{name} is truncated: the header announces {shape}')
  return np.frombuffer(data, dtype, count, offset).reshape(shape)


def read_split(split: str, *,
               data_dir: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """uint8 images `[n, 2, 96, 96]`, int labels `[n]` and info `[n, 4]`."""
  arrays = []
  for name in split_filenames(split):
    how_to_get = f'wget -P {data_dir} {SMALLNORB_URL}{name}.gz'
    with prepare.open_maybe_gzipped(os.path.join(data_dir, name),
                                    how_to_get) as f:
      arrays.append(parse_matrix(f.read(), name=name))
  images, labels, info = arrays
  if not len(images) == len(labels) == len(info):
    raise errors.DataError(f'{split}: {len(images)} images, {len(labels)} '
                           f'labels and {len(info)} info rows')
  return images, labels, info


def read_tfds_split(split: str, *, tfds_data_dir: Optional[str] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`read_split` from tensorflow-datasets' smallnorb (in its own order).

  tensorflow-datasets halves the azimuth (0, 2, ..., 34 in the original
  files); it is doubled back here so that the records hold the originals.
  """
  dataset = tfds_data.load_tfds('smallnorb', split, tfds_data_dir=tfds_data_dir)
  height, width, _ = dataset.element_spec['image'].shape
  # Filled in place: the training images alone take 450 MB.
  images = np.empty((len(dataset), 2, height, width), np.uint8)
  labels = np.empty(len(dataset), np.int64)
  info = np.empty((len(dataset), 4), np.int64)
  start = 0
  for batch in dataset.batch(_TFDS_READ_BATCH).as_numpy_iterator():
    rows = slice(start, start + len(batch['label_category']))
    images[rows, 0] = batch['image'][..., 0]
    images[rows, 1] = batch['image2'][..., 0]
    labels[rows] = batch['label_category']
    info[rows] = np.stack([batch['instance'], batch['label_elevation'],
                           2 * batch['label_azimuth'],
                           batch['label_lighting']], axis=1)
    start = rows.stop
  return images, labels, info


def norb_example(image: np.ndarray, *, label: int,
                 meta: Sequence[int]) -> bytes:
  """One uint8 stereo pair `[depth, height, width]` and its label and meta."""
  depth, height, width = image.shape
  return records.serialize(dict(image_raw=image.tobytes(), label=label,
                                height=height, width=width, depth=depth,
                                meta=meta))


def norb_examples(images: np.ndarray, *, labels: np.ndarray,
                  info: np.ndarray) -> Iterator[bytes]:
  """One serialized record per stereo pair, in order."""
  for image, label, meta in zip(images, labels, info):
    yield norb_example(image, label=label, meta=meta)


def write_records(path: str, *, images: np.ndarray, labels: np.ndarray,
                  info: np.ndarray) -> None:
  records.write_tfrecords(path, norb_examples(images, labels=labels,
                                              info=info))
