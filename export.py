r"""Exports a checkpoint as a SavedModel, a TFLite file and an ONNX file that
run without this code (docs/export.md); the model flags are experiment.py's.

Examples:

  python export.py --checkpoint=/tmp/attempt0/train/model.ckpt-1000 \
      --export_dir=/tmp/mnist_export
  python export.py --checkpoint=C/cifar/cifar0/model.ckpt-600000 \
      --dataset=cifar10 --export_dir=/tmp/cifar_export \
      --hparams_override=num_prime_capsules=64,padding=SAME,leaky=true,\
remake=false
"""

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
from typing import List

from absl import flags

from models import devices
from models import export
from models import hparams as hparams_lib
from models import registry
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The export's flags; defined only when this file runs as a script."""
  flags.DEFINE_string('checkpoint', None,
                      'The checkpoint prefix to export, e.g. '
                      '.../train/model.ckpt-1000 (this project\'s or the '
                      'reference\'s, released ones included).')
  flags.DEFINE_string('export_dir', None,
                      'A new or empty folder: the SavedModel, with '
                      f'{export.TFLITE_FILE} and {export.ONNX_FILE} in it.')
  flags.DEFINE_enum('model', 'capsule', list(registry.MODELS),
                    'The checkpoint\'s model, as in experiment.py.')
  flags.DEFINE_enum('dataset', 'mnist', list(export.INPUTS),
                    'The data set the model was trained for: the images the '
                    'export takes and its test-time preprocessing.')
  flags.DEFINE_integer('num_targets', 1,
                       'Targets per image: 1, or 2 for MultiMNIST.')
  flags.DEFINE_string('hparams_override', None,
                      'The checkpoint\'s hparams, key=value,key=value, as in '
                      'experiment.py.')
  flags.DEFINE_list('formats', list(export.CONVERSIONS),
                    'Files written besides the SavedModel: tflite, onnx, or '
                    'none of them (empty).')


def main(argv: List[str]) -> None:
  del argv  # Unused.
  hparams = hparams_lib.default_hparams().parse(FLAGS.hparams_override or '')
  devices.setup(xla=False, **dataclasses.asdict(export.MODEL_CONFIG))
  export.export(hparams, checkpoint=FLAGS.checkpoint,
                export_dir=FLAGS.export_dir, model_type=FLAGS.model,
                dataset=FLAGS.dataset, num_targets=FLAGS.num_targets,
                conversions=FLAGS.formats,
                report=lambda line: print(line, flush=True))


if __name__ == '__main__':
  cli.run(main, program='export.py', define_flags=_define_flags)
