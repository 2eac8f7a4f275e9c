"""Tests for paper/figures.py: the arrays behind each figure, and the tool.

A tiny capsule model (`num_prime_capsules=2`, random weights) on random
20x20 digits: the primary capsules are 2 types on a 2x2 grid. The figure
arrays are checked against the model's own forward pass, an independent
numpy routing loop and scalars written with tf.summary; the command line and
the Python API each write their figures once.
"""

import os
import subprocess
import sys
import tempfile

import matplotlib
from matplotlib import image as mpl_image
import numpy as np
import tensorflow as tf

import cli
from input_data.mnist import mnist_record_writer as mnist_records
from models import checkpoints
from models import hparams as hparams_lib
from models import model as model_lib
from models import evaluation
from models import registry
from models import run_config
from paper import figures

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY = 'num_prime_capsules=2'
_HEIGHT = 20
_SHAPE = model_lib.DataShape(_HEIGHT, 1, 10, 1)
_SUBPROCESS_TIMEOUT_S = 120


def _tiny_model(num_targets=1):
  return registry.build_model(hparams_lib.default_hparams().parse(_TINY),
                              model_type='capsule',
                              shape=_SHAPE._replace(num_targets=num_targets))


def _digits(num, seed):
  """Random uint8 `[num, 20, 20]` digits: blobs, so the decoder has work."""
  rng = np.random.default_rng(seed)
  return (rng.uniform(size=(num, _HEIGHT, _HEIGHT)) ** 4 * 255).astype(
      np.uint8)


def _features(images, labels, spare_labels=None):
  """The tensors of uint8 digits, as the MNIST reader makes them."""
  pictures = tf.constant(images[:, None].astype(np.float32) / 255)
  tensors = dict(images=pictures, recons_image=pictures,
                 recons_label=tf.constant(labels, tf.int32),
                 labels=tf.one_hot(labels, 10))
  if spare_labels is not None:
    tensors.update(spare_image=pictures[::-1],
                   spare_label=tf.constant(spare_labels, tf.int32),
                   labels=tf.one_hot(labels, 10) + tf.one_hot(spare_labels,
                                                              10))
  return tensors


def _softmax(logits):
  exp = np.exp(logits - logits.max(axis=2, keepdims=True))
  return exp / exp.sum(axis=2, keepdims=True)


def _squash(vectors):
  norm_squared = np.sum(vectors**2, axis=-1, keepdims=True)
  return vectors * np.sqrt(norm_squared) / (1 + norm_squared)


class PlotTest(tf.test.TestCase):
  """The drawn figures, inspected before they become pixels."""

  def _assert_readable_title(self, fig, *words):
    """A title as large as the labels, inside the figure, saying words."""
    title = fig.get_suptitle()
    for word in words:
      self.assertIn(word, title.replace('\n', ' '))
    [text] = [text for text in fig.texts if text.get_text() == title]
    self.assertGreaterEqual(text.get_fontsize(),
                            matplotlib.rcParams['font.size'])
    fig.canvas.draw()
    extent = text.get_window_extent()
    self.assertGreaterEqual(extent.x0, 0)
    self.assertLessEqual(extent.x1, fig.bbox.width)

  def testRoutingTitleIsReadableAndCouplingMapsLabelled(self):
    rng = np.random.default_rng(0)
    couplings = 0.1 + 0.01 * rng.normal(size=(3, 2, 2))
    routing = figures.Routing(
        logit_change=np.array([1e-3, 2e-3, 3e-3]), trained_routing=3,
        couplings=couplings, uniform=0.1, predictions=np.array([4, 1, 7]),
        images=rng.uniform(size=(3, 5, 5)), num_types=2)
    fig = figures.plot_routing(
        routing, os.path.join(self.get_temp_dir(), 'routing.png'),
        num_shown=2)
    # The long title wraps: unwrapped it is twice the figure's width.
    self._assert_readable_title(fig, '2x2 grid of primary capsules',
                                'mean over their 2 types')
    maps = [ax for ax in fig.axes
            if ax.images and ax.images[0].get_array().shape == (2, 2)]
    self.assertLen(maps, 2)
    for ax, coupling in zip(maps, couplings):
      self.assertAllClose(ax.images[0].get_array(), coupling)
      self.assertEqual(ax.get_xlabel(), 'primary capsule column')
      self.assertAllEqual(ax.get_xticks(), [0, 1])
      self.assertAllEqual(ax.get_yticks(), [0, 1])
    self.assertEqual(maps[0].get_ylabel(), 'primary capsule row')

  def testPerturbationRowsAreLargeAndTitled(self):
    # Fig. 4's 16 capsule dimensions, 3 offsets, two digits.
    remakes = np.random.default_rng(0).uniform(size=(2, 16, 3, 4, 4))
    perturbations = figures.Perturbations(
        classes=np.array([4, 9]), offsets=np.array([-0.25, 0.0, 0.25]),
        capsules=None, remakes=remakes)
    fig = figures.plot_perturbations(
        perturbations, os.path.join(self.get_temp_dir(), 'perturbations.png'))
    self._assert_readable_title(fig, 'Each row adds -0.25 to +0.25',
                                '16 dimensions')
    self.assertLen(fig.axes, 2)
    for i, ax in enumerate(fig.axes):
      self.assertEqual(ax.get_title(), f'digit {(4, 9)[i]}')
      self.assertEqual(ax.get_ylabel(), 'capsule dimension')
      # Each row at least 0.35 inch (42 pixels) high as drawn.
      self.assertGreaterEqual(
          ax.get_window_extent().height / fig.dpi / 16, 0.35)
      # The digits, a grey line around each: [16 * (4 + 2), 3 * (4 + 2)].
      mosaic = ax.images[0].get_array()
      self.assertEqual(mosaic.shape, (96, 18))
      self.assertAllClose(mosaic[1:5, 1:5], remakes[i, 0, 0])
      self.assertAllClose(mosaic[7:11, 13:17], remakes[i, 1, 2])

  def testCurveOfOnePointIsALabelledPoint(self):
    curves = figures.Curves(
        total_loss=figures.Scalars(np.array([0, 10, 20]),
                                   np.array([2.5, 1.25, 0.5])),
        accuracy=figures.Scalars(np.array([], np.int64), np.array([])),
        test_error=figures.Scalars(np.array([150]), np.array([2.01])))
    fig = figures.plot_curves(curves,
                              os.path.join(self.get_temp_dir(), 'curves.png'))
    loss, _, error = fig.axes
    self.assertEqual(loss.get_yscale(), 'log')
    [line] = error.get_lines()
    self.assertNotIn(line.get_marker(), ('', 'None', None))
    [label] = error.texts
    self.assertEqual(label.get_text(), '2.01')
    self.assertEqual(label.xy, (150, 2.01))
    # Steps from 0, errors from 0, not matplotlib's 142.5-157.5 and 1-10.
    self.assertEqual(error.get_yscale(), 'linear')
    low, high = error.get_xlim()
    self.assertLessEqual(low, 0)
    self.assertGreater(high, 150)
    low, high = error.get_ylim()
    self.assertEqual(low, 0)
    self.assertGreater(high, 2.01)


class FigureArraysTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = _tiny_model()
    # The same weights, for batches of pairs.
    cls.pairs_model = _tiny_model(num_targets=2)
    for variable, value in zip(cls.pairs_model.trainable_variables,
                               cls.model.trainable_variables):
      variable.assign(value)
    cls.images = _digits(6, seed=1)
    probe = _features(cls.images, np.zeros(6, np.int32))
    cls.predicted = np.argmax(cls.model.forward(probe).logits, axis=1)

  def testConfusionMatrixOneTarget(self):
    labels = np.array([[0], [1], [1], [2], [2]])
    predictions = np.array([[0], [1], [2], [2], [0]])
    matrix = figures.confusion_matrix(labels, predictions, num_classes=3)
    self.assertAllEqual(matrix, [[1, 0, 0], [0, 1, 1], [1, 0, 1]])

  def testConfusionMatrixTwoTargetsPairsTheMissedDigits(self):
    labels = np.array([[1, 2], [3, 4], [5, 6]])
    predictions = np.array([[2, 1], [3, 0], [0, 7]])
    matrix = figures.confusion_matrix(labels, predictions, num_classes=8)
    expected = np.zeros([8, 8], np.int64)
    expected[1, 1] = expected[2, 2] = expected[3, 3] = 1
    expected[4, 0] = expected[5, 0] = expected[6, 7] = 1
    self.assertAllEqual(matrix, expected)

  def testSelectExamples(self):
    correct = np.array([True, False, True, True, False, False])
    self.assertAllEqual(
        figures.select_examples(correct, num_correct=2, num_wrong=5),
        [0, 2, 1, 4, 5])

  def testTakeExamplesInTheOrderAsked(self):
    values = np.arange(8, dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(
        dict(images=values, labels=values * 10)).batch(3)
    taken = figures.take_examples(dataset, [5, 0, 7, 5])
    self.assertAllEqual(taken['images'], [5, 0, 7, 5])
    self.assertAllEqual(taken['labels'], [50, 0, 70, 50])
    with self.assertRaisesRegex(ValueError, '8 examples'):
      figures.take_examples(dataset, [2, 8])

  def testPredictAndConfusionMatrixCountWhatTheModelGetsRight(self):
    # Even examples are labelled with the model's prediction, odd ones not:
    # of the 5 evaluated (eval_size cuts the second batch of 4), 3 are right.
    labels = np.where(np.arange(6) % 2, (self.predicted + 1) % 10,
                      self.predicted)
    features = _features(self.images, labels)
    tensors = {key: features[key] for key in
               ('images', 'labels', 'recons_image', 'recons_label')}
    evaluator = evaluation.Evaluator(
        hparams_lib.default_hparams().parse(_TINY), model_type='capsule',
        input_fn=lambda split, batch_size: tf.data.Dataset.from_tensor_slices(
            tensors).batch(batch_size),
        config=run_config.RunConfig(eval_batch_size=4))
    for variable, value in zip(evaluator.model.trainable_variables,
                               self.model.trainable_variables):
      variable.assign(value)
    predictions = figures.predict(evaluator, eval_size=5)
    self.assertAllEqual(predictions.labels[:, 0], labels[:5])
    self.assertAllEqual(predictions.predictions[:, 0], self.predicted[:5])
    self.assertAllEqual(predictions.correct, [1, 0, 1, 0, 1])
    matrix = figures.confusion_matrix(
        predictions.labels, predictions.predictions, num_classes=10)
    first_five = {key: value[:5] if hasattr(value, 'shape') else value
                  for key, value in features.items()}
    _, correct, _ = self.model.compute_loss(first_five)
    self.assertEqual(matrix.sum(), 5)
    self.assertEqual(np.trace(matrix), int(correct))
    self.assertEqual(np.trace(matrix), 3)

  def testReconstructionGridDecodesLabelAndPrediction(self):
    labels = self.predicted.copy()
    labels[1] = (labels[1] + 3) % 10  # One failure.
    recons = figures.reconstruction_grid(self.model,
                                         _features(self.images, labels))
    self.assertAllEqual(recons.labels, labels)
    self.assertAllEqual(recons.predictions, self.predicted)
    self.assertEqual(recons.images.shape, (6, _HEIGHT, _HEIGHT))
    self.assertAllClose(recons.images, self.images / 255)
    # The model's own reconstructions, decoded from recons_label in forward.
    from_labels = self.model.forward(_features(self.images, labels))
    from_predictions = self.model.forward(
        _features(self.images, self.predicted))
    self.assertAllClose(recons.from_label.reshape(6, -1),
                        from_labels.remakes[0], atol=1e-6)
    self.assertAllClose(recons.from_prediction.reshape(6, -1),
                        from_predictions.remakes[0], atol=1e-6)
    self.assertGreater(
        np.abs(recons.from_label[1] - recons.from_prediction[1]).max(), 1e-3)

  def testPerturbationGridCentreIsTheReconstruction(self):
    features = _features(self.images[:2], self.predicted[:2])
    grid = figures.perturbation_grid(self.model, features)
    self.assertEqual(grid.remakes.shape, (2, 16, 11, _HEIGHT, _HEIGHT))
    self.assertAllClose(grid.offsets, np.linspace(-0.25, 0.25, 11))
    centre = grid.offsets.tolist().index(0.0)
    self.assertEqual(centre, 5)
    plain = self.model.forward(features).remakes[0].numpy()
    for i in range(2):
      for dimension in range(16):
        self.assertAllClose(grid.remakes[i, dimension, centre].ravel(),
                            plain[i], atol=1e-6)
    # Row d moves dimension d of the class capsule by each offset, and only
    # that dimension.
    capsule = self.model.forward(features).capsule_output.numpy()[
        np.arange(2), self.predicted[:2]]
    moved = grid.capsules - capsule[:, None, None, :]
    expected = (np.eye(16)[None, :, None, :] *
                grid.offsets[None, None, :, None])
    self.assertAllClose(moved, np.broadcast_to(expected, moved.shape),
                        atol=1e-6)
    # And the decoder sees it: a tweak changes the image.
    self.assertGreater(
        np.abs(grid.remakes[:, :, 0] - grid.remakes[:, :, centre]).max(),
        1e-4)

  def testMultimnistGridDecodesPredictionsAndAnAbsentDigit(self):
    labels, spare = np.arange(6) % 10, (np.arange(6) + 5) % 10
    features = _features(self.images, labels, spare)
    multi = figures.multimnist_grid(self.pairs_model, features, num_absent=2)
    self.assertEqual(multi.remakes.shape, (8, 2, _HEIGHT, _HEIGHT))
    self.assertAllEqual(multi.absent, [False] * 6 + [True] * 2)
    logits = self.pairs_model.forward(features).logits.numpy()
    top_two = np.argsort(-logits, axis=1)[:, :2]
    self.assertAllEqual(multi.predictions[:6], top_two)
    self.assertAllEqual(multi.reconstructed[:6], top_two)
    self.assertAllEqual(multi.labels[6:], np.stack([labels, spare], 1)[:2])
    for column, example in ((6, 0), (7, 1)):
      first, absent = multi.reconstructed[column]
      self.assertEqual(first, labels[example])
      taken = {labels[example], spare[example], *top_two[example]}
      self.assertNotIn(absent, taken)
      free = [c for c in range(10) if c not in taken]
      self.assertEqual(absent, free[np.argmax(logits[example, free])])
    # Each colour is the model's reconstruction of one decoded digit.
    for k in range(2):
      remade = self.model.forward(
          _features(self.images, multi.reconstructed[:6, k]))
      self.assertAllClose(multi.remakes[:6, k].reshape(6, -1),
                          remade.remakes[0], atol=1e-6)

  def testRoutingStatisticsMatchRoutingStepByStep(self):
    features = _features(self.images, self.predicted)
    routing = figures.routing_statistics(self.model, features)
    further = figures.routing_statistics(self.model, features, num_routing=5)
    # Votes u_hat = u W of capsule2's weights, routed in numpy (Procedure 1).
    weights = self.model.tf1_variable_map()
    kernel = weights['capsule2/weights'].numpy()  # [in, 8, 10 * 16]
    biases = weights['capsule2/biases'].numpy()  # [10, 16]
    primary = self.model.primary_capsules(features).numpy()  # [b, in, 8]
    votes = np.einsum('bia,iaj->bij', primary, kernel).reshape(
        6, kernel.shape[0], 10, 16)
    logits = np.zeros(votes.shape[:3])
    changes, activations, routes = [], [], []
    for _ in range(5):
      routes.append(_softmax(logits))
      activations.append(_squash(
          np.sum(routes[-1][..., None] * votes, axis=1) + biases))
      agreement = np.sum(votes * activations[-1][:, None], axis=3)
      changes.append(np.mean(np.abs(agreement)))
      logits = logits + agreement
    # The model's 3 iterations; 5 run for the figure, the same first 3.
    activation, route = activations[2], routes[2]
    self.assertAllClose(activation,
                        self.model.forward(features).capsule_output,
                        rtol=1e-4, atol=1e-6)
    self.assertAllClose(routing.logit_change, changes[:3], rtol=1e-4)
    self.assertAllClose(further.logit_change, changes, rtol=1e-4)
    self.assertEqual((routing.trained_routing, further.trained_routing),
                     (3, 3))
    self.assertAllClose(further.couplings, routing.couplings)
    predictions = np.argmax(np.linalg.norm(activation, axis=-1), axis=1)
    self.assertAllEqual(routing.predictions, predictions)
    # 2 types on a 2x2 grid, ordered (type, row, column); mean over types.
    to_predicted = route[np.arange(6), :, predictions]  # [b, in]
    self.assertAllClose(routing.couplings,
                        to_predicted.reshape(6, 2, 2, 2).mean(axis=1),
                        rtol=1e-4)
    self.assertEqual(routing.num_types, 2)
    self.assertAllClose(routing.uniform, 0.1)


  def testRoutingHistoryEvaluatesEachCheckpoint(self):
    features = _features(self.images, self.predicted)
    directory = self.get_temp_dir()
    model = _tiny_model()
    paths, expected = {}, []
    for step, scale in ((0, 1.0), (7, 3.0)):
      for var in model.trainable_variables:
        var.assign(var * scale)
      model.optimizer.set_step(step)
      paths[step] = checkpoints.write(model, os.path.join(
          directory, f'model.ckpt-{step}'))
      expected.append(figures.routing_statistics(model, features).logit_change)
    history = figures.routing_history(_tiny_model(), features, paths)
    self.assertAllEqual(history.steps, [0, 7])
    self.assertAllClose(history.logit_change, expected, rtol=1e-5)
    # Three times the weights: other votes, another change.
    self.assertNotAllClose(expected[0], expected[1])


class ReadEventsTest(tf.test.TestCase):

  def testCurvesReadBackTheScalarsWritten(self):
    summary_dir = self.get_temp_dir()
    losses = {0: 2.5, 10: 1.25, 20: 0.5}
    with tf.summary.create_file_writer(
        os.path.join(summary_dir, 'train')).as_default():
      for step, loss in losses.items():
        tf.summary.scalar('total_loss', loss, step=step)
        tf.summary.scalar('accuracy', step / 100, step=step)
        tf.summary.scalar('other', 7.0, step=step)
    counts = {1500: (9000, 1000), 3000: (9900, 100)}
    with tf.summary.create_file_writer(
        os.path.join(summary_dir, 'test')).as_default():
      for step, (correct, wrong) in counts.items():
        tf.summary.scalar('correct_prediction', correct, step=step)
        tf.summary.scalar('wrong_prediction', wrong, step=step)
    curves = figures.training_curves(summary_dir)
    self.assertAllEqual(curves.total_loss.steps, [0, 10, 20])
    self.assertAllClose(curves.total_loss.values, [2.5, 1.25, 0.5])
    self.assertAllClose(curves.accuracy.values, [0.0, 0.1, 0.2])
    self.assertAllEqual(curves.test_error.steps, [1500, 3000])
    self.assertAllClose(curves.test_error.values, [10.0, 1.0])

  def testReadsReferenceSimpleValues(self):
    # The reference (TF1) wrote scalars as simple_value; a later file
    # (a resumed run) overrides an earlier one's step.
    log_dir = self.get_temp_dir()
    for values in ({5: 3.0, 6: 4.0}, {6: 8.0}):
      with tf.summary.create_file_writer(log_dir).as_default():
        for step, value in values.items():
          summary = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
              tag='total_loss', simple_value=value)])
          tf.summary.experimental.write_raw_pb(
              summary.SerializeToString(), step=step)
    events = figures.read_events(log_dir, tags=['total_loss', 'accuracy'])
    self.assertEqual(events, {'total_loss': {5: 3.0, 6: 8.0}})

  def testCurvesWithoutEventsRaise(self):
    with self.assertRaisesRegex(FileNotFoundError, 'summary_dir'):
      figures.training_curves(self.get_temp_dir())


class MakeFiguresTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(dir=tf.compat.v1.test.get_temp_dir())
    cls.checkpoint = checkpoints.write(
        _tiny_model(), os.path.join(cls.root, 'model.ckpt-0'))
    cls.images = _digits(12, seed=2)
    cls.labels = np.arange(12) % 10
    cls.mnist_dir = os.path.join(cls.root, 'mnist')
    os.makedirs(cls.mnist_dir)
    mnist_records.shift_write_mnist(
        cls.images, labels=cls.labels, filename=os.path.join(
            cls.mnist_dir, mnist_records.shifted_mnist_filename('test',
                                                                shift=0)),
        shift=0, pad=0)

  def _assert_pngs(self, output_dir, names):
    self.assertCountEqual(os.listdir(output_dir), names)
    for name in names:
      picture = mpl_image.imread(os.path.join(output_dir, name))
      self.assertGreater(picture.shape[0], 100)
      # Not a blank canvas.
      self.assertGreater(picture[..., :3].std(), 0.01)

  def testCommandLineWritesEveryMnistFigure(self):
    summary_dir = os.path.join(self.root, 'experiment')
    with tf.summary.create_file_writer(
        os.path.join(summary_dir, 'train')).as_default():
      tf.summary.scalar('total_loss', 1.0, step=0)
      tf.summary.scalar('accuracy', 0.5, step=0)
    output_dir = os.path.join(self.root, 'figures')
    command = [sys.executable, '-m', 'paper.figures',
               f'--checkpoint={self.checkpoint}',
               f'--data_dir={self.mnist_dir}',
               f'--output_dir={output_dir}', f'--summary_dir={summary_dir}',
               f'--hparams_override={_TINY}', '--eval_size=10']
    result = subprocess.run(command, cwd=_ROOT, capture_output=True,
                            text=True, timeout=_SUBPROCESS_TIMEOUT_S)
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn('of 10 test examples wrong', result.stdout)
    self._assert_pngs(output_dir, [
        'reconstructions.png', 'perturbations.png', 'routing.png',
        'confusion.png', 'curves.png'])

  def testApiWritesMultimnistFigures(self):
    prefix = os.path.join(self.root, 'multitest_1shifted_mnist.tfrecords')
    shards = mnist_records.shift_write_multi_mnist(
        self.images, labels=self.labels, file_prefix=prefix, shift=1, pad=0,
        max_shard=100, num_pairs=1, seed=0)
    output_dir = os.path.join(self.root, 'multi_figures')
    paths = figures.make_figures(
        self.checkpoint, data_dir=f'{prefix}@{len(shards)}',
        output_dir=output_dir, num_targets=2,
        hparams=hparams_lib.default_hparams().parse(_TINY), eval_size=100)
    self.assertCountEqual([os.path.basename(path) for path in paths],
                          ['multimnist.png', 'routing.png', 'confusion.png'])
    self._assert_pngs(output_dir, ['multimnist.png', 'routing.png',
                                   'confusion.png'])

  def testMistakesAreOneLineErrors(self):
    hparams = hparams_lib.default_hparams().parse('num_prime_capsules=3')
    with self.assertRaisesRegex(ValueError, 'conv_capsule1/weights') as caught:
      figures.make_figures(self.checkpoint, data_dir=self.mnist_dir,
                           output_dir=self.root, hparams=hparams)
    # What the command line prints for it.
    def failing_main(argv):
      del argv
      raise caught.exception
    with self.assertRaises(SystemExit) as exited:
      cli.call_main(failing_main, ['figures'], program='figures')
    message = str(exited.exception.code)
    self.assertStartsWith(message, 'figures: error: checkpoint ')
    self.assertNotIn('\n', message)

  def testMissingCheckpointIsNamedBeforeTheDataIsRead(self):
    empty = os.path.join(self.root, 'no_data_here')
    with self.assertRaisesRegex(checkpoints.MissingCheckpointError,
                                'model.ckpt-9.index does not exist'):
      figures.make_figures(
          os.path.join(self.root, 'model.ckpt-9'), data_dir=empty,
          output_dir=self.root,
          hparams=hparams_lib.default_hparams().parse(_TINY))
    self.assertFalse(os.path.exists(empty))

  def testModelWithoutDecoderIsRefused(self):
    with self.assertRaisesRegex(ValueError, 'remake=true'):
      figures.make_figures(
          self.checkpoint, data_dir=self.root, output_dir=self.root,
          hparams=hparams_lib.default_hparams().parse(_TINY + ',remake=false'))
