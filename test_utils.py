"""Helpers that several test files share (not collected as tests).

Tiny data in the readers' layouts, in-memory input functions, the golden
checkpoints copied into training folders, and summaries read back.
"""

import os
import shutil
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

import golden_utils
from models import hparams as hparams_lib
from models import run_config
from models import training

TINY = 'num_prime_capsules=2'
CIFAR_CASE = 'capsule_cifar_tiny'
MNIST_SIZE = 28


def tiny_hparams(override: str = TINY):
  return hparams_lib.default_hparams().parse(override)


def random_digits(num: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """uint8 `[num, 28, 28]` random images and their random labels."""
  rng = np.random.RandomState(seed)
  images = rng.randint(0, 256, (num, MNIST_SIZE, MNIST_SIZE), np.uint8)
  return images, rng.randint(0, 10, num)


def write_mnist_records(path: str, images: np.ndarray,
                        labels: np.ndarray) -> None:
  """The record layout mnist_shift writes: one digit per tf.train.Example."""
  def int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  with tf.io.TFRecordWriter(path) as writer:
    for image, label in zip(images, labels):
      features = dict(
          height=int64(image.shape[0]), width=int64(image.shape[1]),
          depth=int64(1), label=int64(int(label)),
          image_raw=tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[image.tobytes()])))
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=features)).SerializeToString())


def array_input_fn(arrays: Mapping[str, np.ndarray]):
  """`input_fn` over in-memory examples: train repeats, test reads once."""
  def input_fn(split, batch_size, input_context=None):
    del input_context  # One input pipeline in these tests.
    dataset = tf.data.Dataset.from_tensor_slices(dict(arrays))
    if split == 'train':
      return dataset.repeat().batch(batch_size, drop_remainder=True)
    return dataset.batch(batch_size)
  return input_fn


def golden_arrays(case: str, num_examples: int
                 ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
  """The golden's numbers, and its input batch repeated to num_examples."""
  golden = golden_utils.load_npz(os.path.join(case, 'golden.npz'))
  batch = {key[len('input/'):]: value for key, value in golden.items()
           if key.startswith('input/')}
  copies = -(-num_examples // len(batch['labels']))
  arrays = {key: np.concatenate([value] * copies)[:num_examples]
            for key, value in batch.items()}
  return golden, arrays


def copy_checkpoint(source: str, target: str) -> None:
  for suffix in ('.index', '.data-00000-of-00001'):
    shutil.copy(source + suffix, target + suffix)


def set_latest(train_dir, name: str) -> None:
  with open(os.path.join(train_dir, 'checkpoint'), 'w') as state:
    state.write(f'model_checkpoint_path: "{name}"\n')


def golden_training_dir(summary_dir, steps: Sequence[int], latest: str):
  """summary_dir/train/ holding the cifar golden's checkpoints of `steps`."""
  train_dir = summary_dir / 'train'
  train_dir.mkdir()
  for step in steps:
    copy_checkpoint(golden_utils.require(f'{CIFAR_CASE}/model.ckpt-{step}'),
                    str(train_dir / f'model.ckpt-{step}'))
  set_latest(train_dir, latest)
  return train_dir


def damage(prefix: str) -> None:
  """Truncates a checkpoint's data file to half its size."""
  data = prefix + '.data-00000-of-00001'
  with open(data, 'r+b') as data_file:
    data_file.truncate(os.path.getsize(data) // 2)


def file_bytes(directory) -> Dict[str, bytes]:
  """The bytes of every file in directory but the summaries."""
  return {name: (directory / name).read_bytes()
          for name in os.listdir(directory) if not name.startswith('events')}


def events(log_dir: str) -> Dict[str, Dict[int, np.ndarray]]:
  """{tag: {step: value}} of the summaries in a directory's event files."""
  from paper import figures  # pylint: disable=g-import-not-at-top
  return figures.read_events(log_dir)


def wrong_line(wrong: int, percent: float) -> str:
  return f'Total wrong predictions: {wrong}, wrong percent: {percent}%'


def trainer_on(model, tensors: Mapping):
  """The training step (`training.Trainer.run`) on one batch, repeated.

  Args:
    model: a built model.
    tensors: one batch; the trainer's global batch is that batch.

  Returns:
    `run(num_steps=1)`, which runs that many training steps on the batch and
    returns their `training.StepsResult`.
  """
  trainer = training.Trainer(model, config=run_config.RunConfig(
      train_batch_size=len(tensors['labels'])))
  batches = trainer.repeat(tensors)
  return lambda num_steps=1: trainer.run(batches, num_steps)


def events_written(log_dir, *, steps: int) -> bool:
  """Whether the summaries of at least `steps` training steps are there."""
  if not os.path.isdir(log_dir):
    return False
  try:
    return len(events(str(log_dir)).get('total_loss', {})) >= steps
  except tf.errors.DataLossError:  # A record being written.
    return False
