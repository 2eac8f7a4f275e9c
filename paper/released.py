r"""The reference's released checkpoints: downloaded, checked and evaluated.

  python -m paper.released --list
  python -m paper.released mnist --data_dir=D/mnist_data/
  python -m paper.released cifar10 --data_dir=D
  python -m paper.released cifar10 --data_dir=D --tarball=cifar_checkpoints.tar.gz

The reference published two tarballs of trained checkpoints
(`RELEASES`), and its README had users download and extract them by hand and
then run `experiment.py --train=false` with the right flags. One command here
does all of it, as that README did:
1. makes or checks the test data in --data_dir (`datasets.prepare_split`),
   so that a missing data set stops the command before a long download;
2. downloads the tarball from the reference's bucket (or the base URL in
   $CAPSULES_RELEASED_URL, a mirror holding the same file names) into
   --cache_dir, once: it is written under a temporary name, checked (the
   size against Content-Length, the tarball opens and holds every checkpoint
   file) and only then renamed, so a broken download is never taken for a
   good one. `--tarball=PATH` uses a copy on disk instead (offline);
3. extracts the checkpoint files into
   `cache_dir/extracted/<tarball name>-<sha256 prefix>/`, after checking
   every member: an absolute path, a path with `..`, a link leading out of
   the folder or a device file refuses the whole tarball, and the files are
   extracted with tarfile's `data` filter besides;
4. builds the model and loads every checkpoint into it, so that one which
   does not fit (a variable missing or of another shape) is named before
   any data is read;
5. evaluates with the reference README's hparams, trials and eval size
   (`models.evaluation.evaluate`, or `evaluate_ensemble` for the 7 CIFAR10
   models), which prints the reference's `Total wrong predictions: N, wrong
   percent: P%`, then the paper's number beside it.

Nothing the user has is removed: a damaged cached tarball is reported with
what to do and left in place, and the extracted folders stay in the cache
(rerunning reuses them). From Python:
`evaluate_release(RELEASES['mnist'], data_dir=..., cache_dir=...)`.
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import contextlib
import dataclasses
import hashlib
import http.client
import posixpath
import re
import shutil
import tarfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple
import urllib.error
import urllib.request
import uuid
import zlib

from absl import flags

import errors
from input_data import datasets
from input_data import prepare
from models import checkpoints
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models import model as model_lib
from models import registry
from models import run_config as run_config_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
PROGRAM = 'released'

# Where the reference's README pointed: the two tarballs side by side.
DEFAULT_BASE_URL = 'https://storage.googleapis.com/capsule_toronto'
# Set to a base URL holding the same file names (a mirror, a test server).
URL_VARIABLE = 'CAPSULES_RELEASED_URL'
DEFAULT_CACHE_DIR = os.path.join(prepare.DEFAULT_DATA_DIR, 'released')
EXTRACTED_DIR = 'extracted'  # In the cache: one folder per tarball content.
EVAL_DIR = 'eval'  # In the cache: the default summary_dir of each release.
# Seconds a connection or a read may stall before the download gives up.
DOWNLOAD_TIMEOUT_SECONDS = 60
PROGRESS_SECONDS = prepare.PROGRESS_SECONDS
_CHUNK_BYTES = 1 << 20
_DIGEST_CHARS = 12  # Of the tarball's sha256 in its extracted folder's name.
_DATA_SHARD = re.compile(r'\.data-(\d+)-of-(\d+)$')


class TarballError(errors.DataError):
  """A tarball that is not the release: damaged, unsafe or incomplete."""


@dataclasses.dataclass(frozen=True)
class Release:
  """A tarball of trained checkpoints, and how the reference evaluated it.

  Attributes:
    name: the release's name on the command line.
    file_name: the tarball's name under the base URL.
    checkpoint: the checkpoint prefix inside the tarball (experiment.py's
      `--checkpoint`); with trials > 1 a pattern holding `{}` for the
      member's index.
    trials: checkpoints evaluated as one ensemble (`--num_trials`).
    model: key of `registry.MODELS` (`--model`).
    hparams: `key=value,...` over the default hparams (`--hparams_override`).
    dataset: the data set whose test split is evaluated (`--dataset`).
    shape: the test images' shape, which the checkpoints are checked against
      before any data is read.
    eval_size: test examples evaluated (`--eval_size`).
    size: the tarball's size in bytes, when known.
    paper: the paper's number for what is evaluated, and where it is from.
  """
  name: str
  file_name: str
  checkpoint: str
  trials: int
  model: str
  hparams: str
  dataset: str
  shape: model_lib.DataShape
  eval_size: int = 10000
  size: Optional[int] = None
  paper: str = ''

  def __post_init__(self):
    if self.trials > 1 and '{}' not in self.checkpoint:
      raise errors.ConfigError(
          f'release {self.name}: an ensemble of {self.trials} needs a '
          f'checkpoint pattern holding {{}}, got {self.checkpoint!r}')

  def prefixes(self) -> List[str]:
    """The checkpoint prefixes inside the tarball, one per trial."""
    return [self.checkpoint.format(trial) for trial in range(self.trials)]


@dataclasses.dataclass(frozen=True)
class ReleaseResult:
  """What evaluating a release gave.

  Attributes:
    wrong: wrong predictions.
    wrong_percent: their share of the evaluated examples, in %.
    checkpoints: the extracted checkpoint prefixes that were evaluated.
  """
  wrong: int
  wrong_percent: float
  checkpoints: List[str]


_CIFAR10_HPARAMS = 'num_prime_capsules=64,padding=SAME,leaky=true,remake=false'

# The reference README's two evaluation commands, as releases.
RELEASES: Dict[str, Release] = {r.name: r for r in [
    Release(
        name='mnist', file_name='mnist_checkpoints.tar.gz',
        checkpoint='mnist_checkpoint/model.ckpt-1', trials=1,
        model='capsule', hparams='', dataset='mnist',
        shape=model_lib.DataShape(28, 1),
        paper=('0.25 +- 0.005% for this configuration (Table 1: routing 3 '
               'with reconstruction, mean of 3 trials); no number published '
               'for the checkpoint itself')),
    Release(
        name='cifar10', file_name='cifar_checkpoints.tar.gz',
        checkpoint='cifar/cifar{}/model.ckpt-600000', trials=7,
        model='capsule', hparams=_CIFAR10_HPARAMS, dataset='cifar10',
        shape=model_lib.DataShape(24, 3),
        paper='10.6% (section 7, an ensemble of 7 models)'),
]}


def get(name: str) -> Release:
  """The release of this name.

  Raises:
    errors.ConfigError: an unknown name; the message lists the known ones.
  """
  if name not in RELEASES:
    raise errors.ConfigError(f'unknown release {name!r}; use one of '
                             f'{", ".join(RELEASES)} (--list shows them)')
  return RELEASES[name]


def release_url(release: Release, base_url: Optional[str] = None) -> str:
  """The tarball's URL, under base_url, $CAPSULES_RELEASED_URL or the bucket."""
  base = base_url or os.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL
  return f'{base.rstrip("/")}/{release.file_name}'


def _make_dirs(path: str) -> None:
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    raise errors.StorageError(
        f'cannot create the folder {path} ({error}); pass --cache_dir=<a '
        f'writable folder>') from None


def _megabytes(num_bytes: int) -> str:
  return f'{num_bytes / 1e6:,.1f} MB'


def _reason(error: Exception) -> str:
  return str(error) or type(error).__name__


@contextlib.contextmanager
def _open_tarball(path: str, *, label: str, remedy: str
                 ) -> Iterator[Tuple[tarfile.TarFile, List[tarfile.TarInfo]]]:
  """The open tarball and its members (listing them reads the whole file).

  Args:
    path: the tarball.
    label: what the messages call it (its path, or the URL it came from).
    remedy: what the user can do, ending the messages.

  Raises:
    TarballError: path is not a tarball, or a damaged one.
  """
  try:
    tar = tarfile.open(path)
  except (tarfile.TarError, EOFError, OSError, zlib.error):
    # Its message lists every compression tried; none is news to the user.
    raise TarballError(f'{label} is not a tar file, gzipped or not; '
                       f'{remedy}') from None
  with tar:
    try:
      members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
      raise TarballError(f'{label} is a damaged tarball ({_reason(error)}); '
                         f'{remedy}') from None
    yield tar, members


def _unsafe(member: tarfile.TarInfo, dest: str) -> Optional[str]:
  """Why extracting member into dest is refused, or None when it is safe.

  An absolute name or one with `..` is refused outright: tarfile's `data`
  filter would strip a leading `/` and extract the member inside, hiding
  that the archive tried. The filter then refuses links that lead out of
  dest, and device files.
  """
  if member.name.startswith('/') or os.path.isabs(member.name):
    return f'member {member.name!r} has an absolute path'
  if '..' in member.name.split('/'):
    return f'member {member.name!r} climbs out of the folder with ..'
  try:
    tarfile.data_filter(member, dest)
  except tarfile.FilterError as error:
    return str(error)
  return None


def _checkpoint_members(release: Release, members: Sequence[tarfile.TarInfo],
                        *, dest: str, label: str,
                        remedy: str) -> List[tarfile.TarInfo]:
  """The members to extract: every file of every checkpoint of the release.

  Args:
    release: whose checkpoints.
    members: the tarball's members, in order.
    dest: the folder it is to be extracted to.
    label: what the messages call the tarball.
    remedy: what the user can do, ending the messages.

  Returns:
    The `.index` and `.data-*` files of each checkpoint.

  Raises:
    TarballError: a member would land outside dest (an absolute path, `..`,
      a link leading out, a device), or a checkpoint file is missing or not
      a plain file.
  """
  by_name = {}
  for member in members:
    reason = _unsafe(member, dest)
    if reason:
      raise TarballError(f'refusing {label}: {reason}; nothing was '
                         f'extracted; {remedy}')
    by_name[posixpath.normpath(member.name)] = member  # Later ones win.
  wanted, missing = [], []
  for prefix in release.prefixes():
    index = prefix + '.index'
    shards = {}
    for name, member in by_name.items():
      match = _DATA_SHARD.search(name)
      if match and name[:match.start()] == prefix:
        shards[int(match.group(1))] = (member, int(match.group(2)))
    counts = {count for _, count in shards.values()}
    complete = len(counts) == 1 and set(shards) == set(range(counts.pop()))
    if index not in by_name:
      missing.append(index)
    if not shards:
      missing.append(prefix + '.data-00000-of-00001')
    elif not complete:
      missing.append(f'{prefix}.data-* (it has shards {sorted(shards)})')
    wanted += [by_name[index]] if index in by_name else []
    wanted += [member for member, _ in shards.values()]
  if missing:
    raise TarballError(
        f'{label} lacks {", ".join(missing)}, so it is not the reference\'s '
        f'{release.file_name}; {remedy}')
  not_files = [member.name for member in wanted if not member.isfile()]
  if not_files:
    raise TarballError(f'{label}: {", ".join(not_files)} must be plain '
                       f'files; {remedy}')
  return wanted


def _copy_response(response, partial: str, *, url: str,
                   length: Optional[int]) -> int:
  """Writes the body to partial with a progress line now and then.

  Returns:
    The bytes received.

  Raises:
    errors.DataError: the connection broke off.
    errors.StorageError: partial could not be written.
  """
  received = 0
  start = last_report = time.monotonic()
  with open(partial, 'wb') as file:
    while True:
      try:
        chunk = response.read(_CHUNK_BYTES)
      except (OSError, http.client.HTTPException) as error:
        raise errors.DataError(
            f'the download of {url} broke off after {received:,} bytes '
            f'({_reason(error)}); nothing was kept, rerun to download it '
            f'again') from None
      if not chunk:
        return received
      try:
        file.write(chunk)
      except OSError as error:
        raise errors.StorageError(
            f'could not write {partial} ({error}); free some disk space or '
            f'pass --cache_dir=<another folder>') from None
      received += len(chunk)
      now = time.monotonic()
      if now - last_report >= PROGRESS_SECONDS:
        last_report = now
        done = f'{received / length:.0%}, ' if length else ''
        print(f'  {done}{_megabytes(received)} after {now - start:.0f} s',
              flush=True)


def download(release: Release, *, cache_dir: str,
             base_url: Optional[str] = None) -> str:
  """The release's tarball in cache_dir, downloaded unless it is there.

  The download goes to a temporary name in cache_dir and is renamed only
  once its size matches Content-Length (when the server sends one) and it
  opens as a tarball holding every checkpoint file of the release; else the
  temporary file is removed.

  Args:
    release: what to download.
    cache_dir: the folder of the tarball.
    base_url: the URL of the folder holding the tarball; None:
      `release_url`'s.

  Returns:
    The tarball's path, `cache_dir/release.file_name`.

  Raises:
    errors.MissingDataError: the server cannot be reached or does not have
      the file; the message names the URL and where to put the file.
    errors.DataError: the download broke off or is not the release's
      tarball (`TarballError`).
    errors.StorageError: the file could not be written.
  """
  path = os.path.join(cache_dir, release.file_name)
  if os.path.exists(path):
    print(f'Using {path}, downloaded before', flush=True)
    return path
  url = release_url(release, base_url)
  _make_dirs(cache_dir)
  try:
    response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)
  except (OSError, http.client.HTTPException, ValueError) as error:
    # ValueError: not a URL at all (a mistyped CAPSULES_RELEASED_URL).
    reason = (f'HTTP {error.code} {error.reason}' if isinstance(
        error, urllib.error.HTTPError) else getattr(error, 'reason', error))
    raise errors.MissingDataError(
        f'cannot download {url} ({reason}); download it where there is '
        f'network and put it at {path}, or pass --tarball=<its path>, or set '
        f'{URL_VARIABLE} to a mirror holding {release.file_name}') from None
  partial = f'{path}.partial-{uuid.uuid4().hex[:8]}'
  try:
    with response:
      length = response.headers.get('Content-Length')
      length = int(length) if length and length.isdigit() else None
      print(f'Downloading {url} '
            f'({_megabytes(length) if length else "size not given"}) to '
            f'{path}', flush=True)
      start = time.monotonic()
      received = _copy_response(response, partial, url=url, length=length)
    if length is not None and received != length:
      raise errors.DataError(
          f'the download of {url} was cut short ({received:,} of {length:,} '
          f'bytes); nothing was kept, rerun to download it again')
    remedy = (f'nothing was kept; check {URL_VARIABLE} or pass '
              f'--tarball=<a good copy>')
    with _open_tarball(partial, label=url, remedy=remedy) as (_, members):
      _checkpoint_members(release, members, dest=cache_dir, label=url,
                          remedy=remedy)
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)  # This call's own partial file, never kept.
  print(f'Downloaded {path} ({_megabytes(received)} in '
        f'{time.monotonic() - start:.0f} s)', flush=True)
  return path


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as file:
    for chunk in iter(lambda: file.read(_CHUNK_BYTES), b''):
      digest.update(chunk)
  return digest.hexdigest()


def _tarball_stem(path: str) -> str:
  name = os.path.basename(path)
  for suffix in ('.tar.gz', '.tgz', '.tar'):
    if name.endswith(suffix):
      return name[:-len(suffix)]
  return name


def extract(release: Release, tarball: str, *, cache_dir: str,
            remedy: Optional[str] = None) -> str:
  """Extracts the release's checkpoint files from a tarball, once.

  The folder is named after the tarball and its sha256, so a rerun on the
  same tarball reuses it and another tarball never mixes with it. Every
  member is checked before anything is extracted; the checkpoint files
  alone are then extracted (with tarfile's `data` filter) into a temporary
  folder, renamed when complete.

  Args:
    release: whose checkpoints.
    tarball: the tarball's path.
    cache_dir: the cache; the folder goes to `cache_dir/extracted/`.
    remedy: what the user can do when the tarball is not right, ending the
      messages; None: give the reference's tarball.

  Returns:
    The folder; `release.prefixes()` are relative to it.

  Raises:
    TarballError: the tarball does not open, holds a member that would land
      outside the folder, or lacks a checkpoint file.
    errors.StorageError: the files could not be written.
  """
  remedy = remedy or (f'give the reference\'s {release.file_name} '
                      f'({release_url(release)})')
  digest = _sha256(tarball)
  parent = os.path.join(cache_dir, EXTRACTED_DIR)
  folder = os.path.join(parent,
                        f'{_tarball_stem(tarball)}-{digest[:_DIGEST_CHARS]}')
  if os.path.isdir(folder):
    missing = [prefix for prefix in release.prefixes()
               if not os.path.exists(os.path.join(folder, prefix + '.index'))]
    if missing:
      raise errors.DataError(
          f'{folder} lacks {", ".join(missing)}, extracted before from '
          f'{tarball}; delete that folder and rerun to extract it again')
    print(f'Using the checkpoints extracted from {tarball} in {folder}',
          flush=True)
    return folder
  _make_dirs(parent)
  partial = f'{folder}.partial-{uuid.uuid4().hex[:8]}'
  try:
    with _open_tarball(tarball, label=tarball, remedy=remedy) as (
        tar, members):
      wanted = _checkpoint_members(release, members, dest=partial,
                                   label=tarball, remedy=remedy)
      print(f'Extracting {len(release.prefixes())} checkpoint(s) from '
            f'{tarball} (sha256 {digest}) to {folder}', flush=True)
      try:
        tar.extractall(partial, members=wanted, filter='data')
      except OSError as error:
        raise errors.StorageError(
            f'could not extract {tarball} to {partial} ({error}); free some '
            f'disk space or pass --cache_dir=<another folder>') from None
    os.rename(partial, folder)
  finally:
    if os.path.isdir(partial):
      shutil.rmtree(partial)  # This call's own partial folder.
  return folder


def fetch(release: Release, *, cache_dir: str, tarball: Optional[str] = None,
          base_url: Optional[str] = None) -> str:
  """The folder of the release's extracted checkpoints.

  Args:
    release: what to fetch.
    cache_dir: where the downloaded tarball and the extracted files go.
    tarball: a copy of the tarball on disk, used instead of the cached or
      downloaded one.
    base_url: see `download`.

  Returns:
    See `extract`.

  Raises:
    errors.MissingDataError: tarball does not exist, or see `download`.
    TarballError: the tarball is not the release (see `extract`); a
      cached one is named, with what to do, and left where it is.
    errors.DataError, errors.StorageError: see `download` and `extract`.
  """
  if tarball:
    tarball = os.path.expanduser(tarball)
    if not os.path.isfile(tarball):
      raise errors.MissingDataError(
          f'--tarball {tarball} does not exist; give the path of the '
          f'downloaded {release.file_name} ({release_url(release, base_url)})')
    remedy = (f'give the reference\'s {release.file_name} '
              f'({release_url(release, base_url)})')
  else:
    cached = os.path.join(cache_dir, release.file_name)
    remedy = (f'delete {cached} (or move it aside) and rerun to download '
              f'it again, or pass --tarball=<a good copy>')
    tarball = download(release, cache_dir=cache_dir, base_url=base_url)
  return extract(release, tarball, cache_dir=cache_dir, remedy=remedy)


def check_checkpoints(release: Release, folder: str, *,
                      config: run_config_lib.RunConfig = (
                          run_config_lib.RunConfig())) -> List[str]:
  """Loads every checkpoint of the release into its model, reading no data.

  So a checkpoint that does not fit is named before the evaluation starts.

  Args:
    release: the release.
    folder: where its checkpoints were extracted.
    config: how the model computes.

  Returns:
    The checkpoints' prefixes.

  Raises:
    checkpoints.CheckpointMismatchError: a checkpoint lacks a variable of the
      model or holds it in another shape; the message names each.
    checkpoints.MissingCheckpointError, checkpoints.CorruptCheckpointError:
      a checkpoint is missing or damaged.
  """
  hparams = hparams_lib.default_hparams().parse(release.hparams)
  model = registry.build_model(hparams, model_type=release.model,
                               shape=release.shape, config=config)
  paths = [os.path.join(folder, prefix) for prefix in release.prefixes()]
  for path in paths:
    try:
      checkpoints.load(model, path)
    except checkpoints.CheckpointMismatchError as error:
      raise checkpoints.CheckpointMismatchError(
          f'the {release.name} release does not fit its model '
          f'({release.model}, {release.hparams or "default hparams"}): '
          f'{error}') from None
  print(f'Checked {len(paths)} checkpoint(s): each holds every variable of '
        f'the {release.model} model ({release.hparams or "default hparams"}) '
        f'in its shape', flush=True)
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

  Prints the reference's `Total wrong predictions: N, wrong percent: P%`,
  then the paper's number beside it.

  Args:
    release: e.g. `RELEASES['cifar10']`.
    data_dir: the data directory, as for experiment.py (unused with
      input_fn).
    cache_dir: where the tarball and the extracted checkpoints go.
    summary_dir: where a single model's evaluation summaries go; None:
      `cache_dir/eval/<name>`.
    tarball: a copy of the tarball on disk (see `fetch`).
    base_url: see `download`.
    input_fn: the test data instead of `release.dataset`'s in data_dir.
    config: batch size and how the model computes.

  Returns:
    The wrong predictions, their share and the checkpoints evaluated.

  Raises:
    errors.MissingDataError: the test data or the tarball cannot be had.
    TarballError, errors.DataError, errors.StorageError: see `fetch`.
    checkpoints.CheckpointError: a checkpoint does not fit or is damaged.
  """
  hparams = hparams_lib.default_hparams().parse(release.hparams)
  if input_fn is None:
    datasets.prepare_split(release.dataset, 'test', data_dir=data_dir)
    input_fn = datasets.input_fn(release.dataset, data_dir=data_dir,
                                 eval_size=release.eval_size)
  folder = fetch(release, cache_dir=cache_dir, tarball=tarball,
                 base_url=base_url)
  paths = check_checkpoints(release, folder, config=config)
  common = dict(model_type=release.model, eval_size=release.eval_size,
                input_fn=input_fn, num_targets=release.shape.num_targets,
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
    percent = wrong / release.eval_size * 100
  paper = f' (the paper: {release.paper})' if release.paper else ''
  print(f'{release.name}: {percent:.2f}% wrong on {release.eval_size:,} '
        f'test examples{paper}', flush=True)
  return ReleaseResult(wrong, percent, paths)


def release_list(*, cache_dir: str = DEFAULT_CACHE_DIR,
                 base_url: Optional[str] = None) -> str:
  """Two lines per release: what it evaluates, and where it comes from."""
  lines = []
  for release in RELEASES.values():
    members = (release.checkpoint if release.trials == 1 else
               f'an ensemble of {release.trials}, '
               f'{release.checkpoint.format(f"{{0..{release.trials - 1}}}")}')
    cached = os.path.join(cache_dir, release.file_name)
    size = (f'{_megabytes(release.size)}' if release.size else
            'size unknown until downloaded')
    where = (f'downloaded: {cached}, {_megabytes(os.path.getsize(cached))}'
             if os.path.exists(cached) else f'{size}; goes to {cached}')
    lines.append(
        f'{release.name:<8} {release.model} '
        f'({release.hparams or "default hparams"}): {members} on '
        f'{release.eval_size:,} {release.dataset} test examples; paper '
        f'{release.paper or "-"}')
    lines.append(f'{"":<8} {release_url(release, base_url)} ({where})')
  return '\n'.join(lines)


def _define_flags() -> None:
  """Defines the tool's flags, only when run as a script."""
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
  """Lists the releases, or evaluates the one argv names."""
  devices.allow_gpu_memory_growth()
  cache_dir = os.path.expanduser(FLAGS.cache_dir)
  if FLAGS.list:
    print(release_list(cache_dir=cache_dir))
    return
  names = argv[1:]
  if len(names) != 1:
    raise errors.ConfigError(
        f'name one release, {" or ".join(RELEASES)} (got '
        f'{" ".join(names) or "none"}); --list shows them')
  config = devices.resolve_run_config(num_gpus=1)
  print(devices.describe(config), flush=True)
  evaluate_release(get(names[0]), data_dir=FLAGS.data_dir,
                   cache_dir=cache_dir, summary_dir=FLAGS.summary_dir,
                   tarball=FLAGS.tarball, config=config)


if __name__ == '__main__':
  cli.run(main, program=PROGRAM, define_flags=_define_flags,
          arguments=True)
