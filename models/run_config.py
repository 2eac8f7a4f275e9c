"""How a run trains and evaluates, in one value passed down from `main`.

The reference hard-coded these deep inside its functions (batch 128 in the
input functions, 100 for evaluation, a 60 s poll); here a command resolves
them once, from its flags and the machine (`devices.setup`), and hands the
`RunConfig` to the library. Library defaults are the reference's values and
TensorFlow's own convolution, so a `RunConfig()` made in a test or a
notebook runs anywhere.
"""

import dataclasses
from typing import Optional

import errors
import progress
from models import model as model_lib

TRAIN_BATCH_SIZE = 128  # Global batch, split evenly across replicas.
EVAL_BATCH_SIZE = 100
LOG_EVERY_STEPS = 100
SAVE_STEP = 1500
EVAL_POLL_SECONDS = 60  # Between looks for a new checkpoint to evaluate.
EVAL_TIMEOUT_SECONDS = 360 * EVAL_POLL_SECONDS  # Idle time before it stops.


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Batch sizes, cadence, devices, and the model's `ModelConfig`.

  Attributes:
    log_every_steps: training prints a progress line every so many steps;
      also the most steps one compiled call runs.
    log_every_seconds: ... and at least this often (after the step under
      way); the first line comes after the first step.
    keep_checkpoints: keep the newest so many checkpoints (and those an
      evaluation is reading); None: all.
    tf32: let float32 products run in TF32 on GPUs that have it (Ampere
      on): faster, about 1e-3 relative off the reference's results.
    xla_step: compile each replica's whole forward and backward pass with
      XLA (on GPUs: fewer, larger kernels; XLA's CPU convolutions are slow).
    summary_every_steps: the training summaries' interval (the reference
      wrote them every step; on a GPU each write waits for the device).
    prefetch_to_device: a device to copy the next input batches to while
      the current step runs (one-device runs on a GPU); None: no copy ahead.
    eval_poll_seconds, eval_timeout_seconds: an evaluation following a
      training folder looks for a new checkpoint at most this often, and
      stops when none came for that long.
  """
  train_batch_size: int = TRAIN_BATCH_SIZE
  eval_batch_size: int = EVAL_BATCH_SIZE
  log_every_steps: int = LOG_EVERY_STEPS
  log_every_seconds: float = progress.LINE_SECONDS
  save_step: int = SAVE_STEP
  keep_checkpoints: Optional[int] = None
  model: model_lib.ModelConfig = model_lib.ModelConfig()
  tf32: bool = False
  xla_step: bool = False
  summary_every_steps: int = 1
  prefetch_to_device: Optional[str] = None
  eval_poll_seconds: float = EVAL_POLL_SECONDS
  eval_timeout_seconds: float = EVAL_TIMEOUT_SECONDS

  def __post_init__(self):
    for name in ('train_batch_size', 'eval_batch_size', 'log_every_steps',
                 'save_step', 'summary_every_steps'):
      if getattr(self, name) < 1:
        raise errors.ConfigError(
            f'{name} must be positive, got {getattr(self, name)}')
    if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
      raise errors.ConfigError(
          f'keep_checkpoints must be positive (or None: keep all), got '
          f'{self.keep_checkpoints}')
