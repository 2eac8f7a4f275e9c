r"""The paper's figures from a trained CapsNet checkpoint, as PNG files.

  python -m paper.figures --checkpoint=/tmp/attempt0/train/model.ckpt-300000 \
      --data_dir=D/mnist_data/ --output_dir=/tmp/figures \
      --summary_dir=/tmp/attempt0/
  python -m paper.figures --num_targets=2 \
      --checkpoint=/tmp/multi0/train/model.ckpt-N --data_dir=D/mnist_data/ \
      --output_dir=/tmp/multi_figures --eval_size=10000

From the test split of --data_dir to --output_dir: `reconstructions.png`
(Fig. 3; a failure twice, decoded from the prediction's and the label's
capsule), `perturbations.png` (Fig. 4), `multimnist.png` (Fig. 5), `routing.png`
(Appendix A), `confusion.png` and `curves.png` (--summary_dir); README.md
says what each shows, the named tuples below hold the arrays behind them.
From Python, `make_figures`; a function of its own makes each figure's
arrays (`reconstruction_grid`, ..., `training_curves`), `plot_*` draws,
saves and returns the matplotlib Figure.
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import collections
import textwrap
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from absl import flags
from matplotlib import figure as mpl_figure
from matplotlib.backends import backend_agg
import numpy as np
import tensorflow as tf

import errors
from input_data import datasets
from input_data import prepare
from layers import layers
from models import capsule_model
from models import checkpoints
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models.hparams import HParams
from models import model as model_lib
from models import run_config as run_config_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# Fig. 4's tweaks of each capsule dimension: -0.25, -0.20, ..., +0.25; the
# centre one is exactly 0.
PERTURBATION_OFFSETS = np.arange(-5, 6) * 0.05
DEFAULT_EVAL_SIZE = 10000
NUM_CORRECT_SHOWN = 8  # Fig. 3 and 5: correctly classified examples shown.
NUM_WRONG_SHOWN = 4  # Fig. 3 and 5: failures shown (when there are any).
NUM_PERTURBED = 3  # Fig. 4: digits whose capsule is tweaked.
NUM_ABSENT_SHOWN = 2  # Fig. 5: columns decoding a digit not in the image.
NUM_ROUTING_SHOWN = 4  # Appendix A: inputs whose coupling grid is shown.
ROUTING_ITERATIONS = 10  # Appendix A: iterations run at the checkpoint.
DPI = 120
TITLE_SIZE = 11  # Points: a figure's title, above the labels' 10.
PERTURBATION_CELL = 0.42  # Inches per decoded digit of Fig. 4 (50 pixels).
EVENTS_PER_READ = 4096

TRAIN_TAGS = ('total_loss', 'accuracy')
TEST_TAGS = ('correct_prediction', 'wrong_prediction')

# The arrays behind each figure, `n` the examples shown. Predictions:
# `labels` (recons_label, spare_label) and `predictions` (the top classes,
# most likely first) `[n, num_targets]`, `correct` `[n]`.
Predictions = collections.namedtuple(
    'Predictions', ('labels', 'predictions', 'correct'))
# Fig. 3: the inputs and the decoder's images of the predicted and of the
# label's capsule `[n, height, width]`; labels and predictions `[n]`.
Reconstructions = collections.namedtuple(
    'Reconstructions',
    ('images', 'labels', 'predictions', 'from_prediction', 'from_label'))
# Fig. 4: `remakes[i, d, j]` decodes `capsules[i, d, j]`, digit i's label
# capsule with offsets[j] added to dimension d.
Perturbations = collections.namedtuple(
    'Perturbations', ('classes', 'offsets', 'capsules', 'remakes'))
# Fig. 5, a column each: the two classes `reconstructed` and their
# `remakes` `[n, 2, height, width]`; `absent` marks a decoded class that is
# neither a label nor a prediction.
MultiReconstructions = collections.namedtuple(
    'MultiReconstructions',
    ('images', 'labels', 'predictions', 'reconstructed', 'remakes', 'absent'))
# Appendix A: `logit_change` `[iterations]` (see `_logit_change`), of which
# the model trained with `trained_routing`; `couplings` `[n, grid, grid]` to
# the predicted class after those, averaged over the `num_types` primary
# capsule types, against the first iteration's `uniform`.
Routing = collections.namedtuple(
    'Routing', ('logit_change', 'trained_routing', 'couplings', 'uniform',
                'predictions', 'images', 'num_types'))
# Appendix A over training: `logit_change` `[k, routing]` at `steps` `[k]`.
RoutingHistory = collections.namedtuple('RoutingHistory',
                                        ('steps', 'logit_change'))
# One scalar series, `[k]` each, by increasing step.
Scalars = collections.namedtuple('Scalars', ('steps', 'values'))
Curves = collections.namedtuple(
    'Curves', ('total_loss', 'accuracy', 'test_error'))


def _top_classes(logits: np.ndarray, k: int) -> np.ndarray:
  """`[n, k]` classes of the k largest logits, ties to the lower class."""
  return np.argsort(-np.asarray(logits), axis=1, kind='stable')[:, :k]


def _labels(tensors: Mapping[str, tf.Tensor], num_targets: int) -> np.ndarray:
  """`[n, num_targets]` int labels: recons_label (and spare_label)."""
  keys = ('recons_label', 'spare_label')[:num_targets]
  return np.stack([np.asarray(tensors[key]) for key in keys], axis=1)


def _pictures(images, shape: model_lib.DataShape) -> np.ndarray:
  """`[n, height, width(, depth)]` numpy images of the data's shape."""
  pictures = np.reshape(np.asarray(images),
                        [-1, shape.depth, shape.height, shape.height])
  pictures = np.transpose(pictures, [0, 2, 3, 1])
  return pictures[..., 0] if shape.depth == 1 else pictures


def predict(evaluator: evaluation.Evaluator, *,
            eval_size: int) -> Predictions:
  """The predictions for the first eval_size examples of the test split."""
  labels, logits = [], []
  for tensors in evaluator.dataset.unbatch().take(eval_size).batch(
      evaluator.config.eval_batch_size):
    labels.append(_labels(tensors, evaluator.model.shape.num_targets))
    logits.append(evaluator.logits(tensors).numpy())
  if not labels:
    raise errors.DataError('the test data holds no examples')
  labels = np.concatenate(labels)
  predictions = _top_classes(np.concatenate(logits),
                             evaluator.model.shape.num_targets)
  correct = np.all(np.sort(labels, axis=1) == np.sort(predictions, axis=1),
                   axis=1)
  return Predictions(labels, predictions, correct)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, *,
                     num_classes: int) -> np.ndarray:
  """Counts of (label row, predicted column) of int `[n, num_targets]` labels
  and predictions: with two targets, each label found among the predictions
  counts on the diagonal, the missed ones pair with the wrong predictions in
  increasing order."""
  matrix = np.zeros([num_classes, num_classes], np.int64)
  for label_row, prediction_row in zip(labels, predictions):
    wanted = collections.Counter(label_row.tolist())
    given = collections.Counter(prediction_row.tolist())
    found = wanted & given
    for label in found.elements():
      matrix[label, label] += 1
    missed = sorted((wanted - found).elements())
    wrong = sorted((given - found).elements())
    for label, prediction in zip(missed, wrong):
      matrix[label, prediction] += 1
  return matrix


def select_examples(correct: np.ndarray, *, num_correct: int,
                    num_wrong: int) -> np.ndarray:
  """Indices of the first num_correct right, then the first num_wrong wrong."""
  return np.concatenate([np.flatnonzero(correct)[:num_correct],
                         np.flatnonzero(~correct)[:num_wrong]])


def take_examples(dataset: tf.data.Dataset,
                  indices: Sequence[int]) -> Dict[str, np.ndarray]:
  """The examples at these positions of a dataset of batches, in this order,
  reading it once. Raises ValueError: no indices, or too few examples."""
  if not len(indices):
    raise ValueError('no examples to take')
  wanted, inverse = np.unique(np.asarray(indices, np.int64),
                              return_inverse=True)
  pieces = collections.defaultdict(list)
  start = 0
  for tensors in dataset:
    size = int(tensors['images'].shape[0])
    rows = wanted[(wanted >= start) & (wanted < start + size)] - start
    for key, value in tensors.items():
      pieces[key].append(tf.gather(value, rows).numpy())
    start += size
    if start > wanted[-1]:
      break
  if start <= wanted[-1]:
    raise errors.DataError(f'the data holds {start} examples, fewer than '
                           f'the {wanted[-1] + 1} needed')
  return {key: np.concatenate(value)[inverse] for key, value in pieces.items()}


def _decode(model: capsule_model.CapsuleModel, capsule_output: tf.Tensor,
            classes: np.ndarray) -> np.ndarray:
  """The decoder's images (`_pictures`) of one class capsule each."""
  mask = tf.one_hot(classes, capsule_output.shape[1])
  return _pictures(model.decode(capsule_output, mask), model.shape)


# The figures' functions take a model with a decoder and a batch's tensors.
def reconstruction_grid(model: capsule_model.CapsuleModel,
                        tensors: Mapping) -> Reconstructions:
  """Fig. 3 (one target); a correct example's two images are the same."""
  out = model.forward(tensors)
  predictions = _top_classes(out.logits, 1)[:, 0]
  labels = np.asarray(tensors['recons_label'])
  return Reconstructions(
      images=_pictures(tensors['images'], model.shape), labels=labels,
      predictions=predictions,
      from_prediction=_decode(model, out.capsule_output, predictions),
      from_label=_decode(model, out.capsule_output, labels))


def perturbation_grid(model: capsule_model.CapsuleModel, tensors: Mapping, *,
                      offsets: np.ndarray = PERTURBATION_OFFSETS
                     ) -> Perturbations:
  """Fig. 4 (one target); an offset of 0 gives the plain reconstruction."""
  out = model.forward(tensors)
  classes = np.asarray(tensors['recons_label'])
  capsules = tf.gather(out.capsule_output, classes,
                       batch_dims=1).numpy()  # [n, atoms]
  num_examples, atoms = capsules.shape
  tweaks = (np.eye(atoms)[:, None, :] *
            np.asarray(offsets)[None, :, None])  # [atoms, k, atoms]
  perturbed = (capsules[:, None, None, :] +
               tweaks[None].astype(np.float32))  # [n, atoms, k, atoms]
  flat = perturbed.reshape(-1, atoms)  # [n * atoms * k, atoms]
  flat_classes = np.repeat(classes, atoms * len(offsets))
  mask = tf.one_hot(flat_classes, out.capsule_output.shape[1])
  # Only the class capsule is set: the decoder masks all others anyway.
  embedding = mask[:, :, None] * flat[:, None, :]  # [n * atoms * k, C, atoms]
  remakes = _pictures(model.decode(embedding, mask), model.shape)
  return Perturbations(
      classes=classes, offsets=np.asarray(offsets), capsules=perturbed,
      remakes=remakes.reshape((num_examples, atoms, len(offsets)) +
                              remakes.shape[1:]))


def multimnist_grid(model: capsule_model.CapsuleModel, tensors: Mapping, *,
                    num_absent: int = NUM_ABSENT_SHOWN
                   ) -> MultiReconstructions:
  """Fig. 5: a column per pair, then one for each of the first num_absent,
  decoding its first label and the strongest class neither label nor guess."""
  out = model.forward(tensors)
  logits = out.logits.numpy()
  labels = _labels(tensors, 2)
  predictions = _top_classes(logits, 2)
  present = np.zeros_like(logits, bool)
  np.put_along_axis(present, np.concatenate([labels, predictions], axis=1),
                    True, axis=1)
  strongest_absent = np.argmax(np.where(present, -np.inf, logits), axis=1)
  extra = np.arange(min(num_absent, len(logits)))
  columns = np.concatenate([np.arange(len(logits)), extra])
  reconstructed = np.concatenate([
      predictions,
      np.stack([labels[extra, 0], strongest_absent[extra]], axis=1)])
  capsule_output = tf.gather(out.capsule_output, columns)
  remakes = np.stack([_decode(model, capsule_output, reconstructed[:, j])
                      for j in range(2)], axis=1)
  return MultiReconstructions(
      images=_pictures(tensors['images'], model.shape)[columns],
      labels=labels[columns], predictions=predictions[columns],
      reconstructed=reconstructed, remakes=remakes,
      absent=np.arange(len(columns)) >= len(logits))


def _logit_change(iterations: Sequence[layers.RoutingIteration]
                 ) -> np.ndarray:
  """Each iteration's mean |agreement|: its change of the logits b_ij, the
  paper's Fig. A.1 (docs/results.md, Appendix A)."""
  return np.array([float(tf.reduce_mean(tf.abs(iteration.agreement)))
                   for iteration in iterations])


def routing_statistics(model: capsule_model.CapsuleModel, tensors: Mapping,
                       *, num_routing: Optional[int] = None) -> Routing:
  """Appendix A over num_routing iterations (None: the model's own); the
  couplings and predictions after the model's own. Raises errors.ConfigError:
  the primary capsules are not on a square grid."""
  trained = model.hparams.routing
  iterations = model.class_routing(tensors,
                                   num_routing=max(num_routing or 0, trained))
  logit_change = _logit_change(iterations[:num_routing or trained])
  last = iterations[trained - 1]
  predictions = _top_classes(tf.norm(last.activation, axis=-1), 1)[:, 0]
  route = tf.gather(last.route, predictions, axis=2,
                    batch_dims=1).numpy()  # [n, P * h * w]
  num_types = model.hparams.num_prime_capsules
  side = int(round(np.sqrt(route.shape[1] / num_types)))
  if num_types * side * side != route.shape[1]:
    raise errors.ConfigError(f'{route.shape[1]} primary capsules are not '
                             f'{num_types} types on a square grid')
  couplings = route.reshape(-1, num_types, side, side).mean(axis=1)
  return Routing(logit_change=logit_change, trained_routing=trained,
                 couplings=couplings,
                 uniform=float(iterations[0].route[0, 0, 0]),
                 predictions=predictions,
                 images=_pictures(tensors['images'], model.shape),
                 num_types=num_types)


def routing_history(model: capsule_model.CapsuleModel, tensors: Mapping,
                    checkpoint_paths: Mapping[int, str]) -> RoutingHistory:
  """Appendix A at each checkpoint (`checkpoints.list_steps`), loaded in turn:
  reload the checkpoint you need afterwards."""
  steps = sorted(checkpoint_paths)
  changes = []
  for step in steps:
    checkpoints.load(model, checkpoint_paths[step])
    changes.append(_logit_change(model.class_routing(tensors)))
  return RoutingHistory(np.array(steps), np.array(changes))


def read_events(log_dir: str, *, tags: Optional[Iterable[str]] = None
               ) -> Dict[str, Dict[int, np.ndarray]]:
  """{tag: {step: value}} of the summaries (tags; None: all) in a directory's
  event files, in name (time) order: a step written twice (a resumed run) is
  the later file's. A TF1 simple_value (the reference's) is a scalar array.
  """
  values = {}
  pattern = os.path.join(log_dir, 'events.out.tfevents.*')
  for path in sorted(tf.io.gfile.glob(pattern)):
    # Batches of records: one Python step per event, not one TF op each.
    for records in tf.data.TFRecordDataset(path).batch(EVENTS_PER_READ):
      for record in records.numpy():
        event = tf.compat.v1.Event.FromString(record)
        for value in event.summary.value:
          if tags is None or value.tag in tags:
            values.setdefault(value.tag, {})[event.step] = (
                np.asarray(value.simple_value)
                if value.WhichOneof('value') == 'simple_value' else
                tf.make_ndarray(value.tensor))
  return values


def _scalars(values: Mapping[int, np.ndarray]) -> Scalars:
  steps = sorted(values)
  return Scalars(np.array(steps, np.int64),
                 np.array([float(values[step]) for step in steps]))


def training_curves(summary_dir: str) -> Curves:
  """The curves of an experiment directory; the test error at steps with both
  counts. Raises FileNotFoundError: none of these scalars is there."""
  train = read_events(checkpoints.train_folder(summary_dir), tags=TRAIN_TAGS)
  test = read_events(os.path.join(summary_dir, 'test'), tags=TEST_TAGS)
  correct, wrong = (_scalars(test.get(tag, {})) for tag in TEST_TAGS)
  steps, in_correct, in_wrong = np.intersect1d(
      correct.steps, wrong.steps, return_indices=True)
  right, missed = correct.values[in_correct], wrong.values[in_wrong]
  curves = Curves(*(_scalars(train.get(tag, {})) for tag in TRAIN_TAGS),
                  Scalars(steps, 100.0 * missed / (right + missed)))
  if not any(curve.steps.size for curve in curves):
    raise errors.MissingDataError(
        f'no {", ".join(TRAIN_TAGS)} scalars in {summary_dir}/train and no '
        f'{", ".join(TEST_TAGS)} in {summary_dir}/test: give the '
        f'summary_dir of experiment.py')
  return curves


def _new_figure(width: float, height: float) -> mpl_figure.Figure:
  """A figure drawn by Agg, without pyplot's global state."""
  fig = mpl_figure.Figure(figsize=(width, height), dpi=DPI,
                          layout='constrained')
  backend_agg.FigureCanvasAgg(fig)
  return fig


def _save(fig: mpl_figure.Figure, path: str,
          title: str = '') -> mpl_figure.Figure:
  """Titles, saves and returns fig; the title wrapped to the figure's width
  (a character is about 0.6 of the font size wide)."""
  if title:
    per_line = int(fig.get_figwidth() * 72 / (0.6 * TITLE_SIZE))
    fig.suptitle(textwrap.fill(title, per_line), fontsize=TITLE_SIZE)
  fig.savefig(path)
  return fig


def _show(ax, image: np.ndarray, title: str = '') -> None:
  """An image in [0, 1] without axes: `[h, w]` grey or `[h, w, 3]` RGB."""
  ax.imshow(np.clip(image, 0, 1), cmap='gray', vmin=0, vmax=1)
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=10)


def plot_reconstructions(recons: Reconstructions,
                         path: str) -> mpl_figure.Figure:
  """Fig. 3: inputs above reconstructions, each column titled (l, p, r)."""
  columns = []
  for i, (label, prediction) in enumerate(zip(recons.labels,
                                              recons.predictions)):
    columns.append((i, recons.from_prediction[i], prediction))
    if label != prediction:
      columns.append((i, recons.from_label[i], label))
  fig = _new_figure(1.1 * len(columns), 2.6)
  axes = fig.subplots(2, len(columns), squeeze=False)
  for column, (i, remake, decoded) in enumerate(columns):
    label, prediction = recons.labels[i], recons.predictions[i]
    _show(axes[0, column], recons.images[i],
          f'({label},{prediction},{decoded})')
    _show(axes[1, column], remake)
  return _save(fig, path, 'Input (top) and reconstruction (bottom): (label, '
               'prediction, decoded capsule)')


def plot_perturbations(perturbations: Perturbations,
                       path: str) -> mpl_figure.Figure:
  """Fig. 4: per digit, a dimension per row and an offset per column."""
  remakes = perturbations.remakes  # [n, atoms, k, h, w(, 3)]
  num_examples, atoms, num_offsets = remakes.shape[:3]
  # A grey line around each digit sets the rows and columns apart.
  grid = np.pad(np.clip(remakes, 0, 1),
                [(0, 0)] * 3 + [(1, 1)] * 2 + [(0, 0)] * (remakes.ndim - 5),
                constant_values=0.4)
  height, width = grid.shape[3:5]
  fig = _new_figure(num_examples * (num_offsets * PERTURBATION_CELL + 0.8),
                    atoms * PERTURBATION_CELL + 2.2)
  axes = fig.subplots(1, num_examples, squeeze=False)[0]
  for i, ax in enumerate(axes):
    mosaic = grid[i].swapaxes(1, 2).reshape(
        (atoms * height, num_offsets * width) + grid.shape[5:])
    ax.imshow(mosaic, cmap='gray', vmin=0, vmax=1)
    ax.set_xticks(width * np.arange(num_offsets) + width / 2 - 0.5)
    ax.set_xticklabels([f'{o:+.2f}' for o in perturbations.offsets],
                       rotation=90, fontsize=9)
    ax.set_yticks(height * np.arange(atoms) + height / 2 - 0.5)
    ax.set_yticklabels([str(d) for d in range(atoms)], fontsize=9)
    ax.set_title(f'digit {perturbations.classes[i]}')
    ax.set(xlabel='offset added', ylabel='capsule dimension')
  offsets = perturbations.offsets
  return _save(fig, path, f'Each row adds {offsets[0]:+.2f} to '
               f'{offsets[-1]:+.2f} (the columns) to one of the {atoms} '
               'dimensions of the digit\'s class capsule and decodes it; '
               'offset +0.00 is the reconstruction itself')


def plot_multimnist(multi: MultiReconstructions,
                    path: str) -> mpl_figure.Figure:
  """Fig. 5: pairs above their two reconstructions in red and green."""
  num_columns = len(multi.images)
  fig = _new_figure(1.2 * num_columns, 3.0)
  axes = fig.subplots(2, num_columns, squeeze=False)
  for i in range(num_columns):
    labels, predictions, decoded = (','.join(map(str, row)) for row in (
        multi.labels[i], multi.predictions[i], multi.reconstructed[i]))
    star = '*' if multi.absent[i] else ''
    _show(axes[0, i], multi.images[i], f'L:({labels})\nP:({predictions})')
    red, green = multi.remakes[i, 0], multi.remakes[i, 1]
    _show(axes[1, i], np.stack([red, green, np.zeros_like(red)], axis=-1),
          f'R:({decoded}){star}')
  return _save(fig, path, 'Input pairs (top); the two decoded digits in red '
               'and green (bottom); * decodes a digit not in the image')


def plot_routing(routing: Routing, path: str, *,
                 history: Optional[RoutingHistory] = None,
                 num_shown: int = NUM_ROUTING_SHOWN) -> mpl_figure.Figure:
  """Appendix A; the change over training only with a history."""
  num_shown = min(num_shown, len(routing.images))
  panels = 2 if history is not None else 1
  fig = _new_figure(3.2 * panels + 2.0 * num_shown, 5.0)
  grid = fig.add_gridspec(2, panels + num_shown,
                          width_ratios=[2] * panels + [1] * num_shown)
  if history is not None:
    ax = fig.add_subplot(grid[:, 0])
    for i in range(history.logit_change.shape[1]):
      ax.semilogy(history.steps, history.logit_change[:, i], 'o-',
                  label=f'iteration {i + 1}')
    ax.set(xlabel='training step', ylabel='mean |change of routing logits|')
    ax.set_title('over training')
    ax.legend(fontsize=8)
  ax = fig.add_subplot(grid[:, panels - 1])
  iterations = np.arange(1, len(routing.logit_change) + 1)
  trained = iterations <= routing.trained_routing
  ax.semilogy(iterations[trained], routing.logit_change[trained], 'o-',
              label=f'the model\'s {routing.trained_routing}')
  if not trained.all():
    ax.semilogy(iterations[routing.trained_routing - 1:],
                routing.logit_change[routing.trained_routing - 1:], 'o--',
                color='gray', label='further iterations')
    ax.legend(fontsize=8)
  ax.set(xticks=iterations, xlabel='routing iteration',
         ylabel='mean |change of routing logits|')
  ax.set_title('at this checkpoint')
  # Red: routed to the prediction more than uniformly, blue: less.
  spread = max(float(np.abs(routing.couplings[:num_shown] -
                            routing.uniform).max()), 1e-6)
  side = routing.couplings.shape[1]
  coupling_axes = []
  for i in range(num_shown):
    _show(fig.add_subplot(grid[0, panels + i]), routing.images[i],
          f'predicted {routing.predictions[i]}')
    ax = fig.add_subplot(grid[1, panels + i])
    shown = ax.imshow(
        routing.couplings[i], cmap='RdBu_r', vmin=routing.uniform - spread,
        vmax=routing.uniform + spread)
    ax.set(xticks=range(side), yticks=range(side))
    ax.set_xlabel('primary capsule column', fontsize=8)
    ax.tick_params(labelsize=8)
    coupling_axes.append(ax)
  coupling_axes[0].set_ylabel('primary capsule row', fontsize=8)
  fig.colorbar(shown, ax=coupling_axes,
               label=f'coupling (uniform {routing.uniform:.3f})')
  return _save(fig, path, 'Mean |change of the routing logits| by each '
               'routing iteration (left). Under each digit, its coupling to '
               'the predicted class after the model\'s '
               f'{routing.trained_routing} iterations at each place of the '
               f'{side}x{side} grid of primary capsules, mean over their '
               f'{routing.num_types} types (red: above uniform, blue: below)')


def plot_confusion(matrix: np.ndarray, path: str) -> mpl_figure.Figure:
  """The confusion matrix, counts written in the cells."""
  num_classes = len(matrix)
  fig = _new_figure(5.2, 4.6)
  ax = fig.subplots()
  shown = ax.imshow(np.log1p(matrix), cmap='Blues')
  for (row, column), count in np.ndenumerate(matrix):
    if count:
      ax.text(column, row, str(count), ha='center', va='center', fontsize=6,
              color='white' if row == column else 'black')
  ax.set(xticks=range(num_classes), yticks=range(num_classes),
         xlabel='prediction', ylabel='label')
  wrong = int(matrix.sum() - np.trace(matrix))
  ax.set_title(f'{int(matrix.sum())} digits, {wrong} wrong')
  fig.colorbar(shown, ax=ax, label='log(1 + count)')
  return _save(fig, path)


def plot_curves(curves: Curves, path: str) -> mpl_figure.Figure:
  """Training loss, training accuracy and test error against the step."""
  fig = _new_figure(12, 3.4)
  panels = ((curves.total_loss, 'training loss (total_loss)', True),
            (curves.accuracy, 'training accuracy', False),
            (curves.test_error, 'test error %', True))
  for ax, (curve, title, log_scale) in zip(fig.subplots(1, 3), panels):
    if len(curve.steps) == 1:
      # One evaluation: its value written, on axes from 0 rather than
      # matplotlib's 5% either side of the point.
      step, value = int(curve.steps[0]), float(curve.values[0])
      ax.plot(step, value, 'o')
      ax.annotate(f'{value:.3g}', (step, value), xytext=(0, 8),
                  textcoords='offset points', ha='center')
      span = max(step, 1)
      ax.set(xlim=(-0.05 * span, 1.1 * span), ylim=(0, 1.3 * value or 1))
    else:
      ax.plot(curve.steps, curve.values,
              '.-' if len(curve.steps) < 50 else '-')
      # Loss and error fall by orders of magnitude; a zero forbids the log.
      if log_scale and curve.values.size and np.all(curve.values > 0):
        ax.set_yscale('log')
    ax.set_xlabel('step')
    ax.set_title(title)
  return _save(fig, path)


def make_figures(checkpoint: str, *, data_dir: str, output_dir: str,
                 num_targets: int = 1, summary_dir: Optional[str] = None,
                 hparams: Optional[HParams] = None,
                 eval_size: int = DEFAULT_EVAL_SIZE,
                 routing_iterations: int = ROUTING_ITERATIONS,
                 config: run_config_lib.RunConfig = run_config_lib.RunConfig()
                ) -> List[str]:
  """Writes the figures of a capsule model checkpoint; returns their paths.

  The arguments mean what the command's flags of the same names do
  (`_define_flags`); hparams None: `default_hparams()`; config: the
  evaluation batch size and how the model computes. Raises errors.UserError:
  a missing argument, no decoder, bad data, checkpoint or summaries.
  """
  hparams = hparams or hparams_lib.default_hparams()
  for name, value in (('checkpoint', checkpoint), ('data_dir', data_dir),
                      ('output_dir', output_dir)):
    if not value:
      raise errors.ConfigError(f'{name} is required: pass --{name}=...')
  if num_targets not in (1, 2):
    raise errors.ConfigError(
        f'num_targets must be 1 or 2, got {num_targets}')
  if not hparams.remake:
    raise errors.ConfigError(
        'the figures need the decoder: hparam remake=true')
  if eval_size < 1:
    raise errors.ConfigError(f'eval_size must be positive, got {eval_size}')
  checkpoints.require(checkpoint)  # Before any data is read or prepared.
  # Read first: a wrong summary_dir fails before the long evaluation.
  curves = training_curves(summary_dir) if summary_dir else None
  evaluator = evaluation.Evaluator(
      hparams, model_type='capsule', num_targets=num_targets, config=config,
      input_fn=datasets.input_fn('mnist', data_dir=data_dir,
                                 num_targets=num_targets))
  model, dataset = evaluator.model, evaluator.dataset
  step = checkpoints.load(model, checkpoint)
  tf.io.gfile.makedirs(output_dir)
  paths = []

  def save(plot, arrays, name):
    path = os.path.join(output_dir, name)
    plot(arrays, path)
    paths.append(path)
    print(f'Wrote {path}', flush=True)

  print(f'Evaluating {checkpoint} (step {step})', flush=True)
  predictions = predict(evaluator, eval_size=eval_size)
  print(f'{int(np.sum(~predictions.correct))} of '
        f'{len(predictions.correct)} test examples wrong', flush=True)
  save(plot_confusion,
       confusion_matrix(predictions.labels, predictions.predictions,
                        num_classes=model.shape.num_classes),
       'confusion.png')
  # The right examples come first: Fig. 4 tweaks the first few of them.
  examples = take_examples(dataset, select_examples(
      predictions.correct, num_correct=NUM_CORRECT_SHOWN,
      num_wrong=NUM_WRONG_SHOWN))
  if num_targets == 1:
    save(plot_reconstructions, reconstruction_grid(model, examples),
         'reconstructions.png')
    perturbed = {key: value[:NUM_PERTURBED] for key, value in examples.items()}
    save(plot_perturbations, perturbation_grid(model, perturbed),
         'perturbations.png')
  else:
    save(plot_multimnist, multimnist_grid(model, examples),
         'multimnist.png')
  first_batch = next(iter(dataset))
  routing = routing_statistics(model, first_batch,
                               num_routing=routing_iterations)
  history = None
  saved = (checkpoints.list_steps(checkpoints.train_folder(summary_dir))
           if summary_dir else {})
  if len(saved) > 1:
    history = routing_history(model, first_batch, saved)
    checkpoints.load(model, checkpoint)
  save(lambda arrays, path: plot_routing(arrays, path, history=history),
       routing, 'routing.png')
  if curves:
    save(plot_curves, curves, 'curves.png')
  return paths


def _define_flags() -> None:
  flags.DEFINE_string('checkpoint', None,
                      'Prefix of the capsule model checkpoint, e.g. '
                      '/tmp/attempt0/train/model.ckpt-300000.')
  flags.DEFINE_string('data_dir', prepare.DEFAULT_DATA_DIR,
                      'The MNIST data directory (with --num_targets=2 the '
                      'MultiMNIST pairs are generated from its digits), or '
                      'MultiMNIST records\' pattern path/name.tfrecords@N.')
  flags.DEFINE_string('output_dir', None, 'Where the PNG files go.')
  flags.DEFINE_integer('num_targets', 1,
                       '1: MNIST figures (Fig. 3, 4); 2: MultiMNIST (Fig. 5).')
  flags.DEFINE_string('summary_dir', None,
                      'experiment.py\'s summary_dir, for curves.png and the '
                      'routing over training; unset: neither.')
  flags.DEFINE_string('hparams_override', None,
                      'The model\'s key=value,key=value hparams, as given to '
                      'experiment.py.')
  flags.DEFINE_integer('eval_size', DEFAULT_EVAL_SIZE,
                       'Test examples evaluated for the confusion matrix and '
                       'the failures shown.')
  flags.DEFINE_integer('routing_iterations', ROUTING_ITERATIONS,
                       'Routing iterations run at the checkpoint for '
                       'routing.png (the model\'s are marked).',
                       lower_bound=1)


def main(argv: List[str]) -> None:
  del argv  # Unused.
  tf.get_logger().setLevel('ERROR')  # Retracing notices of the small batches.
  make_figures(
      FLAGS.checkpoint, data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir,
      num_targets=FLAGS.num_targets, summary_dir=FLAGS.summary_dir,
      hparams=hparams_lib.default_hparams().parse(
          FLAGS.hparams_override or ''),
      eval_size=FLAGS.eval_size, routing_iterations=FLAGS.routing_iterations,
      config=devices.setup().config)


if __name__ == '__main__':
  cli.run(main, program='figures', define_flags=_define_flags)
