"""The models by name (`--model`), and building one for a data shape."""

from typing import Dict, Type

import errors
from models import capsule_model
from models import conv_model
from models.hparams import HParams
from models import model as model_lib

MODELS: Dict[str, Type[model_lib.Model]] = {
    'capsule': capsule_model.CapsuleModel,
    'baseline': conv_model.ConvModel,
    'baseline_paper': conv_model.PaperBaselineModel,
}


def build_model(hparams: HParams, *, model_type: str,
                shape: model_lib.DataShape,
                config: model_lib.ModelConfig = model_lib.ModelConfig()
               ) -> model_lib.Model:
  """A `MODELS[model_type]` with its variables, for data of this shape.

  Build it under a `tf.distribute` strategy's scope for distributed
  variables.

  Raises:
    errors.ConfigError: an unknown model_type, or hparams it cannot use.
  """
  if model_type not in MODELS:
    raise errors.ConfigError(f'unknown model {model_type!r}; use one of '
                             f'{", ".join(MODELS)}')
  model = MODELS[model_type](hparams, config=config)
  model.build(shape)
  return model
