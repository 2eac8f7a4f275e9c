"""Training and evaluation speed of the models against the machine's peak.

For each configuration it times, after a warm-up, the training step that
training runs (`models.training.Trainer.run`, one step per call, at the
global batch of `RunConfig`, 128) and the evaluation step
(`models.evaluation.Evaluator.counts`, batch 100) on random data on the
default device, with the run configuration `experiment.py` resolves on this
machine (`devices.resolve_run_config`), and prints the median seconds per
step (and the fastest), examples per second, the model FLOPs of one step,
the achieved GFLOP/s and the model FLOP utilization: achieved GFLOP/s over
the float32 matrix-multiply peak of this machine, measured in the same
process. With `--loop` it also times the training loop users run,
`models.training.train` on the full MNIST CapsNet (a random batch in memory,
summaries written every step, 100 steps per compiled call), after its first
100 steps, beside the bare step timed just before and after it.
It ends with the peak memory of a full MNIST training step, measured first,
in a fresh subprocess: its peak resident set (Linux `VmHWM`, else
`ru_maxrss`) and, on a GPU, the allocator's peak. Every timing is printed
with the 1-minute load average, since other processes on the machine slow it
down (this process alone brings it towards 2 on a 2-core machine).

  python -m benchmarks.benchmark
  python -m benchmarks.benchmark --configs mnist --repeats 20
  python -m benchmarks.benchmark --compute_dtype bfloat16
  python -m benchmarks.benchmark --configs mnist --loop

Model FLOPs are counted analytically (`forward_flops`): 2 multiply-adds per
weight use of the convolutions (`2 * N * Ho * Wo * k * k * Cin * Cout`), the
fully connected and capsule vote products, and the two contractions of each
routing iteration (the weighted sum of the votes and, except in the last
iteration, the agreement: the last one's logits are never used, and XLA
drops it). Elementwise work (squash, softmax, ReLU, pooling,
losses, Adam) is not counted. A training step counts 3x the forward FLOPs
(forward, gradient of the inputs, gradient of the weights), the usual
convention, although the gradient of the images is never computed: this
overstates the MNIST CapsNet step by the 1.4% of conv1. These are the FLOPs
of the direct convolution; the capsule models' primary capsules multiply in
the frequency domain (`layers/fourier.py`), a fifth of those multiplications
for MNIST, so their utilization can pass 100%: it compares the step with
the direct algorithm run at the peak, not how busy the multipliers are.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

from layers import variables as layer_variables
from models import capsule_model
from models import conv_model
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib
from models import training

NUM_CLASSES = 10
WARMUP_STEPS = 2
DEFAULT_REPEATS = 10
TRAINING_FLOPS_FACTOR = 3
# The goal for a float32 MNIST training step as training runs it, with its
# tf.data input iterator: the step alone peaked at 1.43-1.51 GiB, the
# iterator's runtime adds about 70 MB (docs/speed.md, Memory).
MEMORY_LIMIT_BYTES = 1.6 * 2**30
# A float32 product big enough to run at the device's peak, timed this often.
PEAK_MATMUL_SIZE = {'CPU': 4096, 'GPU': 8192}
PEAK_MATMUL_REPEATS = 5


@dataclasses.dataclass(frozen=True)
class Config:
  """A model on one input size, as the experiments train it."""
  name: str
  model: str          # a key of `registry.MODELS`
  hparams_override: str
  height: int
  depth: int


CONFIGS = {config.name: config for config in (
    Config('mnist', 'capsule', '', 28, 1),
    Config('cifar10', 'capsule',
           'num_prime_capsules=64,padding=SAME,leaky=true,remake=false', 24, 3),
    Config('baseline', 'baseline', '', 28, 1),
)}


def hparams(config: Config):
  return hparams_lib.default_hparams().parse(config.hparams_override)


def _conv(height: int, *, kernel: int, in_channels: int, out_channels: int,
          stride: int, padding: str) -> Tuple[int, int]:
  """FLOPs per example of a square convolution, and its output height."""
  if padding == 'SAME':
    out_height = -(-height // stride)
  else:
    out_height = (height - kernel) // stride + 1
  flops = 2 * out_height**2 * kernel**2 * in_channels * out_channels
  return flops, out_height


def _capsule_flops(hparams, height: int, depth: int) -> int:
  """Forward FLOPs per example of CapsuleModel (one reconstruction target)."""
  conv1, conv1_height = _conv(
      height, kernel=capsule_model.CONV1_KERNEL, in_channels=depth,
      out_channels=hparams.conv1_channels, stride=1,
      padding=hparams.padding)
  prime_channels = hparams.num_prime_capsules * hparams.prime_capsule_atoms
  primary, prime_height = _conv(
      conv1_height, kernel=capsule_model.PRIME_KERNEL,
      in_channels=hparams.conv1_channels, out_channels=prime_channels,
      stride=capsule_model.PRIME_STRIDE, padding=hparams.padding)
  num_inputs = hparams.num_prime_capsules * prime_height**2
  class_width = NUM_CLASSES * hparams.digit_capsule_atoms
  votes = 2 * num_inputs * hparams.prime_capsule_atoms * class_width
  # Weighted sums in every iteration, agreements in all but the last.
  contractions = 2 * hparams.routing - 1
  routing = contractions * 2 * num_inputs * class_width
  recons = 0
  if hparams.remake:
    first, second = capsule_model.RECONS_LAYER_SIZES
    recons = 2 * (class_width * first + first * second +
                  second * depth * height**2)
  return conv1 + primary + votes + routing + recons


def _baseline_flops(hparams, height: int, depth: int) -> int:
  """Forward FLOPs per example of ConvModel."""
  flops, in_channels = 0, depth
  for channels in conv_model.CONV_CHANNELS:
    conv, height = _conv(height, kernel=conv_model.CONV_KERNEL,
                         in_channels=in_channels, out_channels=channels,
                         stride=1, padding=hparams.padding)
    height = -(-height // conv_model.POOL_SIZE)
    flops, in_channels = flops + conv, channels
  fc1_inputs = in_channels * height**2
  return flops + 2 * (fc1_inputs * conv_model.FC1_UNITS +
                      conv_model.FC1_UNITS * NUM_CLASSES)


def forward_flops(config: Config) -> int:
  """Model FLOPs of the forward pass of one example."""
  count = _capsule_flops if config.model == 'capsule' else _baseline_flops
  return count(hparams(config), config.height, config.depth)


def data_shape(config: Config) -> model_lib.DataShape:
  return model_lib.DataShape(height=config.height, depth=config.depth,
                             num_classes=NUM_CLASSES, num_targets=1)


def random_batch(config: Config, *, batch: int,
                 seed: int = 0) -> Dict[str, tf.Tensor]:
  """A random batch of the readers' tensors, on the default device."""
  images = tf.random.stateless_uniform(
      [batch, config.depth, config.height, config.height], [seed, 0])
  labels = tf.random.stateless_uniform([batch], [seed, 1], maxval=NUM_CLASSES,
                                       dtype=tf.int32)
  return dict(images=images, labels=tf.one_hot(labels, NUM_CLASSES),
              recons_image=images, recons_label=labels)


def run_config(compute_dtype: str, **settings) -> run_config_lib.RunConfig:
  """The run configuration `experiment.py` resolves on this machine."""
  return devices.resolve_run_config(compute_dtype=compute_dtype, **settings)


def trainer(config: Config, *, compute_dtype: str,
            **settings) -> training.Trainer:
  """The training step of `config`'s model, built as training builds it."""
  run = run_config(compute_dtype, **settings)
  model = registry.build_model(hparams(config), model_type=config.model,
                               shape=data_shape(config), config=run)
  return training.Trainer(model, shape=data_shape(config), config=run)


def evaluator(config: Config, *, compute_dtype: str,
              **settings) -> evaluation.Evaluator:
  """The evaluation step of `config`'s model, on one random batch."""
  run = run_config(compute_dtype, **settings)
  tensors = random_batch(config, batch=run.eval_batch_size)

  def input_fn(split, batch_size, input_context=None):
    del split, batch_size, input_context  # One batch.
    return tf.data.Dataset.from_tensors(tensors)

  return evaluation.Evaluator(hparams(config), model_type=config.model,
                              input_fn=input_fn, config=run)


def train_step(config: Config, *, compute_dtype: str,
               **settings) -> Callable[[], object]:
  """One training step per call, on a random batch held in memory."""
  step_trainer = trainer(config, compute_dtype=compute_dtype, **settings)
  batches = step_trainer.repeat(random_batch(
      config, batch=step_trainer.replica_batch_size))
  return lambda: step_trainer.run(batches, 1)


def eval_step(config: Config, *, compute_dtype: str,
              **settings) -> Callable[[], object]:
  """One evaluation step per call, on a random batch."""
  step_evaluator = evaluator(config, compute_dtype=compute_dtype, **settings)
  tensors = next(iter(step_evaluator.dataset))
  return lambda: step_evaluator.counts(tensors)


def run(step: Callable[[], object]) -> None:
  """One call, waiting for its results on the host."""
  for tensor in tf.nest.flatten(step()):
    tensor.numpy()


def time_calls(step: Callable[[], object], *, repeats: int) -> List[float]:
  """Seconds of each of `repeats` calls after the warm-up."""
  for _ in range(WARMUP_STEPS):
    run(step)
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    run(step)
    seconds.append(time.perf_counter() - start)
  return seconds


def load() -> float:
  """The 1-minute load average."""
  return os.getloadavg()[0]


def device_type() -> str:
  return 'GPU' if tf.config.list_logical_devices('GPU') else 'CPU'


def matmul_peak(dtype: tf.DType = tf.float32,
                size: Optional[int] = None) -> float:
  """Best FLOP/s of a large square matrix product on the default device."""
  size = size or PEAK_MATMUL_SIZE[device_type()]
  a = tf.random.stateless_normal([size, size], [1, 2], dtype=dtype)
  b = tf.random.stateless_normal([size, size], [3, 4], dtype=dtype)
  product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[0, :1]))
  seconds = time_calls(product, repeats=PEAK_MATMUL_REPEATS)
  return 2 * size**3 / min(seconds)


@dataclasses.dataclass
class Timing:
  """A measured step: seconds of each repeat, model FLOPs, load at the end."""
  config: str
  step: str
  batch: int
  seconds: List[float]
  flops: float
  load: float

  @property
  def median(self) -> float:
    return statistics.median(self.seconds)


def benchmark(config: Config, *, compute_dtype: str, repeats: int,
              **settings) -> List[Timing]:
  """Times the training and evaluation steps of one configuration.

  Args:
    config: the model and its input size.
    compute_dtype: as for `devices.resolve_run_config`.
    repeats: timed calls of each step.
    **settings: other `RunConfig` fields (e.g. batch sizes).
  """
  flops = forward_flops(config)
  run = run_config(compute_dtype, **settings)
  timings = []
  for step, batch, make_step, factor in (
      ('train', run.train_batch_size, train_step, TRAINING_FLOPS_FACTOR),
      ('eval', run.eval_batch_size, eval_step, 1)):
    seconds = time_calls(
        make_step(config, compute_dtype=compute_dtype, **settings),
        repeats=repeats)
    timings.append(Timing(config.name, step, batch, seconds,
                          factor * batch * flops, load()))
  return timings


def training_loop(config: Config, *, compute_dtype: str, windows: int,
                  **settings) -> List[float]:
  """Seconds per step of `training.train`'s loop, one per log interval.

  The loop users run (the summaries of every step written to a temporary
  summary_dir, `log_every_steps` steps per compiled call) on a random batch
  held in memory, repeated by `tf.data`; the seconds come from its progress
  lines. The first interval, which traces the loop, is not counted; nor is
  the one checkpoint, written after the last.
  """
  every = run_config(compute_dtype, **settings).log_every_steps
  max_steps = every * (windows + 1)
  run = run_config(compute_dtype, save_step=max_steps, **settings)
  tensors = random_batch(config, batch=run.train_batch_size)

  def input_fn(split, batch_size, input_context=None):
    del split, input_context  # One pipeline of one batch.
    assert batch_size == run.train_batch_size, batch_size
    return tf.data.Dataset.from_tensors(tensors).repeat()

  output = io.StringIO()
  with tempfile.TemporaryDirectory() as summary_dir:
    with contextlib.redirect_stdout(output):
      training.train(hparams(config), summary_dir=summary_dir,
                     model_type=config.model, max_steps=max_steps,
                     input_fn=input_fn, config=run)
  rates = re.findall(r'^step (\d+): .*, ([\d.]+) examples/s', output.getvalue(),
                     re.M)
  return [run.train_batch_size / float(rate)
          for step, rate in rates if int(step) > every]


def _print_loop(config: Config, *, compute_dtype: str, repeats: int) -> None:
  """The training loop's seconds per step beside the bare step's."""
  step = train_step(config, compute_dtype=compute_dtype)
  bare = time_calls(step, repeats=repeats)
  loop = training_loop(config, compute_dtype=compute_dtype, windows=2)
  bare += time_calls(step, repeats=repeats)
  ratio = statistics.median(loop) / statistics.median(bare)
  print(f'{config.name} training loop (training.train, summaries on): '
        f'{statistics.median(loop):.3f} s/step over '
        f'{run_config_lib.LOG_EVERY_STEPS} steps '
        f'({", ".join(f"{s:.3f}" for s in loop)}); bare train step '
        f'{statistics.median(bare):.3f} s (median of {len(bare)}, before '
        f'and after); loop / bare {ratio:.3f} (load {load():.2f})',
        flush=True)


def _format(timing: Timing, peak: float) -> str:
  achieved = timing.flops / timing.median
  return (f'{timing.config:9s} {timing.step:5s} {timing.batch:5d} '
          f'{timing.median:9.3f} {min(timing.seconds):8.3f} '
          f'{timing.batch / timing.median:9.1f} {timing.flops / 1e9:8.1f} '
          f'{achieved / 1e9:8.1f} {achieved / peak:6.1%} {timing.load:5.2f}')


def peak_rss() -> int:
  """Peak resident set of this process in bytes.

  Linux's `VmHWM` where there is one: `ru_maxrss` also counts the parent's
  resident set at the fork that started this process.
  """
  try:
    with open('/proc/self/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(config: Config, *, compute_dtype: str,
                **settings) -> Dict[str, int]:
  """Runs training steps of `config` in this process; peak memory in bytes.

  `rss` is the process's peak resident set (TensorFlow's own host memory
  included, so run it in a fresh process), `device` the allocator's peak on a
  GPU.
  """
  time_calls(train_step(config, compute_dtype=compute_dtype, **settings),
             repeats=1)
  peak = {'rss': peak_rss()}
  if device_type() == 'GPU':
    peak['device'] = tf.config.experimental.get_memory_info('GPU:0')['peak']
  return peak


def run_json_subprocess(module: str, *args: str) -> Dict:
  """Runs `python -m module args` in a fresh Python; its last line as JSON."""
  output = subprocess.run([sys.executable, '-m', module, *args], check=True,
                          capture_output=True, text=True).stdout
  return json.loads(output.strip().splitlines()[-1])


def _peak_memory_in_subprocess(compute_dtype: str) -> Dict[str, int]:
  """`peak_memory` of full MNIST in a fresh Python, which nothing else grew."""
  return run_json_subprocess('benchmarks.benchmark', '--memory_probe',
                             '--compute_dtype', compute_dtype)


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--configs', default=','.join(CONFIGS),
                      help='comma separated subset of ' + ', '.join(CONFIGS))
  parser.add_argument('--repeats', type=int, default=DEFAULT_REPEATS,
                      help='timed steps per measurement (after the warm-up)')
  parser.add_argument('--compute_dtype', default='float32',
                      choices=layer_variables.COMPUTE_DTYPES)
  parser.add_argument('--skip_memory', action='store_true',
                      help='do not measure the peak memory')
  parser.add_argument('--loop', action='store_true',
                      help='also time training.train\'s loop on the first '
                      'config (300 steps)')
  parser.add_argument('--memory_probe', action='store_true',
                      help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def _print_memory(memory: Mapping[str, int]) -> None:
  verdict = 'under' if max(memory.values()) < MEMORY_LIMIT_BYTES else 'OVER'
  print(f'peak memory of an MNIST training step (batch '
        f'{run_config_lib.TRAIN_BATCH_SIZE}): ' + ', '.join(
      f'{kind} {value / 2**30:.2f} GiB' for kind, value in memory.items()) +
        f' ({verdict} the {MEMORY_LIMIT_BYTES / 2**30:g} GiB limit)')


def _print_peaks(compute_dtype: str) -> float:
  """Prints the matmul peaks; returns the float32 one in FLOP/s."""
  load_before = load()
  peak = matmul_peak()
  print(f'float32 matmul peak: {peak / 1e9:.1f} GFLOP/s '
        f'(load {load_before:.2f})')
  if compute_dtype != 'float32':
    print(f'{compute_dtype} matmul peak: '
          f'{matmul_peak(tf.as_dtype(compute_dtype)) / 1e9:.1f} GFLOP/s '
          f'(MFU below stays against the float32 peak)')
  return peak


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  devices.allow_gpu_memory_growth()
  if args.memory_probe:
    print(json.dumps(peak_memory(CONFIGS['mnist'],
                                 compute_dtype=args.compute_dtype)))
    return
  names = [name for name in args.configs.split(',') if name]
  unknown = sorted(set(names) - set(CONFIGS))
  if unknown:
    raise SystemExit(f'unknown configs {unknown}; use {", ".join(CONFIGS)}')
  print('$ python -m benchmarks.benchmark ' + shlex.join(sys.argv[1:]))
  print(devices.describe(run_config(args.compute_dtype)))
  print(f'TensorFlow {tf.__version__}, {args.repeats} repeats')
  # First, while nothing else runs: the probe is a process of its own.
  memory = None if args.skip_memory else _peak_memory_in_subprocess(
      args.compute_dtype)
  peak = _print_peaks(args.compute_dtype)
  print('config    step  batch  median_s    min_s   examp/s  GFLOP/st'
        '  GFLOP/s    MFU  load')
  for name in names:
    for timing in benchmark(CONFIGS[name], compute_dtype=args.compute_dtype,
                            repeats=args.repeats):
      print(_format(timing, peak), flush=True)
  if args.loop:
    _print_loop(CONFIGS[names[0]], compute_dtype=args.compute_dtype,
                repeats=args.repeats)
  if memory:
    _print_memory(memory)


if __name__ == '__main__':
  main()
