"""Tests for paper/experiments.py: the paper's numbers and buildable entries."""

import os
import re

import numpy as np
import pytest

from input_data import datasets
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config
from paper import experiments

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PAPER_MD = os.path.join(_ROOT, '..', 'shared', 'PAPER.md')

# The paper's test errors in % (std where it gives one): Table 1 (MNIST,
# MultiMNIST), section 7 (CIFAR10, smallNORB, SVHN), section 5.2 (affNIST:
# 100 - the accuracies 79% and 66%).
_PAPER = {
    'mnist_baseline': (0.39, None),
    'mnist_r1': (0.34, 0.032),
    'mnist_r1_recon': (0.29, 0.011),
    'mnist_r3': (0.35, 0.036),
    'mnist_r3_recon': (0.25, 0.005),
    'multimnist_baseline': (8.1, None),
    'multimnist_r1_recon': (7.5, None),
    'multimnist_r3_recon': (5.2, None),
    'cifar10_ensemble': (10.6, None),
    'smallnorb': (2.7, None),
    'svhn': (4.3, None),
    'affnist_capsule': (21.0, None),
    'affnist_baseline': (34.0, None),
}
# `| CapsNet | 3 | yes | 0.25 +- 0.005 |`, `| baseline CNN | - | - | 0.39 |`.
_TABLE_1_ROW = re.compile(
    r'^\| (baseline CNN|CapsNet) \| (-|\d) \| (-|yes|no) \| '
    r'([\d.]+)(?: \+- ([\d.]+))? \|$', re.MULTILINE)
_MULTIMNIST_LINE = re.compile(
    r'baseline (\d+(?:\.\d+)?); CapsNet routing 1 with\s+'
    r'reconstruction (\d+(?:\.\d+)?); '
    r'routing 3 with reconstruction (\d+(?:\.\d+)?)')


def _paper_md():
  if not os.path.exists(_PAPER_MD):
    pytest.skip(f'{_PAPER_MD} is absent: the table is checked against the '
                f'values written here only')
  with open(_PAPER_MD) as file:
    return file.read()


def test_names_and_numbers_are_the_papers():
  assert list(experiments.EXPERIMENTS) == list(_PAPER)
  for name, (error, std) in _PAPER.items():
    paper = experiments.EXPERIMENTS[name].paper
    assert (paper.error, paper.std) == (error, std), name


def test_table_1_matches_paper_md():
  text = _paper_md()
  rows = _TABLE_1_ROW.findall(text)
  assert len(rows) == 5, rows
  for model, routing, remake, error, std in rows:
    name = ('mnist_baseline' if model == 'baseline CNN' else
            f'mnist_r{routing}' + ('_recon' if remake == 'yes' else ''))
    paper = experiments.EXPERIMENTS[name].paper
    assert paper.error == float(error), name
    assert paper.std == (float(std) if std else None), name
  multi = _MULTIMNIST_LINE.search(text)
  assert multi, 'the MultiMNIST results line of PAPER.md changed'
  for name, error in zip(('multimnist_baseline', 'multimnist_r1_recon',
                          'multimnist_r3_recon'), multi.groups()):
    assert experiments.EXPERIMENTS[name].paper.error == float(error)


def test_table_1_hparams():
  values = {name: hparams_lib.default_hparams().parse(
      experiments.EXPERIMENTS[name].hparams)
            for name in _PAPER if name.startswith('mnist_r')}
  assert {name: (h.routing, h.remake) for name, h in values.items()} == {
      'mnist_r1': (1, False), 'mnist_r1_recon': (1, True),
      'mnist_r3': (3, False), 'mnist_r3_recon': (3, True)}
  for name in ('multimnist_baseline', 'multimnist_r1_recon',
               'multimnist_r3_recon'):
    entry = experiments.EXPERIMENTS[name]
    assert hparams_lib.default_hparams().parse(
        entry.hparams).decay_steps == 20000
    assert (entry.num_targets, entry.data_options) == (
        2, {'multi_mnist_shift': 'paper'})


def test_every_entry_names_a_model_data_set_and_steps():
  for entry in experiments.EXPERIMENTS.values():
    hparams_lib.default_hparams().parse(entry.hparams)  # Raises if unknown.
    assert entry.model in registry.MODELS, entry.name
    for dataset in [entry.dataset, entry.test_dataset or entry.dataset] + [
        other.dataset for other in entry.other_tests]:
      assert dataset in datasets.DATASETS, entry.name
    assert entry.eval_size % run_config.EVAL_BATCH_SIZE == 0, entry.name
  assert experiments.EXPERIMENTS['mnist_r3'].steps == 300000
  assert experiments.EXPERIMENTS['cifar10_ensemble'].steps == 600000
  assert experiments.EXPERIMENTS['cifar10_ensemble'].seeds == 7
  assert experiments.EXPERIMENTS['cifar10_ensemble'].ensemble
  assert experiments.EXPERIMENTS['affnist_capsule'].test_dataset == 'affnist'


def _num_params(name, height):
  entry = experiments.EXPERIMENTS[name]
  model = registry.build_model(
      hparams_lib.default_hparams().parse(entry.hparams),
      model_type=entry.model,
      shape=model_lib.DataShape(height, 1, 10, entry.num_targets))
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize('name,height,count,paper_millions', [
    # models/conv_model_test.py derives 35,445,522.
    ('mnist_baseline', 28, 35_445_522, 35.4),
    # models/capsule_model_test.py derives 8,215,728; without the decoder's
    # 1,411,344: 6,804,384.
    ('mnist_r3_recon', 28, 8_215_728, 8.2),
    ('mnist_r3', 28, 6_804_384, 6.8),
    # 36x36: conv1 -> 28x28, primary capsules 32*10*10 = 3,200:
    # 20,992 + 5,308,672 + (3200*8*160 + 160) + decoder (160*512 + 512) +
    # (512*1024 + 1024) + (1024*1296 + 1296) = 11,361,968.
    ('multimnist_r3_recon', 36, 11_361_968, 11.36),
    # SAME: 36 -> 18 -> 9 after the poolings: (25*512 + 512) +
    # (25*512*256 + 256) + (9*9*256*1024 + 1024) + (1024*10 + 10). The
    # paper's 24.56M differs in the last digit.
    ('multimnist_baseline', 36, 24_535_306, 24.5),
])
def test_parameter_counts_match_the_paper(name, height, count, paper_millions):
  num_params = _num_params(name, height)
  assert num_params == count
  assert round(num_params / 1e6, len(str(paper_millions).split('.')[1])) == (
      paper_millions)
