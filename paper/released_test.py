"""Tests for paper/released.py: download, cache, extraction and evaluation.

A loopback HTTP server serves tarballs in the reference's layout, made here
from the cifar-tiny golden's checkpoints (a capsule model on 12x12x3 images):
its ckpt-0 and ckpt-2 stand in for the released members.
"""

import dataclasses
import http.server
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
from typing import Dict

import numpy as np
import pytest
import tensorflow as tf

import errors
import golden_utils
from input_data.mnist import mnist_shift_test
from models import checkpoints
from paper import released
import test_utils

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CASE = test_utils.CIFAR_CASE
_EVAL_SIZE = 200
_SUBPROCESS_TIMEOUT_S = 120
_SUFFIXES = ('.index', '.data-00000-of-00001')


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves `server.files`; `server.cut[name]` bytes only, when set."""

  def do_GET(self):  # pylint: disable=invalid-name
    name = self.path.lstrip('/')
    self.server.requests.append(name)
    body = self.server.files.get(name)
    if body is None:
      self.send_error(404)
      return
    self.send_response(200)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body[:self.server.cut.get(name, len(body))])
    self.close_connection = True

  def log_message(self, *args):
    del args  # Quiet.


@pytest.fixture
def server():
  """A loopback server on a free port; its `url` is the base URL."""
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
  httpd.files, httpd.cut, httpd.requests = {}, {}, []
  httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}'
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()
  httpd.server_close()


def _golden_checkpoint(step: int) -> str:
  return golden_utils.require(f'{_CASE}/model.ckpt-{step}')


def _tarball(members: Dict[str, str], extra=()) -> bytes:
  """A .tar.gz of checkpoints {prefix in the tarball: golden prefix}.

  Args:
    members: each prefix's `.index` and `.data-00000-of-00001` are added.
    extra: further `(TarInfo, bytes or None)` members, added first.
  """
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
    for info, data in extra:
      tar.addfile(info, io.BytesIO(data) if data is not None else None)
    for prefix, source in members.items():
      for suffix in _SUFFIXES:
        tar.add(source + suffix, arcname=prefix + suffix)
  return buffer.getvalue()


def _tiny(name: str, **changes) -> released.Release:
  """A real release's layout and names with the tiny model's hparams."""
  release = released.RELEASES[name]
  experiment = dataclasses.replace(
      release.experiment, eval_size=_EVAL_SIZE,
      hparams=golden_utils.load_config(_CASE)['hparams_override'])
  return dataclasses.replace(release, experiment=experiment, **changes)


def _test_data():
  """The golden's two examples repeated, every third relabelled 2.

  Relabelling makes the wrong count differ between ckpt-0 (predicts 4, 4),
  ckpt-2 (9, 2) and their ensemble (2, 2) and lie strictly between 0 and 200.
  """
  golden, arrays = test_utils.golden_arrays(_CASE, _EVAL_SIZE)
  arrays['recons_label'][::3] = 2
  arrays['labels'] = np.eye(10, dtype=arrays['labels'].dtype)[
      arrays['recons_label']]
  return golden, arrays


def _expected_wrong(logits: np.ndarray, labels: np.ndarray) -> int:
  """Wrong predictions of the golden batch's logits repeated over labels."""
  repeated = np.concatenate([logits] * (len(labels) // len(logits)))
  return int(np.sum(np.argmax(repeated, axis=1) != labels))


def test_downloads_once_then_evaluates_the_ensemble(
    server, tmp_path, capsys, monkeypatch):
  release = _tiny('cifar10', trials=2)
  server.files[release.file_name] = _tarball({
      'cifar/cifar0/model.ckpt-600000': _golden_checkpoint(0),
      'cifar/cifar1/model.ckpt-600000': _golden_checkpoint(2)})
  monkeypatch.setenv(released.URL_VARIABLE, server.url)
  golden, arrays = _test_data()
  cache = tmp_path / 'cache'
  run = lambda: released.evaluate_release(
      release, data_dir=None, cache_dir=str(cache),
      input_fn=test_utils.array_input_fn(arrays))

  first = run()
  # The ensemble sums the members' logits: the reference's at ckpt-0 and
  # ckpt-2.
  expected = _expected_wrong(golden['logits'] + golden['step2_logits'],
                             arrays['recons_label'])
  assert 0 < expected < _EVAL_SIZE
  assert first.wrong == expected
  out = capsys.readouterr().out
  assert f'Downloading data from {server.url}/{release.file_name}' in out
  assert test_utils.wrong_line(expected, expected / _EVAL_SIZE * 100) in (
      out.splitlines())
  assert (cache / release.file_name).read_bytes() == (
      server.files[release.file_name])
  assert not [name for name in os.listdir(cache) if 'partial' in name]

  second = run()
  assert server.requests == [release.file_name]
  assert second == first
  out = capsys.readouterr().out
  assert 'downloaded before' in out
  assert 'Using the checkpoints extracted' in out


def test_one_checkpoint_from_a_tarball_on_disk(tmp_path, capsys):
  release = _tiny('mnist')
  tarball = tmp_path / release.file_name
  tarball.write_bytes(_tarball({
      'mnist_checkpoint/model.ckpt-1': _golden_checkpoint(2)}))
  golden, arrays = _test_data()

  result = released.evaluate_release(
      release, data_dir=None, cache_dir=str(tmp_path / 'cache'),
      tarball=str(tarball), input_fn=test_utils.array_input_fn(arrays))

  expected = _expected_wrong(golden['step2_logits'], arrays['recons_label'])
  assert 0 < expected < _EVAL_SIZE
  assert result.wrong == expected
  assert test_utils.wrong_line(expected, expected / _EVAL_SIZE * 100) in (
      capsys.readouterr().out.splitlines())
  assert os.listdir(tmp_path / 'cache' / 'eval' / 'mnist' / 'test')


def test_truncated_download_keeps_nothing(server, tmp_path):
  release = _tiny('mnist')
  body = _tarball({'mnist_checkpoint/model.ckpt-1': _golden_checkpoint(0)})
  server.files[release.file_name] = body
  server.cut[release.file_name] = len(body) // 2
  cache = tmp_path / 'cache'

  with pytest.raises(errors.DataError,
                     match=re.escape(
                         f'{server.url}/{release.file_name} was cut short '
                         f'(retrieval incomplete: got only {len(body) // 2} '
                         f'out of {len(body)} bytes); nothing was kept, '
                         'rerun')):
    released.download(release, cache_dir=str(cache), base_url=server.url)
  assert os.listdir(cache) == []

  del server.cut[release.file_name]
  path = released.download(release, cache_dir=str(cache),
                           base_url=server.url)
  assert open(path, 'rb').read() == body
  assert os.listdir(cache) == [release.file_name]


def test_garbage_is_refused_and_a_damaged_cache_kept(server, tmp_path):
  release = _tiny('mnist')
  url = f'{server.url}/{release.file_name}'
  good = _tarball({'mnist_checkpoint/model.ckpt-1': _golden_checkpoint(0)})
  cache = tmp_path / 'cache'
  for body, problem in ((b'<html>not found</html>' * 50, 'is not a tar file'),
                        (good[:len(good) // 2], 'is a damaged tarball')):
    server.files[release.file_name] = body
    with pytest.raises(released.TarballError,
                       match=f'^{re.escape(url)} {problem}.*nothing was '
                       'kept'):
      released.download(release, cache_dir=str(cache), base_url=server.url)
    assert os.listdir(cache) == []

  cached = cache / release.file_name
  cached.write_bytes(good[:len(good) // 2])
  with pytest.raises(released.TarballError,
                     match=f'^{re.escape(str(cached))} is a damaged tarball '
                     f'.*delete {re.escape(str(cached))} '
                     r'\(or move it aside\) and rerun'):
    released.fetch(release, cache_dir=str(cache), base_url=server.url)
  assert cached.read_bytes() == good[:len(good) // 2]
  assert len(server.requests) == 2  # The two downloads above, no more.


def _escaping_member(kind: str, outside: str):
  """A member that tries to put a file at or through `outside`."""
  if kind == 'symlink':
    # An absolute link, as to /etc; the checkpoint files follow through it.
    info = tarfile.TarInfo('mnist_checkpoint')
    info.type, info.linkname = tarfile.SYMTYPE, outside
    return info, None, 'mnist_checkpoint'
  if kind == 'relative symlink':
    info = tarfile.TarInfo('mnist_checkpoint')
    info.type, info.linkname = tarfile.SYMTYPE, '../../../outside'
    return info, None, 'mnist_checkpoint'
  name = {'dotdot': 'mnist_checkpoint/../../../../outside/evil',
          'absolute': os.path.join(outside, 'evil')}[kind]
  info = tarfile.TarInfo(name)
  info.size = 4
  return info, b'evil', name


@pytest.mark.parametrize('kind',
                         ['dotdot', 'absolute', 'symlink', 'relative symlink'])
def test_members_leaving_the_folder_are_refused(kind, tmp_path):
  release = _tiny('mnist')
  outside = tmp_path / 'outside'
  outside.mkdir()
  info, data, name = _escaping_member(kind, str(outside))
  tarball = tmp_path / release.file_name
  tarball.write_bytes(_tarball(
      {'mnist_checkpoint/model.ckpt-1': _golden_checkpoint(0)},
      extra=[(info, data)]))
  cache = tmp_path / 'cache'

  with pytest.raises(released.TarballError,
                     match=f"^refusing {re.escape(str(tarball))}: "
                     f".*{re.escape(repr(name))}.*nothing was extracted"):
    released.fetch(release, cache_dir=str(cache), tarball=str(tarball))
  assert os.listdir(outside) == []
  assert not (cache / released.EXTRACTED_DIR).exists()


def test_unreachable_or_missing_file_names_url_and_what_to_do(
    server, tmp_path):
  release = _tiny('mnist')
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    closed = f'http://127.0.0.1:{probe.getsockname()[1]}'
  cache = tmp_path / 'cache'
  for base, reason in ((closed, 'Connection refused'),
                       (server.url, 'HTTP 404')):
    with pytest.raises(
        errors.MissingDataError,
        match=(f'^cannot download {re.escape(base)}/{release.file_name} '
               f'.*{reason}.*put it at '
               f'{re.escape(str(cache / release.file_name))}, or pass '
               '--tarball')):
      released.download(release, cache_dir=str(cache), base_url=base)
  assert os.listdir(cache) == []


def test_checkpoint_that_does_not_fit_is_named_before_reading_data(tmp_path):
  release = released.RELEASES['mnist']  # Routing 3, 28x28x1 digits.
  tarball = tmp_path / release.file_name
  tarball.write_bytes(_tarball({
      'mnist_checkpoint/model.ckpt-1': _golden_checkpoint(0)}))

  def unread():
    raise AssertionError('read data before checking the checkpoints')
    yield  # pylint: disable=unreachable

  def input_fn(split, batch_size, input_context=None):
    del split, batch_size, input_context  # The same digits' shapes for all.
    return tf.data.Dataset.from_generator(unread, output_signature=dict(
        images=tf.TensorSpec([None, 1, 28, 28]),
        labels=tf.TensorSpec([None, 10])))

  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match=r'the mnist release does not fit its model '
                     r'\(capsule, routing=3\): .*conv1/weights has '
                     r'shape \[9, 9, 3, 256\], model needs \[9, 9, 1, 256\]'):
    released.evaluate_release(release, data_dir=None,
                              cache_dir=str(tmp_path / 'cache'),
                              tarball=str(tarball), input_fn=input_fn)


def _start_tool(*args, env=None):
  environment = {key: value for key, value in os.environ.items()
                 if key != released.URL_VARIABLE}
  return subprocess.Popen(
      [sys.executable, '-m', 'paper.released', *args],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT,
      env=dict(environment, **(env or {})))


def test_command_line_lists_and_fails_in_one_line(tmp_path):
  data_dir = tmp_path / 'mnist_data'
  data_dir.mkdir()
  rng = np.random.default_rng(0)
  mnist_shift_test.write_mnist_idx(
      str(data_dir), rng.integers(0, 256, (100, 28, 28), np.uint8),
      rng.integers(0, 10, 100).astype(np.uint8), prefix='t10k')
  garbage = tmp_path / 'mnist_checkpoints.tar.gz'
  garbage.write_bytes(b'not a tarball')
  cache = tmp_path / 'cache'
  mirror = 'http://mirror.invalid/capsules'
  # Both at once: each process spends seconds starting TensorFlow.
  processes = [
      _start_tool('--list', f'--cache_dir={cache}',
                  env={released.URL_VARIABLE: mirror}),
      _start_tool('mnist', f'--tarball={garbage}', f'--data_dir={data_dir}',
                  f'--cache_dir={cache}')]
  (listing, listing_err), (_, failed_err) = [
      process.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
      for process in processes]

  assert processes[0].returncode == 0, listing_err
  assert f'{mirror}/mnist_checkpoints.tar.gz' in listing
  assert 'cifar10  capsule (num_prime_capsules=64' in listing
  assert 'paper 10.6%' in listing
  assert processes[1].returncode == 1
  assert failed_err.splitlines() == [
      f'released: error: {garbage} is not a tar file, gzipped or not; give '
      'the reference\'s mnist_checkpoints.tar.gz (https://storage.googleapis'
      '.com/capsule_toronto/mnist_checkpoints.tar.gz)']
  assert garbage.read_bytes() == b'not a tarball'
