"""Tests for the strict HParams overrides."""

import pytest
from models import hparams as hparams_lib



def test_defaults_are_the_reference_values():
  assert hparams_lib.default_hparams().values() == dict(
      # Ours: the widths of the reference's network, as it hard-coded them.
      conv1_channels=256, prime_capsule_atoms=8, digit_capsule_atoms=16,
      decay_rate=0.96, decay_steps=2000, leaky=False, learning_rate=0.001,
      loss_type='margin', num_prime_capsules=32, padding='VALID', remake=True,
      routing=3, verbose=False)


def test_override_casts_to_default_types():
  hparams = hparams_lib.default_hparams().parse(
      'num_prime_capsules=64,padding=SAME,leaky=true,remake=false,'
      'learning_rate=0.01,decay_steps=10')
  assert hparams.num_prime_capsules == 64
  assert hparams.padding == 'SAME'
  assert hparams.leaky is True and hparams.remake is False
  assert hparams.learning_rate == pytest.approx(0.01)
  assert isinstance(hparams.learning_rate, float)
  assert hparams.decay_steps == 10 and isinstance(hparams.decay_steps, int)


def test_empty_override_changes_nothing():
  assert hparams_lib.default_hparams().parse('') == hparams_lib.default_hparams()


@pytest.mark.parametrize('override, words', [
    ('num_capsules=3', ['num_capsules', 'num_prime_capsules', 'routing']),
    ('routing=three', ['routing', 'expects an int', 'three']),
    ('leaky=maybe', ['leaky', 'expects a bool']),
    ('decay_rate=fast', ['decay_rate', 'expects a float']),
    ('routing', ['key=value', 'routing']),
])
def test_bad_override_names_the_key(override, words):
  with pytest.raises(ValueError) as error:
    hparams_lib.default_hparams().parse(override)
  for word in words:
    assert word in str(error.value)


@pytest.mark.parametrize('override, word', [
    ('padding=same', 'padding'), ('loss_type=hinge', 'loss_type'),
    ('routing=0', 'routing')])
def test_models_reject_unusable_hparams(override, word):
  from models import capsule_model  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=word):
    capsule_model.CapsuleModel(hparams_lib.default_hparams().parse(override))
