"""The models against the reference's golden checkpoints and numbers.

For each case of the goldens: restore `model.ckpt-0` (a TF1 name-based
checkpoint written by the reference), reproduce the forward values, losses,
counts and gradients, then take two training steps (the training step
training runs, `training.Trainer`) and compare with the reference's
`model.ckpt-2` and `step2_logits`; with TensorFlow's convolution and with
the Fourier convolution that CPUs train with.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from models import adam
from models import capsule_model
from models import checkpoints
from models import conv_model
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config
import test_utils

CASES = ('capsule_tiny', 'capsule_cifar_tiny', 'capsule_multimnist_tiny',
         'baseline_small')
CONVOLUTIONS = ('native', 'fourier')


def _require(case, name):
  return test_utils.require(os.path.join(case, name))


def _golden_model(case, conv_implementation='native'):
  return test_utils.load_case(case, config=model_lib.ModelConfig(
      conv_implementation=conv_implementation))


@pytest.mark.parametrize('case', CASES)
def test_variable_names_match_reference(case):
  _require(case, 'golden.npz')
  model, _, _, config = _golden_model(case)
  names = list(model.tf1_variable_map())
  assert names == config['trainable_variables'] + ['global_step']
  shapes = config['checkpoint_variables']
  for name, var in model.tf1_variable_map().items():
    assert list(var.shape) == shapes[name], name


@pytest.mark.parametrize('conv', CONVOLUTIONS)
@pytest.mark.parametrize('case', CASES)
def test_forward_matches_reference(case, conv):
  _require(case, 'golden.npz')
  model, features, golden, _ = _golden_model(case, conv)
  result = model.losses(features)
  test_utils.assert_forward_close(result.logits, golden['logits'], 'logits')
  forward = model.forward(features)
  if 'capsule_output' in golden:
    test_utils.assert_forward_close(forward.capsule_output,
                                      golden['capsule_output'], 'capsules')
  remakes = result.remakes or []
  assert len(remakes) == sum(k.startswith('remakes_') for k in golden)
  for i, remake in enumerate(remakes):
    test_utils.assert_forward_close(remake, golden[f'remakes_{i}'],
                                      f'remakes_{i}')
  # The reference's loss collection: reconstruction losses, then
  # classification.
  losses = list(result.reconstruction_losses) + [result.classification_loss]
  assert len(losses) == sum(k.startswith('losses_') for k in golden)
  for i, loss in enumerate(losses):
    test_utils.assert_forward_close(loss, golden[f'losses_{i}'],
                                      f'losses_{i}')
  test_utils.assert_forward_close(result.total_loss, golden['total_loss'])
  assert float(result.correct) == float(golden['correct'])
  assert float(result.almost) == float(golden['almost'])


@pytest.mark.parametrize('conv', CONVOLUTIONS)
@pytest.mark.parametrize('case', CASES[:3])
def test_gradients_match_reference(case, conv):
  _require(case, 'golden.npz')
  model, features, golden, _ = _golden_model(case, conv)
  grads, _ = model.compute_gradients(features)
  names = list(model.tf1_variable_map())[:-1]
  assert len(names) == len(grads)
  for name, grad in zip(names, grads):
    test_utils.assert_gradient_close(grad, golden[f'grad/{name}'], name)


@pytest.mark.parametrize('conv', CONVOLUTIONS)
@pytest.mark.parametrize('case', CASES[:3])
def test_two_train_steps_match_reference(case, conv):
  reference_path = _require(case, 'model.ckpt-2')
  model, features, golden, _ = _golden_model(case, conv)
  test_utils.trainer_on(model, features)(2)
  assert int(model.global_step.numpy()) == 2
  reader = tf.train.load_checkpoint(reference_path)
  for name, var in model.tf1_variable_map().items():
    if name != 'global_step':
      test_utils.assert_weights_close(var, reader.get_tensor(name), name)
  test_utils.assert_forward_close(model.inference(features).logits,
                                    golden['step2_logits'], 'step2_logits')
  test_utils.assert_forward_close(model.compute_loss(features)[0],
                                    golden['step2_total_loss'])


def test_adam_slots_match_reference_training_checkpoint():
  case = 'capsule_cifar_tiny'
  reference_path = _require(case, 'model.ckpt-2')
  model, features, _, _ = _golden_model(case)
  test_utils.trainer_on(model, features)(2)
  reader = tf.train.load_checkpoint(reference_path)
  for name, slot in model.slot_map().items():
    test_utils.assert_weights_close(slot, reader.get_tensor(name), name)


def test_tf1_checkpoint_round_trip(tmp_path):
  """A checkpoint we write has the reference's names, dtypes and values."""
  case = 'capsule_cifar_tiny'
  reference_path = _require(case, 'model.ckpt-2')
  model, features, _, _ = _golden_model(case)
  step = test_utils.trainer_on(model, features)
  step(2)
  path = checkpoints.write(model, str(tmp_path / 'model.ckpt-2'))
  ours = tf.train.load_checkpoint(path)
  reference = tf.train.load_checkpoint(reference_path)
  assert (ours.get_variable_to_shape_map() ==
          reference.get_variable_to_shape_map())
  assert (ours.get_variable_to_dtype_map() ==
          reference.get_variable_to_dtype_map())
  for name in ('beta1_power', 'beta2_power', 'global_step'):
    assert ours.get_tensor(name) == reference.get_tensor(name), name
  # Resuming from our checkpoint continues exactly where training was.
  resumed, _, _, _ = _golden_model(case)
  assert checkpoints.load(resumed, path, include_optimizer=True) == 2
  step()
  test_utils.trainer_on(resumed, features)()
  for (name, a), b in zip(model.tf1_variable_map().items(),
                          resumed.tf1_variable_map().values()):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_loading_skips_optimizer_slots_by_default():
  case = 'capsule_cifar_tiny'
  reference_path = _require(case, 'model.ckpt-2')
  model, _, _, _ = _golden_model(case)
  assert checkpoints.load(model, reference_path) == 2
  slots = model.slot_map()
  for name, slot in slots.items():
    if name.endswith(('/Adam', '/Adam_1')):
      assert not np.any(slot.numpy()), name
  # The beta powers are the reference's at the restored step.
  reader = tf.train.load_checkpoint(reference_path)
  for name in ('beta1_power', 'beta2_power'):
    assert slots[name].numpy() == reader.get_tensor(name), name


def test_checkpoint_of_other_architecture_is_rejected_by_name():
  case = 'capsule_cifar_tiny'
  path = _require(case, 'model.ckpt-0')
  # Default hparams: 32 primary capsule types and VALID padding.
  model = capsule_model.CapsuleModel(hparams_lib.default_hparams())
  model.build(model_lib.DataShape(20, 3))
  with pytest.raises(checkpoints.CheckpointMismatchError) as error:
    checkpoints.load(model, path)
  message = str(error.value)
  assert 'conv_capsule1/weights has shape [9, 9, 256, 16]' in message
  assert 'recons/recons_1/weights missing' in message
  baseline = conv_model.ConvModel(
      hparams_lib.default_hparams().parse('padding=SAME'))
  baseline.build(model_lib.DataShape(12, 3))
  with pytest.raises(checkpoints.CheckpointMismatchError, match='conv2/weights'):
    checkpoints.load(baseline, path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  model = conv_model.ConvModel(hparams_lib.default_hparams())
  model.build(model_lib.DataShape(16, 1))
  with pytest.raises(FileNotFoundError, match='model.ckpt-7'):
    checkpoints.load(model, str(tmp_path / 'model.ckpt-7'))


def test_unbuilt_model_cannot_load():
  model = conv_model.ConvModel(hparams_lib.default_hparams())
  with pytest.raises(RuntimeError, match='model.build'):
    checkpoints.load(model, '/nonexistent/model.ckpt-1')


def test_learning_rate_schedule():
  schedule = model_lib.LearningRateSchedule(0.001, 2000, 0.96)
  np.testing.assert_allclose(schedule(0), 0.001, rtol=1e-6)
  np.testing.assert_allclose(schedule(1000), 0.001 * 0.96**0.5, rtol=1e-6)
  np.testing.assert_allclose(schedule(4000), 0.001 * 0.96**2, rtol=1e-6)
  # Floor of 1e-6 once 0.001 * 0.96^(s/2000) drops below it.
  np.testing.assert_allclose(schedule(400000), 1e-6, rtol=1e-6)


@pytest.mark.parametrize('case', ('capsule_tiny', 'baseline_small'))
def test_bfloat16_is_close_to_reference(case):
  """Mixed precision: float32 weights and logits near the float32 golden."""
  model, features, golden, _ = test_utils.load_case(
      case, config=model_lib.ModelConfig(compute_dtype='bfloat16'))
  assert model.compute_dtype == 'bfloat16'
  logits = model.inference(features).logits
  assert logits.dtype == tf.float32
  # bfloat16 keeps 8 bits of mantissa; logits are lengths in [0, 1) (capsule)
  # or of order 1 (baseline).
  np.testing.assert_allclose(logits, golden['logits'], atol=3e-2)
  grads, _ = model.compute_gradients(features)
  assert all(g.dtype == tf.float32 and np.all(np.isfinite(g)) for g in grads)
  model.apply_gradients(grads)
  assert all(v.dtype == 'float32' for v in model.trainable_variables)


def _op_types(graph: tf.Graph) -> set:
  """The op types of graph and of every function it calls."""
  graph_def = graph.as_graph_def()
  return {node.op for node in graph_def.node} | {
      node.op for function in graph_def.library.function
      for node in function.node_def}


def test_float16_skips_a_step_by_selection_without_a_branch():
  """A non-finite step changes nothing but the loss scale, and no `If`
  decides it: on a GPU, the If's predicate is copied to the host and the
  step waits for it."""
  model = registry.build_model(
      test_utils.tiny_hparams(), model_type='capsule',
      shape=model_lib.DataShape(20, 1),
      config=model_lib.ModelConfig(compute_dtype='float16'))
  variables = model.trainable_variables
  apply = tf.function(model.apply_gradients).get_concrete_function(
      [tf.TensorSpec(var.shape) for var in variables])
  ops = _op_types(apply.graph)
  assert 'ResourceApplyAdam' in ops
  assert not ops & {'If', 'StatelessIf'}

  apply([tf.fill(var.shape, 0.5) for var in variables])
  state = dict(model.tf1_variable_map(), **model.slot_map())
  before = {name: var.numpy() for name, var in state.items()}
  assert int(before['global_step']) == 1
  np.testing.assert_allclose(before['conv1/weights/Adam'], 0.05, rtol=1e-6)
  apply([tf.fill(var.shape, np.inf if i == 1 else 0.5)
         for i, var in enumerate(variables)])
  for name, var in state.items():
    np.testing.assert_array_equal(var.numpy(), before[name], err_msg=name)
  assert float(model.loss_scale.scale.numpy()) == adam.INITIAL_LOSS_SCALE / 2
  apply([tf.fill(var.shape, 0.5) for var in variables])
  assert int(model.global_step.numpy()) == 2


def test_unknown_compute_dtype_is_rejected():
  with pytest.raises(ValueError, match="compute_dtype='int8': use one of "
                     'float32, bfloat16, float16'):
    model_lib.ModelConfig(compute_dtype='int8')
