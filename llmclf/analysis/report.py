"""`llmclf report`: every record of a study -> one tidy table -> the 90_report notebook -> reports/<study>/index.html."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import NOTEBOOKS_DIR, ConfigError, check_name
from .html import escape, sanitize_notebook, styled  # noqa: F401 - styled: for the report notebook's tables

# Every Styler table the report notebook shows escapes its cells (pandas' default escapes nothing); index and
# column labels need `styled`, and sanitize_notebook cleans whatever still slips through.
pd.set_option("styler.format.escape", "html")

METRICS = ("f1_micro", "f1_macro", "f1_weighted", "accuracy", "precision_at_1")
EXPLORATION_NOTEBOOK = "00_data"  # trains nothing: its records describe data, not results


def _read_records(folder: Path, could_not_read: list | None = None):
    """(path, record) of every readable record.json; the others go to `could_not_read` as (path, reason)."""
    for path in sorted(folder.glob("*/record.json")):
        try:
            with open(path) as f:
                record = json.load(f)
            if not isinstance(record, dict):
                raise ValueError(f"a record is a JSON object, this is a {type(record).__name__}")
        except (OSError, ValueError) as e:  # a truncated, corrupt or unreadable file: listed, never fatal
            if could_not_read is not None:
                could_not_read.append((str(path), f"{type(e).__name__}: {e}"[:300]))
            continue
        yield path, record


def read_study_runs(study_runs: str | Path | dict | None) -> dict | None:
    """The study file's expansion that `llmclf report` wrote (run ids with their labels, the description), or
    None: then every record under runs/<study>/ is reported."""
    if not study_runs:
        return None
    if isinstance(study_runs, dict):
        return study_runs
    return json.loads(Path(study_runs).read_text())


def _row(path: Path, r: dict) -> dict:
    p = r.get("params") or {}
    task = r.get("task") or {}
    row = {
        "run_id": r.get("run_id", path.parent.name), "label": r.get("label", r.get("notebook")),
        "notebook": r.get("notebook"), "status": r.get("status"), "error": r.get("error"),
        "task": task.get("name", p.get("dataset")), "multi_label": task.get("multi_label"),
        "n_train": (task.get("sizes") or {}).get("train"), "n_test": (task.get("sizes") or {}).get("test"),
        # TF-IDF reads no model (its notebook's `model` parameter is unused)
        "model": None if p.get("baseline") == "tfidf" else p.get("model"), "seed": p.get("seed"), "wall_seconds": r.get("wall_seconds"),
    }
    for m in METRICS:
        row[m] = (r.get("metrics") or {}).get(m)
    row["train_seconds"] = (r.get("timings") or {}).get("train_seconds")
    row["train_ex_per_s"] = (r.get("throughput") or {}).get("train_examples_per_second")
    row["infer_ex_per_s"] = (r.get("throughput") or {}).get("inference_examples_per_second")
    # A run that read cached embeddings measured the cache, not the model: its costs would mislead.
    row["features_cached"] = "hit" in (r.get("embedding_cache") or {}).values()
    if row["features_cached"]:
        row["train_seconds"] = row["train_ex_per_s"] = row["infer_ex_per_s"] = float("nan")
    if (r.get("parameters") or {}).get("trainable") == 0:  # nothing trained (zero-shot): 'training' was loading the model
        row["train_ex_per_s"] = float("nan")
    row["adapter_reused"] = bool(r.get("adapter_reused"))
    row["invalid_output_rate"] = r.get("invalid_output_rate")
    row["peak_rss_mb"] = (r.get("memory") or {}).get("peak_rss_mb")
    row["peak_gpu_mb"] = (r.get("memory") or {}).get("peak_gpu_mb")
    row["trainable_params"] = (r.get("parameters") or {}).get("trainable")
    row["total_params"] = (r.get("parameters") or {}).get("total")
    prov = r.get("provenance") or {}
    row["git_commit"] = (prov.get("git") or {}).get("commit")
    row["git_dirty"] = (prov.get("git") or {}).get("dirty")
    row["machine"] = (prov.get("machine") or {}).get("gpu") or (prov.get("machine") or {}).get("cpu")
    row["data_checksum"] = prov.get("data_checksum")
    row["model_checksum"] = prov.get("model_checksum")
    return row


RECORD_COLUMNS = [*_row(Path("run/record.json"), {}), "stale"]


def staleness(r: dict, fingerprints: dict | None = None) -> str:
    """Why a done record no longer describes what a rerun would do: its data changed since (the fingerprint the
    runner recorded), or its code did (the package's code_version); '' when neither, or when unknown."""
    from ..data.fingerprint import data_fingerprint
    from ..version import code_version

    if r.get("status") != "done":
        return ""
    reasons = []
    recorded = r.get("data_fingerprint")
    if recorded:
        params = r.get("params") or {}
        key = json.dumps([params.get("dataset"), params.get("data_dir")])
        cache = fingerprints if fingerprints is not None else {}
        if key not in cache:
            cache[key] = data_fingerprint(params)
        if cache[key] is not None and cache[key] != recorded:
            reasons.append("data changed since")
    version = (r.get("provenance") or {}).get("code_version")
    if version and version != code_version():
        reasons.append(f"code changed since ({version})")
    return "; ".join(reasons)


def load_records(study: str, runs_root: str | Path = "runs", study_runs: str | Path | dict | None = None
                 ) -> pd.DataFrame:
    """One row per model run (done or failed), the columns the report needs, flattened from record.json.
    Data explorations are left out: `load_explorations` reads them.

    With `study_runs` (the study file's expansion) only the runs the study names are rows; the other records
    under runs/<study>/ are listed in `.attrs["not_in_study"]`, never averaged in. Records that cannot be read are
    in `.attrs["could_not_read"]`; runs of the study without a record in `.attrs["no_record"]`. A done run whose
    data or code changed since has its reason in the `stale` column."""
    expected = read_study_runs(study_runs)
    wanted = None if expected is None or "runs" not in expected else expected["runs"]
    rows, not_in_study, seen, fingerprints = [], [], set(), {}
    could_not_read = [tuple(x) for x in (expected or {}).get("unreadable_notebooks", [])]
    for path, r in _read_records(Path(runs_root) / study, could_not_read):
        run_id = r.get("run_id", path.parent.name)
        seen.add(run_id)
        if wanted is not None and run_id not in wanted:
            not_in_study.append({"run_id": run_id, "label": r.get("label"), "status": r.get("status"),
                                 "finished_at": r.get("finished_at")})
            continue
        if r.get("notebook") == EXPLORATION_NOTEBOOK:
            continue
        row = _row(path, r)
        row["stale"] = staleness(r, fingerprints)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    frame.attrs.update(not_in_study=not_in_study, could_not_read=could_not_read,
                       no_record=sorted(set(wanted or {}) - seen) if wanted is not None else [],
                       study_runs=expected or {})
    return frame


def load_explorations(study: str, runs_root: str | Path = "runs", study_runs: str | Path | dict | None = None
                      ) -> pd.DataFrame:
    """One row per data exploration (00_data) of the study: split sizes, labels, text lengths in tokens and the
    share of training texts each candidate max_length truncates; with the columns `run_links` needs. With
    `study_runs`, only the explorations the study file names."""
    expected = read_study_runs(study_runs)
    rows = []
    for path, r in _read_records(Path(runs_root) / study):
        if r.get("notebook") != EXPLORATION_NOTEBOOK:
            continue
        if expected is not None and "runs" in expected and r.get("run_id", path.parent.name) not in expected["runs"]:
            continue
        task, stats = r.get("task", {}), r.get("data_stats") or {}
        sizes = task.get("sizes", {})
        row = {"run_id": r.get("run_id", path.parent.name), "label": r.get("label", EXPLORATION_NOTEBOOK),
               "seed": "", "status": r.get("status"), "error": r.get("error"), "f1_micro": float("nan"),
               "task": task.get("name", r.get("params", {}).get("dataset")),
               "multi_label": task.get("multi_label"), "labels": len(task.get("labels", [])),
               **{s: sizes.get(s) for s in ("train", "validation", "test")},
               "labels / document": (stats.get("labels_per_document_mean") or {}).get("train"),
               "tokenizer": stats.get("tokenizer_model"),
               "git_commit": ((r.get("provenance") or {}).get("git") or {}).get("commit"),
               "git_dirty": ((r.get("provenance") or {}).get("git") or {}).get("dirty"),
               "machine": ((r.get("provenance") or {}).get("machine") or {}).get("cpu")}
        for q, v in (stats.get("token_length_quantiles") or {}).items():
            row[f"tokens {q}"] = v
        for length, share in (stats.get("truncated_share") or {}).items():
            row[f"cut at {length}"] = share
        rows.append(row)
    return pd.DataFrame(rows)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the t confidence interval of the mean (nan for fewer than two values)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def summarize(df: pd.DataFrame, metrics=("f1_micro", "f1_macro", "accuracy")) -> pd.DataFrame:
    """Per task and configuration: mean, standard deviation and 95% CI half-width over seeds, plus costs."""
    done = df[df.status == "done"]
    rows = []
    for (task, label), g in done.groupby(["task", "label"], sort=False):
        row = {"task": task, "configuration": label, "seeds": len(g)}
        for m in metrics:
            vals = g[m].astype(float)
            row[f"{m} mean"] = vals.mean()
            row[f"{m} sd"] = vals.std(ddof=1) if len(g) > 1 else float("nan")
            row[f"{m} ±95%"] = t_interval(vals.values)
        row["trainable params"] = g.trainable_params.median()
        row["train s"] = g.train_seconds.mean()
        row["train ex/s"] = g.train_ex_per_s.mean()
        row["infer ex/s"] = g.infer_ex_per_s.mean()
        row["peak RSS MB"] = g.peak_rss_mb.max()
        row["invalid outputs"] = g.invalid_output_rate.astype(float).mean() if "invalid_output_rate" in g else None
        rows.append(row)
    if not rows:  # no finished run: an empty table with its columns, so that the report still renders
        return pd.DataFrame(columns=["task", "configuration", "seeds",
                                     *(f"{m} {s}" for m in metrics for s in ("mean", "sd", "±95%")),
                                     "trainable params", "train s", "train ex/s", "infer ex/s", "peak RSS MB",
                                     "invalid outputs"])
    out = pd.DataFrame(rows)
    return out.sort_values(["task", "f1_micro mean"], ascending=[True, False]) if len(out) else out


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a person reads it: 'mean ± 95% CI' strings, costs rounded, one row per configuration."""

    def pm(row, m):
        mean, ci = row[f"{m} mean"], row[f"{m} ±95%"]
        return "-" if pd.isna(mean) else f"{mean:.3f}" + ("" if pd.isna(ci) else f" ± {ci:.3f}")

    def num(v, fmt):
        return "-" if v is None or pd.isna(v) else format(v, fmt)

    rows = []
    for _, r in summary.iterrows():
        rows.append({"configuration": r["configuration"], "seeds": int(r["seeds"]),
                     "F1 micro": pm(r, "f1_micro"), "F1 macro": pm(r, "f1_macro"), "accuracy": pm(r, "accuracy"),
                     "trainable params": num(r["trainable params"], ",.0f"), "train s": num(r["train s"], ".1f"),
                     "train ex/s": num(r["train ex/s"], ".2f"), "infer ex/s": num(r["infer ex/s"], ".1f"),
                     "peak RSS MB": num(r["peak RSS MB"], ",.0f"),
                     "invalid outputs": num(r.get("invalid outputs"), ".1%")})
    return pd.DataFrame(rows)


def compare_to_best(df: pd.DataFrame, metric: str = "f1_micro") -> pd.DataFrame:
    """Each configuration against the best one of its task: Welch's t-test over seeds (two-sided).

    With 2-3 seeds such tests have little power: 'not significant' means 'not shown to differ', no more.
    """
    from scipy import stats

    done = df[df.status == "done"]
    rows = []
    for task, g in done.groupby("task", sort=False):
        means = g.groupby("label")[metric].mean()
        best = means.idxmax()
        best_vals = g[g.label == best][metric].astype(float).values
        for label, mean in means.sort_values(ascending=False).items():
            vals = g[g.label == label][metric].astype(float).values
            p = float("nan")
            # no test between two constant samples (deterministic baselines): their spread says nothing
            if label != best and len(vals) > 1 and len(best_vals) > 1 and (np.ptp(vals) > 0 or np.ptp(best_vals) > 0):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p = float(stats.ttest_ind(best_vals, vals, equal_var=False).pvalue)
            rows.append({"task": task, "configuration": label, f"{metric} mean": mean,
                         "difference to best": mean - means[best], "p (Welch, vs best)": p,
                         "differs at 5%": bool(p < 0.05) if not np.isnan(p) else None})
    return pd.DataFrame(rows, columns=["task", "configuration", f"{metric} mean", "difference to best",
                                       "p (Welch, vs best)", "differs at 5%"])


def run_links(df: pd.DataFrame, links_dir: str = "runs") -> str:
    """An HTML table of every run with a link to its rendered notebook; every text cell escaped."""
    rows = []
    for r in df.sort_values(["task", "label", "seed"], key=lambda c: c.astype(str)).itertuples():
        link = f'<a href="{escape(links_dir)}/{escape(r.run_id)}.html">{escape(r.run_id)}</a>'
        f1 = "" if pd.isna(r.f1_micro) else f"{r.f1_micro:.3f}"
        err = "" if not isinstance(r.error, str) else escape(r.error[:200])
        stale = getattr(r, "stale", "")
        status = escape(r.status) + (f" <strong>(stale: {escape(stale)})</strong>" if isinstance(stale, str)
                                     and stale else "")
        rows.append(f"<tr><td>{link}</td><td>{escape(r.task)}</td><td>{escape(r.label)}</td>"
                    f"<td>{escape(r.seed)}</td><td>{status}</td><td>{f1}</td><td>{err}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run", "task", "configuration", "seed", "status", "F1 micro", "error"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def study_heading(records: pd.DataFrame, study: str) -> str:
    """The report's first lines as HTML: the study's name and description (as text, never markup) and the
    counts of runs."""
    expected = records.attrs.get("study_runs") or {}
    counts = records.status.value_counts().to_dict()
    description = expected.get("description") or ""
    parts = [f"<h2>Study <code>{escape(study)}</code></h2>"]
    if description:
        parts.append(f"<p>{escape(description)}</p>")
    named = f" of the {len(expected['runs'])} the study file names" if expected.get("runs") else ""
    parts.append(f"<p>{len(records)} model runs{named}: {counts.get('done', 0)} done, {counts.get('failed', 0)} "
                 f"failed{', ' + str(counts.get('interrupted')) + ' interrupted' if counts.get('interrupted') else ''}"
                 ".</p>")
    return "".join(parts)


def notes_html(records: pd.DataFrame, strict: bool = False) -> str:
    """What the report leaves out, or could not read, and the runs it marks stale: HTML, '' when nothing."""
    a = records.attrs
    parts = []
    if a.get("could_not_read"):
        items = "".join(f"<li><code>{escape(p)}</code>: {escape(why)}</li>" for p, why in a["could_not_read"])
        parts.append(f"<p><strong>Could not read</strong> {len(a['could_not_read'])} file(s); the report shows "
                     f"the rest:</p><ul>{items}</ul>")
    if a.get("no_record"):
        parts.append(f"<p><strong>{len(a['no_record'])} run(s) of the study have no record yet</strong> (not run, "
                     f"or stopped before the end): {escape(', '.join(a['no_record'][:20]))}"
                     f"{' ...' if len(a['no_record']) > 20 else ''}</p>")
    if a.get("not_in_study") and not (strict or (a.get("study_runs") or {}).get("strict")):
        items = "".join(f"<li><code>{escape(r['run_id'])}</code> {escape(r['label'])} ({escape(r['status'])}, "
                        f"{escape(r['finished_at'])})</li>" for r in a["not_in_study"][:50])
        parts.append(f"<p><strong>Not in the study</strong>: {len(a['not_in_study'])} record(s) under the study's "
                     "runs folder belong to runs the study file no longer names (an edited parameter makes a new "
                     f"run); they are not in any table:</p><ul>{items}</ul>")
    if "stale" in records and (records.stale.astype(str) != "").any():
        n = int((records.stale.astype(str) != "").sum())
        parts.append(f"<p><strong>{n} run(s) are stale</strong>: their data or code changed after they ran "
                     "(marked in the list of runs); `llmclf run` reruns those whose data changed.</p>")
    return "".join(parts)


def _write_page(path: Path, body: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)


def render_report(study: str, runs_root: str | Path = "runs", reports_root: str | Path = "reports",
                  study_runs: dict | None = None, strict: bool = False) -> Path:
    """Execute 90_report on the study's records, write index.html (code hidden) and every run's notebook as HTML.

    `study_runs`: the study file's expansion ({"study", "description", "runs": {run_id: {label, notebook, task}}});
    with it only those runs are reported, and the other records are listed as not in the study (or not at all
    with `strict`). Every page is sanitized (`html.sanitize_notebook`); a notebook or record that cannot be read
    is listed, never fatal."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    check_name(study, "study name")
    runs_root, out_dir = Path(runs_root).resolve(), Path(reports_root) / study
    study_dir = runs_root / study
    if study_dir.resolve().parent != runs_root:
        raise ConfigError(f"study folder {study_dir} is outside the runs folder {runs_root}")
    if not study_dir.is_dir() and study_runs is None:
        raise FileNotFoundError(f"no runs for study {study!r} under {runs_root}: run `llmclf run params/{study}.yaml`")
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "runs").glob("*.html"):  # generated pages only: a run gone from runs/ leaves none
        stale.unlink()
    wanted = None if study_runs is None else set(study_runs.get("runs", {}))
    run_exporter = HTMLExporter()
    unreadable = []
    for nb_path in sorted(study_dir.glob("*/notebook.ipynb")):
        if wanted is not None and nb_path.parent.name not in wanted:
            continue
        page = out_dir / "runs" / f"{nb_path.parent.name}.html"
        try:
            nb = nbformat.read(nb_path, as_version=4)
            sanitize_notebook(nb)
            body, _ = run_exporter.from_notebook_node(nb)
        except Exception as e:  # noqa: BLE001 - a half-written notebook (a killed run) must not sink the report
            reason = f"{type(e).__name__}: {e}"[:300]
            unreadable.append((str(nb_path), reason))
            body = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(nb_path.parent.name)}"
                    f"</title></head><body><h1>{escape(nb_path.parent.name)}</h1><p>Could not read this run's "
                    f"notebook: {escape(reason)}</p></body></html>")
        _write_page(page, body)
    selection = {"study": study, "strict": strict, **(study_runs or {}), "unreadable_notebooks": unreadable}
    if study_runs is None:
        selection.pop("runs", None)
    selection_file = out_dir / "study_runs.json"
    selection_file.write_text(json.dumps(selection, indent=1) + "\n")
    executed = out_dir / "report.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS_DIR / "90_report.ipynb"), str(executed),
                               parameters={"study": study, "runs_root": str(runs_root), "notebook_links": "runs",
                                           "study_runs": str(selection_file.resolve())},
                               cwd=str(NOTEBOOKS_DIR), progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    sanitize_notebook(nb)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    _write_page(out_dir / "index.html", body)
    executed.unlink()  # the HTML is the report; the executed notebook would only duplicate it
    return out_dir / "index.html"
