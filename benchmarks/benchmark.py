"""Training and evaluation speed of the models against the machine's peak.

Each configuration's training and evaluation step on random data, then an
MNIST step's peak memory in a fresh process; docs/speed.md says what each
figure counts.

  python -m benchmarks.benchmark
  python -m benchmarks.benchmark --configs mnist --repeats 20
  python -m benchmarks.benchmark --compute_dtype bfloat16
  python -m benchmarks.benchmark --configs mnist --loop
"""

import argparse
import collections
import contextlib
import dataclasses
import io
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import tensorflow as tf

from benchmarks import compare
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
from paper import experiments

NUM_CLASSES = 10
WARMUP_STEPS = 2
DEFAULT_REPEATS = 10
# Forward, gradient of the inputs, gradient of the weights: the usual
# convention, although the images' gradient is never computed (it overstates
# the MNIST CapsNet step by conv1's 1.4%).
TRAINING_FLOPS_FACTOR = 3
# The goal for a float32 MNIST training step as training runs it, with its
# tf.data input iterator: the step alone peaked at 1.43-1.51 GiB, the
# iterator's runtime adds about 70 MB (docs/speed.md, Memory).
MEMORY_LIMIT_BYTES = 1.6 * 2**30
# A float32 product big enough to run at the device's peak, timed this often.
PEAK_MATMUL_SIZE = {'CPU': 4096, 'GPU': 8192}
PEAK_MATMUL_REPEATS = 5


# A model on one input size, as the experiments train it; `model` is a key
# of `registry.MODELS`.
Config = collections.namedtuple(
    'Config', ('name', 'model', 'hparams_override', 'height', 'depth'))


def _experiment(name: str, experiment: str, *, height: int,
                depth: int) -> Config:
  """The model and hparams of a `paper.experiments` entry."""
  entry = experiments.get(experiment)
  return Config(name, entry.model, entry.hparams, height, depth)


CONFIGS = {config.name: config for config in (
    _experiment('mnist', 'mnist_r3_recon', height=28, depth=1),
    _experiment('cifar10', 'cifar10_ensemble', height=24, depth=3),
    # No experiment trains the reference's baseline at its defaults on MNIST.
    Config('baseline', 'baseline', '', 28, 1),
)}


def hparams(config: Config):
  return hparams_lib.default_hparams().parse(config.hparams_override)


def _conv(height: int, *, kernel: int, in_channels: int, out_channels: int,
          stride: int, padding: str, fourier: bool = False) -> Tuple[int, int]:
  """FLOPs per example of a square convolution, and its output height.

  fourier: the matrix products of `layers.fourier.conv2d` rather than the
  direct convolution's. Its kernel DFTs, once per batch, are not counted,
  nor what its backward pass makes twice: a lower bound.
  """
  if padding == 'SAME':
    out_height = -(-height // stride)
  else:
    out_height = (height - kernel) // stride + 1
  if not fourier:
    flops = 2 * out_height**2 * kernel**2 * in_channels * out_channels
    return flops, out_height
  length = (out_height - 1) * stride + kernel  # Of the DFTs.
  half = length // 2 + 1  # Frequencies kept along the width.
  return 2 * (2 * half * height**2 * in_channels +  # The image's DFTs,
              3 * length * 2 * height * half * in_channels +
              3 * length * half * in_channels * out_channels +  # products,
              2 * out_height * 3 * length * half * out_channels +  # inverse
              out_height**2 * 2 * half * out_channels), out_height  # DFTs.


def forward_flops(config: Config, conv_implementation: str = 'native') -> int:
  """Model FLOPs of the forward pass of one example (one reconstruction
  target), the primary capsules convolving by `conv_implementation`."""
  params, height, depth = hparams(config), config.height, config.depth
  if config.model == 'baseline':
    flops, in_channels = 0, depth
    for channels in conv_model.CONV_CHANNELS:
      conv, height = _conv(height, kernel=conv_model.CONV_KERNEL,
                           in_channels=in_channels, out_channels=channels,
                           stride=1, padding=params.padding)
      height = -(-height // conv_model.POOL_SIZE)
      flops, in_channels = flops + conv, channels
    fc1_inputs = in_channels * height**2
    return flops + 2 * (fc1_inputs * conv_model.FC1_UNITS +
                        conv_model.FC1_UNITS * NUM_CLASSES)
  conv1, conv1_height = _conv(
      height, kernel=capsule_model.CONV1_KERNEL, in_channels=depth,
      out_channels=params.conv1_channels, stride=1, padding=params.padding)
  prime_channels = params.num_prime_capsules * params.prime_capsule_atoms
  primary, prime_height = _conv(
      conv1_height, kernel=capsule_model.PRIME_KERNEL,
      in_channels=params.conv1_channels, out_channels=prime_channels,
      stride=capsule_model.PRIME_STRIDE, padding=params.padding,
      fourier=conv_implementation == 'fourier')
  num_inputs = params.num_prime_capsules * prime_height**2
  class_width = NUM_CLASSES * params.digit_capsule_atoms
  votes = 2 * num_inputs * params.prime_capsule_atoms * class_width
  # Weighted sums in every iteration, agreements in all but the last.
  contractions = 2 * params.routing - 1
  routing = contractions * 2 * num_inputs * class_width
  recons = 0
  if params.remake:
    first, second = capsule_model.RECONS_LAYER_SIZES
    recons = 2 * (class_width * first + first * second +
                  second * depth * height**2)
  return conv1 + primary + votes + routing + recons


def random_batch(config: Config, *, batch: int,
                 seed: int = 0) -> Dict[str, tf.Tensor]:
  """A random batch of the readers' tensors, on the default device."""
  images = tf.random.stateless_uniform(
      [batch, config.depth, config.height, config.height], [seed, 0])
  labels = tf.random.stateless_uniform([batch], [seed, 1], maxval=NUM_CLASSES,
                                       dtype=tf.int32)
  return dict(images=images, labels=tf.one_hot(labels, NUM_CLASSES),
              recons_image=images, recons_label=labels)


def trainer(config: Config, **settings) -> training.Trainer:
  """The training step of `config`'s model, built as training builds it;
  settings for `devices.resolve_run_config`, as in every function here."""
  run = devices.resolve_run_config(**settings)
  shape = model_lib.DataShape(config.height, config.depth, NUM_CLASSES)
  model = registry.build_model(hparams(config), model_type=config.model,
                               shape=shape, config=run.model)
  return training.Trainer(model, config=run)


def train_step(config: Config, **settings) -> Callable[[], object]:
  """One training step per call, on a random batch held in memory."""
  step_trainer = trainer(config, **settings)
  batches = step_trainer.repeat(random_batch(
      config, batch=step_trainer.replica_batch_size))
  return lambda: step_trainer.run(batches, 1)


def eval_step(config: Config, **settings) -> Callable[[], object]:
  """One evaluation step per call, on a random batch."""
  run = devices.resolve_run_config(**settings)
  tensors = random_batch(config, batch=run.eval_batch_size)
  evaluator = evaluation.Evaluator(
      hparams(config), model_type=config.model, config=run,
      input_fn=lambda *_, **__: tf.data.Dataset.from_tensors(tensors))
  return lambda: evaluator.counts(tensors)


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

  def utilization(self, peak: float) -> float:
    """Model FLOP utilization against a peak in FLOP/s."""
    return self.flops / self.median / peak


# Per step kind: the step, its factor on the forward FLOPs, its batch's field.
_STEPS = {'train': (train_step, TRAINING_FLOPS_FACTOR, 'train_batch_size'),
          'eval': (eval_step, 1, 'eval_batch_size')}


def time_step(config: Config, step: str, *, repeats: int,
              **settings) -> Timing:
  """Times `repeats` calls of config's `_STEPS[step]`, after the warm-up."""
  make_step, factor, batch_field = _STEPS[step]
  run = devices.resolve_run_config(**settings)
  batch = getattr(run, batch_field)
  seconds = time_calls(make_step(config, **settings), repeats=repeats)
  flops = forward_flops(config, run.model.conv_implementation)
  return Timing(config.name, step, batch, seconds, factor * batch * flops,
                os.getloadavg()[0])


def benchmark(config: Config, **kwargs) -> List[Timing]:
  return [time_step(config, step, **kwargs) for step in _STEPS]


def training_loop(config: Config, *, windows: int,
                  **settings) -> List[float]:
  """Seconds per step of `training.train`, the loop users run (summaries
  of every step written), in each of `windows` compiled calls after the
  first, which traces the loop, on a random batch held in memory."""
  run = devices.resolve_run_config(**settings)
  max_steps = run.log_every_steps * (windows + 1)
  run = dataclasses.replace(run, save_step=max_steps)  # One, after the last.
  tensors = random_batch(config, batch=run.train_batch_size)

  def input_fn(split, batch_size, input_context=None):
    del split, input_context  # One pipeline of one batch.
    assert batch_size == run.train_batch_size, batch_size
    return tf.data.Dataset.from_tensors(tensors).repeat()

  with tempfile.TemporaryDirectory() as summary_dir:
    with contextlib.redirect_stdout(io.StringIO()):  # Its progress lines.
      trained = training.train(hparams(config), summary_dir=summary_dir,
                               model_type=config.model, max_steps=max_steps,
                               input_fn=input_fn, config=run)
  return [seconds / steps_run for step, steps_run, seconds in trained.intervals
          if step > run.log_every_steps]


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
        f'and after); loop / bare {ratio:.3f} (load {os.getloadavg()[0]:.2f})',
        flush=True)


def _format(timing: Timing, peak: float) -> str:
  return (f'{timing.config:9s} {timing.step:5s} {timing.batch:5d} '
          f'{timing.median:9.3f} {min(timing.seconds):8.3f} '
          f'{timing.batch / timing.median:9.1f} {timing.flops / 1e9:8.1f} '
          f'{timing.flops / timing.median / 1e9:8.1f} '
          f'{timing.utilization(peak):6.1%} {timing.load:5.2f}')


def peak_rss() -> int:
  """Peak resident set of this process in bytes, Linux's `VmHWM` where there
  is one: `ru_maxrss` also counts the parent's at the fork that started it."""
  try:
    with open('/proc/self/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(config: Config, **settings) -> Dict[str, int]:
  """Peak bytes of `config`'s training steps: `rss`, this process's resident
  set (TensorFlow's own included: run it fresh), `device` a GPU allocator's."""
  time_calls(train_step(config, **settings), repeats=1)
  peak = {'rss': peak_rss()}
  if device_type() == 'GPU':
    peak['device'] = tf.config.experimental.get_memory_info('GPU:0')['peak']
  return peak


def counted_memory(peak: Mapping[str, int]) -> Tuple[int, str]:
  """Of `peak_memory`'s figures, the one the memory goal is for, named."""
  if 'device' in peak:
    return peak['device'], 'GPU:0 allocator peak'
  return peak['rss'], 'peak resident set'


def peak_memory_in_subprocess(compute_dtype: str) -> Dict[str, int]:
  """`peak_memory` of full MNIST in a fresh Python, which nothing else grew."""
  return compare.json_line([sys.executable, '-m', 'benchmarks.benchmark',
                            '--memory_probe', '--compute_dtype',
                            compute_dtype])


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  compare.add_subset(parser, '--configs', list(CONFIGS))
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
  under = counted_memory(memory)[0] < MEMORY_LIMIT_BYTES
  verdict = 'under' if under else 'OVER'
  print(f'peak memory of an MNIST training step (batch '
        f'{run_config_lib.TRAIN_BATCH_SIZE}): ' + ', '.join(
      f'{kind} {value / 2**30:.2f} GiB' for kind, value in memory.items()) +
        f' ({verdict} the {MEMORY_LIMIT_BYTES / 2**30:g} GiB limit)')


def main(argv: Optional[List[str]] = None) -> None:
  args = _parse_args(argv)
  # Quiet: the memory probe's output is its JSON line.
  setup = devices.setup(compute_dtype=args.compute_dtype, quiet=True)
  if args.memory_probe:
    print(json.dumps(peak_memory(CONFIGS['mnist'],
                                 compute_dtype=args.compute_dtype)))
    return
  print('$ python -m benchmarks.benchmark ' + shlex.join(sys.argv[1:]))
  print(devices.describe(setup.config))
  print(f'TensorFlow {tf.__version__}, {args.repeats} repeats')
  # First, while nothing else runs: the probe is a process of its own.
  memory = None if args.skip_memory else peak_memory_in_subprocess(
      args.compute_dtype)
  load = os.getloadavg()[0]
  peak = matmul_peak()
  print(f'float32 matmul peak: {peak / 1e9:.1f} GFLOP/s (load {load:.2f})')
  if args.compute_dtype != 'float32':
    print(f'{args.compute_dtype} matmul peak: '
          f'{matmul_peak(tf.as_dtype(args.compute_dtype)) / 1e9:.1f} GFLOP/s '
          f'(MFU below stays against the float32 peak)')
  print('config    step  batch  median_s    min_s   examp/s  GFLOP/st'
        '  GFLOP/s    MFU  load')
  for name in args.configs:
    for timing in benchmark(CONFIGS[name], compute_dtype=args.compute_dtype,
                            repeats=args.repeats):
      print(_format(timing, peak), flush=True)
  if args.loop:
    _print_loop(CONFIGS[args.configs[0]], compute_dtype=args.compute_dtype,
                repeats=args.repeats)
  if memory:
    _print_memory(memory)


if __name__ == '__main__':
  main()
