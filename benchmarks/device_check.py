"""Does this machine compute what the reference computed, and how fast?

The first command to run on a new machine, on GPUs above all:

  python -m benchmarks.device_check
  python -m benchmarks.device_check --checks goldens,dtypes,memory,replicas
  python -m benchmarks.device_check --dtypes bfloat16 --repeats 10

It prints the `Devices:` line, then one row per check (name, measured
value, limit, PASS, FAIL or SKIP) and `device check: N/M passed`; the exit
code is 1 if any check failed. Each check runs the training step training
runs, in the configuration this machine resolves; docs/gpu.md says what
each one compares. The golden comparisons and tolerances are
`models.goldens`', the speed and memory figures `benchmarks.benchmark`'s.
"""

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position

import argparse
import dataclasses
import math
import os
import sys
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import benchmark
from layers import variables as layer_variables
from models import devices
from models import goldens
from models import model as model_lib
from models import training

CHECKS = ('goldens', 'dtypes', 'speed', 'memory', 'replicas')
# Always in testdata/goldens: the replicated step starts from it.
REPLICA_CASE = 'capsule_cifar_tiny'
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
_GIB = 2**30
_WIDTHS = (44, 38, 38)


@dataclasses.dataclass(frozen=True)
class Check:
  """One row of the table; passed None: could not run here (SKIP)."""
  name: str
  value: str
  limit: str
  passed: Optional[bool]

  @property
  def result(self) -> str:
    return {True: 'PASS', False: 'FAIL', None: 'SKIP'}[self.passed]


def _row(*cells: str) -> str:
  return ' '.join(cell.ljust(width)
                  for cell, width in zip(cells, _WIDTHS + (0,))).rstrip()


def header() -> str:
  return _row('check', 'measured', 'limit', 'result')


def format_check(check: Check) -> str:
  return _row(check.name, check.value, check.limit, check.result)


def summary(checks: Sequence[Check]) -> str:
  """`device check: N/M passed`, and how many were skipped."""
  counted = [check for check in checks if check.passed is not None]
  skipped = len(checks) - len(counted)
  return (f'device check: {sum(check.passed for check in counted)}/'
          f'{len(counted)} passed' + (f', {skipped} skipped' if skipped
                                      else ''))


def exit_code(checks: Sequence[Check]) -> int:
  return 1 if any(check.passed is False for check in checks) else 0


def _worst_check(name: str, limit: str, *, actual: Mapping[str, np.ndarray],
                 expected: Mapping[str, np.ndarray],
                 error: Callable[[np.ndarray, np.ndarray], float],
                 text: str, bound: float = 1.0) -> Check:
  """The largest error over expected's keys, each in actual, against bound."""
  missing = sorted(set(expected) - set(actual))
  if missing:
    return Check(name, f'missing {", ".join(missing)}', limit, False)
  errors = {key: error(actual[key], value) for key, value in expected.items()}
  key = max(errors, key=errors.get)
  return Check(name, f'{text.format(errors[key])} ({key})', limit,
               errors[key] <= bound)


def forward_check(name: str, *, actual: Mapping[str, np.ndarray],
                  expected: Mapping[str, np.ndarray]) -> Check:
  """The goldens' forward tolerance; `correct` and `almost` exact."""
  limit = '|d| <= 1e-5 + 1e-4|ref|; counts exact'
  for field in goldens.EXACT_FIELDS:
    if (field in expected and field in actual and
        float(actual[field]) != float(expected[field])):
      return Check(name, f'{field} {float(actual[field]):g} != '
                   f'{float(expected[field]):g}', limit, False)
  return _worst_check(name, limit, actual=actual, expected=expected,
                      error=goldens.forward_ratio, text='{:.3f} of tolerance')


def gradient_check(name: str, *, actual: Mapping[str, np.ndarray],
                   expected: Mapping[str, np.ndarray]) -> Check:
  return _worst_check(name, 'max|d| <= 1e-4 max|ref| per variable',
                      actual=actual, expected=expected,
                      error=goldens.gradient_ratio, text='{:.3f} of tolerance')


def weight_check(name: str, *, actual: Mapping[str, np.ndarray],
                 expected: Mapping[str, np.ndarray]) -> Check:
  return _worst_check(name, f'max|d| <= {goldens.WEIGHT_ATOL:g}',
                      actual=actual, expected=expected,
                      error=goldens.weight_error, text='max|d| {:.1e}',
                      bound=goldens.WEIGHT_ATOL)


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


def speed_check(name: str, *, timing: benchmark.Timing,
                peak: float) -> Check:
  """A step's examples/s and utilization of the float32 peak; always PASS."""
  return Check(name, f'{timing.batch / timing.median:.1f} ex/s, '
               f'{timing.median:.3f} s, MFU {timing.utilization(peak):.0%}',
               f'info; peak {peak / 1e9:.0f} GFLOP/s, load {timing.load:.1f}',
               True)


def memory_check(name: str, *, peak: Mapping[str, int],
                 limit: float = benchmark.MEMORY_LIMIT_BYTES) -> Check:
  """`benchmark.peak_memory`'s result against limit."""
  value, what = benchmark.counted_memory(peak)
  return Check(name, f'{value / _GIB:.2f} GiB {what}',
               f'<= {limit / _GIB:g} GiB', value <= limit)


def golden_checks(case: str, **settings) -> Iterator[Check]:
  """Forward values, gradients and two training steps of a golden case
  present here; settings for `devices.resolve_run_config`."""
  run = devices.resolve_run_config(**settings)
  model, shape, features, golden, _ = goldens.load_case(case, config=run)
  yield forward_check(f'golden {case} forward',
                      actual=goldens.forward_values(model, features),
                      expected=goldens.forward_fields(golden))
  if not any(key.startswith('grad/') for key in golden):
    return  # A forward-only case.
  names = list(model.tf1_variable_map())[:-1]  # Not global_step.
  grads, _ = model.compute_gradients(features)
  yield gradient_check(
      f'golden {case} gradients',
      actual={name: grad.numpy() for name, grad in zip(names, grads)},
      expected={name: golden[f'grad/{name}'] for name in names})
  reference_path = goldens.find(os.path.join(case, 'model.ckpt-2'))
  if reference_path is None:
    return
  trainer = training.Trainer(model, shape=shape, config=run)
  trainer.run(trainer.repeat(goldens.inputs(golden)), 2)
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
  """Each of dtypes against float32 on one random batch, on the same
  weights."""
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
  for dtype in dtypes:
    timing = benchmark.time_step(config, 'train', compute_dtype=dtype,
                                 repeats=repeats, num_gpus=1)
    yield speed_check(f'speed {dtype} ({config.name}, batch {timing.batch})',
                      timing=timing, peak=peak)


def memory_checks() -> Iterator[Check]:
  """The float32 MNIST step's peak memory, in a fresh process."""
  yield memory_check(
      f'memory float32 (mnist, batch '
      f'{devices.resolve_run_config().train_batch_size})',
      peak=benchmark.peak_memory_in_subprocess('float32'))


def split_cpu(num_devices: int = 2) -> None:
  """Without GPUs, makes the CPU num_devices logical devices (as the tests'
  conftest.py does) for the replicated step; call it before TensorFlow's
  runtime starts."""
  if tf.config.list_physical_devices('GPU'):
    return
  cpu = tf.config.list_physical_devices('CPU')[0]
  if tf.config.get_logical_device_configuration(cpu) is None:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def replica_devices() -> List[str]:
  """Every GPU, or without GPUs every logical CPU; fewer than two: none."""
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
  scale, its moments do. strategy None (one device): skipped.
  """
  name = 'replicated step'
  limit = f'max|d| <= {goldens.WEIGHT_ATOL:g}, weights, Adam moments'
  if strategy is None:
    yield Check(name, 'one device: nothing to replicate', limit, None)
    return
  replicas = strategy.num_replicas_in_sync
  batch = goldens.inputs(goldens.load_npz(os.path.join(case, 'golden.npz')))
  global_batch = math.lcm(len(batch['labels']), replicas)
  arrays = {key: np.concatenate([value] * (global_batch // len(value)))
            for key, value in batch.items()}
  results = {}
  for key, step_strategy, replicas_here in (('one', None, 1),
                                            ('replicated', strategy, replicas)):
    run = devices.resolve_run_config(num_gpus=replicas_here,
                                     train_batch_size=global_batch)
    model, shape, *_ = goldens.load_case(case, config=run,
                                         strategy=step_strategy)
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
      check, name=f'{name}, {replicas} x {global_batch // replicas} examples',
      limit=limit)


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checks', default=','.join(CHECKS),
                      help='comma separated subset of ' + ', '.join(CHECKS))
  parser.add_argument('--dtypes', default=','.join(NARROW_DTYPES),
                      help='comma separated subset of ' +
                      ', '.join(NARROW_DTYPES) + ', compared with float32 '
                      '(empty: float32 alone)')
  parser.add_argument('--cases', default=','.join(goldens.CASES),
                      help='golden cases to run, of those present: ' +
                      ', '.join(goldens.CASES))
  parser.add_argument('--repeats', type=int, default=DEFAULT_REPEATS,
                      help='timed training steps per dtype (after the '
                      'warm-up)')
  args = parser.parse_args(argv)
  for flag, allowed in (('checks', CHECKS), ('dtypes', NARROW_DTYPES),
                        ('cases', goldens.CASES)):
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
  run = devices.resolve_run_config()
  print(devices.describe(run, num_replicas=max(
      1, len(tf.config.list_logical_devices('GPU')))), flush=True)
  mnist = benchmark.CONFIGS['mnist']
  steps = []
  if 'goldens' in args.checks:
    cases = goldens.present(args.cases)
    absent = [case for case in args.cases if case not in cases]
    print('Goldens: ' + ', '.join(f'{case} ({folder})'
                                  for case, folder in cases.items()) +
          (f'; not found: {", ".join(absent)}' if absent else ''))
    steps += [lambda case=case: golden_checks(case, num_gpus=1)
              for case in cases]
  if 'dtypes' in args.checks and args.dtypes:
    steps.append(lambda: dtype_checks(mnist, dtypes=args.dtypes,
                                      batch=run.train_batch_size))
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
  # Ctrl-C: one line and exit code 130, as every command.
  cli.call_main(lambda argv: sys.exit(main(argv[1:])), sys.argv,
                program='device_check', arguments=True, process_ends=True)
