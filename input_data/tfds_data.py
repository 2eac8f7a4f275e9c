"""tensorflow-datasets' copies of the data sets: downloaded, then loaded.

The fallback of every data set whose original files are not in data_dir
(`prepare`), and svhn's only source. Without network a download fails
within seconds, with a one-line MissingDataError that says what to place
where.
"""

import os
from typing import Optional
import urllib.error
import urllib.parse
import urllib.request

import tensorflow as tf
import tensorflow_datasets as tfds

import errors
from input_data import interface
from input_data import records

# Seconds to wait for a download server to answer.
_CONNECT_TIMEOUT_SECONDS = 10


def _check_reachable(url: str) -> None:
  """Raises ConnectionError unless the server of url answers in time."""
  try:
    with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'),
                                timeout=_CONNECT_TIMEOUT_SECONDS):
      pass
  except urllib.error.HTTPError:
    pass  # The server answered, if only to refuse the request.
  except OSError as error:
    raise ConnectionError(
        f'cannot reach {urllib.parse.urlsplit(url).netloc}: {error}'
    ) from error


def prepare_tfds(name: str, *, tfds_data_dir: Optional[str] = None,
                 server_url: Optional[str] = None) -> tfds.core.DatasetBuilder:
  """Returns a tensorflow-datasets builder, preparing its data when needed.

  server_url, a file that tensorflow-datasets downloads, must answer within
  _CONNECT_TIMEOUT_SECONDS before the download starts, which without
  network retries for minutes (3.5 for mnist).
  """
  builder = tfds.builder(name, data_dir=tfds_data_dir)
  if not builder.is_prepared():
    # builder.data_dir is ROOT/name/version.
    root = os.path.dirname(os.path.dirname(builder.data_dir))
    try:
      if server_url:
        _check_reachable(server_url)
      builder.download_and_prepare()
    # A download can fail in many ways (no network, a missing optional
    # dependency of the downloader); all of them call for the same remedy.
    except Exception as error:  # pylint: disable=broad-except
      raise errors.MissingDataError(
          f'tensorflow-datasets has no prepared {name!r} in {root} and could '
          f'not download it ({error}). On a machine with network access run '
          f'`python -c "import tensorflow_datasets as tfds; '
          f'tfds.builder({name!r}, data_dir=\'DIR\').download_and_prepare()"` '
          f'and copy DIR/{name} into {root}.') from error
  return builder


def load_tfds(name: str, split: str, *,
              tfds_data_dir: Optional[str] = None) -> tf.data.Dataset:
  """A tensorflow-datasets split in its stored order (`prepare_tfds` first)."""
  return prepare_tfds(name, tfds_data_dir=tfds_data_dir).as_dataset(
      split=split, shuffle_files=False)


def tfds_instead(name: str, options: interface.Options, *, server_url: str,
                 files_named: str) -> None:
  """`prepare_tfds` for an options.data_dir that lacks files_named."""
  try:
    prepare_tfds(name, tfds_data_dir=options.tfds_data_dir,
                 server_url=server_url)
  except FileNotFoundError as error:
    where = (f'{options.data_dir} lacks {files_named}: place them there'
             if tf.io.gfile.isdir(options.data_dir) else
             f'the folder {options.data_dir} does not exist: make it and '
             f'place {files_named} in it')
    raise errors.MissingDataError(f'{where}. Or else: {error}') from error


def tfds_images(name: str, split: str, *, tfds_data_dir: Optional[str],
                input_context: Optional[tf.distribute.InputContext]
               ) -> tf.data.Dataset:
  """(image, label) pairs of a tfds split, this pipeline's share."""
  dataset = records.shard(load_tfds(name, split, tfds_data_dir=tfds_data_dir),
                          input_context)
  return dataset.map(lambda example: (example['image'], example['label']))
