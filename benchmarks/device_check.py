"""Does this machine compute what the reference computed, and how fast?

The first command to run on a new machine, on GPUs above all; docs/gpu.md
says what each check compares and what the table and exit code mean:

  python -m benchmarks.device_check
  python -m benchmarks.device_check --checks goldens,dtypes,memory,replicas
  python -m benchmarks.device_check --dtypes bfloat16 --repeats 10
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
from typing import Iterator, List, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import benchmark
from benchmarks import compare
from layers import variables as layer_variables
from models import devices
from models import goldens
from models import training

CHECKS = ('goldens', 'dtypes', 'speed', 'memory', 'replicas', 'driver')
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
_WIDTHS = (44, 38, 38)


def _row(*cells: str) -> str:
  return ' '.join(cell.ljust(width)
                  for cell, width in zip(cells, _WIDTHS + (0,))).rstrip()


HEADER = _row('check', 'measured', 'limit', 'result')


@dataclasses.dataclass(frozen=True)
class Check:
  """One row of the table; passed None: could not run here (SKIP)."""
  name: str
  value: str
  limit: str
  passed: Optional[bool]

  def __str__(self) -> str:
    return _row(self.name, self.value, self.limit,
                {True: 'PASS', False: 'FAIL', None: 'SKIP'}[self.passed])


def summary(checks: Sequence[Check]) -> str:
  """`device check: N/M passed`, and how many were skipped."""
  counted = [check for check in checks if check.passed is not None]
  skipped = len(checks) - len(counted)
  return (f'device check: {sum(check.passed for check in counted)}/'
          f'{len(counted)} passed' + (f', {skipped} skipped' if skipped
                                      else ''))


def exit_code(checks: Sequence[Check]) -> int:
  return 1 if any(check.passed is False for check in checks) else 0


# Per kind of golden value: the limit shown, the error of one array, how
# the largest reads, and its bound.
_TOLERANCES = {
    'forward': ('|d| <= 1e-5 + 1e-4|ref|; counts exact',
                goldens.forward_ratio, '{:.3f} of tolerance', 1.0),
    'gradients': ('max|d| <= 1e-4 max|ref| per variable',
                  goldens.gradient_ratio, '{:.3f} of tolerance', 1.0),
    'weights': (f'max|d| <= {goldens.WEIGHT_ATOL:g}', goldens.weight_error,
                'max|d| {:.1e}', goldens.WEIGHT_ATOL),
    'replicas': (f'max|d| <= {goldens.WEIGHT_ATOL:g}, weights, Adam moments',
                 goldens.weight_error, 'max|d| {:.1e}', goldens.WEIGHT_ATOL)}


def golden_check(name: str, kind: str, *, actual: Mapping[str, np.ndarray],
                 expected: Mapping[str, np.ndarray]) -> Check:
  """The largest error over expected's keys, each in actual, against the
  `_TOLERANCES` of kind; `goldens.EXACT_FIELDS` exact."""
  limit, error, text, bound = _TOLERANCES[kind]
  missing = sorted(set(expected) - set(actual))
  if missing:
    return Check(name, f'missing {", ".join(missing)}', limit, False)
  for field in goldens.EXACT_FIELDS:
    if field in expected and float(actual[field]) != float(expected[field]):
      return Check(name, f'{field} {float(actual[field]):g} != '
                   f'{float(expected[field]):g}', limit, False)
  errors = {key: error(actual[key], value) for key, value in expected.items()}
  key = max(errors, key=errors.get)
  return Check(name, f'{text.format(errors[key])} ({key})', limit,
               errors[key] <= bound)


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


def driver_check() -> Check:
  """The NVIDIA driver against the oldest for the GPUs in use; without a
  driver: SKIP."""
  version = devices.driver_version()
  needed = devices.driver_needed(tf.config.get_visible_devices('GPU'))
  return Check('NVIDIA driver', devices.dotted(version) if version else 'none',
               f'>= {devices.dotted(needed)} (CUDA '
               f'{tf.sysconfig.get_build_info().get("cuda_version")})',
               version and version >= needed)


def golden_checks(case: str) -> Iterator[Check]:
  """Forward values, gradients and two training steps of a golden case."""
  run = devices.resolve_run_config(num_gpus=1)
  model, tensors, golden, _ = goldens.load_case(case, config=run.model)
  yield golden_check(f'golden {case} forward', 'forward',
                     actual=goldens.forward_values(model, tensors),
                     expected=goldens.forward_fields(golden))
  if not any(key.startswith('grad/') for key in golden):
    return  # A forward-only case.
  names = list(model.tf1_variable_map())[:-1]  # Not global_step.
  grads, _ = model.compute_gradients(tensors)
  yield golden_check(
      f'golden {case} gradients', 'gradients',
      actual={name: grad.numpy() for name, grad in zip(names, grads)},
      expected={name: golden[f'grad/{name}'] for name in names})
  reference_path = goldens.find(os.path.join(case, 'model.ckpt-2'))
  if reference_path is None:
    return
  trainer = training.Trainer(model, config=run)
  trainer.run(trainer.repeat(goldens.inputs(golden)), 2)
  reference = tf.train.load_checkpoint(reference_path)
  ours = {name: var.numpy() for name, var in dict(
      model.tf1_variable_map(), **model.slot_map()).items()
          if reference.has_tensor(name)}
  # global_step is among them: a step too many or too few is an error of 1.
  yield golden_check(
      f'golden {case} 2 Adam steps', 'weights', actual=ours,
      expected={name: reference.get_tensor(name) for name in ours})


def dtype_checks(config: benchmark.Config, *, dtypes: Sequence[str],
                 batch: int) -> Iterator[Check]:
  """Each of dtypes against float32: one random batch, the same weights."""
  tensors = benchmark.random_batch(config, batch=batch)
  keras.utils.set_random_seed(SEED)

  def trainer(dtype):
    return benchmark.trainer(config, compute_dtype=dtype, num_gpus=1,
                             train_batch_size=batch)

  reference = trainer('float32')
  weights = [var.numpy() for var in reference.model.trainable_variables]
  float32_logits = reference.model.inference(tensors).logits.numpy()
  for dtype in dtypes:
    step = trainer(dtype)
    for var, value in zip(step.model.trainable_variables, weights):
      var.assign(value)
    logits = step.model.inference(tensors).logits.numpy()
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
  """The training step's examples/s and utilization of the float32 peak in
  each dtype, on one device; information, always PASS."""
  peak = benchmark.matmul_peak()
  for dtype in dtypes:
    timing = benchmark.time_step(config, 'train', compute_dtype=dtype,
                                 repeats=repeats, num_gpus=1)
    yield Check(
        f'speed {dtype} ({config.name}, batch {timing.batch})',
        f'{timing.batch / timing.median:.1f} ex/s, {timing.median:.3f} s, '
        f'MFU {timing.utilization(peak):.0%}',
        f'info; peak {peak / 1e9:.0f} GFLOP/s, load {timing.load:.1f}', True)


def memory_checks(limit: float = benchmark.MEMORY_LIMIT_BYTES
                 ) -> Iterator[Check]:
  """The float32 MNIST step's peak memory in a fresh process, against limit."""
  value, what = benchmark.counted_memory(
      benchmark.peak_memory_in_subprocess('float32'))
  yield Check(f'memory float32 (mnist, batch '
              f'{devices.resolve_run_config().train_batch_size})',
              f'{value / 2**30:.2f} GiB {what}', f'<= {limit / 2**30:g} GiB',
              value <= limit)


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
  if strategy is None:
    yield Check('replicated step', 'one device: nothing to replicate',
                _TOLERANCES['replicas'][0], None)
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
    model = goldens.load_case(case, config=run.model,
                              strategy=step_strategy).model
    trainer = training.Trainer(model, strategy=step_strategy, config=run)
    # Consecutive replica batches go to consecutive replicas.
    batches = tf.data.Dataset.from_tensor_slices(arrays).batch(
        trainer.replica_batch_size).repeat()
    trainer.run(trainer.distribute(lambda _, batches=batches: batches), 1)
    # Each replica's copy of each variable, keyed `name@replica`.
    results[key] = {
        f'{name}@{i}': local.numpy() for name, var in dict(
            model.tf1_variable_map(), **model.slot_map()).items()
        for i, local in enumerate(trainer.strategy.experimental_local_results(
            getattr(var, 'value', var)))}
  # Every replica's copy against the one device's.
  expected = {key: results['one'][key.rsplit('@', 1)[0] + '@0']
              for key in results['replicated']}
  yield golden_check(
      f'replicated step, {replicas} x {global_batch // replicas} examples',
      'replicas', actual=results['replicated'], expected=expected)


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  compare.add_subset(parser, '--checks', CHECKS)
  compare.add_subset(parser, '--dtypes', NARROW_DTYPES,
                     'compared with float32 (empty: float32 alone)')
  compare.add_subset(parser, '--cases', goldens.CASES,
                     'the golden cases to run, of those present')
  parser.add_argument('--repeats', type=int, default=DEFAULT_REPEATS,
                      help='timed training steps per dtype (after the '
                      'warm-up)')
  return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
  """Runs the checks, prints the table; returns the exit code."""
  args = _parse_args(argv)
  setup = devices.setup(num_gpus=max(
      1, len(tf.config.list_physical_devices('GPU'))))
  split_cpu()
  mnist = benchmark.CONFIGS['mnist']
  steps = [lambda: [driver_check()]] if 'driver' in args.checks else []
  if 'goldens' in args.checks:
    cases = goldens.present(args.cases)
    absent = [case for case in args.cases if case not in cases]
    print('Goldens: ' + ', '.join(f'{case} ({folder})'
                                  for case, folder in cases.items()) +
          (f'; not found: {", ".join(absent)}' if absent else ''))
    steps += [lambda case=case: golden_checks(case) for case in cases]
  if 'dtypes' in args.checks and args.dtypes:
    steps.append(lambda: dtype_checks(mnist, dtypes=args.dtypes,
                                      batch=setup.config.train_batch_size))
  if 'speed' in args.checks:
    steps.append(lambda: speed_checks(
        mnist, dtypes=['float32'] + args.dtypes, repeats=args.repeats))
  if 'memory' in args.checks:
    steps.append(memory_checks)
  if 'replicas' in args.checks:
    names = replica_devices()
    steps.append(lambda: replica_checks(
        tf.distribute.MirroredStrategy(names) if names else None))
  print(HEADER, flush=True)
  checks = []
  for step in steps:
    for check in step():
      checks.append(check)
      print(check, flush=True)
  print(summary(checks), flush=True)
  return exit_code(checks)


if __name__ == '__main__':
  # Retracing notices: each golden case traces the routing at its shapes.
  tf.get_logger().setLevel('ERROR')
  # Ctrl-C: one line and exit code 130, as every command.
  cli.call_main(lambda argv: sys.exit(main(argv[1:])), sys.argv,
                program='device_check', arguments=True, process_ends=True)
