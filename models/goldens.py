"""The reference's golden numbers: where they are, their tolerances, a case.

The small cases are copied into `testdata/goldens/`; the rest are read from
`../shared/goldens` beside the repository when it is there. The tolerances
are the goldens README's (float32, another order of operations): they leave
room for reordering, not for another formula. The tests (through
`golden_utils`, which skips what is absent) and `benchmarks.device_check`
both read the goldens here.
"""

import collections
import json
import math
import os
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from models import checkpoints
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH_PATH = (os.path.join(_ROOT, 'testdata', 'goldens'),
               os.path.join(_ROOT, '..', 'shared', 'goldens'))
CASES = ('capsule_tiny', 'capsule_cifar_tiny', 'capsule_multimnist_tiny',
         'baseline_small')
FORWARD_ATOL = 1e-5
FORWARD_RTOL = 1e-4
GRADIENT_RTOL = 1e-4
WEIGHT_ATOL = 2e-5
EXACT_FIELDS = ('correct', 'almost')
_CASE_FILES = ('config.json', 'golden.npz', 'model.ckpt-0')

# A case's model restored from its ckpt-0, its data shape, the feature dict
# of its input batch, its golden arrays and its config.json.
Case = collections.namedtuple(
    'Case', ('model', 'shape', 'features', 'golden', 'config'))


class MissingGolden(FileNotFoundError):
  """A golden file that is in no folder of SEARCH_PATH."""

  def __init__(self, relative_path: str):
    super().__init__(f'golden {relative_path} is neither in testdata/goldens '
                     f'nor in ../shared/goldens')


def find(relative_path: str) -> Optional[str]:
  """Path of a golden file or checkpoint prefix; None when no copy is here."""
  for root in SEARCH_PATH:
    path = os.path.join(root, relative_path)
    if os.path.exists(path) or os.path.exists(path + '.index'):
      return path
  return None


def path(relative_path: str) -> str:
  """Like find; raises MissingGolden when no copy is here."""
  found = find(relative_path)
  if found is None:
    raise MissingGolden(relative_path)
  return found


def load_npz(relative_path: str) -> Dict[str, np.ndarray]:
  with np.load(path(relative_path)) as data:
    return {key: data[key] for key in data.files}


def load_config(case: str) -> dict:
  with open(path(os.path.join(case, 'config.json'))) as f:
    return json.load(f)


def present(names: Sequence[str]) -> Dict[str, str]:
  """The cases of names whose files are all here, and the folders holding
  them (a case's files may come from both)."""
  cases = {}
  for case in names:
    paths = [find(os.path.join(case, name)) for name in _CASE_FILES]
    if all(paths):
      folders = {os.path.relpath(os.path.dirname(os.path.dirname(found)),
                                 _ROOT) for found in paths}
      cases[case] = ', '.join(sorted(folders, key=len))
  return cases


def inputs(golden: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The input batch of a case's golden arrays, keyed as the readers key it."""
  return {key[len('input/'):]: value for key, value in golden.items()
          if key.startswith('input/')}


def load_case(case: str, *,
              config: run_config_lib.RunConfig = run_config_lib.RunConfig(),
              strategy: Optional[tf.distribute.Strategy] = None) -> Case:
  """The case's model, built under strategy's scope (None: one device)."""
  case_config = load_config(case)
  golden = load_npz(os.path.join(case, 'golden.npz'))
  shape = model_lib.DataShape(case_config['height'], case_config['depth'],
                              case_config['num_classes'],
                              case_config['num_targets'])
  hparams = hparams_lib.default_hparams().parse(
      case_config['hparams_override'] or '')
  with (strategy or tf.distribute.get_strategy()).scope():
    model = registry.build_model(hparams, model_type=case_config['model'],
                                 shape=shape, config=config)
  checkpoints.load(model, path(os.path.join(case, 'model.ckpt-0')))
  features = model_lib.features(
      {key: tf.constant(value) for key, value in inputs(golden).items()},
      shape)
  return Case(model, shape, features, golden, case_config)


def forward_values(model: model_lib.Model, features: Mapping
                  ) -> Dict[str, np.ndarray]:
  """The forward fields of `golden.npz` (logits ... almost), computed."""
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


def forward_fields(golden: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The fields of golden that forward_values computes."""
  return {key: value for key, value in golden.items()
          if key in ('logits', 'capsule_output', 'total_loss') + EXACT_FIELDS
          or key.startswith(('remakes_', 'losses_'))}


def forward_ratio(actual, expected) -> float:
  """max `|port - ref| / (1e-5 + 1e-4 |ref|)`: within tolerance up to 1."""
  return float(np.max(np.abs(np.asarray(actual, np.float64) - expected) /
                      (FORWARD_ATOL + FORWARD_RTOL * np.abs(expected))))


def gradient_ratio(actual, expected) -> float:
  """`max|port - ref| / (1e-4 max|ref|)` of one variable's gradient."""
  error = float(np.max(np.abs(np.asarray(actual) - expected)))
  bound = GRADIENT_RTOL * float(np.max(np.abs(expected)))
  if not bound:  # A zero gradient must come out zero.
    return math.inf if error else 0.0
  return error / bound


def weight_error(actual, expected) -> float:
  """`max|port - ref|`, within tolerance up to WEIGHT_ATOL."""
  return float(np.max(np.abs(np.asarray(actual) - expected)))
