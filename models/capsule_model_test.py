"""Tests for CapsuleModel: sizes, parameter counts and the feature contract."""

import numpy as np
import tensorflow as tf

from models import capsule_model
from models import hparams as hparams_lib
from models import model as model_lib
import test_utils


def _features(*, batch, depth, height, num_targets=1, seed=0):
  """A random batch; each example has `num_targets` different labels."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(batch, depth, height, height)).astype(np.float32)
  labels = np.array([rng.choice(10, size=num_targets, replace=False)
                     for _ in range(batch)])
  tensors = dict(
      images=tf.constant(images),
      labels=tf.constant(np.eye(10, dtype=np.float32)[labels].sum(axis=1)),
      recons_image=tf.constant(images),
      recons_label=tf.constant(labels[:, 0], tf.int32))
  if num_targets == 2:
    tensors.update(spare_image=tf.constant(images[::-1]),
                   spare_label=tf.constant(labels[:, 1], tf.int32))
  return tensors


def _margin_loss(labels, logits):
  """The paper's margin loss (eq. 4), as the reference reduces it.

  The reference halves each cost and averages over examples and classes.
  """
  present = labels * np.maximum(0, 0.9 - logits)**2
  absent = 0.5 * (1 - labels) * np.maximum(0, logits - 0.1)**2
  return np.mean(0.5 * (present + absent))


def _num_params(model):
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _built_alike(*models):
  """The models built for 20x20 digits, all with the first one's weights."""
  for model in models:
    model.build(model_lib.DataShape(20, 1))
  for model in models[1:]:
    for source, target in zip(models[0].trainable_variables,
                              model.trainable_variables):
      target.assign(source)
  return models


class CapsuleModelTest(tf.test.TestCase):

  def testFullMnistParameterCount(self):
    model = capsule_model.CapsuleModel(hparams_lib.default_hparams())
    model.build(model_lib.DataShape(28, 1))
    # conv1: 9*9*1*256 + 256 = 20,992.
    # conv_capsule1: 9*9*256*(32*8) + 32*8 = 5,308,672.
    # 28 -> 20 (conv1, VALID) -> 6 (9x9 stride 2, VALID): 32*6*6 = 1,152
    # primary capsules; capsule2: 1152*8*(10*16) + 10*16 = 1,474,720.
    # recons: (160*512 + 512) + (512*1024 + 1024) + (1024*784 + 784)
    #   = 1,411,344.
    self.assertEqual(_num_params(model),
                     20_992 + 5_308_672 + 1_474_720 + 1_411_344)
    self.assertEqual(_num_params(model), 8_215_728)

  def testSvhnNetworkParameterCount(self):
    model = capsule_model.CapsuleModel(hparams_lib.default_hparams().parse(
        'conv1_channels=64,num_prime_capsules=16,prime_capsule_atoms=6,'
        'digit_capsule_atoms=8'))
    model.build(model_lib.DataShape(32, 3))
    # conv1: 9*9*3*64 + 64 = 15,616; 32 -> 24 (VALID).
    # conv_capsule1: 9*9*64*(16*6) + 16*6 = 497,760; 24 -> 8 (stride 2).
    # capsule2: 16*8*8 = 1,024 inputs: 1024*6*(10*8) + 10*8 = 491,600.
    # recons: (80*512 + 512) + (512*1024 + 1024) + (1024*3072 + 3072)
    #   = 3,715,584.
    self.assertEqual(_num_params(model),
                     15_616 + 497_760 + 491_600 + 3_715_584)
    self.assertEqual(model.tf1_variable_map()['capsule2/weights'].shape,
                     (1024, 6, 80))

  def testCifarConfigurationShapes(self):
    hparams = hparams_lib.default_hparams().parse(
        'num_prime_capsules=64,padding=SAME,leaky=true,remake=false')
    model = capsule_model.CapsuleModel(hparams)
    model.build(model_lib.DataShape(24, 3))
    shapes = {name: list(var.shape)
              for name, var in model.tf1_variable_map().items()}
    # SAME keeps 24x24 after conv1, stride 2 gives 12x12: 64*12*12 inputs.
    self.assertEqual(shapes['conv_capsule1/weights'], [9, 9, 256, 512])
    self.assertEqual(shapes['capsule2/weights'], [64 * 12 * 12, 8, 160])
    self.assertNotIn('recons/recons_1/weights', shapes)

  def testInferenceContract(self):
    model = capsule_model.CapsuleModel(
        hparams_lib.default_hparams().parse('num_prime_capsules=2'))
    model.build(model_lib.DataShape(20, 1))
    features = _features(batch=3, depth=1, height=20)
    inferred = model.inference(features)
    self.assertEqual(inferred.logits.shape, (3, 10))
    self.assertLen(inferred.remakes, 1)
    self.assertEqual(inferred.remakes[0].shape, (3, 400))
    # Logits are capsule lengths, so they lie in [0, 1).
    self.assertAllInRange(inferred.logits, 0.0, 1.0)

  def testLossesAndCountsFromLogits(self):
    """Total loss, correct and almost recomputed in numpy from the outputs."""
    model = capsule_model.CapsuleModel(
        hparams_lib.default_hparams().parse('num_prime_capsules=2'))
    for num_targets in (1, 2):
      model.build(model_lib.DataShape(20, 1, num_targets=num_targets))
      features = _features(batch=6, depth=1, height=20,
                           num_targets=num_targets, seed=num_targets)
      result = model.losses(features)
      logits = result.logits.numpy()
      labels = features['labels'].numpy()
      images = features['images'].numpy().reshape(6, 400)
      recons_images = [images, images[::-1]][:num_targets]
      # Reconstruction losses: 0.0005 * mean over the batch of the summed
      # squared error, one per target.
      self.assertLen(result.reconstruction_losses, num_targets)
      for loss, remake, image in zip(result.reconstruction_losses,
                                     result.remakes, recons_images):
        self.assertAllClose(loss, 0.0005 * np.mean(
            np.sum((remake.numpy() - image)**2, axis=1)), rtol=1e-5)
      self.assertAllClose(
          result.total_loss,
          _margin_loss(labels, logits) + sum(result.reconstruction_losses),
          rtol=1e-5)
      # The k largest logits name the k targets (correct) or at least one of
      # them (almost).
      top_k = np.argsort(-logits, axis=1)[:, :num_targets]
      hits = np.take_along_axis(labels, top_k, axis=1).sum(axis=1)
      self.assertEqual(float(result.correct), np.sum(hits == num_targets))
      self.assertEqual(float(result.almost), np.sum(hits > 0))

  def testTwoTargetsReconstructBoth(self):
    model = capsule_model.CapsuleModel(
        hparams_lib.default_hparams().parse('num_prime_capsules=2'))
    model.build(model_lib.DataShape(20, 1, num_targets=2))
    features = _features(batch=2, depth=1, height=20, num_targets=2)
    forward = model.forward(features)
    self.assertLen(forward.remakes, 2)
    self.assertLen(forward.reconstruction_losses, 2)
    # One decoder shared between the targets: 6 recons variables only.
    recons = [n for n in model.tf1_variable_map() if n.startswith('recons/')]
    self.assertLen(recons, 6)

  def testChannelsFirstImagesMatterInOrder(self):
    """Swapping two colour planes changes the output: depth is axis 1."""
    model = capsule_model.CapsuleModel(
        hparams_lib.default_hparams().parse('num_prime_capsules=2,remake=false'))
    model.build(model_lib.DataShape(20, 3))
    features = _features(batch=1, depth=3, height=20)
    swapped = dict(features,
                   images=tf.gather(features['images'], [2, 1, 0], axis=1))
    self.assertNotAllClose(model.inference(features).logits,
                           model.inference(swapped).logits)

  def testTrainStepAdvancesGlobalStepAndLowersLoss(self):
    model, = _built_alike(capsule_model.CapsuleModel(
        hparams_lib.default_hparams().parse('num_prime_capsules=2')))
    step = test_utils.trainer_on(model, _features(batch=4, depth=1,
                                                  height=20))
    first = step().loss
    last = step(4).loss  # The mean of the four.
    self.assertEqual(int(model.global_step.numpy()), 5)
    self.assertLess(float(last), float(first))

  def testTrainingStepMatchesAnEagerStep(self):
    """The compiled training step updates like one run op by op."""
    hparams = hparams_lib.default_hparams().parse('num_prime_capsules=2')
    features = _features(batch=2, depth=1, height=20)
    graph_model, eager_model = _built_alike(
        capsule_model.CapsuleModel(hparams),
        capsule_model.CapsuleModel(hparams))
    start = [v.numpy() for v in graph_model.trainable_variables]
    graph_loss = test_utils.trainer_on(graph_model, features)().loss
    grads, result = eager_model.compute_gradients(features)
    eager_model.apply_gradients(grads)
    self.assertEqual(int(graph_model.global_step.numpy()), 1)
    self.assertAllClose(graph_loss, result.total_loss, rtol=1e-5)
    for before, graph, eager in zip(start, graph_model.trainable_variables,
                                    eager_model.trainable_variables):
      self.assertNotAllClose(graph, before)
      self.assertAllClose(graph, eager, rtol=0, atol=1e-5)

  def testBothConvolutionPathsTrainAlike(self):
    """The GPU path (TensorFlow's convolution) forced on CPU: same steps."""
    hparams = hparams_lib.default_hparams().parse('num_prime_capsules=2')
    features = _features(batch=2, depth=1, height=20)
    models = _built_alike(*[
        capsule_model.CapsuleModel(hparams, config=model_lib.ModelConfig(
            conv_implementation=path))
        for path in ('fourier', 'native')])
    steps = [test_utils.trainer_on(model, features) for model in models]
    losses = [[float(step().loss) for _ in range(2)] for step in steps]
    self.assertAllClose(losses[0], losses[1], rtol=1e-5)
    for fourier, native in zip(*[model.trainable_variables
                                 for model in models]):
      self.assertAllClose(fourier, native, rtol=0, atol=1e-5)

  def testMixedPrecisionKeepsFloat32WeightsAndLogitsClose(self):
    hparams = hparams_lib.default_hparams().parse('num_prime_capsules=2')
    features = _features(batch=3, depth=1, height=20)
    # bfloat16 keeps 8 bits of mantissa, float16 11.
    for dtype, tolerance in (('bfloat16', 2e-2), ('float16', 5e-3)):
      with self.subTest(dtype):
        full, mixed = _built_alike(
            capsule_model.CapsuleModel(hparams),
            capsule_model.CapsuleModel(hparams, config=model_lib.ModelConfig(
                compute_dtype=dtype)))
        logits = mixed.inference(features).logits
        self.assertEqual(logits.dtype, tf.float32)
        self.assertAllClose(logits, full.inference(features).logits,
                            atol=tolerance)
        step = test_utils.trainer_on(mixed, features)
        first = step().loss
        for _ in range(3):
          last = step().loss
        self.assertLess(float(last), float(first))
        self.assertEqual(int(mixed.global_step.numpy()), 4)
        # Checkpoints hold float32 weights and the same Adam slots.
        self.assertEqual(set(mixed.slot_map()), set(full.slot_map()))
        self.assertTrue(all(v.dtype == 'float32'
                            for v in mixed.tf1_variable_map().values()
                            if v is not mixed.global_step))

  def testFloat16SkipsTheStepsWhoseGradientsOverflow(self):
    hparams = hparams_lib.default_hparams().parse('num_prime_capsules=2')
    features = _features(batch=3, depth=1, height=20)
    half, = _built_alike(capsule_model.CapsuleModel(
        hparams, config=model_lib.ModelConfig(compute_dtype='float16')))
    step = test_utils.trainer_on(half, features)
    step()
    # A loss scale that overflows float32: no update, the scale halved.
    scale = half.loss_scale.scale
    scale.assign(3e38)
    weights = [v.numpy() for v in half.trainable_variables]
    step()
    self.assertEqual(int(half.global_step.numpy()), 1)
    self.assertAllClose(scale, 1.5e38)
    for before, after in zip(weights, half.trainable_variables):
      self.assertAllEqual(before, after)


if __name__ == '__main__':
  tf.test.main()
