"""`llmclf report`: every record of a study -> one tidy table -> the 90_report notebook -> reports/<study>/index.html."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import KERNEL_ARGUMENTS, NOTEBOOKS_DIR, ConfigError, check_name
from .html import escape, sanitize_notebook, styled  # noqa: F401 - styled: for the report notebook's tables

# Every Styler table the report notebook shows escapes its cells (pandas' default escapes nothing); index and
# column labels need `styled`, and sanitize_notebook cleans whatever still slips through.
pd.set_option("styler.format.escape", "html")

METRICS = ("f1_micro", "f1_macro", "f1_weighted", "accuracy", "subset_accuracy", "precision_at_1")
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


def task_name(task: dict, params: dict) -> str:
    """The task a run belongs to: the study's name for it (the record's task key: a `tasks:` key, or a name made
    of every data parameter), else the data set's name (records from before task keys)."""
    return task.get("key") or task.get("name") or params.get("dataset")


def split_method(task: dict) -> str | None:
    """How each split was made (the source's own, carved from train, random; caps), in one line."""
    method = (task.get("source") or {}).get("split_method") or task.get("split_method")
    if not method:
        return None
    return "; ".join(f"{s}: {m}" for s, m in method.items())


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
        "run_id": r.get("run_id", path.parent.name), "run_dir": str(path.parent),
        "label": r.get("label", r.get("notebook")),
        "notebook": r.get("notebook"), "status": r.get("status"), "error": r.get("error"),
        "task": task_name(task, p), "multi_label": task.get("multi_label"),
        "n_train": (task.get("sizes") or {}).get("train"), "n_test": (task.get("sizes") or {}).get("test"),
        "splits": split_method(task),
        "threshold_rule": p.get("threshold") if task.get("multi_label") else None,
        # TF-IDF reads no model (its notebook's `model` parameter is unused)
        "model": None if p.get("baseline") == "tfidf" else p.get("model"), "seed": p.get("seed"), "wall_seconds": r.get("wall_seconds"),
    }
    for m in METRICS:
        row[m] = (r.get("metrics") or {}).get(m)
    # training cost as the linear models count theirs (their C grid is inside the fit): the kept model's training
    # plus a learning-rate search's other values (timings.tuning_seconds, approaches.tuning)
    timings = r.get("timings") or {}
    row["train_seconds"] = timings.get("train_seconds")
    if timings.get("tuning_seconds") is not None and row["train_seconds"] is not None:
        row["train_seconds"] = row["train_seconds"] + timings["tuning_seconds"]
    row["train_ex_per_s"] = (r.get("throughput") or {}).get("train_examples_per_second")
    row["infer_ex_per_s"] = (r.get("throughput") or {}).get("inference_examples_per_second")
    # A run that read cached embeddings measured the cache, not the model: its costs would mislead.
    row["features_cached"] = "hit" in (r.get("embedding_cache") or {}).values()
    if row["features_cached"]:
        row["train_seconds"] = row["train_ex_per_s"] = row["infer_ex_per_s"] = float("nan")
    if (r.get("parameters") or {}).get("trainable") == 0:  # nothing trained (zero-shot): 'training' was loading the model
        row["train_ex_per_s"] = float("nan")
    row.update(_issue11_columns(r, p, row))
    row["adapter_reused"] = bool(r.get("adapter_reused"))
    # the tuning budget: the learning rate trained at, and how many values were tried on validation to choose it
    tuning = r.get("tuning") or {}
    if p.get("baseline") in ("tfidf", "frozen"):  # linear models: C chosen on validation, no learning rate
        row["learning_rate"] = row["lr_grid_size"] = row["epochs"] = None
        row["c_grid_size"] = len(p.get("c_values") or []) or None
    else:
        row["learning_rate"] = r.get("learning_rate", p.get("learning_rate"))
        row["lr_grid_size"] = len(tuning.get("grid") or []) or (1 if p.get("learning_rate") is not None else None)
        row["epochs"] = p.get("epochs")
        row["c_grid_size"] = None
    row["invalid_output_rate"] = r.get("invalid_output_rate")
    row["peak_rss_mb"] = (r.get("memory") or {}).get("peak_rss_mb")
    row["peak_gpu_mb"] = (r.get("memory") or {}).get("peak_gpu_mb")
    row["trainable_params"] = (r.get("parameters") or {}).get("trainable")
    row["total_params"] = (r.get("parameters") or {}).get("total")
    prov = r.get("provenance") or {}
    row["git_commit"] = (prov.get("git") or {}).get("commit")
    row["git_dirty"] = (prov.get("git") or {}).get("dirty")
    row["code_version"] = prov.get("code_version")
    row["machine"] = (prov.get("machine") or {}).get("gpu") or (prov.get("machine") or {}).get("cpu")
    row["data_checksum"] = prov.get("data_checksum")
    row["model_checksum"] = prov.get("model_checksum")
    return row


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


def teacher_run_id(record: dict) -> str | None:
    """The run a distilled student learned from (40_distillation records it under `teacher`)."""
    return record.get("teacher_run_id") or (record.get("teacher") or {}).get("run_id")


def approach_family(notebook, params: dict, record: dict | None = None) -> str:
    """The approach family a run belongs to, for the study-wide table."""
    if notebook == "40_distillation" or teacher_run_id(record or {}):
        return "distilled student"
    if notebook == "10_embedding_head":
        return "embedding head"
    if notebook == "20_instruction_tuning":
        return "zero-shot" if params.get("zero_shot") else "instruction tuning"
    if notebook == "30_baselines":
        return {"encoder": "encoder", "frozen": "frozen embeddings", "tfidf": "TF-IDF"}.get(params.get("baseline"),
                                                                                          str(params.get("baseline")))
    return str(notebook)


def _issue11_columns(r: dict, p: dict, row: dict) -> dict:
    """Columns the deciding report reads (issue 11); old records leave them empty."""
    timings, budget = r.get("timings") or {}, r.get("input_budget") or {}
    out = {"family": approach_family(r.get("notebook"), p, r),
           "load_seconds": timings.get("load_seconds"), "validation_seconds": timings.get("validation_seconds"),
           "predict_seconds": timings.get("predict_seconds"),
           "max_length": budget.get("max_length", p.get("max_length")), "text_tokens": budget.get("text_tokens"),
           "truncated_share": budget.get("truncated_share"), "tokens_read": budget.get("tokens_read"),
           "long_text": budget.get("long_text", p.get("long_text")) if budget.get("max_length") else None,
           "max_chunks": budget.get("max_chunks"),
           "tfidf_input": p.get("tfidf_input", "full") if p.get("baseline") == "tfidf" else None,
           "resolved_dtype": r.get("resolved_dtype", p.get("dtype")),
           "device": ((r.get("provenance") or {}).get("machine") or {}).get("gpu") or "cpu",
           "teacher_run_id": teacher_run_id(r),
           "threshold": (r.get("metrics") or {}).get("threshold"),
           "predictions_timed_after_warm_up": bool(timings.get("predict_warm_up"))}
    if p.get("baseline") == "tfidf" and out["tfidf_input"] == "full":
        out["max_length"] = None  # TF-IDF on the full text reads every token
    if (r.get("parameters") or {}).get("trainable") == 0:
        row["train_seconds"] = float("nan")  # nothing trained: zero-shot shows no training time
    return out


RECORD_COLUMNS = [*_row(Path("run/record.json"), {}), "stale"]


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
               "task": task_name(task, r.get("params", {})),
               "multi_label": task.get("multi_label"), "labels": len(task.get("labels", [])),
               "splits": split_method(task),
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


def summarize(df: pd.DataFrame, metrics=("f1_micro", "f1_macro", "accuracy")) -> pd.DataFrame:
    """Per task and configuration: mean and standard deviation over seeds, plus costs. For records without
    per-example predictions (older code); analysis.verdict gives intervals over test examples for the others."""
    done = df[df.status == "done"]
    rows = []
    for (task, label), g in done.groupby(["task", "label"], sort=False):
        row = {"task": task, "configuration": label, "seeds": len(g)}
        for m in metrics:
            vals = g[m].astype(float)
            row[f"{m} mean"] = vals.mean()
            row[f"{m} sd"] = vals.std(ddof=1) if len(g) > 1 else float("nan")
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
    """The summary as a person reads it: 'mean (sd over seeds)' strings, costs rounded, one row per configuration.
    No interval: over 2-3 seeds it would ignore the test set's own sampling error."""

    def pm(row, m):
        mean, sd = row[f"{m} mean"], row[f"{m} sd"]
        return "-" if pd.isna(mean) else f"{mean:.3f}" + ("" if pd.isna(sd) else f" (sd {sd:.3f})")

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


def code_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the code at `cwd` (this package's checkout by default), or None outside git."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def commit_flags(df: pd.DataFrame, report_commit: str | None, cwd: str | Path | None = None) -> pd.DataFrame:
    """Runs per code commit, each said to be the report's code, older than it (an ancestor in git), or neither."""
    import subprocess

    def relation(commit):
        if not isinstance(commit, str) or not commit:
            return "unknown (no commit recorded)"
        if report_commit and commit == report_commit:
            return "the report's code"
        try:
            out = subprocess.run(["git", "merge-base", "--is-ancestor", commit, report_commit or "HEAD"],
                                 cwd=cwd or Path(__file__).resolve().parent, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown (git unavailable)"
        return ("OLDER than the report's code: rerun to measure the current code" if out.returncode == 0
                else "not in this checkout's history")

    counts = df.groupby(["git_commit", "git_dirty"], dropna=False).size().rename("runs").reset_index()
    counts["code"] = counts.git_commit.map(relation)
    return counts


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


STYLESHEET = "style.css"
_STYLE = re.compile(r"<style[^>]*>.*?</style>\s*", re.S)
_MODULE_SCRIPT = re.compile(r'<script type="module">.*?</script>\s*', re.S)


def shared_stylesheet(page: str, href: str) -> tuple[str, str]:
    """The page with its inline <style> blocks replaced by one link to `href`, and those blocks' CSS: nbconvert
    copies ~300 KB of CSS into every page; the report's pages share one file instead. The Mermaid loader goes too
    when the page has no Mermaid diagram."""
    css = "\n".join(re.sub(r"^<style[^>]*>|</style>\s*$", "", m.group(0).strip()) for m in _STYLE.finditer(page))
    link = f'<link rel="stylesheet" href="{escape(href)}">\n'
    body = _STYLE.sub("", page)
    if "jp-Mermaid" not in _MODULE_SCRIPT.sub("", body):  # nbconvert's 12 KB Mermaid loader, with no diagram
        body = _MODULE_SCRIPT.sub("", body)
    return body.replace("</head>", link + "</head>", 1) if "</head>" in body else link + body, css


def shrink_images(nb, colors: int = 64) -> None:
    """Every PNG output re-encoded with a palette of `colors` (plots use few colours): about 3x smaller, looking
    the same; kept as it was where that is not smaller."""
    import base64
    import io

    from PIL import Image

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if "image/png" not in data:
                continue
            raw = base64.b64decode(data["image/png"])
            buffer = io.BytesIO()
            Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=colors).save(buffer, format="PNG",
                                                                                   optimize=True)
            if buffer.tell() < len(raw):
                data["image/png"] = base64.b64encode(buffer.getvalue()).decode()


def study_heading(records: pd.DataFrame, study: str) -> str:
    """The report's first lines as HTML: the study's name and the counts of runs (the verdict follows; the
    description comes after it, `study_description`)."""
    expected = records.attrs.get("study_runs") or {}
    counts = records.status.value_counts().to_dict()
    parts = [f"<h2>Study <code>{escape(study)}</code></h2>"]
    named = f" of the {len(expected['runs'])} the study file names" if expected.get("runs") else ""
    parts.append(f"<p>{len(records)} model runs{named}: {counts.get('done', 0)} done, {counts.get('failed', 0)} "
                 f"failed{', ' + str(counts.get('interrupted')) + ' interrupted' if counts.get('interrupted') else ''}"
                 ".</p>")
    return "".join(parts)


def study_description(records: pd.DataFrame) -> str:
    """The study file's description as HTML (text, never markup), folded: what was run and why those sizes, for
    the reader who wants it after the verdict; '' when the study has none."""
    description = (records.attrs.get("study_runs") or {}).get("description") or ""
    if not description:
        return ""
    return f"<details><summary><strong>About this study</strong> (sizes, models, why)</summary><p>{escape(description)}</p></details>"


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
                  study_runs: dict | None = None, strict: bool = False, n_resamples: int = 2000) -> Path:
    """Execute 90_report on the study's records, write index.html (code hidden) and every run's notebook as HTML.

    `study_runs`: the study file's expansion ({"study", "description", "runs": {run_id: {label, notebook, task}}});
    with it only those runs are reported, and the other records are listed as not in the study (or not at all
    with `strict`). Every page is sanitized (`html.sanitize_notebook`); a notebook or record that cannot be read
    is listed, never fatal. Run pages and the index share one stylesheet (runs/style.css), plots are re-encoded
    with a small palette (`shrink_images`), and the tidy files (results.csv, predictions.parquet, comparisons.csv)
    are written beside index.html."""
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
            shrink_images(nb)
            body, _ = run_exporter.from_notebook_node(nb)
            body, _ = shared_stylesheet(body, STYLESHEET)
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
                                           "study_runs": str(selection_file.resolve()),
                                           "tidy_dir": str(out_dir.resolve()), "n_resamples": n_resamples,
                                           "report_commit": code_commit() or ""},
                               cwd=str(NOTEBOOKS_DIR), progress_bar=False, extra_arguments=KERNEL_ARGUMENTS)
    nb = nbformat.read(executed, as_version=4)
    sanitize_notebook(nb)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    shrink_images(nb)
    body, _ = exporter.from_notebook_node(nb)
    body, css = shared_stylesheet(body, f"runs/{STYLESHEET}")
    _write_page(out_dir / "index.html", body)
    (out_dir / "runs" / STYLESHEET).write_text(css)
    executed.unlink()  # the HTML is the report; the executed notebook would only duplicate it
    return out_dir / "index.html"
