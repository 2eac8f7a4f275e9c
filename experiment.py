"""Framework for training and evaluating capsule and baseline models."""

from models.hparams import HParams


def default_hparams() -> HParams:
  """The reference's default hyperparameters."""
  return HParams(
      decay_rate=0.96,
      decay_steps=2000,
      leaky=False,
      learning_rate=0.001,
      loss_type='margin',
      num_prime_capsules=32,
      padding='VALID',
      remake=True,
      routing=3,
      verbose=False,
  )
