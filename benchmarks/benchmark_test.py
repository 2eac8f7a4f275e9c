"""Tests for the model benchmark: FLOP counts, timing and the figures."""

import os
import sys
import time
import types
from unittest import mock

import pytest
import tensorflow as tf

from benchmarks import benchmark
from benchmarks import step_profile
from models import devices
from models import training

_TINY = benchmark.Config('tiny', 'capsule', 'num_prime_capsules=2', 20, 1)


def test_no_benchmark_module_shadows_a_standard_one():
  # compare.py runs as a script, its folder first on the path: a
  # `benchmarks/profile.py` once broke TensorFlow's `import profile` there.
  here = os.path.dirname(os.path.abspath(benchmark.__file__))
  names = {name[:-len('.py')] for name in os.listdir(here)
           if name.endswith('.py')}
  assert not names & set(sys.stdlib_module_names)


def test_full_mnist_flops():
  # conv1: 28 -> 20 (VALID), 2*20*20 * 9*9 * 1*256 = 16,588,800.
  # conv_capsule1: 20 -> 6 (9x9, stride 2), 2*6*6 * 9*9 * 256*256
  #   = 382,205,952.
  # 32*6*6 = 1,152 primary capsules; votes 2*1152 * 8*160 = 2,949,120;
  # 3 routing iterations: 3 weighted sums + 2 agreements of 2*1152*160
  #   = 1,843,200.
  # recons: 2*(160*512 + 512*1024 + 1024*784) = 2,818,048.
  expected = 16_588_800 + 382_205_952 + 2_949_120 + 1_843_200 + 2_818_048
  assert benchmark.forward_flops(benchmark.CONFIGS['mnist']) == expected
  # The 156 GFLOP of a training step of 128 images.
  assert round(3 * 128 * expected / 1e9) == 156


def test_full_mnist_flops_of_the_fourier_convolution():
  # The primary capsules by `layers.fourier.conv2d`: 20x20 -> 6x6, DFT
  # length 5*2 + 9 = 19, 19 // 2 + 1 = 10 frequencies along the width:
  # width DFT 2 * 20 * 20*20 * 256 = 4,096,000; height DFT (Gauss's 3
  # stacks) 2 * 3*19 * 2*20 * 10 * 256 = 11,673,600; frequency products
  # 2 * 3 * 19*10 * 256*256 = 74,711,040; inverse along the height
  # 2 * 2*6 * 3*19 * 10 * 256 = 3,502,080, along the width
  # 2 * 6*6 * 20 * 256 = 368,640. A quarter of the direct 382,205,952.
  primary = 4_096_000 + 11_673_600 + 74_711_040 + 3_502_080 + 368_640
  expected = 16_588_800 + primary + 2_949_120 + 1_843_200 + 2_818_048
  assert benchmark.forward_flops(benchmark.CONFIGS['mnist'],
                                 conv_implementation='fourier') == expected


def test_utilization_counts_the_convolution_that_ran():
  # On this CPU the step ran the Fourier convolution: a step counted in the
  # direct convolution's FLOPs showed MFU 112%.
  native, fourier = (
      benchmark.time_step(_TINY, 'train', compute_dtype='float32', repeats=1,
                          train_batch_size=2, conv_implementation=conv)
      for conv in ('native', 'fourier'))
  assert native.flops == 3 * 2 * benchmark.forward_flops(_TINY)
  assert fourier.flops == 3 * 2 * benchmark.forward_flops(
      _TINY, conv_implementation='fourier')


def test_cifar10_flops():
  # conv1 SAME keeps 24x24: 2*24*24 * 81 * 3*256 = 71,663,616.
  # conv_capsule1 SAME, stride 2: 12x12, 2*12*12 * 81 * 256*512
  #   = 3,057,647,616.
  # 64*12*12 = 9,216 inputs: votes 2*9216*8*160 = 23,592,960, routing
  # 5 * 2*9216*160 = 14,745,600; no reconstruction.
  expected = 71_663_616 + 3_057_647_616 + 23_592_960 + 14_745_600
  assert benchmark.forward_flops(benchmark.CONFIGS['cifar10']) == expected


def test_baseline_flops():
  # conv1 28 -> 24: 2*24*24 * 25 * 1*512 = 14,745,600; pool 12.
  # conv2 12 -> 8: 2*8*8 * 25 * 512*256 = 419,430,400; pool 4.
  # fc1 2*4096*1024 = 8,388,608; softmax_layer 2*1024*10 = 20,480.
  expected = 14_745_600 + 419_430_400 + 8_388_608 + 20_480
  assert benchmark.forward_flops(benchmark.CONFIGS['baseline']) == expected


def test_time_measures_each_call_after_the_warmup():
  # Call i sleeps 10 * i ms: the warm-up calls are not timed.
  calls = []

  def step():
    calls.append(None)
    time.sleep(0.01 * len(calls))
    return tf.constant(0.0)

  seconds = benchmark.time_calls(step, repeats=3)
  assert len(calls) == benchmark.WARMUP_STEPS + 3
  for timed, call in zip(seconds, range(benchmark.WARMUP_STEPS + 1,
                                        len(calls) + 1)):
    # A sleep lasts at least as asked; a busy machine adds a little.
    assert 0.01 * call <= timed < 0.01 * call + 0.05


def test_format_computes_the_figures():
  timing = benchmark.Timing(config='tiny', step='train', batch=4,
                            seconds=[1.0, 4.0, 2.0], flops=6e9, load=0.5)
  # Median 2 s: 4 / 2 = 2 examples/s, 6 GFLOP per step, 6 / 2 = 3 GFLOP/s,
  # 75% of a 4 GFLOP/s peak.
  assert benchmark._format(timing, peak=4e9).split() == [
      'tiny', 'train', '4', '2.000', '1.000', '2.0', '6.0', '3.0', '75.0%',
      '0.50']


def test_benchmark_times_both_steps():
  timings = benchmark.benchmark(_TINY, compute_dtype='float32', repeats=2,
                                train_batch_size=3, eval_batch_size=2)
  assert [(t.step, t.batch) for t in timings] == [('train', 3), ('eval', 2)]
  # With the convolution this machine resolves.
  flops = benchmark.forward_flops(
      _TINY, devices.resolve_run_config().conv_implementation)
  assert [t.flops for t in timings] == [3 * 3 * flops, 2 * flops]
  assert [len(t.seconds) for t in timings] == [2, 2]


def test_training_loop_times_each_call_after_the_first(capsys):
  """Calls of 2 steps: the first (the trace) is left out."""
  calls = []

  def train(hparams, *, summary_dir, model_type, max_steps, input_fn, config):
    calls.append((hparams.num_prime_capsules, model_type, max_steps,
                  config.save_step, config.log_every_steps))
    batch = next(iter(input_fn('train', config.train_batch_size)))
    assert batch['images'].shape == (config.train_batch_size, 1, 20, 20)
    print(f'step 6 in {summary_dir}')  # Not on the benchmark's output.
    # A call of 1 step: a float16 step skipped on overflow.
    return types.SimpleNamespace(step=6, intervals=[
        (2, 2, 9.0), (4, 2, 1.0), (5, 1, 0.75), (6, 1, 0.5)])

  with mock.patch.object(training, 'train', train):
    seconds = benchmark.training_loop(_TINY, compute_dtype='float32',
                                      windows=2, log_every_steps=2)
  assert calls == [(2, 'capsule', 6, 6, 2)]
  assert seconds == [0.5, 0.75, 0.5]
  assert not capsys.readouterr().out


def test_profile_groups_the_ops_of_a_real_step():
  seconds = step_profile.profile(_TINY, compute_dtype='float32', batch=4)
  assert seconds.pop('wall') > 0
  # The profiler's op table was read and its ops grouped: the tiny model's
  # primary-capsule products and DFTs, votes, conv1 and Adam ran.
  for group in ('primary capsules: frequency products',
                'primary capsules: DFTs (matmuls)', 'class capsules: votes',
                'conv1', 'Adam'):
    assert seconds[group] > 0, group


def test_profile_groups_by_name_then_type():
  times = {
      ('_MklBatchMatMulV2',
       'conv_capsule1_1/fourier_conv2d/frequency_products/MatMul'): 0.6,
      ('_MklMatMul', 'fourier_conv2d_grad/MatMul_7'): 0.3,
      ('_MklTranspose', 'fourier_conv2d_grad/transpose'): 0.06,
      ('_MklBatchMatMulV2', 'capsule2_1/MatMul'): 0.3,
      ('Sqrt', 'adam/Sqrt_5'): 0.03, ('Sqrt', 'squash/Sqrt'): 0.06}
  assert step_profile.grouped(times, steps=3) == pytest.approx({
      'primary capsules: frequency products': 0.2,
      'primary capsules: DFTs (matmuls)': 0.1,
      'primary capsules: transposes, casts, reshapes': 0.02,
      'class capsules: votes': 0.1, 'Adam': 0.01, 'other: Sqrt': 0.02})


def _resident_bytes():
  """This process's resident set now, from /proc/self/statm (in pages)."""
  with open('/proc/self/statm') as statm:
    return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


@pytest.mark.skipif(not os.path.exists('/proc/self/statm'),
                    reason='needs Linux /proc')
def test_peak_memory_reads_resident_set():
  resident = _resident_bytes()
  memory = benchmark.peak_memory(_TINY, compute_dtype='bfloat16',
                                 train_batch_size=2)
  # The peak is at least what is resident now (TensorFlow alone is hundreds
  # of MB), and it is the kernel's own record of it.
  assert resident <= memory['rss']
  with open('/proc/self/status') as status:
    peak_kib = [int(line.split()[1]) for line in status
                if line.startswith('VmHWM:')]
  assert memory['rss'] == peak_kib[0] * 1024


def test_memory_verdict(capsys):
  benchmark._print_memory({'rss': 2**30, 'device': 2 * 2**30})
  assert capsys.readouterr().out == (
      'peak memory of an MNIST training step (batch 128): rss 1.00 GiB, '
      'device 2.00 GiB (OVER the 1.6 GiB limit)\n')
  benchmark._print_memory({'rss': 1.4 * 2**30})
  assert 'rss 1.40 GiB (under the 1.6 GiB limit)' in capsys.readouterr().out


def test_matmul_peak_from_a_known_timing():
  # The best of the timed products counts: 2 * 64^3 FLOPs in 0.25 s.
  with mock.patch.object(benchmark, 'time_calls',
                         return_value=[0.5, 0.25, 0.4]) as timed:
    peak = benchmark.matmul_peak(size=64)
  assert peak == 2 * 64**3 / 0.25
  assert timed.call_args.kwargs['repeats'] == benchmark.PEAK_MATMUL_REPEATS


def test_unknown_config_is_rejected():
  with pytest.raises(SystemExit, match='imagenet'):
    benchmark.main(['--configs', 'mnist,imagenet', '--skip_memory'])
