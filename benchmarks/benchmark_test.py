"""Tests for the model benchmark: FLOP counts and a run on a tiny model."""

import pytest

from benchmarks import benchmark

_TINY = benchmark.Config('tiny', 'capsule', 'num_prime_capsules=2', 20, 1)


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


def test_benchmark_times_both_steps():
  timings = benchmark.benchmark(_TINY, 'float32', repeats=2, train_batch=3,
                                eval_batch=2)
  assert [(t.step, t.batch) for t in timings] == [('train', 3), ('eval', 2)]
  flops = benchmark.forward_flops(_TINY)
  assert [t.flops for t in timings] == [3 * 3 * flops, 2 * flops]
  for timing in timings:
    assert len(timing.seconds) == 2 and timing.median > 0
    assert 'tiny' in benchmark._format(timing, peak=1e9)


def test_peak_memory_reads_resident_set():
  memory = benchmark.peak_memory(_TINY, 'bfloat16', batch=2)
  assert memory['rss'] > 0


def test_matmul_peak_is_positive():
  assert benchmark.matmul_peak(size=64) > 0


def test_unknown_config_is_rejected():
  with pytest.raises(SystemExit, match='imagenet'):
    benchmark.main(['--configs', 'mnist,imagenet', '--skip_memory'])
