"""Tests of the atomic writer and the first-line helper."""

import os

import pytest

import files


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / 'sub' / 'out.txt')

  def write(text):
    return lambda temp: open(temp, 'w').write(text)

  assert files.write_atomically(path, write('one'))
  assert files.write_atomically(path, write('two'))
  assert open(path).read() == 'two'
  assert not files.write_atomically(path, write('three'), overwrite=False)
  assert open(path).read() == 'two'
  assert os.listdir(tmp_path / 'sub') == ['out.txt']


def test_a_failed_write_keeps_the_old_file(tmp_path):
  path = str(tmp_path / 'out.txt')
  files.write_atomically(path, lambda temp: open(temp, 'w').write('old'))

  def fail(temp):
    open(temp, 'w').write('half')
    raise OSError('disk full')

  with pytest.raises(OSError, match='disk full'):
    files.write_atomically(path, fail)
  assert open(path).read() == 'old'
  assert os.listdir(tmp_path) == ['out.txt']


def test_first_line():
  assert files.first_line(ValueError('a\nb')) == 'a'
  assert files.first_line(ValueError('')) == 'ValueError'


def test_a_failed_folder_write_leaves_nothing(tmp_path):
  path = str(tmp_path / 'export')

  def fail(temp):
    os.makedirs(os.path.join(temp, 'variables'))
    raise OSError('disk full')

  with pytest.raises(OSError, match='disk full'):
    files.write_atomically(path, fail)
  assert not os.listdir(tmp_path)
