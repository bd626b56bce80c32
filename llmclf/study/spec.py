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
contrasts:                       # optional: the pre-specified comparisons, pairs of configuration labels
  - [embedding head, encoder]    # the report's primary family (F1 micro, Holm-adjusted), a sentence each
max_held_out: 600                # optional: `llmclf confirm` scores at most this many held-out rows a task
```
A run's parameters are the notebook config's documented defaults (what `llmclf params` prints: no caps, no model),
overlaid with `defaults`, the task's, `params` and one grid point; never the parameters cell's literals, which are
tiny for hand runs and tests. All of them are passed to papermill, so the executed notebook shows exactly what ran.
A run that needs a model and names none is refused. The run id hashes the notebook name and those parameters: the
same spec never runs twice, a changed one is a new run. Relative `dataset` and `data_dir` paths are resolved against
the study file's folder when the run starts (the run id keeps them as written).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import NOTEBOOKS_DIR, ConfigError, check_name, config_for

STUDY_KEYS = {"name", "description", "defaults", "tasks", "runs", "contrasts", "max_held_out"}


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
    base_dir: Path | None = None   # the study file's folder: relative data paths are read from there
    run_id: str = field(init=False)
    # how `llmclf run` executes it, set per invocation and not part of its identity: run it even when done
    # (--force, --rerun stale), and the fingerprint of its data (a done run on other data is not done)
    redo: bool = field(default=False, compare=False)
    fingerprint: str | None = field(default=None, compare=False)

    def __post_init__(self):
        self.run_id = run_id(self.notebook, self.params)

    @property
    def task_key(self) -> str:
        """What the report calls this run's task: the study's `tasks:` key, else a name made of every data
        parameter, so that runs on one file with different caps or splits are never merged."""
        return self.task or derived_task_key(self.params)

    def execution_params(self) -> dict:
        """The parameters papermill gets: relative data paths resolved against the study file's folder."""
        return resolve_data_paths(self.params, self.base_dir)

    @property
    def notebook_path(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.notebook}.ipynb"


# Parameters added after studies had run, at the values that do what the code did before them: a run that leaves
# them there keeps the id it had, so adding an option renames no existing run (a changed spec is still a new run).
NEUTRAL_DEFAULTS = {"long_text": "truncate", "max_chunks": 4, "chunk_stride": 0, "chunk_pooling": "mean",
                    "head_init": "random"}


def run_id(notebook: str, params: dict) -> str:
    # run_dir is where, save_model whether the model is kept: neither changes what a run measures
    kept = {k: v for k, v in params.items() if k not in ("run_dir", "save_model")
            and not (k in NEUTRAL_DEFAULTS and v == NEUTRAL_DEFAULTS[k])}
    blob = json.dumps({"notebook": notebook, "params": kept}, sort_keys=True, separators=(",", ":"))
    return f"{notebook}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


DATA_KEY_PARAMS = ("dataset", "label_level", "multi_label", "label_field", "text_fields", "min_label_count",
                   "max_train", "max_val", "max_test", "max_eval", "validation_fraction", "split_seed")


def derived_task_key(params: dict) -> str:
    """A task's name from its data parameters (for a study without `tasks:`): the dataset, then every other data
    parameter that differs from its documented default."""
    from ..config import DataParams

    defaults = config_defaults(DataParams)
    parts = [f"{k}={params[k]}" for k in DATA_KEY_PARAMS[1:] if k in params and params[k] != defaults.get(k)]
    return str(params.get("dataset", "?")) + (f" [{', '.join(parts)}]" if parts else "")


def resolve_data_paths(params: dict, base_dir: Path | None) -> dict:
    """`dataset` (a path, not a built-in or patent name) and `data_dir`, when relative, resolved against the study
    file's folder, else the current directory; a missing path is an error naming every place looked in."""
    from ..data.patents import PATENT_DATASETS
    from ..data.tasks import BUILTIN_DATASETS, DataError

    out = dict(params)
    for key in ("dataset", "data_dir"):
        value = out.get(key)
        if not value or (key == "dataset" and value in (*BUILTIN_DATASETS, *PATENT_DATASETS)):
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        places = [base_dir / path] if base_dir is not None else []
        places.append(Path.cwd() / path)
        found = next((p for p in places if p.exists()), None)
        if found is None:
            raise DataError(f"{key} {value!r} not found; looked in {[str(p.resolve()) for p in places]} (a relative "
                            f"path is read from the study file's folder, then the current directory)")
        out[key] = str(found.resolve())
    return out


def config_defaults(config_cls) -> dict:
    """The documented defaults of a config dataclass: what `llmclf params` prints."""
    out = {}
    for f in dataclasses.fields(config_cls):
        out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def packaged_models() -> list[str]:
    from ..artifacts import ARTIFACTS
    from ..models.registry import TINY_MODELS

    return sorted([name for name, a in ARTIFACTS.items() if a.kind == "model"] + list(TINY_MODELS))


def model_parameter(notebook: str, params: dict) -> str | None:
    """The parameter naming the model a run needs, if it needs one."""
    if notebook in ("10_embedding_head", "20_instruction_tuning"):
        return "model"
    if notebook == "00_data":
        return "tokenizer_model"
    if notebook == "30_baselines" and params.get("baseline") in ("encoder", "frozen"):
        return "model"
    return None


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
                    spec.base_dir = path.resolve().parent
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
    study_contrasts(doc, specs, path)
    study_max_held_out(doc, path)
    return specs


def study_max_held_out(doc: dict, path: str | Path = "study") -> int | None:
    """The study file's `max_held_out` (rows `llmclf confirm` scores a task at most), checked; None when unset."""
    value = doc.get("max_held_out")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: 'max_held_out' must be a positive integer (held-out rows scored a task), "
                          f"got {value!r}")
    return value


def study_contrasts(doc: dict, specs: list[RunSpec], path: str | Path = "study") -> list[list[str]]:
    """The study file's `contrasts:`, checked: a list of [label A, label B] pairs of two different configuration
    labels of the study (a data exploration is no configuration). An unknown label is refused with the known ones."""
    raw = doc.get("contrasts") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'contrasts' is a list of [label A, label B] pairs")
    known = sorted({s.label for s in specs if s.notebook != "00_data"})
    out, errors = [], []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            errors.append(f"contrasts[{i}]: {pair!r} is not a pair [label A, label B] of configuration labels")
            continue
        unknown = [x for x in pair if x not in known]
        if unknown:
            errors.append(f"contrasts[{i}]: unknown configuration label(s) {unknown}")
        elif pair[0] == pair[1]:
            errors.append(f"contrasts[{i}]: compares {pair[0]!r} with itself")
        elif pair in out or pair[::-1] in out:
            errors.append(f"contrasts[{i}]: {pair} is declared twice")
        else:
            out.append(list(pair))
    if errors:
        raise ConfigError(f"{path}: " + "; ".join(errors) + f". The study's configuration labels: {known}")
    return out


def _expand(study: str, entry: dict, defaults: dict, where: str, notebooks_dir: Path) -> list[RunSpec]:
    if not isinstance(entry, dict) or "notebook" not in entry:
        raise ConfigError(f"{where}: each run is a mapping with a 'notebook' key and optional {sorted(RUN_KEYS)}")
    unknown = set(entry) - RUN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RUN_KEYS)}")
    notebook = str(entry["notebook"]).removesuffix(".ipynb")
    config_cls = config_for(notebook)
    notebook_defaults(notebook, notebooks_dir)  # the notebook exists
    base = config_defaults(config_cls)  # the documented defaults, never the parameters cell's tiny literals
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
        # type and value checks before anything runs; the run gets the normalized values
        params = config_cls.from_dict(params).to_dict()
        needed = model_parameter(notebook, params)
        if needed and not params.get(needed):
            raise ConfigError(f"{where}: notebook {notebook}"
                              + (f" (baseline {params['baseline']})" if "baseline" in params else "")
                              + f" needs a model and the study names none: set `{needed}` to a packaged name "
                              f"{packaged_models()}, a Hugging Face id or a local folder")
        varying = ", ".join(f"{k}={v}" for k, v in point.items() if k != "seed")
        specs.append(RunSpec(study, notebook, params, f"{label} ({varying})" if varying else label))
    return specs
