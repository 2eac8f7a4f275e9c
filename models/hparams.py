"""The hyperparameters: the reference's defaults and `key=value` overrides.

The reference used `tf.contrib.training.HParams`, which no longer exists. This
class keeps its two behaviours that users rely on (attribute access and
`parse('key=value,key=value')` with values cast to the type of the default) and
makes them strict: an unknown key or a value that does not parse raises an
`errors.ConfigError` (a `ValueError`) that names the key and lists the valid
keys.
"""

from typing import Any, Dict

import errors


def _parse_bool(text: str) -> bool:
  lowered = text.strip().lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise errors.ConfigError('expected true or false')


class HParams:
  """A fixed set of named hyperparameters whose types come from the defaults."""

  def __init__(self, **defaults: Any):
    self._values: Dict[str, Any] = dict(defaults)

  def __getattr__(self, name: str) -> Any:
    values = self.__dict__.get('_values', {})
    if name in values:
      return values[name]
    raise AttributeError(
        f'unknown hparam {name!r}; valid keys: {", ".join(sorted(values))}')

  def __repr__(self) -> str:
    return 'HParams(%s)' % ', '.join(
        f'{k}={v!r}' for k, v in sorted(self._values.items()))

  def __eq__(self, other: object) -> bool:
    return isinstance(other, HParams) and self._values == other._values

  def values(self) -> Dict[str, Any]:
    """Returns a copy of the hparams as a plain dict."""
    return dict(self._values)

  def _cast(self, key: str, text: str) -> Any:
    default = self._values[key]
    try:
      if isinstance(default, bool):
        return _parse_bool(text)
      if isinstance(default, int):
        return int(text)
      if isinstance(default, float):
        return float(text)
      return text
    except ValueError:  # int(), float() or _parse_bool.
      raise errors.ConfigError(
          f'hparam {key!r} expects a {type(default).__name__} '
          f'(default {default!r}), got {text!r}') from None

  def set_hparam(self, key: str, value: Any) -> None:
    """Sets one hparam, casting strings to the type of its default."""
    if key not in self._values:
      raise errors.ConfigError(
          f'unknown hparam {key!r}; valid keys: {", ".join(sorted(self._values))}')
    self._values[key] = self._cast(key, value) if isinstance(value, str) else (
        type(self._values[key])(value))

  def parse(self, overrides: str) -> 'HParams':
    """Applies `key=value,key=value` overrides in place and returns self.

    Whitespace around keys and values is ignored; '' changes nothing.

    Raises:
      errors.ConfigError: for a pair without `=`, an unknown key or a value
        that does not parse as the default's type.
    """
    for pair in filter(None, (p.strip() for p in (overrides or '').split(','))):
      key, sep, text = pair.partition('=')
      if not sep:
        raise errors.ConfigError(
            f'hparams override {pair!r} is not of the form key=value; valid '
            f'keys: {", ".join(sorted(self._values))}')
      self.set_hparam(key.strip(), text.strip())
    return self


def default_hparams() -> HParams:
  """The reference's default hyperparameters (and three widths of ours)."""
  return HParams(
      # Not in the reference: the network's widths, so that the paper's
      # smaller SVHN network (conv1_channels=64, num_prime_capsules=16,
      # prime_capsule_atoms=6, digit_capsule_atoms=8) is an override.
      conv1_channels=256,
      prime_capsule_atoms=8,
      digit_capsule_atoms=16,
      decay_rate=0.96,
      decay_steps=2000,
      leaky=False,
      learning_rate=0.001,
      loss_type='margin',
      num_prime_capsules=32,
      padding='VALID',
      remake=True,
      routing=3,
      verbose=False,
  )
