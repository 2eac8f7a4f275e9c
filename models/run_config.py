"""How a run trains and evaluates, in one value passed down from `main`.

The reference hard-coded these deep inside its functions (batch 128 in the
input functions, 100 for evaluation, a 60 s poll); here `experiment.py`
resolves them once, from its flags and the machine
(`devices.resolve_run_config`), and hands the `RunConfig` to the library.
Library defaults are the reference's values and TensorFlow's own
convolution, so a `RunConfig()` made in a test or a notebook runs anywhere.
"""

import dataclasses
from typing import Optional

import errors
from layers import layers
from layers import variables

TRAIN_BATCH_SIZE = 128  # Global batch, split evenly across replicas.
EVAL_BATCH_SIZE = 100
LOG_EVERY_STEPS = 100
SAVE_STEP = 1500
EVAL_POLL_SECONDS = 60  # Between looks for a new checkpoint to evaluate.
EVAL_TIMEOUT_SECONDS = 360 * EVAL_POLL_SECONDS  # Idle time before it stops.


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Batch sizes, cadence and how the model computes on this machine.

  Attributes:
    train_batch_size: the global training batch, split evenly across
      replicas.
    eval_batch_size: examples per evaluation batch; evaluation reads whole
      batches.
    log_every_steps: training prints a progress line every so many steps;
      also the most steps one compiled call runs.
    save_step: training writes a checkpoint every so many steps (and at the
      last).
    keep_checkpoints: keep the newest so many checkpoints, deleting older
      ones when a new one is saved (never the one the state file names, nor
      one an evaluation is reading); None: keep every checkpoint.
    compute_dtype: 'float32', or 'bfloat16' / 'float16' for mixed precision
      (see `models.model.Model`).
    tf32: let float32 matrix products and convolutions run in TF32 on GPUs
      that have it (Ampere and newer): faster, but results drift from the
      reference's by about 1e-3 relative. Off: float32 means float32.
    conv_implementation: the primary capsules' convolution, one of
      `layers.CONV_IMPLEMENTATIONS` ('fourier' is faster on CPUs).
    xla_routing: compile the routing with XLA (fused loops, several times
      faster); off where XLA cannot compile (no CUDA libdevice, say).
    xla_step: compile each replica's whole forward and backward pass with
      XLA (on GPUs: fewer, larger kernels; XLA's CPU convolutions are slow).
    summary_every_steps: write the training summaries at every so many
      global steps (the reference wrote them every step; on a GPU each write
      waits for the device).
    prefetch_to_device: a device to copy the next input batches to while
      the current step runs (one-device runs on a GPU); None: no copy ahead.
    eval_poll_seconds: the least time between two evaluations when
      following a training folder.
    eval_timeout_seconds: how long that waits for a new checkpoint.
  """
  train_batch_size: int = TRAIN_BATCH_SIZE
  eval_batch_size: int = EVAL_BATCH_SIZE
  log_every_steps: int = LOG_EVERY_STEPS
  save_step: int = SAVE_STEP
  keep_checkpoints: Optional[int] = None
  compute_dtype: str = 'float32'
  tf32: bool = False
  conv_implementation: str = 'native'
  xla_routing: bool = True
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
    if self.compute_dtype not in variables.COMPUTE_DTYPES:
      raise errors.ConfigError(
          f'compute_dtype={self.compute_dtype!r}: use one of '
          f'{", ".join(variables.COMPUTE_DTYPES)}')
    if self.conv_implementation not in layers.CONV_IMPLEMENTATIONS:
      raise errors.ConfigError(
          f'conv_implementation={self.conv_implementation!r}: use one of '
          f'{", ".join(layers.CONV_IMPLEMENTATIONS)}')
