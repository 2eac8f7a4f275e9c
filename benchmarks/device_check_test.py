"""Tests for the device check: the table, each check's verdict on numbers
just inside and just outside its limit, and each check run on tiny inputs
(the replicated step on the two logical CPUs conftest.py makes)."""

import os
import signal
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

from benchmarks import benchmark
from benchmarks import compare
from benchmarks import device_check
from models import goldens
from models import run_config

_TINY = benchmark.Config('tiny', 'capsule', 'num_prime_capsules=2', 20, 1)
_GIB = 2**30
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check(passed):
  return device_check.Check('name', 'value', 'limit', passed)


def test_summary_counts_the_passed_and_the_skipped():
  checks = [_check(True), _check(False), _check(True), _check(None)]
  assert device_check.summary(checks) == 'device check: 2/3 passed, 1 skipped'
  assert device_check.exit_code(checks) == 1
  assert device_check.summary(checks[:1]) == 'device check: 1/1 passed'
  assert device_check.exit_code([_check(True), _check(None)]) == 0


def test_rows_line_up_under_the_header():
  header = device_check.header()
  row = device_check.format_check(device_check.Check(
      'golden capsule_tiny forward', '0.004 of tolerance (remakes_0)',
      'max|d| <= 2e-05', False))
  assert header.split() == ['check', 'measured', 'limit', 'result']
  assert row.index('0.004') == header.index('measured')
  assert row.index('max|d|') == header.index('limit')
  assert row.index('FAIL') == header.index('result')
  assert device_check.format_check(_check(None)).endswith('SKIP')


def test_forward_check_at_and_beyond_the_tolerance():
  logits = np.array([[0.5, 0.0, -2.0]])
  tolerance = 1e-5 + 1e-4 * np.abs(logits)
  expected = dict(logits=logits, correct=np.float32(1))

  def check(actual):
    return device_check.forward_check('forward', actual=actual,
                                      expected=expected)

  within = check(dict(logits=logits + 0.9 * tolerance, correct=1))
  assert (within.value, within.passed) == ('0.900 of tolerance (logits)', True)
  # One logit perturbed past the tolerance fails the whole case.
  perturbed = logits.copy()
  perturbed[0, 2] -= 1.1 * tolerance[0, 2]
  beyond = check(dict(logits=perturbed, correct=1))
  assert (beyond.value, beyond.passed) == ('1.100 of tolerance (logits)',
                                           False)
  counts = check(dict(logits=logits, correct=0))
  assert (counts.value, counts.passed) == ('correct 0 != 1', False)
  missing = check(dict(correct=1))
  assert (missing.value, missing.passed) == ('missing logits', False)


def test_gradient_check_per_variable():
  expected = dict(weights=np.array([1.0, -2.0]), biases=np.zeros(2))

  def check(weights, biases=np.zeros(2)):
    return device_check.gradient_check(
        'gradients', actual=dict(weights=weights, biases=biases),
        expected=expected)

  # The bound is 1e-4 * max|ref| = 2e-4 for weights.
  assert check(np.array([1.00015, -2.0])).value == (
      '0.750 of tolerance (weights)')
  assert check(np.array([1.00015, -2.0])).passed
  assert not check(np.array([1.0, -2.00025])).passed
  # A zero gradient must stay zero.
  nonzero = check(expected['weights'], np.array([0.0, 1e-9]))
  assert (nonzero.value, nonzero.passed) == ('inf of tolerance (biases)',
                                             False)


def test_weight_check_at_and_beyond_the_tolerance():
  expected = dict(w=np.zeros(3))
  assert device_check.weight_check(
      'steps', actual=dict(w=np.array([0, 1.9e-5, 0])),
      expected=expected).passed
  beyond = device_check.weight_check(
      'steps', actual=dict(w=np.array([0, 0, -2.1e-5])), expected=expected)
  assert (beyond.value, beyond.passed) == ('max|d| 2.1e-05 (w)', False)


def test_band_fails_too_close_and_too_far():
  float32_logits = np.full([2, 10], 0.5)
  # bfloat16's unit roundoff is 2**-8: band 6.1e-5 .. 6.25e-2 relative.
  assert device_check.band('bfloat16') == (2.0**-14, 2.0**-4)

  def check(difference):
    return device_check.band_check(
        'band', logits=float32_logits + difference,
        float32_logits=float32_logits, dtype='bfloat16')

  assert check(0.5 * 2.0**-8).passed
  assert check(0.5 * 2.0**-8).value == '3.9e-03 of max|logit| 0.500'
  assert not check(0.0).passed  # float32 computed where bfloat16 was asked.
  assert not check(0.5 * 2.0**-3).passed


def test_finite_check():
  weights = [np.ones(3)]
  assert device_check.finite_check('step', loss=0.1, weights=weights,
                                   applied=True).passed
  nan = device_check.finite_check('step', loss=0.1, weights=[np.array(
      [1.0, np.nan])], applied=True)
  assert (nan.value, nan.passed) == (
      'loss 0.1, weights NOT finite, applied', False)
  assert not device_check.finite_check('step', loss=np.inf, weights=weights,
                                       applied=False).passed


def test_speed_is_information():
  timing = benchmark.Timing(config='tiny', step='train', batch=4,
                            seconds=[1.0, 4.0, 2.0], flops=6e9, load=0.5)
  check = device_check.speed_check('speed', timing=timing, peak=4e9)
  # Median 2 s: 2 examples/s; 6 GFLOP in 2 s is 75% of 4 GFLOP/s.
  assert check.value == '2.0 ex/s, 2.000 s, MFU 75%'
  assert check.limit == 'info; peak 4 GFLOP/s, load 0.5'
  assert check.passed


def test_memory_against_the_limit():
  assert not device_check.memory_check('memory',
                                       peak=dict(rss=1.7 * _GIB)).passed
  # On a GPU the allocator's peak counts, not the host's resident set.
  on_gpu = device_check.memory_check('memory',
                                     peak=dict(rss=3 * _GIB, device=_GIB))
  assert (on_gpu.value, on_gpu.passed) == (
      '1.00 GiB GPU:0 allocator peak', True)


def test_memory_is_measured_in_a_fresh_process():
  with mock.patch.object(compare, 'json_line',
                         return_value=dict(rss=_GIB)) as probe:
    [check] = device_check.memory_checks()
  probe.assert_called_once_with([sys.executable, '-m', 'benchmarks.benchmark',
                                 '--memory_probe', '--compute_dtype',
                                 'float32'])
  assert check.passed


def test_golden_cases_need_all_their_files():
  assert goldens.present(['capsule_cifar_tiny']) == {
      'capsule_cifar_tiny': 'testdata/goldens'}
  # Without ../shared/goldens, capsule_tiny has its config.json only.
  with mock.patch.object(goldens, 'SEARCH_PATH', goldens.SEARCH_PATH[:1]):
    present = goldens.present(['capsule_tiny', 'capsule_cifar_tiny'])
  assert present == {'capsule_cifar_tiny': 'testdata/goldens'}


def test_perturbed_forward_fails_the_golden_and_the_command(capsys):
  forward_values = goldens.forward_values

  def perturbed(model, features):
    values = forward_values(model, features)
    values['logits'] = values['logits'] + 1e-3
    return values

  with mock.patch.object(goldens, 'forward_values', perturbed):
    code = device_check.main(['--checks=goldens',
                              '--cases=capsule_cifar_tiny'])
  lines = capsys.readouterr().out.splitlines()
  assert code == 1
  assert lines[0].startswith('Devices: CPU (')
  assert lines[1] == 'Goldens: capsule_cifar_tiny (testdata/goldens)'
  rows = {line.split('  ')[0]: line.split()[-1] for line in lines[3:-1]}
  assert rows == {'golden capsule_cifar_tiny forward': 'FAIL',
                  'golden capsule_cifar_tiny gradients': 'PASS',
                  'golden capsule_cifar_tiny 2 Adam steps': 'PASS'}
  assert lines[-1] == 'device check: 2/3 passed'


def test_float16_on_a_tiny_model():
  checks = list(device_check.dtype_checks(_TINY, dtypes=['float16'],
                                          batch=4))
  assert [check.name for check in checks] == [
      'float16 logits vs float32 (tiny)', 'float16 training step (tiny)']
  assert all(check.passed for check in checks), checks


def test_speed_on_a_tiny_model():
  with mock.patch.object(benchmark, 'matmul_peak', return_value=1e11):
    [check] = device_check.speed_checks(_TINY, dtypes=['float32'], repeats=1)
  assert check.name == (f'speed float32 (tiny, batch '
                        f'{run_config.TRAIN_BATCH_SIZE})')
  assert check.passed


def test_replicated_step_on_two_logical_cpus(two_cpu_strategy):
  device_check.split_cpu()  # Split already: changes nothing.
  assert device_check.replica_devices() == ['/device:CPU:0', '/device:CPU:1']
  [check] = device_check.replica_checks(two_cpu_strategy)
  assert check.name == 'replicated step, 2 x 1 examples'
  assert check.passed, check
  [skipped] = device_check.replica_checks(None)
  assert skipped.passed is None


def test_unknown_names_are_refused():
  with pytest.raises(SystemExit):
    device_check.main(['--checks=goldens,speedy'])
  with pytest.raises(SystemExit):
    device_check.main(['--dtypes=float64'])


def test_ctrl_c_ends_the_command_in_one_line():
  command = subprocess.Popen(
      [sys.executable, '-m', 'benchmarks.device_check', '--checks=goldens',
       '--cases=capsule_cifar_tiny'], cwd=_ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  for line in command.stdout:  # The golden case runs after the header.
    if line.startswith('check '):
      break
  command.send_signal(signal.SIGINT)
  _, stderr = command.communicate(timeout=120)
  assert command.returncode == 130
  assert stderr == 'device_check: interrupted by SIGINT\n'
