"""Every module, script, path, flag and name that the docs use exists.

Docs go stale silently when code moves. This test reads README.md and
docs/*.md and checks them against the repository's Python sources, read as
text and parsed with `ast` (nothing is imported, TensorFlow least of all):

- `python -m M`: M is a module of this repository (a file), or an installed
  one (`importlib.util.find_spec`, top-level names only);
- `python X.py`: the file X.py exists;
- each `--flag` of such a command is defined by that command's file or a
  repository module it imports (absl `DEFINE_*`'s first argument, argparse
  `add_argument`), with a value it accepts where the code lists them (an
  enum, `choices=`, a `','.join(NAMES)` default); a flag outside a command
  is defined somewhere; `--hparams_override` keys are hparams;
- each `<!-- remeasure: COMMAND -->` names a command that exists;
- repository paths: backticked or command tokens whose first folder is one
  of the repository's own, or that end in .py, .md, .txt or .ini, and
  markdown links (with their `#anchor`, a heading of the target);
- dotted names that start with a package or module of the repository
  (`models.training.Trainer.run`, `paper/figures.py:_logit_change`), and
  the imports, attributes and keyword arguments of ```python blocks;
- backticked test names (`test_...`, `testCamelCase`) name a test.

Not repository paths: URLs, absolute and home paths, `$VARIABLES`, `..`,
and placeholders (an all-capital segment such as DIR, or `<...>`, `{}`,
`*`, `...`).
"""

import ast
import functools
import glob
import importlib.util
import itertools
import os
import re
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.abspath(__file__))
DOCS = ['README.md'] + sorted(
    os.path.relpath(path, ROOT)
    for path in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
SKIPPED_DIRS = {'.git', 'testdata', '__pycache__', 'runs'}
PATH_SUFFIXES = ('.py', '.md', '.txt', '.ini')
# Flags defined outside this repository, for the commands that have them.
ABSL_FLAGS = {'helpfull'}
EXTERNAL_FLAGS = {'pytest': set(), 'pip': set()}
HPARAMS = 'models.hparams.default_hparams'

KINDS = ('modules', 'scripts', 'flags', 'paths', 'anchors', 'names', 'tests')

_FENCE = re.compile(r'^```([^\n]*)\n(.*?)^```', re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r'<!--(.*?)-->', re.DOTALL)
_SPAN = re.compile(r'`([^`]+)`')
_LINK = re.compile(r'\]\(([^)\s]+)\)')
_INVOCATION = re.compile(
    r'\bpython3?\s+(?:-m\s+([A-Za-z_][\w.]*\w)|([\w./-]+\.py)\b)')
# A value such as XLA_FLAGS=--xla_dump_to=... is not a flag of ours.
_FLAG = re.compile(r'(?<![\w=-])--([A-Za-z][\w-]*)')
_PLACEHOLDER = re.compile(r'[<>{}*@$\[\]]|\.\.\.|^[A-Z][A-Z_]*$')


def _product_files() -> Iterator[str]:
  """The repository's .py files that are not tests, relative to ROOT."""
  for folder, dirs, files in os.walk(ROOT):
    dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
    for name in files:
      if name.endswith('.py') and not name.endswith('_test.py') and (
          name != 'conftest.py'):
        yield os.path.relpath(os.path.join(folder, name), ROOT)


@functools.lru_cache(maxsize=None)
def _tree(path: str) -> ast.Module:
  with open(os.path.join(ROOT, path)) as f:
    return ast.parse(f.read(), path)


@functools.lru_cache(maxsize=None)
def _basenames() -> Set[str]:
  names = set()
  for folder, dirs, files in os.walk(ROOT):
    dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
    names.update(files)
  return names


def _top_level_names() -> Set[str]:
  return {name for name in os.listdir(ROOT) if name not in SKIPPED_DIRS}


def module_file(module: str) -> Optional[str]:
  """The file of a repository module or package, relative to ROOT."""
  path = module.replace('.', '/')
  for candidate in (path + '.py', os.path.join(path, '__init__.py')):
    if os.path.isfile(os.path.join(ROOT, candidate)):
      return candidate
  return None


def _defined_flags(path: str) -> Set[str]:
  flags = set()
  for node in ast.walk(_tree(path)):
    if not isinstance(node, ast.Call) or not isinstance(
        node.func, ast.Attribute):
      continue
    strings = [arg.value for arg in node.args
               if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if node.func.attr.startswith('DEFINE_') and strings:
      flags.add(strings[0])
    elif node.func.attr in ('add_argument', 'add_subset'):
      flags.update(s[2:] for s in strings if s.startswith('--'))
  return flags


def _imported_modules(path: str) -> Set[str]:
  """Repository modules that the file at path imports."""
  package = os.path.dirname(path).replace('/', '.')
  modules = set()
  for node in ast.walk(_tree(path)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(p for p in parts + [base] if p)
      names = [base] + [f'{base}.{alias.name}' for alias in node.names]
    else:
      continue
    modules.update(name for name in names if name and module_file(name))
  return modules


@functools.lru_cache(maxsize=None)
def command_flags(path: str) -> Set[str]:
  """Flags of the command whose file is path: its own and its imports'."""
  seen, todo, flags = set(), [path], set(ABSL_FLAGS)
  while todo:
    current = todo.pop()
    if current in seen:
      continue
    seen.add(current)
    flags |= _defined_flags(current)
    todo.extend(module_file(m) for m in _imported_modules(current))
  return flags


@functools.lru_cache(maxsize=None)
def defined_tests() -> Set[str]:
  """The test functions and classes of the repository's *_test.py files."""
  names = set()
  for folder, dirs, files in os.walk(ROOT):
    dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
    for name in files:
      if name.endswith('_test.py'):
        with open(os.path.join(folder, name)) as f:
          names.update(re.findall(r'^\s*(?:def|class) (\w+)', f.read(),
                                  re.MULTILINE))
  return names


def _string_values(path: str, node: ast.AST) -> Optional[Set[str]]:
  """The strings a literal, a name or a join of them holds; None: unknown."""
  if isinstance(node, ast.Constant) and isinstance(node.value, str):
    return {node.value}
  if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
    values = [_string_values(path, element) for element in node.elts]
    return None if None in values else set().union(*values)
  if isinstance(node, ast.Call) and node.args and (
      isinstance(node.func, ast.Name) and node.func.id in ('list', 'tuple')
      or isinstance(node.func, ast.Attribute) and node.func.attr == 'join'):
    return _string_values(path, node.args[0])
  if isinstance(node, ast.Name):
    bound = _bound_names(_tree(path).body).get(node.id)
    if isinstance(bound, ast.Assign):
      return _string_values(path, bound.value)
  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
    for module in _imported_modules(path):
      if module.split('.')[-1] == node.value.id:
        bound = _bound_names(_tree(module_file(module)).body).get(node.attr)
        if isinstance(bound, ast.Assign):
          return _string_values(module_file(module), bound.value)
  return None


@functools.lru_cache(maxsize=None)
def flag_values(path: str) -> Dict[str, Set[str]]:
  """The values each flag of the file at path accepts, where it says.

  An enum's or `choices=` values; for a flag whose default is
  `','.join(NAMES)`, each of a comma-separated subset of NAMES.
  """
  values = {}
  for node in ast.walk(_tree(path)):
    if not isinstance(node, ast.Call) or not isinstance(
        node.func, ast.Attribute) or not node.args or not isinstance(
            node.args[0], ast.Constant):
      continue
    keywords = {k.arg: k.value for k in node.keywords}
    if node.func.attr == 'DEFINE_enum' and len(node.args) > 2:
      found = _string_values(path, node.args[2])
    elif node.func.attr == 'add_argument' and 'choices' in keywords:
      found = _string_values(path, keywords['choices'])
    elif node.func.attr == 'add_argument' and isinstance(
        keywords.get('default'), ast.Call) and getattr(
            keywords['default'].func, 'attr', None) == 'join':
      found = _string_values(path, keywords['default'])
    else:
      continue
    if found:
      values[str(node.args[0].value).lstrip('-')] = found
  return values


@functools.lru_cache(maxsize=None)
def hparam_names() -> Set[str]:
  """The keys of models.hparams.default_hparams(), as --hparams_override."""
  _, function = resolve(HPARAMS)
  calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)
           ] if function else []
  return {keyword.arg for call in calls for keyword in call.keywords}


@functools.lru_cache(maxsize=None)
def all_flags() -> Set[str]:
  return set(ABSL_FLAGS).union(*map(_defined_flags, _product_files()))


def _bound_names(body: List[ast.stmt]) -> Dict[str, ast.AST]:
  """Names a module or class body binds, to the node that binds them."""
  names = {}
  for node in body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)):
      names[node.name] = node
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
      targets = node.targets if isinstance(node, ast.Assign) else [
          node.target]
      for target in targets:
        for name in ast.walk(target):
          if isinstance(name, ast.Name):
            names[name.id] = node
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      for alias in node.names:
        names[(alias.asname or alias.name).split('.')[0]] = node
    for field in ('body', 'orelse', 'finalbody', 'handlers'):
      if isinstance(node, (ast.If, ast.Try, ast.With)) and hasattr(
          node, field):
        names.update(_bound_names(getattr(node, field)))
  return names


def resolve(dotted: str) -> Tuple[Optional[str], Optional[ast.AST]]:
  """(error, node) for a dotted name of the repository, e.g. a.b.Class.f.

  A package whose __init__ lacks the name is looked into its same-named
  module, as the code imports it (`from layers import layers`).
  """
  parts = dotted.split('.')
  for cut in range(len(parts), 0, -1):
    path = module_file('.'.join(parts[:cut]))
    if path:
      break
  else:
    return f'no module {parts[0]}', None
  rest = parts[cut:]
  if not rest:
    return None, None
  names = _bound_names(_tree(path).body)
  if rest[0] not in names and path.endswith('__init__.py'):
    inner = module_file('.'.join(parts[:cut] + [parts[cut - 1]]))
    if inner:
      path, names = inner, _bound_names(_tree(inner).body)
  node = names.get(rest[0])
  if node is None:
    return f'{path} defines no {rest[0]}', None
  if len(rest) > 1 and isinstance(node, ast.ClassDef):
    member = _bound_names(node.body).get(rest[1])
    if member is None:
      return f'{path}: {rest[0]} has no {rest[1]}', None
    node = member
  return None, node


def _sections(text: str) -> Tuple[List[Tuple[str, str]], str]:
  """The fenced blocks as (language, code), and the prose without them."""
  blocks = [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(text)]
  return blocks, _FENCE.sub('\n', text)


def _commands(text: str) -> Iterator[str]:
  """Command-like segments: code lines, spans, remeasure comments."""
  blocks, prose = _sections(text)
  for language, code in blocks:
    if language == 'python':
      continue
    code = re.sub(r'\\\n\s*', ' ', code)
    for line in code.splitlines():
      yield re.sub(r'(^|\s)#.*', '', line)
  yield from _COMMENT.findall(prose)
  yield from _SPAN.findall(_COMMENT.sub('', prose))


def _is_repo_path(token: str) -> bool:
  if token.startswith(('/', '~', '..', 'http')) or '://' in token:
    return False
  if any(_PLACEHOLDER.search(part) for part in token.split('/')):
    return False
  first = token.split('/')[0]
  return ('/' in token and first in _top_level_names()) or token.endswith(
      PATH_SUFFIXES)


def _check_path(token: str, relative_to: str = '') -> Optional[str]:
  token, _, name = token.partition(':')
  if '/' not in token and not relative_to:
    return None if token in _basenames() else f'no file named {token}'
  path = os.path.normpath(os.path.join(relative_to, token))
  if not os.path.exists(os.path.join(ROOT, path)):
    return f'no {path}'
  if name and path.endswith('.py'):
    error, _ = resolve(path[:-3].replace('/', '.') + '.' + name)
    return error
  return None


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  heading = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return heading.replace(' ', '-')


def anchors(doc: str) -> Set[str]:
  with open(os.path.join(ROOT, doc)) as f:
    return anchors_of(f.read())


def anchors_of(text: str) -> Set[str]:
  """The anchors of a markdown text's headings."""
  _, prose = _sections(text)
  slugs, seen = set(), {}
  for heading in re.findall(r'^#+\s+(.*)$', prose, re.MULTILINE):
    slug = _slug(heading)
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    slugs.add(slug if not count else f'{slug}-{count}')
  return slugs


def _check_python_block(code: str) -> Iterator[str]:
  """Imports, attributes of imported modules and keywords of their calls."""
  tree = ast.parse(code)
  modules = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and module_file(node.module or ''):
      for alias in node.names:
        dotted = f'{node.module}.{alias.name}'
        error, _ = resolve(dotted)
        if error:
          yield f'import {dotted}: {error}'
        modules[alias.asname or alias.name] = dotted
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call):
      continue
    chain, func = [], node.func
    while isinstance(func, ast.Attribute):
      chain.insert(0, func.attr)
      func = func.value
    if not (isinstance(func, ast.Name) and func.id in modules and chain):
      continue
    dotted = '.'.join([modules[func.id]] + chain)
    error, definition = resolve(dotted)
    if error:
      yield f'{dotted}: {error}'
      continue
    if isinstance(definition, ast.ClassDef):
      definition = _bound_names(definition.body).get('__init__')
    if not isinstance(definition, ast.FunctionDef) or definition.args.kwarg:
      continue
    arguments = definition.args
    known = {a.arg for a in arguments.args + arguments.kwonlyargs}
    for keyword in node.keywords:
      if keyword.arg and keyword.arg not in known:
        yield f'{dotted}: no parameter {keyword.arg}'


Check = Tuple[str, Optional[str], str]  # (kind, error or None, what)


def _invocation_checks(piece: str) -> Iterator[Check]:
  """A command's module or script, its flags and their values."""
  invocation = _INVOCATION.search(piece)
  if not invocation:  # Flags outside a command: defined somewhere.
    if piece.startswith('docker '):  # Docker's own.
      return
    for flag in _FLAG.findall(piece):
      yield ('flags', None if flag in all_flags() else 'defined nowhere',
             f'--{flag}')
    return
  module, path = invocation.groups()
  if module:
    top = module.split('.')[0]
    if module_file(module):
      path = module_file(module)
    elif module_file(top) or importlib.util.find_spec(top) is None:
      yield ('modules', 'no such module', f'python -m {module}')
      return
    yield ('modules', None, module)
  else:
    exists = os.path.isfile(os.path.join(ROOT, path))
    yield ('scripts', None if exists else 'no such file', f'python {path}')
    if not exists:
      return
  # An installed tool has only the flags listed for it.
  flags = command_flags(path) if path else EXTERNAL_FLAGS.get(module)
  if flags is None:
    return
  arguments = piece[invocation.end():]
  for flag in _FLAG.findall(arguments):
    yield ('flags', None if flag in flags else
           f'not a flag of {module or path}', f'--{flag}')
  for flag, accepted in (flag_values(path) if path else {}).items():
    for value in re.findall(rf'--{flag}(?:=|\s+)([\w,.-]+)', arguments):
      bad = sorted(set(value.split(',')) - accepted)
      yield ('flags', bad and f'not among {sorted(accepted)}',
             f'--{flag} {",".join(bad) or value}')


def _command_checks(text: str) -> Iterator[Check]:
  """Commands, flags, hparams and remeasure comments."""
  _, prose = _sections(text)
  bare_prose = _SPAN.sub(' ', _COMMENT.sub(' ', prose))
  for segment in list(_commands(text)) + [bare_prose]:
    for piece in re.split(r'&&|;|\|', segment):
      yield from _invocation_checks(piece)
  for override in re.findall(r'--hparams_override=(\S+)', text):
    for key in re.findall(r'(?:^|,)(\w+)=', override):
      yield ('flags', None if key in hparam_names() else
             f'not a key of {HPARAMS}()', f'hparam {key}')
  for command in re.findall(r'<!--\s*remeasure:(.*?)-->',
                           _SPAN.sub(' ', prose), re.DOTALL):
    first = (command.split() or [''])[0]
    runnable = _INVOCATION.match(command.strip()) or (
        _is_repo_path(first) and not _check_path(first))
    yield ('scripts', None if runnable else 'names no command',
           f'remeasure:{command}')


def _path_checks(doc: str, text: str) -> Iterator[Check]:
  """Repository paths in code, and links with their anchors."""
  for segment in _commands(text):
    for token in re.split(r'[\s=,;()\'"]+', segment):
      token = token.rstrip('.:;')
      if token and _is_repo_path(token):
        yield ('paths', _check_path(token), token)
  doc_dir = os.path.dirname(doc)
  for target in _LINK.findall(_sections(text)[1]):
    if target.startswith(('http://', 'https://', 'mailto:')):
      continue
    target, _, anchor = target.partition('#')
    if target:
      yield ('paths', _check_path(target, doc_dir or '.'), target)
    target_doc = os.path.normpath(os.path.join(doc_dir, target))
    if anchor and (not target or os.path.isfile(
        os.path.join(ROOT, target_doc))):
      slugs = anchors(target_doc) if target else anchors_of(text)
      yield ('anchors', None if anchor in slugs else
             f'no heading of {target or doc} has this anchor', '#' + anchor)


def _name_checks(text: str) -> Iterator[Check]:
  """Dotted names of the library, python blocks and test names."""
  modules = [name[:-3] if name.endswith('.py') else name
             for name in _top_level_names()]
  roots = '|'.join(sorted(re.escape(m) for m in modules if module_file(m)))
  dotted = re.compile(rf'(?<![\w/.-])((?:{roots})(?:\.\w+)+)(?![\w/-])')
  suffixes = {suffix[1:] for suffix in PATH_SUFFIXES} | {'png'}
  for segment in _commands(text):
    for name in dotted.findall(segment):
      if name.rsplit('.', 1)[1] not in suffixes:
        yield ('names', resolve(name)[0], name)
  blocks, prose = _sections(text)
  for language, code in blocks:
    if language == 'python':
      for error in _check_python_block(code):
        yield ('names', error, 'python block')
  for span in _SPAN.findall(_COMMENT.sub('', prose)):
    for name in re.findall(r'\b(test_\w+|test[A-Z]\w*)\b(?![./])', span):
      yield ('tests', None if name in defined_tests() else
             'no test of this name', name)


def stale(doc: str, text: str) -> Dict[str, List[str]]:
  """What doc (its text) names that does not exist, by kind; and counts."""
  found = {kind: [] for kind in KINDS}
  counts = {kind: 0 for kind in KINDS}
  for kind, error, what in itertools.chain(
      _command_checks(text), _path_checks(doc, text), _name_checks(text)):
    counts[kind] += 1
    if error:
      found[kind].append(f'{doc}: {what}: {error}')
  found['counts'] = counts
  return found


@functools.lru_cache(maxsize=None)
def _stale_docs() -> Dict[str, Dict[str, List[str]]]:
  results = {}
  for doc in DOCS:
    with open(os.path.join(ROOT, doc)) as f:
      results[doc] = stale(doc, f.read())
  return results


@pytest.mark.parametrize('kind', KINDS)
def test_docs_name_only_what_exists(kind):
  problems = [problem for found in _stale_docs().values()
              for problem in found[kind]]
  assert not problems, f'stale {kind} in the docs:\n' + '\n'.join(problems)


def test_the_docs_are_read():
  """Each kind is found in the real docs, so the patterns still match."""
  totals = {}
  for found in _stale_docs().values():
    for kind, count in found['counts'].items():
      totals[kind] = totals.get(kind, 0) + count
  assert totals['modules'] >= 15, totals
  assert totals['scripts'] >= 10, totals
  assert totals['flags'] >= 100, totals
  assert totals['paths'] >= 40, totals
  assert totals['anchors'] >= 5, totals
  assert totals['names'] >= 15, totals
  assert totals['tests'] >= 20, totals
  assert len(hparam_names()) >= 10, hparam_names()


def test_stale_references_are_found():
  doc = '\n'.join([
      '# Title',
      'Run `python -m benchmarks.nothing` and `python gone.py`, then',
      '`python -m benchmarks.compare --variants=native --no_such_flag`;',
      '`python -m benchmarks.compare --compute_dtype=float64`,',
      '`python -m benchmarks.benchmark --compute_dtype bfloat16`,',
      '`python experiment.py --multi_mnist_shift=sideways`,',
      'prose names `--also_missing`, `layers/kernels.py`, `missing_test.py`,',
      '`paper/figures.py:_no_function`, `models.training.NoSuchClass`,',
      '`models.training.Trainer.no_method` and [a link](docs/gone.md),',
      '[an anchor](#no-such-heading), [a good one](#title),',
      '<!-- remeasure: benchmarks/gone.sh -->',
      '`--hparams_override=routing=1,no_such_hparam=2`',
      '`test_no_such_case`, `testSquashRankSix`.',
      '```sh',
      'python experiment.py --data_dir=$DATA_DIR \\',
      '  --not_an_experiment_flag  # --in_a_comment is ignored',
      'XLA_FLAGS=--xla_dump_to=/tmp/x python -m pytest -q --lf',
      '```',
      '```python',
      'from models import training, no_module',
      'training.train(params, no_such_keyword=1)',
      '```',
  ])
  found = stale('README.md', doc)
  text = '\n'.join(p for kind, ps in found.items() if kind != 'counts'
                   for p in ps)
  for expected in ['python -m benchmarks.nothing', 'python gone.py',
                   '--no_such_flag', '--also_missing', 'layers/kernels.py',
                   'missing_test.py', '_no_function', 'NoSuchClass',
                   'no_method', 'docs/gone.md', '#no-such-heading',
                   '--not_an_experiment_flag', 'no_module',
                   'no parameter no_such_keyword', 'test_no_such_case',
                   'hparam no_such_hparam', 'remeasure: benchmarks/gone.sh',
                   '--compute_dtype float64', '--multi_mnist_shift sideways',
                   '--lf: not a flag of pytest']:
    assert expected in text, (expected, text)
  for fine in ['--data_dir', 'xla_dump_to',
               '#title', 'in_a_comment', 'testSquashRankSix',
               'hparam routing', '--compute_dtype bfloat16', '--variants native']:
    assert fine not in text, (fine, text)


def test_quick_start_sample_is_its_commands_output():
  """README's quick start: the online and offline commands side by side,
  and a sample output that the offline one, as written, prints."""
  with open(os.path.join(ROOT, 'README.md')) as readme:
    section = readme.read().split('## Quick start', 1)[1].split('\n## ', 1)[0]
  blocks = _FENCE.findall(section)
  commands = [line for line in blocks[0][1].splitlines() if line.strip()]
  online, offline = commands
  assert '--data_dir' not in online and '--data_dir=' in offline
  summary_dir = {re.search(r'--summary_dir=(\S+)', command).group(1)
                 for command in commands}
  assert len(summary_dir) == 1, commands
  data_dir = re.search(r'--data_dir=(\S+)', offline).group(1)
  lines = blocks[1][1].splitlines()
  assert blocks[1][0] == '' and lines[0].startswith('Devices: CPU')
  assert lines[1] == f'Data: {data_dir}'
  start = next(i for i, line in enumerate(lines)
               if re.fullmatch(r'total_params: \d+', line))
  assert re.fullmatch(r'step 1: loss [\d.]+, accuracy [\d.]+ \(the first '
                      r'step, with tracing and compiling: [\d.]+ s\)',
                      lines[start + 1]), lines[start + 1]
  progress = r'step (\d+): loss [\d.]+, accuracy [\d.]+, [\d.]+ examples/s, '
  steps = [int(re.fullmatch(progress + r'\d+:\d\d:\d\d left', line).group(1))
           for line in lines[start + 2:-2] if line != '...']
  assert steps == sorted(steps) and steps[-1] == 1000  # --max_steps' default.
  assert lines[-2] == (f'Evaluating {summary_dir.pop()}/train/'
                       f'model.ckpt-1000 (step 1000)')
  assert re.fullmatch(r'Total wrong predictions: \d+, wrong percent: '
                      r'[\d.]+%', lines[-1])
