"""Access to the reference's golden numbers for the tests.

The small goldens are copied into `testdata/goldens/`; the rest are read from
`../shared/goldens` when that folder is present, and tests that need them are
skipped (saying why) when it is not. Tolerances are the goldens README's.
"""

import json
import os
from typing import Dict, Optional

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_SEARCH_PATH = (
    os.path.join(_HERE, 'testdata', 'goldens'),
    os.path.join(_HERE, '..', 'shared', 'goldens'),
)

FORWARD_ATOL = 1e-5
FORWARD_RTOL = 1e-4
GRADIENT_RTOL = 1e-4
WEIGHT_ATOL = 2e-5


def find(relative_path: str) -> Optional[str]:
  """Path of a golden file or folder, or None when no copy is present."""
  for root in _SEARCH_PATH:
    path = os.path.join(root, relative_path)
    if os.path.exists(path) or os.path.exists(path + '.index'):
      return path
  return None


def skip_reason(relative_path: str) -> str:
  return (f'golden {relative_path} is neither in testdata/goldens nor in '
          f'../shared/goldens')


def require(relative_path: str) -> str:
  """Path of a golden file; skips the calling test when there is no copy."""
  path = find(relative_path)
  if path is None:
    pytest.skip(skip_reason(relative_path))
  return path


def load_npz(relative_path: str) -> Dict[str, np.ndarray]:
  """The arrays of a golden .npz; skips the calling test when it is absent."""
  with np.load(require(relative_path)) as data:
    return {key: data[key] for key in data.files}


def load_config(case: str) -> dict:
  """A case's config.json; skips the calling test when it is absent."""
  with open(require(os.path.join(case, 'config.json'))) as f:
    return json.load(f)


def assert_forward_close(actual, expected, name: str = '') -> None:
  """`|port - ref| <= 1e-5 + 1e-4 * |ref|` elementwise."""
  np.testing.assert_allclose(
      np.asarray(actual), expected, rtol=FORWARD_RTOL, atol=FORWARD_ATOL,
      err_msg=name)


def assert_gradient_close(actual, expected, name: str = '') -> None:
  """`max|port - ref| <= 1e-4 * max|ref|` for one variable."""
  error = np.max(np.abs(np.asarray(actual) - expected))
  bound = GRADIENT_RTOL * np.max(np.abs(expected))
  assert error <= bound, f'{name}: gradient error {error} > {bound}'


def assert_weights_close(actual, expected, name: str = '') -> None:
  """`max|port - ref| <= 2e-5` after the Adam steps."""
  error = np.max(np.abs(np.asarray(actual) - expected))
  assert error <= WEIGHT_ATOL, f'{name}: weight error {error} > {WEIGHT_ATOL}'
