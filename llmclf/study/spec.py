"""Study files: a YAML grid of notebook runs, expanded into run specs with stable ids.

```yaml
name: default                    # optional; the file name's stem otherwise
description: one line for the report
defaults: {dataset: bbc-news}    # merged into every run whose notebook has that parameter
tasks:                           # optional: every run is repeated for each task (or the run's `tasks: [...]`)
  news: {dataset: bbc-news}
  mine: {dataset: data/mine.csv, multi_label: true}
runs:
  - notebook: 10_embedding_head  # a notebook in notebooks/
    label: embedding head        # optional; the configuration's name in the report
    params: {model: smollm2-135m, max_train: 320}
    grid: {quantization: [none, 4bit]}   # one run per combination
    seeds: [0, 1, 2]             # sets the notebook's `seed`, one run each
```
A run's parameters are the notebook's parameters cell, overlaid with `defaults`, `params` and one grid point; all of
them are passed to papermill, so the executed notebook shows exactly what ran. The run id hashes the notebook name
and those parameters: the same spec never runs twice, a changed one is a new run.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import NOTEBOOKS_DIR, ConfigError, check_name, config_for

STUDY_KEYS = {"name", "description", "defaults", "tasks", "runs"}


def read_yaml(path: Path):
    """yaml.safe_load with the file, line and column of a syntax error, and no traceback."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {e.problem or e.context}"
                          + (f" ({e.context})" if e.context and e.problem else "")) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
RUN_KEYS = {"notebook", "label", "params", "grid", "seeds", "tasks"}


@dataclass
class RunSpec:
    study: str
    notebook: str                  # stem, e.g. "10_embedding_head"
    params: dict                   # every parameter of the notebook, resolved
    label: str                     # the configuration's name: what the report groups seeds by
    task: str | None = None        # the study's name of the task (its `tasks:` key), when it has tasks
    run_id: str = field(init=False)

    def __post_init__(self):
        self.run_id = run_id(self.notebook, self.params)

    @property
    def notebook_path(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.notebook}.ipynb"


def run_id(notebook: str, params: dict) -> str:
    blob = json.dumps({"notebook": notebook, "params": {k: v for k, v in params.items() if k != "run_dir"}},
                      sort_keys=True, separators=(",", ":"))
    return f"{notebook}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def notebook_defaults(notebook: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> dict:
    """The literal values of a notebook's parameters cell."""
    import papermill

    path = notebooks_dir / f"{notebook}.ipynb"
    if not path.exists():
        known = sorted(p.stem for p in notebooks_dir.glob("*.ipynb"))
        raise ConfigError(f"notebook {notebook!r} not found in {notebooks_dir}; known notebooks: {known}")
    out = {}
    for name, info in papermill.inspect_notebook(str(path)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError) as e:
            raise ConfigError(f"{path}: parameter {name!r} is not a literal ({info['default']!r}); "
                              "parameters cells hold literals only") from e
    return out


def load_study(path: str | Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[RunSpec]:
    """Expand and validate every run before any starts: all problems are reported together."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"study file {path} does not exist")
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a study file is a mapping with keys {sorted(STUDY_KEYS)}")
    unknown = set(doc) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(STUDY_KEYS)}")
    if doc.get("name") not in (None, ""):
        name = check_name(doc["name"], f"{path}: study name")
    else:  # the file's stem, slugged: "my study.yaml" is a fine file name
        name = check_name(re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).lstrip(".")[:100] or "study",
                          f"{path}: study name")
    if not isinstance(doc.get("description", ""), (str, type(None))):
        raise ConfigError(f"{path}: 'description' must be text")
    runs = doc.get("runs")
    if not runs or not isinstance(runs, list):
        raise ConfigError(f"{path}: 'runs' must be a non-empty list of runs")
    tasks = doc.get("tasks") or {None: {}}
    if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
        raise ConfigError(f"{path}: 'tasks' maps a task's name to its parameters")
    if doc.get("tasks"):
        tasks = {check_name(t, f"{path}: task name"): p for t, p in tasks.items()}
    if not isinstance(doc.get("defaults") or {}, dict):
        raise ConfigError(f"{path}: 'defaults' maps parameter names to values")
    defaults = doc.get("defaults") or {}
    notebooks = [str(e.get("notebook", "")).removesuffix(".ipynb") for e in runs if isinstance(e, dict)]
    try:
        known_anywhere = set().union(*(config_for(nb).field_names() for nb in set(notebooks)))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    for where, params in [("defaults", defaults), *((f"tasks.{t}", p) for t, p in tasks.items())]:
        bad = sorted(set(params) - known_anywhere)
        if bad:
            raise ConfigError(f"{path}: {where}: parameter(s) {bad} belong to none of the study's notebooks "
                              f"{sorted(set(notebooks))}")
    specs, errors = [], []
    for i, entry in enumerate(runs):
        where = f"{path}: runs[{i}]"
        chosen = entry.get("tasks", list(tasks)) if isinstance(entry, dict) else list(tasks)
        for task in chosen:
            try:
                if task not in tasks:
                    raise ConfigError(f"unknown task {task!r}; the study's tasks: {[t for t in tasks if t]}")
                entry_ = {k: v for k, v in entry.items() if k != "tasks"}
                for spec in _expand(name, entry_, {**defaults, **tasks[task]}, where, notebooks_dir):
                    spec.task = task
                    specs.append(spec)
            except ConfigError as e:
                errors.append(str(e) if str(e).startswith(str(path)) else f"{where}: {e}")
    if errors:
        raise ConfigError("invalid study:\n  " + "\n  ".join(errors))
    seen = {}
    for spec in specs:
        if spec.run_id in seen:
            raise ConfigError(f"{path}: two runs have identical parameters ({spec.notebook}, {spec.label}); "
                              "remove one or make them differ")
        seen[spec.run_id] = spec
    return specs


def _expand(study: str, entry: dict, defaults: dict, where: str, notebooks_dir: Path) -> list[RunSpec]:
    if not isinstance(entry, dict) or "notebook" not in entry:
        raise ConfigError(f"{where}: each run is a mapping with a 'notebook' key and optional {sorted(RUN_KEYS)}")
    unknown = set(entry) - RUN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RUN_KEYS)}")
    notebook = str(entry["notebook"]).removesuffix(".ipynb")
    config_cls = config_for(notebook)
    base = notebook_defaults(notebook, notebooks_dir)
    for key in ("params", "grid"):
        if not isinstance(entry.get(key) or {}, dict):
            raise ConfigError(f"{where}: {key!r} maps parameter names to values, got {entry[key]!r}")
    grid = dict(entry.get("grid") or {})
    if "seeds" in entry:
        if "seed" in grid or "seed" in (entry.get("params") or {}):
            raise ConfigError(f"{where}: give seeds either as 'seeds' or as a 'seed' parameter, not both")
        grid["seed"] = entry["seeds"]
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid values of {key!r} must be a non-empty list, got {values!r}")
    known = set(config_cls.field_names())
    # shared parameters (defaults, a task's) go to the notebooks that have them; a run's own must all fit
    fixed = {**{k: v for k, v in defaults.items() if k in known}, **(entry.get("params") or {})}
    bad = sorted((set(fixed) | set(grid)) - known)
    if bad:
        raise ConfigError(f"{where}: unknown parameter(s) {bad} for notebook {notebook}; "
                          f"known parameters: {sorted(known - {'run_dir'})}")
    if "run_dir" in fixed or "run_dir" in grid:
        raise ConfigError(f"{where}: 'run_dir' is set by `llmclf run`, not by the study")
    label = str(entry.get("label") or notebook)
    specs = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        params = {**base, **fixed, **point}
        config_cls.from_dict(params)  # type and value checks, before anything runs
        varying = ", ".join(f"{k}={v}" for k, v in point.items() if k != "seed")
        specs.append(RunSpec(study, notebook, params, f"{label} ({varying})" if varying else label))
    return specs
