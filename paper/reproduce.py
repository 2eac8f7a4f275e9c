r"""Reproduces the paper's results by name: trains, evaluates, tabulates.

  python -m paper.reproduce --experiment=NAME[,NAME...] --data_dir=D \
      --output_dir=O [--seeds=K] [--max_steps=N] [--eval_size=N]
  python -m paper.reproduce --list

Each seed k < K (default: the paper's trials) of each experiment of
paper/experiments.py trains in `O/NAME/seed<k>/` with `seed=k` and is tested
there (`result.json`); an ensemble's seeds are then evaluated together
(`O/NAME/ensemble.json`). `O/results.json` and `O/results.md` give the
paper's number beside the mean +- std over the seeds. Every file an
experiment reads is made or checked before anything trains. Rerunning
resumes (`_cached`); a larger `--max_steps` continues every seed.

The command makes TensorFlow's ops deterministic, so that a seed gives the
same result on the same machine (slower on GPUs). Generated data sets
(MultiMNIST, expanded MNIST) use data seed 0 in every trial: the same test
set. From Python: `reproduce(['mnist_r3'], data_dir=..., output_dir=...)`.
"""

import os

if __name__ == '__main__':
  import cli
  cli.quiet_tensorflow_start()

# pylint: disable=g-import-not-at-top,wrong-import-position
import dataclasses
import datetime
import json
import pathlib
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from absl import flags
import numpy as np

import errors
import files
from input_data import datasets
from input_data import prepare
from models import checkpoints
from models import devices
from models import evaluation
from models import hparams as hparams_lib
from models import run_config as run_config_lib
from models import training
from paper import experiments as experiments_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

RESULT_FILE = 'result.json'  # Per seed, in O/NAME/seed<k>/.
ENSEMBLE_FILE = 'ensemble.json'  # Per ensemble experiment, in O/NAME/.
RESULTS_JSON = 'results.json'
RESULTS_MD = 'results.md'


def seed_dir(output_dir: str, name: str, seed: int) -> str:
  """The summary_dir of one seed of an experiment."""
  return os.path.join(output_dir, name, f'seed{seed}')


def _write_text(path: str, text: str) -> None:
  files.write_atomically(path, lambda temp: pathlib.Path(temp).write_text(text))


def _cached(path: str, settings: Mapping[str, object],
            compute: Callable[[], Dict[str, object]]) -> Dict[str, object]:
  """The result stored at path with these settings, else compute()'s, stored
  with them (replacing one of other settings, say a smaller max_steps)."""
  if os.path.exists(path):
    with open(path) as file:
      stored = json.load(file)
    if stored.get('settings') == settings:
      print(f'Done before, skipped: {path}', flush=True)
      return stored
  result = dict(compute(), settings=dict(settings))
  _write_text(path, json.dumps(result, indent=1))
  return result


def _input_fns(entry: experiments_lib.Experiment, *, data_dir: str,
               eval_size: int):
  """The input functions of the training and of the test data."""
  train_fn = datasets.input_fn(
      entry.dataset, data_dir=data_dir, num_targets=entry.num_targets,
      eval_size=eval_size, **entry.data_options)
  if not entry.test_dataset:
    return train_fn, train_fn
  return train_fn, datasets.input_fn(entry.test_dataset, data_dir=data_dir,
                                     eval_size=eval_size)


def _run_seed(entry: experiments_lib.Experiment, seed: int, *,
              hparams, data_dir: str, output_dir: str, max_steps: int,
              eval_size: int,
              config: run_config_lib.RunConfig) -> Dict[str, object]:
  """Trains (or resumes) one seed and evaluates its last checkpoint."""
  summary_dir = seed_dir(output_dir, entry.name, seed)
  print(f'== {entry.name} seed {seed}: {entry.model} on {entry.dataset}, '
        f'{max_steps} steps, in {summary_dir}', flush=True)
  train_fn, test_fn = _input_fns(entry, data_dir=data_dir,
                                 eval_size=eval_size)
  train_dir = checkpoints.train_folder(summary_dir)
  start_step = max(checkpoints.list_steps(train_dir), default=0)
  start = time.monotonic()
  step = training.train(
      hparams, summary_dir=summary_dir, model_type=entry.model,
      max_steps=max_steps, input_fn=train_fn, num_targets=entry.num_targets,
      config=config, seed=seed).step
  train_seconds = time.monotonic() - start
  checkpoint = checkpoints.step_path(train_dir, step)
  start = time.monotonic()
  evaluate = lambda summary_dir, **kwargs: evaluation.evaluate(
      hparams, summary_dir=summary_dir, model_type=entry.model,
      checkpoint=checkpoint, config=config, **kwargs)[0]
  result = evaluate(summary_dir, eval_size=eval_size, input_fn=test_fn,
                    num_targets=entry.num_targets)
  other_errors = {}
  for other in entry.other_tests:
    print(f'Also on the {other.dataset} test set:', flush=True)
    size = min(other.eval_size, eval_size)
    other_errors[other.dataset] = evaluate(
        os.path.join(summary_dir, other.dataset), eval_size=size,
        input_fn=datasets.input_fn(other.dataset, data_dir=data_dir,
                                   eval_size=size)).wrong_percent
  return dict(seed=seed, error=result.wrong_percent, wrong=result.wrong,
              other_errors=other_errors, step=step, start_step=start_step,
              checkpoint=checkpoint, train_seconds=train_seconds,
              eval_seconds=time.monotonic() - start,
              device=devices.describe(config).removeprefix('Devices: '))


def _run_ensemble(entry: experiments_lib.Experiment, *, hparams,
                  data_dir: str, output_dir: str, steps: Sequence[int],
                  eval_size: int,
                  config: run_config_lib.RunConfig) -> Dict[str, object]:
  """Evaluates the seeds' last checkpoints as one ensemble."""
  if len(set(steps)) > 1:
    raise errors.ConfigError(
        f'the {entry.name} members stopped at different steps '
        f'({", ".join(map(str, steps))}); rerun with one --max_steps')
  # The members' checkpoints, `{}` for the seed (other braces escaped).
  escaped = os.path.join(output_dir, entry.name).replace('{', '{{').replace(
      '}', '}}')
  pattern = checkpoints.step_path(
      checkpoints.train_folder(os.path.join(escaped, 'seed{}')), steps[0])
  print(f'== {entry.name}: ensemble of {len(steps)}', flush=True)
  start = time.monotonic()
  wrong = evaluation.evaluate_ensemble(
      hparams, model_type=entry.model, eval_size=eval_size,
      input_fn=_input_fns(entry, data_dir=data_dir, eval_size=eval_size)[1],
      checkpoint=pattern, num_trials=len(steps),
      num_targets=entry.num_targets, config=config)
  return dict(error=wrong / eval_size * 100, wrong=wrong,
              eval_seconds=time.monotonic() - start)


def _run_experiment(entry: experiments_lib.Experiment, *, data_dir: str,
                    output_dir: str, seeds: Optional[int],
                    max_steps: Optional[int], hparams_override: Optional[str],
                    eval_size: Optional[int],
                    config: run_config_lib.RunConfig) -> Dict[str, object]:
  """Runs (or resumes) every seed of one experiment; see `reproduce`."""
  hparams = hparams_lib.default_hparams().parse(entry.hparams).parse(
      hparams_override or '')
  num_seeds = seeds or entry.seeds
  max_steps = max_steps or entry.steps
  eval_size = eval_size or entry.eval_size
  settings = dict(model=entry.model, hparams=hparams.values(),
                  dataset=entry.dataset, test_dataset=entry.test_dataset,
                  other_tests=[other.dataset for other in entry.other_tests],
                  num_targets=entry.num_targets,
                  data_options=dict(entry.data_options), max_steps=max_steps,
                  eval_size=eval_size)
  runs = []
  for seed in range(num_seeds):
    runs.append(_cached(
        os.path.join(seed_dir(output_dir, entry.name, seed), RESULT_FILE),
        settings, lambda seed=seed: _run_seed(
            entry, seed, hparams=hparams, data_dir=data_dir,
            output_dir=output_dir, max_steps=max_steps, eval_size=eval_size,
            config=config)))
  ensemble = None
  if entry.ensemble:
    steps = [run['step'] for run in runs]
    ensemble = _cached(
        os.path.join(output_dir, entry.name, ENSEMBLE_FILE),
        dict(settings, seeds=num_seeds), lambda: _run_ensemble(
            entry, hparams=hparams, data_dir=data_dir, output_dir=output_dir,
            steps=steps, eval_size=eval_size, config=config))
  other_tests = [
      dict(_spread([run['other_errors'][other.dataset] for run in runs]),
           dataset=other.dataset, paper=dataclasses.asdict(other.paper),
           eval_size=min(other.eval_size, eval_size))
      for other in entry.other_tests]
  # The entry's fields, then what the runs measured in place of some.
  summary = dict(
      dataclasses.asdict(entry), **_spread([run['error'] for run in runs]),
      hparams_override=hparams_override or '', eval_size=eval_size,
      seeds=[{key: value for key, value in run.items() if key != 'settings'}
             for run in runs],
      ensemble_error=ensemble['error'] if ensemble else None,
      other_tests=other_tests, steps=sorted({run['step'] for run in runs}),
      paper_steps=entry.steps, reduced=max_steps < entry.steps,
      resumed=any(run['start_step'] > 0 for run in runs),
      wall_seconds=sum(run['train_seconds'] + run['eval_seconds']
                       for run in runs) + (
                           ensemble['eval_seconds'] if ensemble else 0.0),
      device=', '.join(sorted({run['device'] for run in runs})))
  print(f'{entry.name}: {_measured_text(summary)}% (paper '
        f'{experiments_lib.paper_number_text(entry.paper)}%)', flush=True)
  return summary


def _spread(errors: List[float]) -> Dict[str, object]:
  return dict(errors=errors, mean=float(np.mean(errors)),
              std=float(np.std(errors)))


def _measured_text(summary: Mapping[str, object]) -> str:
  if summary.get('ensemble_error') is not None:
    return (f'{summary["ensemble_error"]:.2f} (members {summary["mean"]:.2f} '
            f'+- {summary["std"]:.2f})')
  if len(summary['errors']) == 1:
    return f'{summary["mean"]:.2f}'
  return f'{summary["mean"]:.2f} +- {summary["std"]:.3f}'


def results_markdown(results: Mapping[str, Mapping[str, object]]) -> str:
  """The results table, in Markdown."""
  lines = [
      '# The paper\'s results, reproduced', '',
      'Test error in %. Measured: the mean +- std (numpy\'s, ddof 0) over '
      'the seeds; for an ensemble, the ensemble\'s error (its members\' '
      'mean +- std in brackets). Steps: the global step reached against the '
      'paper\'s; *reduced* marks `--max_steps` runs. Wall time: training '
      'and evaluation in the runs that finished the seeds (*resumed*: from '
      'the step an earlier run reached).', '',
      '| experiment | paper | measured | seeds | steps (paper\'s) | model, '
      'data | wall time | device |',
      '|---|---|---|---|---|---|---|---|']
  for name, summary in results.items():
    paper = experiments_lib.PaperNumber(**summary['paper'])
    steps = '-'.join(f'{step:,}' for step in summary['steps'])
    steps += f' ({summary["paper_steps"]:,})'
    if summary['reduced']:
      steps += ' *reduced*'
    wall = str(datetime.timedelta(seconds=round(summary['wall_seconds'])))
    if summary['resumed']:
      wall += ' *resumed*'
    override = (f', override {summary["hparams_override"]}'
                if summary['hparams_override'] else '')
    lines.append(
        f'| {name} | {experiments_lib.paper_number_text(paper)} | '
        f'{_measured_text(summary)} | {len(summary["errors"])} | {steps} | '
        f'{summary["model"]} ({summary["hparams"] or "default hparams"}'
        f'{override}); {summary["data"]} | {wall} | {summary["device"]} |')
    for other in summary.get('other_tests', []):
      other_paper = experiments_lib.PaperNumber(**other['paper'])
      lines.append(
          f'| {name}, {other["dataset"]} test | '
          f'{experiments_lib.paper_number_text(other_paper)} | '
          f'{_measured_text(other)} | {len(other["errors"])} | {steps} | '
          f'the same models, {other["eval_size"]:,} {other["dataset"]} test '
          f'examples | | |')
  lines += ['', 'Notes:', '']
  for name, summary in results.items():
    lines.append(f'- {name}: the paper\'s steps: {summary["steps_source"]}. '
                 f'{summary["notes"]}'.rstrip())
  return '\n'.join(lines) + '\n'


def reproduce(names: Sequence[str], *, data_dir: str, output_dir: str,
              seeds: Optional[int] = None, max_steps: Optional[int] = None,
              hparams_override: Optional[str] = None,
              eval_size: Optional[int] = None,
              config: run_config_lib.RunConfig = run_config_lib.RunConfig()
             ) -> Dict[str, Dict[str, object]]:
  """Trains and evaluates experiments as the command does (see above).

  The arguments mean what the command's flags do (`_define_flags`);
  hparams_override (`key=value,...`) goes over each experiment's hparams and
  into the results. Returns each experiment's summary, by name, as in
  results.json, where the entries of earlier runs are kept. Raises
  errors.UserError: unknown names, a missing data set or output_dir, or
  those of `training.train` and `evaluation.evaluate`.
  """
  if not output_dir:
    raise errors.ConfigError(
        'output_dir is required: pass --output_dir=<directory>')
  entries = [experiments_lib.get(name) for name in names]
  if not entries:
    raise errors.ConfigError(
        'no experiment given: pass --experiment=NAME[,NAME...] (--list '
        'shows them)')
  # Every file each entry reads, made or checked before anything trains: a
  # FileNotFoundError names one that cannot be made (the affNIST test set).
  for entry in entries:
    datasets.prepare_split(entry.dataset, 'train', data_dir=data_dir,
                           num_targets=entry.num_targets)
    for dataset in [entry.test_dataset or entry.dataset] + [
        other.dataset for other in entry.other_tests]:
      datasets.prepare_split(dataset, 'test', data_dir=data_dir,
                             num_targets=entry.num_targets if dataset == (
                                 entry.dataset) else 1)
  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, RESULTS_JSON)
  md_path = os.path.join(output_dir, RESULTS_MD)
  results = {}
  if os.path.exists(json_path):
    with open(json_path) as file:
      results = json.load(file)['experiments']
  run = {}
  for entry in entries:
    run[entry.name] = results[entry.name] = _run_experiment(
        entry, data_dir=data_dir, output_dir=output_dir, seeds=seeds,
        max_steps=max_steps, hparams_override=hparams_override,
        eval_size=eval_size, config=config)
    _write_text(json_path, json.dumps(dict(experiments=results), indent=1))
    _write_text(md_path, results_markdown(results))
  print(f'Results: {json_path}, {md_path}', flush=True)
  return run


def experiment_list() -> str:
  """One line per experiment: name, the paper's error, what it trains."""
  lines = []
  for entry in experiments_lib.EXPERIMENTS.values():
    data = entry.dataset + (f' -> {entry.test_dataset}'
                            if entry.test_dataset else '')
    seeds = f'{entry.seeds} seed{"s" if entry.seeds > 1 else ""}' + (
        ' (ensemble)' if entry.ensemble else '')
    lines.append(
        f'{entry.name:<20} paper '
        f'{experiments_lib.paper_number_text(entry.paper) + "%":<15} '
        f'{entry.model} on {data}, {entry.steps} steps, {seeds} '
        f'[{entry.paper.source}]')
  return '\n'.join(lines)


def _define_flags() -> None:
  flags.DEFINE_list('experiment', [],
                    'Experiments to run, comma separated (--list shows '
                    'them).')
  flags.DEFINE_string('data_dir', prepare.DEFAULT_DATA_DIR,
                      'The data directory, as for experiment.py: missing '
                      'files are prepared there.')
  flags.DEFINE_string('output_dir', None,
                      'Where the runs (NAME/seed<k>/) and results.json, '
                      'results.md go; rerunning resumes.')
  flags.DEFINE_integer('seeds', None,
                       'Trials per experiment (seeds 0..K-1); unset: the '
                       'paper\'s (--list shows them).', lower_bound=1)
  flags.DEFINE_integer('max_steps', None,
                       'Train to this step instead of the paper\'s (the '
                       'table marks the runs reduced).', lower_bound=1)
  flags.DEFINE_integer('eval_size', None,
                       'Test examples evaluated (whole batches of 100) '
                       'instead of the experiment\'s (the whole test set).',
                       lower_bound=run_config_lib.EVAL_BATCH_SIZE)
  flags.DEFINE_bool('list', False,
                    'Print the experiments with the paper\'s numbers.')


def main(argv: List[str]) -> None:
  del argv  # Unused.
  if FLAGS.list:
    print(experiment_list())
    return
  reproduce(FLAGS.experiment, data_dir=FLAGS.data_dir,
            output_dir=FLAGS.output_dir, seeds=FLAGS.seeds,
            max_steps=FLAGS.max_steps, eval_size=FLAGS.eval_size,
            config=devices.setup(seed=0).config)


if __name__ == '__main__':
  cli.run(main, program='reproduce', define_flags=_define_flags)
