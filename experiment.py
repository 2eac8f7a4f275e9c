r"""Framework for training and evaluating capsule and baseline models.

The reference's driver: `--train` trains a model on the train split and writes
TF1 name-based checkpoints `summary_dir/train/model.ckpt-<step>`,
`--train=false` evaluates one checkpoint or follows a training directory, and
`--num_trials=K` evaluates an ensemble of K checkpoints. This file holds the
flags and the dispatch only: the library it calls never reads flags.

Examples (the reference README's commands):

  python experiment.py --data_dir=D/mnist_data/ --max_steps=300000 \
      --summary_dir=/tmp/attempt0/
  python experiment.py --data_dir=D/mnist_data/ --train=false \
      --summary_dir=/tmp/ --checkpoint=C/mnist_checkpoint/model.ckpt-1
  python experiment.py --data_dir=D --train=false --dataset=cifar10 \
      --hparams_override=num_prime_capsules=64,padding=SAME,leaky=true,remake=false \
      --summary_dir=/tmp/ --checkpoint=C/cifar/cifar{}/model.ckpt-600000 \
      --num_trials=7
"""

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
from typing import List

from absl import flags

from input_data import datasets
from input_data import prepare
from models import checkpoints
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models import registry
from models import run_config
from models import training
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The reference's flags (and a few of our own)."""
  # Only when this file runs as a script: tools importing it define theirs.
  flags.DEFINE_string('data_dir', prepare.DEFAULT_DATA_DIR,
                      'The data directory; for MultiMNIST records a sharded '
                      'pattern path/name.tfrecords@N. Missing files are '
                      'prepared there: from the original files in it (MNIST '
                      'idx, CIFAR10 binary batches, smallNORB .mat), else '
                      'from tensorflow-datasets.')
  flags.DEFINE_integer('eval_size', 10000,
                       'Number of test examples evaluated.')
  flags.DEFINE_string('hparams_override', None,
                      'A string of form key=value,key=value to override the '
                      'hparams of this experiment.')
  flags.DEFINE_integer('max_steps', 1000,
                       'Number of global steps to train; a resumed run counts '
                       'from the restored step.')
  flags.DEFINE_string('model', 'capsule',
                      'The model to use for the experiment: capsule, '
                      'baseline (the reference code\'s CNN) or '
                      'baseline_paper (the paper\'s 35.4M MNIST baseline).')
  flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                    'The dataset to use for the experiment. mnist with '
                    '--num_targets=2 and a data_dir folder: MultiMNIST '
                    'generated on the fly; expanded_mnist: digits placed at '
                    'random on 40x40; affnist, affine_mnist: test sets only '
                    '(of a model trained on expanded_mnist).')
  flags.DEFINE_enum('multi_mnist_shift', 'reference', ['reference', 'paper'],
                    'Not in the reference. Generated MultiMNIST: digits '
                    'shifted by up to 6 pixels (the reference README) or 4 '
                    '(the paper) on a 36x36 canvas.')
  flags.DEFINE_integer('num_pairs', 1000,
                       'Not in the reference. Generated MultiMNIST: pairs per '
                       'digit in a training epoch.')
  flags.DEFINE_integer('num_gpus', 1,
                       'Number of GPUs (replicas per worker) to use; the '
                       'global batch is split evenly across all replicas. '
                       '0: the CPU, with any GPUs hidden.', lower_bound=0)
  flags.DEFINE_integer('num_targets', 1,
                       'Number of targets to detect (1, or 2 for MultiMNIST).')
  flags.DEFINE_integer('num_trials', 1,
                       'Number of trials for ensemble evaluation.')
  flags.DEFINE_integer('save_step', run_config.SAVE_STEP,
                       'How often to save checkpoints.', lower_bound=1)
  flags.DEFINE_integer('keep_checkpoints', None,
                       'Not in the reference. Keep the newest N checkpoints, '
                       'deleting older ones as training saves new ones '
                       '(never one an evaluation is reading); unset: keep '
                       'all.', lower_bound=1)
  flags.DEFINE_integer('seed', None,
                       'Not in the reference. Seed of the initial weights, '
                       'the input order and its distortions, with '
                       'deterministic ops: the same seed gives the same '
                       'result on the same machine (slower on GPUs).')
  flags.DEFINE_string('summary_dir', None,
                      'Main directory for the experiments: training writes '
                      'summary_dir/train/, evaluation summary_dir/test/.')
  flags.DEFINE_string('checkpoint', None,
                      'The model checkpoint to evaluate; with num_trials > 1 '
                      'a pattern holding {} for the trial index.')
  flags.DEFINE_enum('compute_dtype', 'float32',
                    list(devices.COMPUTE_DTYPE_NAMES),
                    'Not in the reference. bfloat16, float16: mixed '
                    'precision on float32 weights (float16 with a loss '
                    'scale). mixed: the one the devices in use run fast '
                    '(docs/gpu.md). tf32: float32 whose matrix products may '
                    'run in TF32 on GPUs (about 1e-3 relative off).')
  flags.DEFINE_enum('all_reduce', 'auto', list(devices.ALL_REDUCE_NAMES),
                    'Not in the reference. How the GPUs sum gradients: auto '
                    '(TensorFlow\'s choice), nccl, hierarchical_copy (one '
                    'machine) or ring (TF_CONFIG); docs/gpu.md.')
  flags.DEFINE_bool('xla', True,
                    'Not in the reference. Compile with XLA: the routing, '
                    'and on GPUs each replica\'s whole step; false where it '
                    'cannot compile (e.g. it finds no CUDA libdevice).')
  flags.DEFINE_bool('train', True, 'Either train the model or test the model.')
  flags.DEFINE_bool('validate', False,
                    'Use the train/validation split files for training and '
                    'evaluation.')
  flags.DEFINE_bool('evaluate_after_training', True,
                    'Not in the reference. After training, evaluate the '
                    'final checkpoint on the test split (the validation '
                    'split with --validate).')


def main(argv: List[str]) -> None:
  del argv  # Unused.
  # Every check that needs no data, before any data is read or prepared.
  hparams = hparams_lib.default_hparams().parse(FLAGS.hparams_override or '')
  registry.check(hparams, model_type=FLAGS.model)
  if not FLAGS.train:
    evaluation.checkpoint_paths(FLAGS.checkpoint, FLAGS.num_trials)
  strategy, config = devices.setup(
      num_gpus=FLAGS.num_gpus, compute_dtype=FLAGS.compute_dtype,
      xla=FLAGS.xla, seed=FLAGS.seed if FLAGS.train else None,
      distribute=FLAGS.train, model_type=FLAGS.model,
      all_reduce=FLAGS.all_reduce,
      save_step=FLAGS.save_step, keep_checkpoints=FLAGS.keep_checkpoints)
  print(f'Data: {FLAGS.data_dir}', flush=True)
  input_fn = datasets.input_fn(
      FLAGS.dataset, data_dir=FLAGS.data_dir, num_targets=FLAGS.num_targets,
      validate=FLAGS.validate, multi_mnist_shift=FLAGS.multi_mnist_shift,
      num_pairs=FLAGS.num_pairs, eval_size=FLAGS.eval_size,
      # Generated data sets need one seed on every worker, also unseeded.
      seed=0 if FLAGS.seed is None else FLAGS.seed)
  common = dict(model_type=FLAGS.model, input_fn=input_fn,
                num_targets=FLAGS.num_targets, config=config)
  if FLAGS.train:
    step = training.train(hparams, summary_dir=FLAGS.summary_dir,
                          max_steps=FLAGS.max_steps, strategy=strategy,
                          seed=FLAGS.seed, **common).step
    if FLAGS.evaluate_after_training and strategy.extended.should_checkpoint:
      final = checkpoints.step_path(
          checkpoints.train_folder(FLAGS.summary_dir), step)
      evaluation.evaluate(hparams, summary_dir=FLAGS.summary_dir,
                          eval_size=FLAGS.eval_size, checkpoint=final,
                          **common)
  elif FLAGS.num_trials == 1:
    evaluation.evaluate(hparams, summary_dir=FLAGS.summary_dir,
                        eval_size=FLAGS.eval_size,
                        checkpoint=FLAGS.checkpoint, **common)
  else:
    evaluation.evaluate_ensemble(
        hparams, eval_size=FLAGS.eval_size, checkpoint=FLAGS.checkpoint,
        num_trials=FLAGS.num_trials, **common)


if __name__ == '__main__':
  cli.run(main, program='experiment.py', define_flags=_define_flags)
