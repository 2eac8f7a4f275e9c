"""Strict hyperparameter container with the reference's `key=value` overrides.

The reference used `tf.contrib.training.HParams`, which no longer exists. This
class keeps its two behaviours that users rely on (attribute access and
`parse('key=value,key=value')` with values cast to the type of the default) and
makes them strict: an unknown key or a value that does not parse raises a
`ValueError` that names the key and lists the valid keys.
"""

from typing import Any, Dict


def _parse_bool(text: str) -> bool:
  lowered = text.strip().lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise ValueError('expected true or false')


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
    except ValueError:
      raise ValueError(
          f'hparam {key!r} expects a {type(default).__name__} '
          f'(default {default!r}), got {text!r}') from None

  def set_hparam(self, key: str, value: Any) -> None:
    """Sets one hparam, casting strings to the type of its default."""
    if key not in self._values:
      raise ValueError(
          f'unknown hparam {key!r}; valid keys: {", ".join(sorted(self._values))}')
    self._values[key] = self._cast(key, value) if isinstance(value, str) else (
        type(self._values[key])(value))

  def parse(self, overrides: str) -> 'HParams':
    """Applies `key=value,key=value` overrides in place and returns self.

    Args:
      overrides: comma separated `key=value` pairs; whitespace around keys and
        values is ignored, an empty string changes nothing.

    Returns:
      self, so that `default_hparams().parse('...')` reads naturally.

    Raises:
      ValueError: for a pair without `=`, an unknown key or a value that does
        not parse as the default's type.
    """
    for pair in filter(None, (p.strip() for p in (overrides or '').split(','))):
      key, sep, text = pair.partition('=')
      if not sep:
        raise ValueError(
            f'hparams override {pair!r} is not of the form key=value; valid '
            f'keys: {", ".join(sorted(self._values))}')
      self.set_hparam(key.strip(), text.strip())
    return self
