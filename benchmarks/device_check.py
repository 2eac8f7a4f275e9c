"""Does this machine compute what the reference computed, and how fast?

The first command to run on a new machine, on GPUs above all:

  python -m benchmarks.device_check
  python -m benchmarks.device_check --checks goldens,dtypes,memory,replicas
  python -m benchmarks.device_check --dtypes bfloat16 --repeats 10

It prints the `Devices:` line every command prints, then a table, one row
per check (name, measured value, limit, PASS or FAIL), and ends with
`device check: N/M passed`; the exit code is 1 if any check failed. Every
check runs with the configuration this machine resolves
(`devices.resolve_run_config`: on GPUs cuDNN's convolution and the
XLA-compiled step, on CPUs the Fourier convolution), through the training
step training runs (`training.Trainer`):

- goldens: each golden case present (testdata/goldens, then
  ../shared/goldens) restored from the reference's `model.ckpt-0`, in
  float32: forward values, gradients, and two training steps against the
  reference's `model.ckpt-2`, at the goldens' tolerances (`golden_utils`);
- dtypes: the full MNIST CapsNet on one random batch in float32 and in each
  of `--dtypes`, on the same weights: the logits' largest difference within
  a band set by the dtype's unit roundoff (below it, the narrow dtype was
  not used; above it, something computes wrongly), and one training step
  after which loss and weights are finite;
- speed: examples/s of the full MNIST training step at batch 128 in float32
  and each of `--dtypes` (`benchmarks.benchmark.train_step`), and the model
  FLOP utilization against the float32 matmul peak, as
  `benchmarks.benchmark` computes them; informational, always PASS;
- memory: the peak memory of a float32 MNIST training step in a fresh
  process (`benchmarks.benchmark --memory_probe`): the GPU allocator's peak,
  or on a CPU the peak resident set, against the project's goal of 1.6 GiB;
- replicas: one training step replicated over every GPU (on a machine
  without GPUs, over two logical CPUs) against the same step on one device
  on the same global batch, each replica holding different examples:
  weights and Adam moments within the goldens' weight tolerance.
"""

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position

import argparse
import dataclasses
import math
import os
import statistics
import sys
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import benchmark
import golden_utils
from layers import variables as layer_variables
from models import checkpoints
from models import devices
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib
from models import training
import test_utils

CHECKS = ('goldens', 'dtypes', 'speed', 'memory', 'replicas')
GOLDEN_CASES = ('capsule_tiny', 'capsule_cifar_tiny',
                'capsule_multimnist_tiny', 'baseline_small')
# Always in testdata/goldens: the replicated step starts from it.
REPLICA_CASE = test_utils.CIFAR_CASE
NARROW_DTYPES = tuple(dtype for dtype in layer_variables.COMPUTE_DTYPES
                      if dtype != 'float32')
# Bits of precision (the implicit bit included); the unit roundoff of
# round-to-nearest is 2**-bits.
PRECISION_BITS = {'bfloat16': 8, 'float16': 11}
# The band of max|logits - float32 logits| / max|float32 logits|, in unit
# roundoffs u. The MNIST CapsNet measured 0.59u (bfloat16) and 0.37u
# (float16) on this project's CPU. float32 throughout differs far less: its
# two convolutions (TensorFlow's, the Fourier one) by 3.4e-7, a twentieth of
# float16's u / 64.
BAND_BELOW_U = 1 / 64
BAND_ABOVE_U = 16
DEFAULT_REPEATS = 5
SEED = 1
EXACT_FIELDS = ('correct', 'almost')
_GIB = 2**30
_ROOT = os.path.dirname(os.path.abspath(golden_utils.__file__))
_WIDTHS = (44, 38, 38)


@dataclasses.dataclass(frozen=True)
class Check:
  """One row of the table.

  Attributes:
    name: what was checked.
    value: what was measured, as printed.
    limit: the limit or expectation, as printed.
    passed: True or False; None for a check that could not run here
      (printed SKIP, not counted).
  """
  name: str
  value: str
  limit: str
  passed: Optional[bool]

  @property
  def result(self) -> str:
    return {True: 'PASS', False: 'FAIL', None: 'SKIP'}[self.passed]


def header() -> str:
  return _row('check', 'measured', 'limit', 'result')


def format_check(check: Check) -> str:
  return _row(check.name, check.value, check.limit, check.result)


def _row(*cells: str) -> str:
  return ' '.join(cell.ljust(width)
                  for cell, width in zip(cells, _WIDTHS + (0,))).rstrip()


def summary(checks: Sequence[Check]) -> str:
  """`device check: N/M passed`, and how many were skipped."""
  counted = [check for check in checks if check.passed is not None]
  skipped = len(checks) - len(counted)
  return (f'device check: {sum(check.passed for check in counted)}/'
          f'{len(counted)} passed' + (f', {skipped} skipped' if skipped
                                      else ''))


def exit_code(checks: Sequence[Check]) -> int:
  return 1 if any(check.passed is False for check in checks) else 0


def _worst(errors: Mapping[str, float]):
  """The key with the largest error, and that error."""
  key = max(errors, key=errors.get)
  return key, errors[key]


def forward_check(name: str, *, actual: Mapping[str, np.ndarray],
                  expected: Mapping[str, np.ndarray]) -> Check:
  """The goldens' forward tolerance, `|port - ref| <= 1e-5 + 1e-4 |ref|`.

  Args:
    name: the row's name.
    actual: this machine's values by golden field name.
    expected: the golden's values of the same fields; `correct` and
      `almost` must match exactly, every field must be in actual.
  """
  limit = '|d| <= 1e-5 + 1e-4|ref|; counts exact'
  missing = sorted(set(expected) - set(actual))
  if missing:
    return Check(name, f'missing {", ".join(missing)}', limit, False)
  for field in EXACT_FIELDS:
    if field in expected and float(actual[field]) != float(expected[field]):
      return Check(name, f'{field} {float(actual[field]):g} != '
                   f'{float(expected[field]):g}', limit, False)
  ratios = {field: float(np.max(
      np.abs(np.asarray(actual[field], np.float64) - value) /
      (golden_utils.FORWARD_ATOL + golden_utils.FORWARD_RTOL * np.abs(value))))
            for field, value in expected.items() if field not in EXACT_FIELDS}
  field, ratio = _worst(ratios)
  return Check(name, f'{ratio:.3f} of tolerance ({field})', limit,
               ratio <= 1)


def gradient_check(name: str, *, actual: Mapping[str, np.ndarray],
                   expected: Mapping[str, np.ndarray]) -> Check:
  """The goldens' gradient tolerance, per variable
  `max|port - ref| <= 1e-4 max|ref|`."""
  limit = 'max|d| <= 1e-4 max|ref| per variable'
  missing = sorted(set(expected) - set(actual))
  if missing:
    return Check(name, f'missing {", ".join(missing)}', limit, False)
  ratios = {}
  for var, value in expected.items():
    error = np.max(np.abs(np.asarray(actual[var]) - value))
    bound = golden_utils.GRADIENT_RTOL * np.max(np.abs(value))
    if bound:
      ratios[var] = float(error / bound)
    else:  # A zero gradient must come out zero.
      ratios[var] = math.inf if error else 0.0
  var, ratio = _worst(ratios)
  return Check(name, f'{ratio:.3f} of tolerance ({var})', limit, ratio <= 1)


def weight_check(name: str, *, actual: Mapping[str, np.ndarray],
                 expected: Mapping[str, np.ndarray]) -> Check:
  """The goldens' weight tolerance after training steps,
  `max|port - ref| <= 2e-5`, for every tensor of expected."""
  limit = f'max|d| <= {golden_utils.WEIGHT_ATOL:g}'
  missing = sorted(set(expected) - set(actual))
  if missing:
    return Check(name, f'missing {", ".join(missing)}', limit, False)
  errors = {key: float(np.max(np.abs(np.asarray(actual[key]) - value)))
            for key, value in expected.items()}
  key, error = _worst(errors)
  return Check(name, f'max|d| {error:.1e} ({key})', limit,
               error <= golden_utils.WEIGHT_ATOL)


def band(dtype: str):
  """The (lowest, highest) relative logit difference expected of dtype."""
  roundoff = 2.0**-PRECISION_BITS[dtype]
  return BAND_BELOW_U * roundoff, BAND_ABOVE_U * roundoff


def band_check(name: str, *, logits: np.ndarray, float32_logits: np.ndarray,
               dtype: str) -> Check:
  """max|logits - float32 logits| / max|float32 logits| within dtype's band."""
  lowest, highest = band(dtype)
  scale = float(np.max(np.abs(float32_logits)))
  difference = float(np.max(np.abs(logits - float32_logits))) / scale
  return Check(name, f'{difference:.1e} of max|logit| {scale:.3f}',
               f'{lowest:.1e} .. {highest:.1e} (u/64 .. 16u)',
               bool(lowest <= difference <= highest))


def finite_check(name: str, *, loss: float, weights: Sequence[np.ndarray],
                 applied: bool) -> Check:
  """A training step whose loss and weights are finite.

  A float16 step whose gradients overflow is skipped by design (the loss
  scale halves): applied says which it was.
  """
  finite = bool(np.isfinite(loss) and all(np.all(np.isfinite(weight))
                                          for weight in weights))
  return Check(name, f'loss {loss:.4g}, weights '
               f'{"finite" if finite else "NOT finite"}, '
               f'{"applied" if applied else "skipped (overflow)"}',
               'finite loss and weights', finite)


def speed_check(name: str, *, seconds: Sequence[float], batch: int,
                flops: float, peak: float, load: float) -> Check:
  """Examples/s and model FLOP utilization of a step; always PASS.

  Args:
    name: the row's name.
    seconds: of each timed call.
    batch: examples per call.
    flops: model FLOPs per call.
    peak: the float32 matmul peak, FLOP/s.
    load: the 1-minute load average after the calls.
  """
  median = statistics.median(seconds)
  return Check(name, f'{batch / median:.1f} ex/s, {median:.3f} s, MFU '
               f'{flops / median / peak:.0%}',
               f'info; peak {peak / 1e9:.0f} GFLOP/s, load {load:.1f}', True)


def memory_check(name: str, *, peak: Mapping[str, int],
                 limit: float = benchmark.MEMORY_LIMIT_BYTES) -> Check:
  """`benchmark.peak_memory`'s result against a limit in bytes: the GPU
  allocator's peak where there is one, else the peak resident set."""
  if 'device' in peak:
    value, what = peak['device'], 'GPU:0 allocator peak'
  else:
    value, what = peak['rss'], 'peak resident set'
  return Check(name, f'{value / _GIB:.2f} GiB {what}',
               f'<= {limit / _GIB:g} GiB', value <= limit)


def golden_cases(names: Sequence[str]) -> Dict[str, str]:
  """The cases of names whose files are all present, and the folders that
  hold them (a case's files may come from both)."""
  cases = {}
  for case in names:
    paths = [golden_utils.find(os.path.join(case, name))
             for name in ('config.json', 'golden.npz', 'model.ckpt-0')]
    if all(paths):
      folders = {os.path.relpath(os.path.dirname(os.path.dirname(path)), _ROOT)
                 for path in paths}
      cases[case] = ', '.join(sorted(folders, key=len))
  return cases


def _golden_model(case: str, *, global_batch: Optional[int] = None,
                  strategy: Optional[tf.distribute.Strategy] = None,
                  **settings):
  """The case's model restored from its ckpt-0, its run configuration, its
  data shape and its golden arrays.

  Args:
    case: a golden case present here.
    global_batch: the training batch; None: the case's batch.
    strategy: whose scope builds the model; None: one device.
    **settings: for `devices.resolve_run_config`.
  """
  config = golden_utils.load_config(case)
  golden = golden_utils.load_npz(os.path.join(case, 'golden.npz'))
  shape = model_lib.DataShape(config['height'], config['depth'],
                              config['num_classes'], config['num_targets'])
  run = devices.resolve_run_config(
      train_batch_size=global_batch or config['batch'], **settings)
  hparams = hparams_lib.default_hparams().parse(
      config['hparams_override'] or '')
  with (strategy or tf.distribute.get_strategy()).scope():
    model = registry.build_model(hparams, model_type=config['model'],
                                 shape=shape, config=run)
  checkpoints.load(model, golden_utils.find(os.path.join(case,
                                                         'model.ckpt-0')))
  return model, run, shape, golden


def _inputs(golden: Mapping[str, np.ndarray]) -> Dict[str, tf.Tensor]:
  return {key[len('input/'):]: tf.constant(value)
          for key, value in golden.items() if key.startswith('input/')}


def _forward_values(model: model_lib.Model, *,
                    features: Mapping) -> Dict[str, np.ndarray]:
  """The golden's forward fields, computed by model."""
  result = model.losses(features)
  values = dict(logits=result.logits, total_loss=result.total_loss,
                correct=result.correct, almost=result.almost)
  capsules = model.forward(features).capsule_output
  if capsules is not None:
    values['capsule_output'] = capsules
  for i, remake in enumerate(result.remakes or []):
    values[f'remakes_{i}'] = remake
  # The reference's loss collection: reconstruction losses, then
  # classification.
  for i, loss in enumerate(list(result.reconstruction_losses) +
                           [result.classification_loss]):
    values[f'losses_{i}'] = loss
  return {key: np.asarray(value) for key, value in values.items()}


def _forward_fields(golden: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  return {key: value for key, value in golden.items()
          if key in ('logits', 'capsule_output', 'total_loss') + EXACT_FIELDS
          or key.startswith(('remakes_', 'losses_'))}


def golden_checks(case: str, **settings) -> Iterator[Check]:
  """Forward values, gradients and two training steps of a golden case.

  Args:
    case: a golden case present here.
    **settings: for `devices.resolve_run_config`.
  """
  model, run, shape, golden = _golden_model(case, **settings)
  features = model_lib.features(_inputs(golden), shape)
  yield forward_check(f'golden {case} forward',
                      actual=_forward_values(model, features=features),
                      expected=_forward_fields(golden))
  if not any(key.startswith('grad/') for key in golden):
    return  # A forward-only case.
  names = list(model.tf1_variable_map())[:-1]  # Not global_step.
  grads, _ = model.compute_gradients(features)
  yield gradient_check(
      f'golden {case} gradients',
      actual={name: grad.numpy() for name, grad in zip(names, grads)},
      expected={name: golden[f'grad/{name}'] for name in names})
  reference_path = golden_utils.find(os.path.join(case, 'model.ckpt-2'))
  if reference_path is None:
    return
  trainer = training.Trainer(model, shape=shape, config=run)
  trainer.run(trainer.repeat(_inputs(golden)), 2)
  reference = tf.train.load_checkpoint(reference_path)
  in_reference = reference.get_variable_to_shape_map()
  ours = dict(model.tf1_variable_map(), **model.slot_map())
  ours = {name: var.numpy() for name, var in ours.items()
          if name in in_reference}
  # global_step is among them: a step too many or too few is an error of 1.
  yield weight_check(
      f'golden {case} 2 Adam steps', actual=ours,
      expected={name: reference.get_tensor(name) for name in ours})


def dtype_checks(config: benchmark.Config, *, dtypes: Sequence[str],
                 batch: int) -> Iterator[Check]:
  """Each dtype against float32 on one random batch, on the same weights.

  Args:
    config: the model and its input size.
    dtypes: of NARROW_DTYPES.
    batch: examples in the batch.
  """
  tensors = benchmark.random_batch(config, batch=batch)
  keras.utils.set_random_seed(SEED)

  def trainer(dtype):
    return benchmark.trainer(config, compute_dtype=dtype, num_gpus=1,
                             train_batch_size=batch)

  reference = trainer('float32')
  weights = [var.numpy() for var in reference.model.trainable_variables]
  features = model_lib.features(tensors, reference.shape)
  float32_logits = reference.model.inference(features).logits.numpy()
  for dtype in dtypes:
    step = trainer(dtype)
    for var, value in zip(step.model.trainable_variables, weights):
      var.assign(value)
    logits = step.model.inference(features).logits.numpy()
    yield band_check(f'{dtype} logits vs float32 ({config.name})',
                     logits=logits, float32_logits=float32_logits,
                     dtype=dtype)
    result = step.run(step.repeat(tensors), 1)
    yield finite_check(
        f'{dtype} training step ({config.name})', loss=float(result.loss),
        weights=[var.numpy() for var in step.model.trainable_variables],
        applied=int(step.model.global_step.numpy()) == 1)


def speed_checks(config: benchmark.Config, *, dtypes: Sequence[str],
                 repeats: int) -> Iterator[Check]:
  """The training step's speed in each dtype, on one device."""
  peak = benchmark.matmul_peak()
  batch = devices.resolve_run_config().train_batch_size
  flops = (benchmark.TRAINING_FLOPS_FACTOR * batch *
           benchmark.forward_flops(config))
  for dtype in dtypes:
    seconds = benchmark.time_calls(
        benchmark.train_step(config, compute_dtype=dtype, num_gpus=1),
        repeats=repeats)
    yield speed_check(f'speed {dtype} ({config.name}, batch {batch})',
                      seconds=seconds, batch=batch, flops=flops, peak=peak,
                      load=benchmark.load())


def memory_checks() -> Iterator[Check]:
  """The float32 MNIST step's peak memory, in a fresh process."""
  peak = benchmark.run_json_subprocess(
      'benchmarks.benchmark', '--memory_probe', '--compute_dtype', 'float32')
  yield memory_check(
      f'memory float32 (mnist, batch {run_config_lib.TRAIN_BATCH_SIZE})',
      peak=peak)


def split_cpu(num_devices: int = 2) -> None:
  """Makes the CPU num_devices logical devices on a machine without GPUs.

  So that the replicated step runs here, as the tests' conftest.py does.
  Call it before TensorFlow's runtime starts; a no-op when GPUs are visible
  or the CPU is split already.
  """
  if tf.config.list_physical_devices('GPU'):
    return
  cpu = tf.config.list_physical_devices('CPU')[0]
  if tf.config.get_logical_device_configuration(cpu) is None:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def replica_devices() -> List[str]:
  """The devices to replicate over: every GPU, or without GPUs every
  logical CPU; fewer than two: none."""
  found = (tf.config.list_logical_devices('GPU') or
           tf.config.list_logical_devices('CPU'))
  return [device.name for device in found] if len(found) > 1 else []


def _local_values(variables: Mapping[str, object], *,
                  strategy: tf.distribute.Strategy) -> Dict[str, np.ndarray]:
  """Each replica's copy of each variable, keyed `name@replica`."""
  values = {}
  for name, var in variables.items():
    for i, local in enumerate(strategy.experimental_local_results(
        getattr(var, 'value', var))):
      values[f'{name}@{i}'] = local.numpy()
  return values


def replica_checks(strategy: Optional[tf.distribute.Strategy],
                   *, case: str = REPLICA_CASE) -> Iterator[Check]:
  """One replicated training step against the one-device step.

  Both start from the case's ckpt-0 and train on the same global batch:
  the case's examples repeated to a multiple of the replicas and dealt to
  them in order (on two replicas, one example each), so that the step is
  right only if the replicas' gradients are summed. The Adam moments are
  compared too: Adam's first update barely depends on the gradients'
  scale, its moments do.

  Args:
    strategy: a strategy over two or more devices; None: skipped.
    case: a golden case present here.
  """
  name = 'replicated step'
  limit = f'max|d| <= {golden_utils.WEIGHT_ATOL:g}, weights, Adam moments'
  if strategy is None:
    yield Check(name, 'one device: nothing to replicate', limit, None)
    return
  replicas = strategy.num_replicas_in_sync
  golden = golden_utils.load_npz(os.path.join(case, 'golden.npz'))
  global_batch = math.lcm(len(golden['input/labels']), replicas)
  _, arrays = test_utils.golden_arrays(case, global_batch)
  replica_batch = global_batch // replicas
  results = {}
  for key, step_strategy, settings in (
      ('one', None, dict(num_gpus=1)),
      ('replicated', strategy, dict(num_gpus=replicas))):
    model, run, shape, _ = _golden_model(
        case, global_batch=global_batch, strategy=step_strategy, **settings)
    trainer = training.Trainer(model, shape=shape, strategy=step_strategy,
                               config=run)
    # Consecutive replica batches go to consecutive replicas.
    batches = tf.data.Dataset.from_tensor_slices(arrays).batch(
        trainer.replica_batch_size).repeat()
    trainer.run(trainer.distribute(lambda _, batches=batches: batches), 1)
    results[key] = _local_values(
        dict(model.tf1_variable_map(), **model.slot_map()),
        strategy=trainer.strategy)
  # Every replica's copy against the one device's.
  expected = {key: results['one'][key.rsplit('@', 1)[0] + '@0']
              for key in results['replicated']}
  check = weight_check(name, actual=results['replicated'], expected=expected)
  yield dataclasses.replace(
      check, name=f'{name}, {replicas} x {replica_batch} examples',
      limit=limit)


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checks', default=','.join(CHECKS),
                      help='comma separated subset of ' + ', '.join(CHECKS))
  parser.add_argument('--dtypes', default=','.join(NARROW_DTYPES),
                      help='comma separated subset of ' +
                      ', '.join(NARROW_DTYPES) + ', compared with float32 '
                      '(empty: float32 alone)')
  parser.add_argument('--cases', default=','.join(GOLDEN_CASES),
                      help='golden cases to run, of those present: ' +
                      ', '.join(GOLDEN_CASES))
  parser.add_argument('--repeats', type=int, default=DEFAULT_REPEATS,
                      help='timed training steps per dtype (after the '
                      'warm-up)')
  args = parser.parse_args(argv)
  for flag, allowed in (('checks', CHECKS), ('dtypes', NARROW_DTYPES),
                        ('cases', GOLDEN_CASES)):
    values = [value for value in getattr(args, flag).split(',') if value]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
      parser.error(f'--{flag}: unknown {", ".join(unknown)}; use '
                   f'{", ".join(allowed)}')
    setattr(args, flag, values)
  return args


def main(argv: Optional[List[str]] = None) -> int:
  """Runs the checks, prints the table; returns the exit code."""
  args = _parse_args(argv)
  devices.allow_gpu_memory_growth()
  split_cpu()
  gpus = tf.config.list_logical_devices('GPU')
  print(devices.describe(devices.resolve_run_config(),
                         num_replicas=max(1, len(gpus))), flush=True)
  mnist = benchmark.CONFIGS['mnist']
  steps = []
  if 'goldens' in args.checks:
    cases = golden_cases(args.cases)
    absent = [case for case in args.cases if case not in cases]
    print('Goldens: ' + ', '.join(f'{case} ({folder})'
                                  for case, folder in cases.items()) +
          (f'; not found: {", ".join(absent)}' if absent else ''))
    steps += [lambda case=case: golden_checks(case, num_gpus=1)
              for case in cases]
  if 'dtypes' in args.checks and args.dtypes:
    steps.append(lambda: dtype_checks(
        mnist, dtypes=args.dtypes,
        batch=devices.resolve_run_config().train_batch_size))
  if 'speed' in args.checks:
    steps.append(lambda: speed_checks(
        mnist, dtypes=['float32'] + args.dtypes, repeats=args.repeats))
  if 'memory' in args.checks:
    steps.append(memory_checks)
  if 'replicas' in args.checks:
    names = replica_devices()
    steps.append(lambda: replica_checks(
        tf.distribute.MirroredStrategy(names) if names else None))
  print(header(), flush=True)
  checks = []
  for step in steps:
    for check in step():
      checks.append(check)
      print(format_check(check), flush=True)
  print(summary(checks), flush=True)
  return exit_code(checks)


if __name__ == '__main__':
  # Retracing notices: each golden case traces the routing at its shapes.
  tf.get_logger().setLevel('ERROR')
  sys.exit(main())
