"""Tests for layers: the reference's own layer tests and its golden numbers."""

import numpy as np
import tensorflow as tf

import errors
import golden_utils
from layers import layers
from layers import variables

_LAYERS_GOLDEN = 'layers_golden.npz'


def _golden():
  return golden_utils.load_npz(_LAYERS_GOLDEN)


class LayersTest(tf.test.TestCase):
  """Counterparts of the reference's layers_test.py."""

  def testSquashRankSix(self):
    input_tensor = tf.ones((1, 1, 1, 1, 1, 1))
    squashed = layers._squash(input_tensor)
    self.assertEqual(squashed.shape, input_tensor.shape)
    # |s| = 1 gives 1 / (1 + 1) = 0.5.
    self.assertAllClose(np.linalg.norm(squashed, axis=2), [[[[[0.5]]]]])

  def testSquashZeroIsZeroWithFiniteGradient(self):
    zeros = tf.zeros((2, 3, 4))
    with tf.GradientTape() as tape:
      tape.watch(zeros)
      squashed = layers._squash(zeros)
    gradient = tape.gradient(squashed, zeros)
    self.assertAllEqual(squashed, np.zeros((2, 3, 4)))
    self.assertTrue(np.all(np.isfinite(gradient)))

  def testLeakyRoutingRankThree(self):
    logits = tf.ones((2, 3, 4))
    leaky = layers._leaky_routing(logits, 4)
    self.assertEqual(leaky.shape, logits.shape)
    # Part of the probability goes to the leak: 4 e / (1 + 4 e).
    self.assertAllClose(np.sum(leaky, axis=2),
                        np.full((2, 3), 4 * np.e / (1 + 4 * np.e)))

  def testUpdateRouting(self):
    """Each routing iteration changes the activation, as Procedure 1 says."""
    votes = np.reshape(np.arange(8, dtype=np.float32), (1, 2, 2, 2))
    biases = tf.zeros((2, 2))
    act_1 = layers._update_routing(votes, biases, num_routing=1, leaky=False)
    act_2 = layers._update_routing(votes, biases, num_routing=2, leaky=False)
    act_30 = layers._update_routing(votes, biases, num_routing=30, leaky=False)
    self.assertEqual(act_30.shape, (1, 2, 2))

    def squash(s):
      norm = np.linalg.norm(s, axis=-1, keepdims=True)
      return s * norm / (1 + norm**2)

    # One iteration averages the votes: s_j = (votes[0, j] + votes[1, j]) / 2.
    u_hat = votes[0]                                     # [in, out, atoms]
    v_1 = squash(np.mean(u_hat, axis=0))                 # [out, atoms]
    self.assertAllClose(act_1[0], v_1)
    # The second routes by b_ij = u_hat_j|i . v_j, softmax over j.
    b = np.sum(u_hat * v_1, axis=-1)                     # [in, out]
    c = np.exp(b) / np.sum(np.exp(b), axis=1, keepdims=True)
    v_2 = squash(np.sum(c[:, :, None] * u_hat, axis=0))
    self.assertAllClose(act_2[0], v_2)
    self.assertNotAllClose(act_1, act_2)
    self.assertNotAllClose(act_2, act_30)

  def testRoutingIterationsMatchUpdateRouting(self):
    """Routing step by step: the same activations, logits and routes."""
    for shape in ((2, 5, 3, 4), (2, 5, 3, 4, 2, 2)):
      votes = tf.random.normal(shape, seed=1)
      biases = tf.random.normal((3, 4) + (1,) * (len(shape) - 4), seed=2)
      for leaky in (False, True):
        iterations = list(layers.routing_iterations(
            votes, biases=biases, num_routing=3, leaky=leaky))
        self.assertLen(iterations, 3)
        self.assertAllEqual(
            iterations[-1].activation,
            layers._update_routing(votes, biases, 3, leaky))
        self.assertAllEqual(iterations[0].logits, np.zeros(shape[:3] +
                                                           shape[4:]))
        for before, after in zip(iterations, iterations[1:]):
          self.assertAllEqual(after.logits, before.logits + before.agreement)
        for iteration in iterations:
          route_sum = np.sum(iteration.route, axis=2)
          # The route sums to 1 over output capsules; the leak, an extra zero
          # logit, takes 1 / (1 + sum_j exp(b_ij)) of it.
          leak = (1 / (1 + np.sum(np.exp(iteration.logits), axis=2))
                  if leaky else 0)
          self.assertAllClose(route_sum, np.ones_like(route_sum) - leak)

  def testUpdateRoutingHasNoTile(self):
    votes = tf.random.uniform((2, 5, 3, 4))

    @tf.function
    def route(v):
      return layers._update_routing(v, tf.zeros((3, 4)), 3, leaky=True)

    graph = route.get_concrete_function(votes).graph
    op_types = {op.type for op in graph.get_operations()}
    self.assertNotIn('Tile', op_types)

  def testCapsule(self):
    layer = layers.Capsule(output_dim=2, output_atoms=5, num_routing=3,
                           name='capsule')
    output = layer(tf.random.uniform((4, 3, 2)))
    self.assertEqual(output.shape, (4, 2, 5))
    self.assertEqual(sorted(layer.tf1_variables()), ['biases', 'weights'])
    self.assertEqual(layer.kernel.shape, (3, 2, 10))
    self.assertEqual(layer.biases.shape, (2, 5))
    self.assertLen(layer.trainable_weights, 2)

  def testConvSlimCapsule(self):
    layer = layers.ConvSlimCapsule(
        output_dim=2, output_atoms=5, stride=1, kernel_size=2, padding='SAME',
        num_routing=3, name='conv_capsule')
    output = layer(tf.random.uniform((6, 4, 2, 3, 3)))
    self.assertEqual(output.shape, (6, 2, 5, 3, 3))
    self.assertEqual(layer.kernel.shape, (2, 2, 2, 10))
    self.assertEqual(layer.biases.shape, (2, 5, 1, 1))
    self.assertLen(layer.trainable_weights, 2)

  def testCapsuleVotesAreWhatCallRoutes(self):
    layer = layers.Capsule(output_dim=2, output_atoms=5, num_routing=3)
    input_tensor = tf.random.uniform((4, 3, 2))
    output = layer(input_tensor)
    votes = layer.votes(input_tensor)
    self.assertEqual(votes.shape, (4, 3, 2, 5))
    # Vote of input capsule i for output j: u_i @ W_i, columns of capsule j.
    kernel = layer.kernel.numpy().reshape(3, 2, 2, 5)
    self.assertAllClose(votes[1, 2],
                        np.einsum('a,ajk->jk', input_tensor[1, 2], kernel[2]))
    self.assertAllClose(output, layers._update_routing(votes, layer.biases, 3,
                                                       False), rtol=1e-5)
    self.assertAllEqual(layer.votes(input_tensor, input_major=True),
                        tf.transpose(votes, [1, 0, 2, 3]))

  def testConvSlimCapsuleVotesAreWhatCallRoutes(self):
    layer = layers.ConvSlimCapsule(output_dim=2, output_atoms=5, stride=2,
                                   kernel_size=3, padding='VALID',
                                   num_routing=2, leaky=True)
    input_tensor = tf.random.uniform((2, 3, 4, 7, 7))
    output = layer(input_tensor)
    votes = layer.votes(input_tensor)
    self.assertEqual(votes.shape, (2, 3, 2, 5, 3, 3))
    self.assertAllClose(output, layers._update_routing(votes, layer.biases, 2,
                                                       True), rtol=1e-5)

  def testDepthwiseConv3dLayout(self):
    # Output channel c of the kernel is capsule c // atoms, atom c % atoms.
    input_tensor = tf.random.uniform((2, 3, 4, 5, 5))
    kernel = tf.random.uniform((3, 3, 4, 6))
    votes = layers._depthwise_conv3d(
        input_tensor, kernel, input_dim=3, output_dim=2, input_atoms=4,
        output_atoms=3, stride=1, padding='VALID')
    self.assertEqual(votes.shape, (2, 3, 2, 3, 3, 3))
    patch = input_tensor[1, 2, :, 1:4, 0:3]              # [atoms, 3, 3]
    expected = np.einsum('ahw,hwac->c', patch, kernel)   # [6]
    self.assertAllClose(votes[1, 2, :, :, 1, 0], expected.reshape(2, 3),
                        rtol=1e-5)

  def testXlaRoutingMatchesUpdateRouting(self):
    votes = tf.random.normal((2, 5, 3, 4))
    biases = tf.random.normal((3, 4))
    for num_routing, leaky in ((1, False), (3, True)):
      with tf.GradientTape(persistent=True) as tape:
        tape.watch([votes, biases])
        plain = layers._update_routing(votes, biases, num_routing, leaky)
        fused = layers._update_routing(votes, biases, num_routing, leaky,
                                       xla=True)
      self.assertAllClose(fused, plain, rtol=1e-5, atol=1e-6)
      for wrt in (votes, biases):
        self.assertAllClose(tape.gradient(fused, wrt),
                            tape.gradient(plain, wrt), rtol=1e-4, atol=1e-6)

  def testXlaRoutingWidensBfloat16Votes(self):
    votes = tf.random.normal((2, 5, 3, 4, 2, 2))
    biases = tf.random.normal((3, 4, 1, 1))
    fused = layers._update_routing(tf.cast(votes, tf.bfloat16), biases, 2,
                                   False, xla=True)
    self.assertEqual(fused.dtype, tf.float32)
    # bfloat16 keeps 8 bits of mantissa: votes are off by up to 2^-9.
    self.assertAllClose(fused, layers._update_routing(votes, biases, 2, False),
                        atol=2e-2)

  def testConvImplementations(self):
    """'fourier' gives TensorFlow's votes by other ops; 'native' is default."""
    input_tensor = tf.random.uniform((2, 3, 4, 7, 7))
    native = layers.ConvSlimCapsule(output_dim=2, output_atoms=5, stride=2,
                                    kernel_size=3, padding='VALID')
    fourier = layers.ConvSlimCapsule(output_dim=2, output_atoms=5, stride=2,
                                     kernel_size=3, padding='VALID',
                                     conv_implementation='fourier')
    native(input_tensor)
    fourier(input_tensor)
    fourier.kernel.assign(native.kernel)
    self.assertAllClose(fourier.votes(input_tensor),
                        native.votes(input_tensor), rtol=1e-5, atol=1e-5)

    def op_types(layer):
      votes = tf.function(layer.votes).get_concrete_function(input_tensor)
      return {op.type for op in votes.graph.get_operations()}

    self.assertIn('Conv2D', op_types(native))
    self.assertNotIn('Conv2D', op_types(fourier))
    with self.assertRaisesRegex(errors.ConfigError,
                                'use one of native, fourier'):
      layers._depthwise_conv3d(
          input_tensor, native.kernel, input_dim=3, output_dim=2,
          input_atoms=4, output_atoms=5, stride=2, padding='VALID',
          implementation='winograd')

  def testRoutingOnInputMajorVotes(self):
    """input_axis=0 routes the transposed votes alike, gradients too."""
    votes = tf.random.normal((2, 5, 3, 4))
    biases = tf.random.normal((3, 4))
    for xla in (False, True):
      with tf.GradientTape(persistent=True) as tape:
        tape.watch(votes)
        batch_major = layers._update_routing(votes, biases, 3, True, xla=xla)
        input_major = layers._update_routing(
            tf.transpose(votes, [1, 0, 2, 3]), biases, 3, True, input_axis=0,
            xla=xla)
      self.assertAllClose(input_major, batch_major, rtol=1e-5, atol=1e-6)
      self.assertAllClose(tape.gradient(input_major, votes),
                          tape.gradient(batch_major, votes), rtol=1e-4,
                          atol=1e-6)

  def testConvSlimCapsuleChannelsLast(self):
    """Channels-last input gives the channels-first layer's output."""
    for input_dim in (1, 3):
      input_tensor = tf.random.uniform((2, input_dim, 4, 7, 7))
      first = layers.ConvSlimCapsule(
          output_dim=2, output_atoms=5, stride=2, kernel_size=3,
          padding='VALID', num_routing=2)
      last = layers.ConvSlimCapsule(
          output_dim=2, output_atoms=5, stride=2, kernel_size=3,
          padding='VALID', num_routing=2, data_format='channels_last')
      expected = first(input_tensor)
      channels_last = tf.transpose(input_tensor, [0, 3, 4, 1, 2])
      last(channels_last)
      self.assertEqual(last.kernel.shape, first.kernel.shape)
      last.kernel.assign(first.kernel)
      self.assertAllClose(last(channels_last), expected, rtol=1e-5)

  def testConvSlimCapsuleRejectsUnknownDataFormat(self):
    with self.assertRaisesRegex(ValueError, 'NHWC'):
      layers.ConvSlimCapsule(output_dim=2, data_format='NHWC')

  def testMixedPrecisionLayers(self):
    """bfloat16 compute on float32 weights; capsules and remakes in float32."""
    mixed = variables.dtype_policy('bfloat16')
    cases = [
        (lambda **kw: layers.Conv(3, kernel_size=2, padding='SAME', **kw),
         (tf.random.uniform((2, 4, 4, 2)),), tf.bfloat16),
        (lambda **kw: layers.FullyConnected(3, activation=tf.nn.relu, **kw),
         (tf.random.uniform((2, 5)),), tf.bfloat16),
        (lambda **kw: layers.Capsule(output_dim=2, output_atoms=5, **kw),
         (tf.random.uniform((4, 3, 2)),), tf.float32),
        (lambda **kw: layers.ConvSlimCapsule(
            output_dim=2, output_atoms=5, kernel_size=2, **kw),
         (tf.random.uniform((2, 3, 4, 5, 5)),), tf.float32),
        (lambda **kw: layers.Reconstruction((5, 10), num_pixels=9,
                                            balance_factor=0.1, **kw),
         (tf.random.uniform((2, 10, 4)), tf.one_hot([2, 7], 10),
          tf.random.uniform((2, 9))), tf.float32),
    ]
    for make, inputs, output_dtype in cases:
      reference, layer = make(), make(dtype=mixed)
      expected = tf.nest.flatten(reference(*inputs))[0]
      layer(*inputs)
      for weight, value in zip(layer.weights, reference.weights):
        self.assertEqual(weight.dtype, 'float32')
        weight.assign(value)
      output = tf.nest.flatten(layer(*inputs))[0]
      self.assertEqual(output.dtype, output_dtype, type(layer).__name__)
      self.assertAllClose(tf.cast(output, tf.float32), expected, rtol=2e-2,
                          atol=2e-2, msg=type(layer).__name__)

  def testDtypePolicy(self):
    self.assertEqual(variables.dtype_policy('float32').compute_dtype,
                     'float32')
    for dtype in ('bfloat16', 'float16'):
      policy = variables.dtype_policy(dtype)
      self.assertEqual(policy.compute_dtype, dtype)
      self.assertEqual(policy.variable_dtype, 'float32')
    with self.assertRaisesRegex(ValueError, 'float64'):
      variables.dtype_policy('float64')

  def testMarginLoss(self):
    labels = [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    logits = [[-0.3, 0.3, 0.9], [1.2, 0.5, -0.5]]
    costs = [[0, 0.5 * 0.2 * 0.2, 0], [0, 0.4 * 0.4, 1.4 * 1.4]]
    output = layers._margin_loss(
        labels=tf.constant(labels), raw_logits=tf.constant(logits))
    self.assertAlmostEqual(0.5 * np.sum(costs), np.sum(output), places=6)

  def testEvaluateSingle(self):
    labels = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    logits = [[-0.3, 0.3, 0.9], [1.2, 0.5, -0.5], [0.0, 0.0, 0.0]]
    result = layers.evaluate(
        logits=tf.constant(logits), labels=tf.constant(labels), num_targets=1,
        loss_type='softmax')
    self.assertEqual(2, result.correct)
    self.assertEqual(2, result.almost)
    expected_loss = np.mean(
        -np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[
            np.array(labels) == 1])
    self.assertAllClose(expected_loss, result.total_loss)

  def testEvaluateMulti(self):
    labels = [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    logits = [[-0.3, 0.3, 0.9, 0.0], [1.2, 0.5, -0.5, 0.0],
              [0.0, 0.0, 0.0, 0.0]]
    result = layers.evaluate(
        logits=tf.constant(logits), labels=tf.constant(labels), num_targets=2,
        loss_type='softmax')
    self.assertEqual(1, result.correct)
    self.assertEqual(2, result.almost)

  def testEvaluateAddsExtraLosses(self):
    labels = tf.one_hot([1, 0], 3)
    logits = tf.constant([[0.1, 0.8, 0.2], [0.7, 0.3, 0.1]])
    plain = layers.evaluate(logits, labels, 1, 'margin')
    extra = layers.evaluate(logits, labels, 1, 'margin',
                            extra_losses=[tf.constant(0.25),
                                          tf.constant(0.5)])
    self.assertAllClose(plain.total_loss + 0.75, extra.total_loss)
    self.assertAllClose(plain.classification_loss, extra.classification_loss)

  def testEvaluateRejectsUnknownLoss(self):
    with self.assertRaisesRegex(ValueError, 'hinge'):
      layers.evaluate(tf.zeros((1, 3)), tf.one_hot([0], 3), 1, 'hinge')

  def testReconstruction(self):
    layer = layers.Reconstruction((5, 10), num_pixels=9, balance_factor=0.1)
    image = tf.random.uniform([2, 9])
    remake, loss = layer(tf.random.uniform([2, 10, 4]),
                         tf.one_hot([2, 7], 10), image)
    self.assertEqual(remake.shape, (2, 9))
    self.assertLen(layer.trainable_weights, 6)
    self.assertAllClose(
        0.1 * np.mean(np.sum((remake - image)**2, axis=1)), loss)
    self.assertEqual(
        sorted(layer.tf1_variables()),
        sorted(f'recons_{i}/{v}' for i in (1, 2, 3)
               for v in ('weights', 'biases')))

  def testReconstructionMasking(self):
    layer = layers.Reconstruction((5, 10), num_pixels=9, balance_factor=0.1)
    image = tf.zeros([1, 9])
    mask = tf.one_hot([2], 10)
    embeddings = np.zeros((3, 1, 10, 4), dtype=np.float32)
    embeddings[0, :, 1, :] = 1
    embeddings[1, :, 2, :] = 1
    embeddings[2, :, 3, :] = 10
    r_1, r_2, r_3 = (layer(e, mask, image)[0] for e in embeddings)
    self.assertLen(layer.trainable_weights, 6)
    self.assertAllClose(r_1, r_3)
    self.assertNotAllClose(r_1, r_2)


class LayersGoldenTest(tf.test.TestCase):
  """Every case of the reference's layers_golden.npz."""

  def setUp(self):
    super().setUp()
    if golden_utils.find(_LAYERS_GOLDEN) is None:
      self.skipTest(golden_utils.skip_reason(_LAYERS_GOLDEN))
    self.golden = _golden()

  def _case(self, prefix):
    return {key[len(prefix) + 1:]: value for key, value in self.golden.items()
            if key.startswith(prefix + '/')}

  def testSquash(self):
    for case in ('squash_rank3', 'squash_rank5'):
      data = self._case(case)
      golden_utils.assert_forward_close(
          layers._squash(data['input']), data['output'], case)

  def testLeakyRouting(self):
    for case in ('leaky_rank3', 'leaky_rank5'):
      data = self._case(case)
      golden_utils.assert_forward_close(
          layers._leaky_routing(data['input'], data['input'].shape[2]),
          data['output'], case)

  def testUpdateRouting(self):
    cases = [(kind, routing, leaky) for kind in ('fc', 'conv')
             for routing in (1, 3, 7) for leaky in ('plain', 'leaky')]
    for kind, routing, leaky in cases:
      case = f'update_routing_{kind}_r{routing}_{leaky}'
      data = self._case(case)
      output = layers._update_routing(data['votes'], data['biases'], routing,
                                      leaky == 'leaky')
      golden_utils.assert_forward_close(output, data['output'], case)

  def _check_layer(self, layer, scope, data, case):
    """Loads golden weights, compares output and d sum(output^2) / dvar."""
    input_tensor = tf.constant(data['input'])
    layer(input_tensor)
    for name, var in layer.tf1_variables().items():
      var.assign(data[f'var/{scope}/{name}_1'])
    with tf.GradientTape() as tape:
      output = layer(input_tensor)
      loss = tf.reduce_sum(tf.square(output))
    golden_utils.assert_forward_close(output, data['output'], case)
    names = list(layer.tf1_variables())
    grads = tape.gradient(loss, list(layer.tf1_variables().values()))
    for name, grad in zip(names, grads):
      golden_utils.assert_gradient_close(
          grad, data[f'grad_sumsq/{scope}/{name}_1'], f'{case} {name}')

  def testCapsule(self):
    for leaky in ('plain', 'leaky'):
      case = f'capsule_{leaky}'
      layer = layers.Capsule(output_dim=4, output_atoms=5, num_routing=3,
                             leaky=leaky == 'leaky', name='capsule')
      self._check_layer(layer, 'capsule', self._case(case), case)

  def testConvSlimCapsule(self):
    for padding, stride, leaky, routing in (('SAME', 1, 'plain', 3),
                                            ('VALID', 2, 'leaky', 2),
                                            ('SAME', 2, 'plain', 1)):
      case = f'conv_slim_capsule_{padding}_s{stride}_{leaky}_r{routing}'
      layer = layers.ConvSlimCapsule(
          output_dim=2, output_atoms=5, stride=stride, kernel_size=3,
          padding=padding, num_routing=routing, leaky=leaky == 'leaky',
          name='conv_capsule')
      self._check_layer(layer, 'conv_capsule', self._case(case), case)

  def testMarginLoss(self):
    data = self._case('margin_loss')
    golden_utils.assert_forward_close(
        layers._margin_loss(data['labels'], data['raw_logits']),
        data['output'])

  def testEvaluate(self):
    for loss_type in ('margin', 'softmax', 'sigmoid'):
      for targets in (1, 2):
        case = f'evaluate_{loss_type}_t{targets}'
        data = self._case(case)
        result = layers.evaluate(data['logits'], data['labels'], targets,
                                 loss_type)
        golden_utils.assert_forward_close(result.total_loss,
                                          data['total_loss'], case)
        self.assertEqual(float(result.correct), float(data['correct']), case)
        self.assertEqual(float(result.almost), float(data['almost']), case)

  def testReconstruction(self):
    data = self._case('reconstruction')
    layer = layers.Reconstruction((5, 10), num_pixels=9, balance_factor=0.1)
    embedding = tf.constant(data['embedding'])
    mask = tf.one_hot(data['target'], 10)
    layer(embedding, mask, data['image'])
    for name, var in layer.tf1_variables().items():
      var.assign(data[f'var/recons/{name}'])
    remake, loss = layer(embedding, mask, data['image'])
    golden_utils.assert_forward_close(remake, data['output'])
    golden_utils.assert_forward_close(loss, data['balanced_loss'])


if __name__ == '__main__':
  tf.test.main()
