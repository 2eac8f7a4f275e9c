r"""The reference's released checkpoints: downloaded, checked and evaluated.

  python -m paper.released --list
  python -m paper.released mnist --data_dir=D/mnist_data/
  python -m paper.released cifar10 --data_dir=D
  python -m paper.released cifar10 --data_dir=D --tarball=cifar_checkpoints.tar.gz

The reference's README had users download its two tarballs of trained
checkpoints (`RELEASES`), extract them and run `experiment.py --train=false`
with the right flags. This command does all of it, in that order after
making or checking the test data (a missing data set stops it before a long
download): `download` (or `--tarball`), `extract` (refusing an unsafe
tarball whole), `check_checkpoints`, and the evaluation, which prints the
reference's `Total wrong predictions` line, then the paper's number.

Nothing the user has is removed: a damaged cached tarball is named with what
to do and left in place; reruns reuse the extracted folders. From Python:
`evaluate_release(RELEASES['mnist'], data_dir=..., cache_dir=...)`.
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import collections
import dataclasses
import hashlib
import http.client
import re
import shutil
import socket
import tarfile
from typing import Dict, List, Optional
import urllib.error
import uuid
import zlib

from absl import flags
import keras

import errors
import files
from input_data import datasets
from input_data import prepare
from models import checkpoints
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models import run_config as run_config_lib
from paper import experiments
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

# Where the reference's README pointed: the two tarballs side by side.
DEFAULT_BASE_URL = 'https://storage.googleapis.com/capsule_toronto'
# Set to a base URL holding the same file names (a mirror, a test server).
URL_VARIABLE = 'CAPSULES_RELEASED_URL'
DEFAULT_CACHE_DIR = os.path.join(prepare.DEFAULT_DATA_DIR, 'released')
EXTRACTED_DIR = 'extracted'  # In the cache: one folder per tarball content.
EVAL_DIR = 'eval'  # In the cache: the default summary_dir of each release.
# Seconds a connection or a read may stall before the command gives up.
DOWNLOAD_TIMEOUT_SECONDS = 60
_DIGEST_CHARS = 12  # Of the tarball's sha256 in its extracted folder's name.
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class TarballError(errors.DataError):
  """A tarball that is not the release: damaged or unsafe."""


@dataclasses.dataclass(frozen=True)
class Release:
  """A tarball of one experiment's trained checkpoints."""
  name: str  # On the command line.
  experiment: experiments.Experiment  # Model, hparams, test data, eval size.
  file_name: str  # Under the base URL.
  # The checkpoint prefix in the tarball (experiment.py's `--checkpoint`),
  # with trials > 1 a pattern holding `{}` for the member's index.
  checkpoint: str
  trials: int = 1  # Checkpoints evaluated as one ensemble (`--num_trials`).

  def prefixes(self) -> List[str]:
    """The checkpoint prefixes inside the tarball, one per trial."""
    return [self.checkpoint.format(trial) for trial in range(self.trials)]


# The wrong predictions, their share in %, the checkpoint prefixes evaluated.
ReleaseResult = collections.namedtuple(
    'ReleaseResult', ('wrong', 'wrong_percent', 'checkpoints'))


# The reference README's two evaluation commands, as releases.
RELEASES: Dict[str, Release] = {r.name: r for r in [
    Release('mnist', experiments.get('mnist_r3_recon'),
            'mnist_checkpoints.tar.gz', 'mnist_checkpoint/model.ckpt-1'),
    Release('cifar10', experiments.get('cifar10_ensemble'),
            'cifar_checkpoints.tar.gz', 'cifar/cifar{}/model.ckpt-600000',
            trials=7),
]}


def get(name: str) -> Release:
  """The release of this name; errors.ConfigError lists the known ones."""
  if name not in RELEASES:
    raise errors.ConfigError(f'unknown release {name!r}; use one of '
                             f'{", ".join(RELEASES)} (--list shows them)')
  return RELEASES[name]


def release_url(release: Release, base_url: Optional[str] = None) -> str:
  """The tarball's URL, under base_url, $CAPSULES_RELEASED_URL or the bucket."""
  base = base_url or os.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL
  return f'{base.rstrip("/")}/{release.file_name}'


def _open(path: str, *, label: str, remedy: str) -> tarfile.TarFile:
  """The tarball, its members listed (which reads it whole)."""
  try:
    tar = tarfile.open(path)
  except _TAR_ERRORS:
    # Its message lists every compression tried; none is news to the user.
    raise TarballError(f'{label} is not a tar file, gzipped or not; '
                       f'{remedy}') from None
  try:
    tar.getmembers()
  except _TAR_ERRORS as error:
    tar.close()
    raise TarballError(f'{label} is a damaged tarball '
                       f'({files.first_line(error)}); {remedy}') from None
  return tar


def download(release: Release, *, cache_dir: str,
             base_url: Optional[str] = None) -> str:
  """The release's tarball, `cache_dir/<file_name>`, downloaded unless there.
  Raises errors.MissingDataError: no server or file; errors.DataError: the
  download broke off or is not a tarball."""
  path = os.path.join(cache_dir, release.file_name)
  if os.path.exists(path):
    print(f'Using {path}, downloaded before', flush=True)
    return path
  url = release_url(release, base_url)

  def download_to(temp: str) -> None:
    try:
      keras.utils.get_file(os.path.basename(temp), url, cache_subdir=(
          os.path.dirname(os.path.abspath(temp))))
    except Exception as error:  # pylint: disable=broad-except
      # get_file re-raises a URLError as a bare Exception with its text.
      cause = error.__context__ if type(error) is Exception else error
      # ValueError: not a URL at all (a mistyped CAPSULES_RELEASED_URL).
      if not isinstance(cause, (OSError, http.client.HTTPException,
                                ValueError)):
        raise
      if isinstance(cause, urllib.error.ContentTooShortError):
        raise errors.DataError(
            f'the download of {url} was cut short ({cause.reason}); nothing '
            f'was kept, rerun to download it again') from None
      reason = (f'HTTP {cause.code} {cause.reason}' if isinstance(
          cause, urllib.error.HTTPError) else getattr(cause, 'reason', cause))
      raise errors.MissingDataError(
          f'cannot download {url} ({reason}); download it where there is '
          f'network and put it at {path}, or pass --tarball=<its path>, or '
          f'set {URL_VARIABLE} to a mirror holding {release.file_name}'
      ) from None
    _open(temp, label=url, remedy=f'nothing was kept; check {URL_VARIABLE} '
          f'or pass --tarball=<a good copy>').close()

  files.write_atomically(path, download_to)
  print(f'Downloaded {path}', flush=True)
  return path


def _refuse_unsafe(tar: tarfile.TarFile, dest: str, *, label: str,
                   remedy: str) -> None:
  """Raises TarballError for any member that would land outside dest; one
  absolute or holding `..` outright: tarfile's `data` filter (which refuses
  the rest) would strip a leading `/` and hide that the archive tried."""
  for member in tar.getmembers():
    if os.path.isabs(member.name) or '..' in member.name.split('/'):
      reason = f'member {member.name!r} is absolute or climbs out with ..'
    else:
      try:
        tarfile.data_filter(member, dest)
        continue
      except tarfile.FilterError as error:
        reason = str(error)
    raise TarballError(f'refusing {label}: {reason}; nothing was extracted; '
                       f'{remedy}')


def extract(tarball: str, *, cache_dir: str, remedy: str) -> str:
  """The folder of the tarball's files in the cache, extracted once; named
  after the tarball's sha256, so that a rerun on the same tarball reuses it
  and another tarball never mixes with it. TarballErrors end with remedy."""
  with open(tarball, 'rb') as file:
    digest = hashlib.file_digest(file, 'sha256').hexdigest()
  stem = re.sub(r'\.(tar\.gz|tgz|tar)$', '', os.path.basename(tarball))
  folder = os.path.join(cache_dir, EXTRACTED_DIR,
                        f'{stem}-{digest[:_DIGEST_CHARS]}')
  if os.path.isdir(folder):
    print(f'Using the checkpoints extracted from {tarball} in {folder}',
          flush=True)
    return folder
  partial = f'{folder}.partial-{uuid.uuid4().hex[:8]}'
  with _open(tarball, label=tarball, remedy=remedy) as tar:
    _refuse_unsafe(tar, partial, label=tarball, remedy=remedy)
    print(f'Extracting {tarball} (sha256 {digest}) to {folder}', flush=True)
    try:
      tar.extractall(partial, filter='data')
      os.rename(partial, folder)
    except OSError as error:
      raise errors.StorageError(
          f'could not extract {tarball} to {partial} ({error}); free some '
          f'disk space or pass --cache_dir=<another folder>') from None
    finally:
      shutil.rmtree(partial, ignore_errors=True)  # This call's own folder.
  return folder


def fetch(release: Release, *, cache_dir: str, tarball: Optional[str] = None,
          base_url: Optional[str] = None) -> str:
  """The folder of the release's files, from tarball or the download."""
  if tarball:
    tarball = os.path.expanduser(tarball)
    remedy = (f'give the reference\'s {release.file_name} '
              f'({release_url(release, base_url)})')
    if not os.path.isfile(tarball):
      raise errors.MissingDataError(f'--tarball {tarball} does not exist; '
                                    f'{remedy}')
  else:
    tarball = download(release, cache_dir=cache_dir, base_url=base_url)
    remedy = (f'delete {tarball} (or move it aside) and rerun to download '
              f'it again, or pass --tarball=<a good copy>')
  return extract(tarball, cache_dir=cache_dir, remedy=remedy)


def check_checkpoints(release: Release, folder: str, *,
                      input_fn: datasets.InputFn,
                      config: run_config_lib.RunConfig = (
                          run_config_lib.RunConfig())) -> List[str]:
  """The checkpoints' prefixes, each loaded into the model, reading no data;
  `checkpoints.load`'s errors name one missing, damaged or not fitting."""
  entry = release.experiment
  model_text = f'{entry.model}, {entry.hparams or "default hparams"}'
  model = evaluation.Evaluator(
      hparams_lib.default_hparams().parse(entry.hparams),
      model_type=entry.model, input_fn=input_fn,
      num_targets=entry.num_targets, config=config).model
  paths = [os.path.join(folder, prefix) for prefix in release.prefixes()]
  for path in paths:
    try:
      checkpoints.load(model, path)
    except checkpoints.CheckpointMismatchError as error:
      raise checkpoints.CheckpointMismatchError(
          f'the {release.name} release does not fit its model '
          f'({model_text}): {error}') from None
  print(f'Checked {len(paths)} checkpoint(s): each holds every variable of '
        f'the model ({model_text}) in its shape', flush=True)
  return paths


def evaluate_release(release: Release, *, data_dir: Optional[str],
                     cache_dir: str = DEFAULT_CACHE_DIR,
                     summary_dir: Optional[str] = None,
                     tarball: Optional[str] = None,
                     base_url: Optional[str] = None,
                     input_fn: Optional[datasets.InputFn] = None,
                     config: run_config_lib.RunConfig = (
                         run_config_lib.RunConfig())) -> ReleaseResult:
  """Fetches, checks and evaluates a release as the reference README did.

  The arguments mean what the command's flags do (`_define_flags`), and:
  base_url: `release_url`'s; input_fn: the test data instead of the
  experiment's in data_dir; config: batch size and how the model computes.
  Raises the errors.UserError of the test data, `fetch`, `check_checkpoints`.
  """
  entry = release.experiment
  if input_fn is None:
    datasets.prepare_split(entry.dataset, 'test', data_dir=data_dir)
    input_fn = datasets.input_fn(entry.dataset, data_dir=data_dir,
                                 eval_size=entry.eval_size)
  folder = fetch(release, cache_dir=cache_dir, tarball=tarball,
                 base_url=base_url)
  paths = check_checkpoints(release, folder, input_fn=input_fn,
                            config=config)
  hparams = hparams_lib.default_hparams().parse(entry.hparams)
  common = dict(model_type=entry.model, eval_size=entry.eval_size,
                input_fn=input_fn, num_targets=entry.num_targets,
                config=config)
  if release.trials == 1:
    [result] = evaluation.evaluate(
        hparams, checkpoint=paths[0], summary_dir=summary_dir or os.path.join(
            cache_dir, EVAL_DIR, release.name), **common)
    wrong, percent = result.wrong, result.wrong_percent
  else:
    # Braces in the folder are literal; the release's `{}` is the trial.
    escaped = folder.replace('{', '{{').replace('}', '}}')
    wrong = evaluation.evaluate_ensemble(
        hparams, checkpoint=os.path.join(escaped, release.checkpoint),
        num_trials=release.trials, **common)
    percent = wrong / entry.eval_size * 100
  print(f'{release.name}: {percent:.2f}% wrong on {entry.eval_size:,} test '
        f'examples (the paper: {_paper_text(entry)})', flush=True)
  return ReleaseResult(wrong, percent, paths)


def _paper_text(entry: experiments.Experiment) -> str:
  return f'{experiments.paper_number_text(entry.paper)}% ({entry.paper.source})'


def release_list(*, cache_dir: str = DEFAULT_CACHE_DIR,
                 base_url: Optional[str] = None) -> str:
  """Two lines per release: what it evaluates, and where it comes from."""
  lines = []
  for release in RELEASES.values():
    entry = release.experiment
    members = (release.checkpoint if release.trials == 1 else
               f'an ensemble of {release.trials}, '
               f'{release.checkpoint.format(f"{{0..{release.trials - 1}}}")}')
    cached = os.path.join(cache_dir, release.file_name)
    where = (f'downloaded: {cached}, {os.path.getsize(cached) / 1e6:,.1f} MB'
             if os.path.exists(cached) else f'goes to {cached}')
    lines.append(
        f'{release.name:<8} {entry.model} '
        f'({entry.hparams or "default hparams"}): {members} on '
        f'{entry.eval_size:,} {entry.dataset} test examples; paper '
        f'{_paper_text(entry)}')
    lines.append(f'{"":<8} {release_url(release, base_url)} ({where})')
  return '\n'.join(lines)


def _define_flags() -> None:
  flags.DEFINE_string('data_dir', prepare.DEFAULT_DATA_DIR,
                      'The data directory, as for experiment.py (mnist: the '
                      'folder of the MNIST files; cifar10: the one holding '
                      'cifar-10-batches-bin/); missing files are prepared '
                      'there.')
  flags.DEFINE_string('cache_dir', DEFAULT_CACHE_DIR,
                      'Where the tarballs are downloaded and their '
                      'checkpoints extracted; reruns reuse them.')
  flags.DEFINE_string('summary_dir', None,
                      'Where the evaluation summaries of the mnist model '
                      'go; unset: <cache_dir>/eval/<release>.')
  flags.DEFINE_string('tarball', None,
                      'The release\'s tarball, already on disk: used '
                      'instead of downloading.')
  flags.DEFINE_bool('list', False,
                    'Print the releases: what each evaluates, the paper\'s '
                    'number, the URL.')


def main(argv: List[str]) -> None:
  cache_dir = os.path.expanduser(FLAGS.cache_dir)
  if FLAGS.list:
    print(release_list(cache_dir=cache_dir))
    return
  names = argv[1:]
  if len(names) != 1:
    raise errors.ConfigError(
        f'name one release, {" or ".join(RELEASES)} (got '
        f'{" ".join(names) or "none"}); --list shows them')
  # get_file's connection has no timeout of its own: a stalled one gives up.
  socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
  evaluate_release(get(names[0]), data_dir=FLAGS.data_dir,
                   cache_dir=cache_dir, summary_dir=FLAGS.summary_dir,
                   tarball=FLAGS.tarball, config=devices.setup().config)


if __name__ == '__main__':
  cli.run(main, program='released', define_flags=_define_flags,
          arguments=True)
