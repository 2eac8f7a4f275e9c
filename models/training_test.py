"""Tests for models/training.py: the training step and the training loop.

The capsule_cifar_tiny golden (12x12x3, whose TF1 checkpoints and numbers
come from the reference) trained for a few steps through `training.train`:
on one device and on two replicas, resumed after each crash case, stopped
by a non-finite loss and a full disk; tiny random data elsewhere.
"""

import os
import re
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import errors
from input_data import datasets
from models import checkpoints
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config
from models import training
import test_utils


def _train_golden_two_steps(summary_dir, strategy):
  """Two steps from the cifar golden's ckpt-0 on copies of its batch."""
  config = test_utils.load_config(test_utils.CIFAR_CASE)
  _, arrays = test_utils.golden_arrays(test_utils.CIFAR_CASE, run_config.TRAIN_BATCH_SIZE)
  train_dir = os.path.join(summary_dir, 'train')
  os.makedirs(train_dir)
  test_utils.copy_checkpoint(test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-0'),
                   os.path.join(train_dir, 'model.ckpt-0'))
  test_utils.set_latest(train_dir, 'model.ckpt-0')
  trained = training.train(
      hparams_lib.default_hparams().parse(config['hparams_override']),
      summary_dir=summary_dir, model_type='capsule', max_steps=2,
      input_fn=test_utils.array_input_fn(arrays), strategy=strategy)
  # The first step in a call of its own (it traces), then the second.
  assert trained.step == 2
  assert [(step, steps_run) for step, steps_run, _ in trained.intervals] == [
      (1, 1), (2, 1)]
  assert all(seconds > 0 for _, _, seconds in trained.intervals)
  return (test_utils.events(train_dir)['total_loss'],
          tf.train.load_checkpoint(os.path.join(train_dir, 'model.ckpt-2')))


def test_mirrored_training_matches_one_device_and_reference(
    tmp_path, two_cpu_strategy):
  """Two replicas, one device and the reference take the same two steps.

  The batch is 64 copies of the golden's two examples, so its mean loss and
  gradients are those of the reference's two-example batch.
  """
  golden = test_utils.load_npz(f'{test_utils.CIFAR_CASE}/golden.npz')
  reference = tf.train.load_checkpoint(
      test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-2'))
  one_losses, one = _train_golden_two_steps(str(tmp_path / 'one'), None)
  two_losses, two = _train_golden_two_steps(str(tmp_path / 'two'),
                                           two_cpu_strategy)

  test_utils.assert_forward_close(one_losses[0], golden['total_loss'])
  for step in (0, 1):
    test_utils.assert_forward_close(two_losses[step], one_losses[step])
  for name in reference.get_variable_to_shape_map():
    if name != 'global_step':
      test_utils.assert_weights_close(one.get_tensor(name),
                                        reference.get_tensor(name), name)
      test_utils.assert_weights_close(two.get_tensor(name),
                                        one.get_tensor(name), name)


def test_verbose_two_target_summaries(tmp_path):
  rng = np.random.RandomState(3)
  size = 18
  first, second = rng.rand(2, 16, 1, size, size).astype(np.float32)
  first_label, second_label = rng.randint(0, 10, (2, 16)).astype(np.int32)
  arrays = dict(
      images=np.minimum(first + second, 1.0),
      labels=np.eye(10, dtype=np.float32)[first_label] +
      np.eye(10, dtype=np.float32)[second_label],
      recons_image=first, recons_label=first_label, spare_image=second,
      spare_label=second_label)
  training.train(test_utils.tiny_hparams(test_utils.TINY + ',verbose=true'),
                   summary_dir=str(tmp_path), model_type='capsule',
                   max_steps=1, config=run_config.RunConfig(save_step=1),
                   input_fn=test_utils.array_input_fn(arrays), num_targets=2)
  summaries = test_utils.events(str(tmp_path / 'train'))
  for tag in ('batch_classification_cost', 'total_loss', 'accuracy',
              'correct_prediction_batch', 'almost_correct_batch',
              'reconstruction_error', 'reconstruction_error_1',
              'conv1/weights', 'capsule2/biases', 'logits'):
    assert list(summaries[tag]) == [0], tag
  # Image summaries hold width, height and the encoded images: one input,
  # target and remake column per target.
  width, height = summaries['reconstruction'][0][:2]
  assert (int(width), int(height)) == (2 * size, 3 * size)


def _train_golden(tmp_path, max_steps, save_step=2, override=''):
  config = test_utils.load_config(test_utils.CIFAR_CASE)
  _, arrays = test_utils.golden_arrays(test_utils.CIFAR_CASE, run_config.TRAIN_BATCH_SIZE)
  return training.train(
      hparams_lib.default_hparams().parse(
          ','.join(filter(None, [config['hparams_override'], override]))),
      summary_dir=str(tmp_path), model_type='capsule', max_steps=max_steps,
      input_fn=test_utils.array_input_fn(arrays),
      config=run_config.RunConfig(save_step=save_step)).step


def test_resumes_from_complete_checkpoint_the_state_file_missed(
    tmp_path, capsys):
  """Crash case 1: killed after writing ckpt-2 but before the state file."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-0')
  before = test_utils.file_bytes(train_dir)
  assert _train_golden(tmp_path, max_steps=3) == 3
  out = capsys.readouterr().out
  assert f'Resumed from {train_dir / "model.ckpt-2"} at step 2' in out
  state = tf.train.get_checkpoint_state(str(train_dir))
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths
         ] == ['model.ckpt-0', 'model.ckpt-2', 'model.ckpt-3']
  after = test_utils.file_bytes(train_dir)
  for name, content in before.items():
    if name != 'checkpoint':
      assert after[name] == content, name


def test_damaged_newest_checkpoint_is_kept_and_passed_over(tmp_path, capsys):
  """Crash case 2: resume from the newest checkpoint that loads."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  test_utils.damage(str(train_dir / 'model.ckpt-2'))
  damaged = test_utils.file_bytes(train_dir)
  assert _train_golden(tmp_path, max_steps=2) == 2
  out = capsys.readouterr().out
  assert re.search(r'model\.ckpt-2 is damaged.*left in place', out)
  assert 'model.ckpt-0 at step 0' in out
  # The damaged files are kept, renamed, byte for byte.
  for suffix in ('.index', '.data-00000-of-00001'):
    name = 'model.ckpt-2' + suffix
    assert (train_dir / (name + checkpoints.BROKEN_SUFFIX)).read_bytes() == (
        damaged[name])
  # The retrained step 2 is the reference's.
  ours = tf.train.load_checkpoint(str(train_dir / 'model.ckpt-2'))
  reference = tf.train.load_checkpoint(
      test_utils.require(f'{test_utils.CIFAR_CASE}/model.ckpt-2'))
  for name in ('conv1/weights', 'capsule2/weights'):
    test_utils.assert_weights_close(ours.get_tensor(name),
                                      reference.get_tensor(name), name)


def test_no_loadable_checkpoint_stops_in_one_error(tmp_path):
  train_dir = test_utils.golden_training_dir(tmp_path, (0, 2), latest='model.ckpt-2')
  for step in (0, 2):
    test_utils.damage(str(train_dir / f'model.ckpt-{step}'))
  before = test_utils.file_bytes(train_dir)
  with pytest.raises(checkpoints.CorruptCheckpointError,
                     match=r'model\.ckpt-2, model\.ckpt-0 are damaged'):
    _train_golden(tmp_path, max_steps=4)
  assert test_utils.file_bytes(train_dir) == before


def _sigterm_at_batch(input_fn, batch):
  """input_fn whose training pipeline sends this process SIGTERM as it
  makes its `batch`-th batch (None: never)."""
  made = []

  def count(images):
    made.append(None)
    if len(made) == batch:
      os.kill(os.getpid(), signal.SIGTERM)
    return images

  def counted(batch_tensors):
    images = tf.py_function(count, [batch_tensors['images']], tf.float32)
    images.set_shape(batch_tensors['images'].shape)
    return dict(batch_tensors, images=images)

  def wrapped(split, batch_size, input_context=None):
    return input_fn(split, batch_size, input_context).map(counted)

  return wrapped


def test_seeded_run_interrupted_and_resumed_ends_where_one_run_ends(
    tmp_path):
  """SIGTERM mid-run, then the same call: the weights of an unbroken run.

  The stop saves the step reached; the records are shuffled in an order
  fixed by the seed, and the resumed run passes over the batches of the
  steps done, so it trains the rest on the batches an unbroken run would.
  """
  data_dir = tmp_path / 'data'
  data_dir.mkdir()
  test_utils.write_mnist_records(
      str(data_dir / 'train_2shifted_mnist.tfrecords'),
      *test_utils.random_digits(256, seed=1))
  input_fn = datasets.input_fn('mnist', data_dir=str(data_dir))

  def train(summary_dir, sigterm_at=None):
    training.train(test_utils.tiny_hparams(), summary_dir=str(summary_dir),
                   model_type='capsule', max_steps=6,
                   input_fn=_sigterm_at_batch(input_fn, sigterm_at), seed=3)
    return tf.train.load_checkpoint(str(summary_dir / 'train' /
                                        'model.ckpt-6'))

  straight = train(tmp_path / 'straight')
  with pytest.raises(errors.Interrupted) as interrupted:
    train(tmp_path / 'resumed', sigterm_at=3)
  assert interrupted.value.exit_code == 143
  [stopped] = checkpoints.list_steps(str(tmp_path / 'resumed' / 'train'))
  assert 0 < stopped < 6
  assert (f'interrupted at step {stopped}; saved '
          f'{tmp_path}/resumed/train/model.ckpt-{stopped}; run the same '
          'command to resume') == str(interrupted.value)
  resumed = train(tmp_path / 'resumed')
  for name in ('conv1/weights', 'capsule2/weights', 'recons/recons_3/biases'):
    np.testing.assert_allclose(resumed.get_tensor(name),
                               straight.get_tensor(name), rtol=1e-5,
                               atol=1e-6, err_msg=name)


def test_non_finite_loss_stops_without_saving_it(tmp_path):
  """Crash case 4: a huge learning rate; no checkpoint holds NaN or inf."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  with pytest.raises(training.NonFiniteLossError,
                     match=r'at step 1; nothing was saved after model\.ckpt-1'):
    _train_golden(tmp_path, max_steps=4, save_step=1,
                  override='learning_rate=1e30')
  assert sorted(checkpoints.list_steps(str(train_dir))) == [0, 1]
  reader = tf.train.load_checkpoint(str(train_dir / 'model.ckpt-1'))
  for name in reader.get_variable_to_shape_map():
    assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_full_disk_during_save_keeps_earlier_checkpoints(tmp_path):
  """Crash case 5: the disk fills up while ckpt-2 is written."""
  train_dir = test_utils.golden_training_dir(tmp_path, (0,), latest='model.ckpt-0')
  save = tf.raw_ops.SaveV2

  def save_until_full(prefix, tensor_names, shape_and_slices, tensors):
    save(prefix=prefix, tensor_names=tensor_names,
         shape_and_slices=shape_and_slices, tensors=tensors)
    test_utils.damage(prefix.numpy().decode() if hasattr(prefix, 'numpy') else prefix)
    raise tf.errors.ResourceExhaustedError(None, None,
                                           'No space left on device')

  before = test_utils.file_bytes(train_dir)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tf.raw_ops, 'SaveV2', save_until_full)
    with pytest.raises(OSError, match=r'could not write the checkpoint .*'
                       r'model\.ckpt-2 \(No space left on device\)'):
      _train_golden(tmp_path, max_steps=2)
  assert test_utils.file_bytes(train_dir) == before
  assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-0')


def _tiny_trainer(strategy=None, **settings):
  """A tiny capsule model built under strategy, and its Trainer."""
  strategy = strategy or tf.distribute.get_strategy()
  shape = model_lib.DataShape(20, 1)
  model_config = model_lib.ModelConfig(**{
      key: settings.pop(key) for key in ('compute_dtype', 'xla_routing')
      if key in settings})
  config = run_config.RunConfig(**dict(dict(train_batch_size=4), **settings))
  keras.utils.set_random_seed(11)
  with strategy.scope():
    model = registry.build_model(test_utils.tiny_hparams(),
                                 model_type='capsule', shape=shape,
                                 config=model_config)
  return training.Trainer(model, strategy=strategy, config=config)


def test_replicas_must_split_the_batch(two_cpu_strategy):
  with pytest.raises(errors.ConfigError, match='2 replicas cannot split the '
                     'global batch of 3 evenly'):
    _tiny_trainer(two_cpu_strategy, train_batch_size=3)


def test_broadcast_from_chief_gives_every_replica_the_first_ones_state(
    two_cpu_strategy):
  """What each worker trains on from, run here over two replicas: all a
  checkpoint holds (weights, Adam moments, beta powers, global step) as the
  first replica, the chief's, has it, bit for bit."""
  model = _tiny_trainer(two_cpu_strategy).model
  variables = dict(model.tf1_variable_map(), **model.slot_map())
  rng = np.random.default_rng(5)
  for var in variables.values():
    for replica, part in enumerate(var.value.values):
      part.assign(7 + replica if var.dtype == 'int64' else
                  rng.normal(size=var.shape).astype(var.dtype))
  chief = {name: var.value.values[0].numpy()
           for name, var in variables.items()}
  step = training._broadcast_from_chief(  # pylint: disable=protected-access
      model, two_cpu_strategy)
  assert step == 7
  for name, var in variables.items():
    for part in var.value.values:
      np.testing.assert_array_equal(part.numpy(), chief[name], err_msg=name)


def _batch(size, *, scale=1.0, seed=0):
  rng = np.random.default_rng(seed)
  images = (rng.uniform(size=(size, 1, 20, 20)) * scale).astype(np.float32)
  labels = rng.integers(0, 10, size).astype(np.int32)
  return dict(images=images, labels=np.eye(10, dtype=np.float32)[labels],
              recons_image=images, recons_label=labels)


def test_float16_overflow_on_one_replica_skips_the_step_everywhere(
    two_cpu_strategy):
  """The gradients are summed before the overflow check, not after.

  Replica 0 gets a normal batch, replica 1 one whose images overflow
  float16, and whose loss overflows float32 too (1e20 squared), so that
  the step is reported non-finite whatever precision the decoder's Keras
  version computes in. The step is skipped on both, the loss scale halves on both,
  and the weights stay finite and equal on both.
  """
  strategy = two_cpu_strategy
  trainer = _tiny_trainer(strategy, compute_dtype='float16')
  model = trainer.model
  batches = tf.data.Dataset.from_tensors(_batch(2)).concatenate(
      tf.data.Dataset.from_tensors(_batch(2, scale=1e20))).repeat()
  before = [v.numpy() for v in model.trainable_variables]
  result = trainer.run(trainer.distribute(lambda _: batches), 1)
  assert int(model.global_step.numpy()) == 0
  assert int(result.first_non_finite) == 0
  scales = strategy.experimental_local_results(model.loss_scale.scale)
  assert [float(scale) for scale in scales] == [2.0**14] * 2
  for var, old in zip(model.trainable_variables, before):
    replicas = [value.numpy()
                for value in strategy.experimental_local_results(var.value)]
    np.testing.assert_array_equal(replicas[0], old)
    np.testing.assert_array_equal(replicas[1], old)


def _weights_after_steps(trainer, num_steps=2):
  trainer.run(trainer.repeat(_batch(4)), num_steps)
  return [v.numpy() for v in trainer.model.trainable_variables]


@pytest.fixture(scope='module')
def default_step_weights():
  return _weights_after_steps(_tiny_trainer())


@pytest.mark.parametrize('settings', [
    dict(xla_step=True),        # Each replica's step compiled whole (GPUs).
    dict(xla_routing=False),    # No XLA at all (--xla=false).
    dict(prefetch_to_device='/cpu:0'),  # The input copied ahead.
], ids=lambda settings: next(iter(settings)))
def test_step_variants_train_as_the_default_step(settings,
                                                 default_step_weights):
  weights = _weights_after_steps(_tiny_trainer(**settings))
  for got, want in zip(weights, default_step_weights):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_summaries_at_multiples_of_summary_every_steps(tmp_path):
  trainer = _tiny_trainer(summary_every_steps=2)
  with tf.summary.create_file_writer(str(tmp_path)).as_default():
    trainer.run(trainer.repeat(_batch(4)), 5)
  assert sorted(test_utils.events(str(tmp_path))['total_loss']) == [0, 2, 4]


def test_xla_compile_failure_is_one_line_naming_the_way_around():
  trainer = _tiny_trainer()

  def fails(*unused):
    raise tf.errors.InternalError(
        None, None, 'libdevice not found at ./libdevice.10.bc\nmore')

  trainer._run = fails  # pylint: disable=protected-access
  with pytest.raises(training.XlaError) as raised:
    trainer.run(trainer.repeat(_batch(4)), 1)
  message = str(raised.value)
  assert '\n' not in message
  assert 'libdevice not found at ./libdevice.10.bc' in message
  assert '--xla=false' in message
  assert 'XLA_FLAGS=--xla_gpu_cuda_data_dir=' in message


def _tiny_train(tmp_path, capsys, *, max_steps, **settings):
  """training.train's tiny model; its progress lines and intervals."""
  config = run_config.RunConfig(train_batch_size=4, **settings)
  trained = training.train(
      test_utils.tiny_hparams(), summary_dir=str(tmp_path),
      model_type='capsule', max_steps=max_steps, config=config,
      input_fn=test_utils.array_input_fn(_batch(4)))
  lines = [line for line in capsys.readouterr().out.splitlines()
           if line.startswith('step ')]
  return lines, [steps_run for _, steps_run, _ in trained.intervals]


def test_progress_after_the_first_step_then_by_steps(tmp_path, capsys):
  lines, calls = _tiny_train(tmp_path, capsys, max_steps=7,
                             log_every_steps=3, log_every_seconds=1e9)
  assert calls == [1, 2, 3, 1]  # The first step alone: it traces.
  assert [line.split(':')[0] for line in lines] == [
      'step 1', 'step 3', 'step 6', 'step 7']
  assert re.fullmatch(r'step 1: loss [\d.]+, accuracy [\d.]+ \(the first '
                      r'step, with tracing and compiling: [\d.]+ s\)',
                      lines[0]), lines[0]
  for line in lines[1:]:
    assert re.fullmatch(r'step \d+: loss [\d.]+, accuracy [\d.]+, [\d.]+ '
                        r'examples/s, \d+:\d\d:\d\d left', line), line


def test_progress_at_least_every_log_every_seconds(tmp_path, capsys):
  """A slow machine: calls no longer than log_every_seconds, each printed."""
  lines, calls = _tiny_train(tmp_path, capsys, max_steps=4,
                             log_every_steps=100, log_every_seconds=1e-9)
  assert calls == [1, 1, 1, 1]
  assert [line.split(':')[0] for line in lines] == [
      'step 1', 'step 2', 'step 3', 'step 4']


def _device_reads_in_predicates(concrete, host_variables):
  """The If/While predicates of a traced function that read a variable
  other than host_variables (a GPU's, on a GPU: the host waits for it)."""
  graph_def = concrete.graph.as_graph_def()
  functions = {f.signature.name: f for f in graph_def.library.function}
  host = {concrete.graph.captures[i][1].op.name
          for i, (outer, _) in enumerate(concrete.graph.captures)
          if any(outer is var.handle for var in host_variables)}
  top = ({node.name: node for node in graph_def.node}, [], None)

  def scope_of(function_name, caller):
    nodes = {node.name: node for node in functions[function_name].node_def}
    args = [arg.name for arg in functions[function_name].signature.input_arg]
    return nodes, args, caller

  def origin(scope, name):
    """(scope, node name) of a tensor, through function arguments."""
    nodes, args, caller = scope
    name = name.lstrip('^').split(':')[0]
    if name in args and caller is not None:
      outer, call = caller
      offset = 1 if call.op in ('If', 'StatelessIf') else 0
      return origin(outer, call.input[args.index(name) + offset])
    return scope, name

  def reads(scope, name, seen):
    scope, name = origin(scope, name)
    if (id(scope[0]), name) in seen or name not in scope[0]:
      return []
    seen.add((id(scope[0]), name))
    node = scope[0][name]
    if node.op == 'ReadVariableOp':
      _, handle = origin(scope, node.input[0])
      return [] if handle in host else [handle]
    return [read for input_name in node.input if not input_name.startswith('^')
            for read in reads(scope, input_name, seen)]

  found = []

  def visit(scope):
    for node in scope[0].values():
      attrs = node.attr
      if node.op in ('If', 'StatelessIf'):
        found.extend(reads(scope, node.input[0], set()))
      if node.op in ('While', 'StatelessWhile'):
        cond = scope_of(attrs['cond'].func.name, (scope, node))
        for output in functions[attrs['cond'].func.name].ret.values():
          found.extend(reads(cond, output, set()))
      if '_XlaMustCompile' in attrs and attrs['_XlaMustCompile'].b:
        continue  # Compiled whole: its branches stay on the device.
      for key in ('then_branch', 'else_branch', 'body', 'f'):
        if key in attrs and attrs[key].func.name in functions:
          visit(scope_of(attrs[key].func.name, (scope, node)))

  visit(top)
  return found


@pytest.mark.parametrize('compute_dtype', ['float32', 'float16'])
def test_no_branch_of_the_training_loop_waits_for_a_device(compute_dtype,
                                                           tmp_path):
  """Every condition the compiled loop branches on lives on the host: the
  summaries' cadence, the stop flag (at d3ea3f2: six summary `If`s on the
  global step; in float16 also the skip of a step that overflows)."""
  trainer = _tiny_trainer(summary_every_steps=2, compute_dtype=compute_dtype)
  iterator = trainer.repeat(_batch(4))
  with tf.summary.create_file_writer(str(tmp_path)).as_default():
    concrete = trainer._run.get_concrete_function(  # pylint: disable=protected-access
        iterator, tf.constant(1), tf.constant(0, tf.int64))
  assert _device_reads_in_predicates(
      concrete, [trainer.stop_requested]) == []
