"""The goldens (`models.goldens`) for tests: a missing one skips the test."""

import functools

import numpy as np
import pytest

from models import goldens

find = goldens.find


def skip_reason(relative_path: str) -> str:
  return str(goldens.MissingGolden(relative_path))


def _skip_missing(load):
  """load, skipping the calling test when a golden file is absent."""
  @functools.wraps(load)
  def loader(*args, **kwargs):
    try:
      return load(*args, **kwargs)
    except goldens.MissingGolden as missing:
      pytest.skip(str(missing))
  return loader


require = _skip_missing(goldens.path)
load_npz = _skip_missing(goldens.load_npz)
load_config = _skip_missing(goldens.load_config)
load_case = _skip_missing(goldens.load_case)


def assert_forward_close(actual, expected, name: str = '') -> None:
  np.testing.assert_allclose(
      np.asarray(actual), expected, rtol=goldens.FORWARD_RTOL,
      atol=goldens.FORWARD_ATOL, err_msg=name)


def assert_gradient_close(actual, expected, name: str = '') -> None:
  ratio = goldens.gradient_ratio(actual, expected)
  assert ratio <= 1, f'{name}: gradient error {ratio:.3g} of tolerance'


def assert_weights_close(actual, expected, name: str = '') -> None:
  error = goldens.weight_error(actual, expected)
  assert error <= goldens.WEIGHT_ATOL, (
      f'{name}: weight error {error} > {goldens.WEIGHT_ATOL}')
