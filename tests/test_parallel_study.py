"""Studies on a local Dask cluster (loopback only), two `llmclf run` of one study at once, a worker killed mid-run,
Ctrl-C: the same records as a sequential run, each run executed once, nothing recorded as done that did not finish.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from llmclf.study.record import read_record
from llmclf.study.runner import order_runs, run_study
from llmclf.study.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_llama, tiny_csv):
    """A tiny study of two runs: frozen embeddings of the tiny Llama, and TF-IDF."""
    root = tmp_path_factory.mktemp("parallel")
    (root / "tiny.yaml").write_text(f"""
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 32}}
runs:
  - notebook: 30_baselines
    label: frozen
    params: {{baseline: frozen, model: "{tiny_llama}", pooling: last}}
  - notebook: 30_baselines
    label: tfidf
    params: {{baseline: tfidf}}
""")
    return root / "tiny.yaml"


def env_for(runs_root: Path) -> dict:
    # a cache of its own (frozen embeddings): every execution computes its records rather than reading another's
    return {**ENV, "LLMCLF_CACHE": str(runs_root.parent / f"{runs_root.name}-cache")}


def cli(study, runs_root, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "llmclf.cli", "run", str(study), "--runs-root", str(runs_root),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env_for(runs_root), **kw)


@pytest.fixture(scope="module")
def concurrent(study):
    """Two sequential `llmclf run` of the study at once, into one runs folder: the reference records."""
    runs_root = study.parent / "concurrent"
    procs = [cli(study, runs_root) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    return runs_root / "tiny", procs, outputs


def run_dirs(runs):
    return sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_"))


def predictions(run_dir):
    return pd.read_parquet(run_dir / "predictions.parquet")


def assert_same_records(runs, reference):
    assert [d.name for d in run_dirs(runs)] == [d.name for d in run_dirs(reference)]
    for run_dir in run_dirs(runs):
        mine, ref = read_record(run_dir), read_record(reference / run_dir.name)
        assert mine["status"] == ref["status"] == "done"
        assert mine["metrics"] == ref["metrics"]
        pd.testing.assert_frame_equal(predictions(run_dir), predictions(reference / run_dir.name))


def summary_counts(output):
    line = next(l for l in output.splitlines() if re.match(r"study \w+: \d+ done", l))
    return {k: int(n) for n, k in re.findall(r"(\d+) (done|skipped|failed|retried|interrupted)", line)}, line


def test_two_concurrent_runs_of_one_study_execute_each_run_once(concurrent):
    runs, procs, outputs = concurrent
    assert [p.returncode for p in procs] == [0, 0], outputs
    counts = [summary_counts(out)[0] for out in outputs]
    # every run executed by exactly one of them; the other skipped it (locked, or already done when it got there)
    assert sum(c["done"] for c in counts) == 2, outputs
    pids = {p.pid for p in procs}
    for run_dir in run_dirs(runs):
        record = read_record(run_dir)
        assert record["status"] == "done" and record["ran_on"]["pid"] in pids
        assert "previous_attempts" not in record and not list(run_dir.glob("notebook.attempt-*"))
        assert not list(run_dir.glob("lock*"))


def test_a_local_cluster_of_two_workers_records_what_a_sequential_run_does(study, concurrent, monkeypatch):
    from llmclf.study.executors import DaskExecutor

    runs_root = study.parent / "dask"
    monkeypatch.setenv("LLMCLF_CACHE", env_for(runs_root)["LLMCLF_CACHE"])  # the workers inherit it
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    # one "GPU" a run: the resource and the devices' variable work alike on a machine without any
    outcomes = run_study(study, runs_root, executor=DaskExecutor(workers=2, gpus_per_run=1, dashboard_address=None,
                                                                 poll_seconds=0.5))
    assert [o.status for o in outcomes] == ["done", "done"]
    assert_same_records(runs_root / "tiny", concurrent[0])
    for run_dir in run_dirs(runs_root / "tiny"):
        ran_on = read_record(run_dir)["ran_on"]
        assert ran_on["worker"].startswith("tcp://127.0.0.1:") and ran_on["pid"] != os.getpid()
        assert ran_on["cuda_visible_devices"] in {"0", "1"}
        assert {p.name for p in run_dir.iterdir()} == {p.name for p in (concurrent[0] / run_dir.name).iterdir()}
    assert {o.status for o in run_study(study, runs_root)} == {"skipped"}  # a rerun skips what is done


def test_a_worker_killed_mid_run_is_retried_and_the_study_completes(study, concurrent):
    runs_root = study.parent / "killed"
    proc = cli(study, runs_root, "--workers", "2", "--retries", "1")
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and proc.poll() is None:
        for run_dir in (runs_root / "tiny").glob("*"):
            info = json.loads((run_dir / "lock.json").read_text()) if (run_dir / "lock.json").exists() else None
            if info and info.get("worker") and (run_dir / "notebook.ipynb").exists():  # papermill has started
                victim = run_dir, info["pid"]
                break
        time.sleep(0.1)
    assert victim, "no run was seen running on a worker"
    os.kill(victim[1], signal.SIGKILL)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    counts, line = summary_counts(output)
    assert (counts["done"], counts["failed"], counts["retried"]) == (2, 0, 1), line
    record = read_record(victim[0])
    (attempt,) = record["previous_attempts"]
    assert attempt["pid"] == victim[1] and record["ran_on"]["pid"] != victim[1]
    assert (victim[0] / attempt["partial_notebook"]).exists()  # the killed attempt's partial notebook is kept
    assert_same_records(runs_root / "tiny", concurrent[0])


def test_ctrl_c_records_the_run_in_flight_as_interrupted(study):
    runs = study.parent / "interrupted" / "tiny"
    proc = cli(study, runs.parent, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/notebook.ipynb")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    records = [read_record(d) for d in run_dirs(runs)]
    assert [r["status"] for r in records if r] == ["interrupted"], output  # the other run never started
    assert not list(runs.glob("*/lock*"))
    assert "1 interrupted, 1 not started" in output


def test_one_ctrl_c_stops_a_parallel_study_after_the_current_cells(study):
    """A terminal's Ctrl-C goes to the whole foreground group; the local workers are out of it, `llmclf run` passes
    the stop on, and each run in flight records itself as interrupted after its current cell: one Ctrl-C is enough."""
    runs = study.parent / "interrupted-parallel" / "tiny"
    proc = cli(study, runs.parent, "--workers", "2", start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(runs.glob("*/notebook.ipynb"))) < 2:
        time.sleep(0.1)
    assert len(list(runs.glob("*/notebook.ipynb"))) == 2, "the two runs were not seen running side by side"
    records = [read_record(d) for d in run_dirs(runs)]
    workers = {r["ran_on"]["pid"] for r in records}
    assert all(os.getpgid(pid) == pid for pid in workers)  # each worker leads a process group of its own
    os.killpg(proc.pid, signal.SIGINT)  # once
    output = proc.communicate(timeout=120)[0]  # before the fix it waited here for ever
    assert proc.returncode == 130, output
    assert "stop after their current cell" in output
    records = [read_record(d) for d in run_dirs(runs)]
    assert [r["status"] for r in records] == ["interrupted", "interrupted"], output
    assert all("Ctrl-C, after the current cell" in r["error"] for r in records), [r["error"] for r in records]
    assert all((runs / r["run_id"] / r["partial_notebook"]).exists() for r in records)
    assert not list(runs.glob("*/lock*"))
    assert "2 interrupted" in output
    for pid in workers:  # the local cluster was closed with the study
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_local_workers_share_the_cores_between_them(monkeypatch):
    from llmclf.study.executors import THREAD_VARIABLES, DaskExecutor, threads_per_run

    for var in THREAD_VARIABLES:
        monkeypatch.setenv(var, "x")  # so that monkeypatch puts back what was there, set or not
        monkeypatch.delenv(var)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert [threads_per_run(n) for n in (1, 2, 4, 3, 32)] == [16, 8, 4, 5, 1]
    cluster, client = DaskExecutor(workers=1, dashboard_address=None)._connect()
    try:  # the worker process was started with the variables set (torch reads them when it loads)
        seen = client.run(lambda: {v: os.environ.get(v) for v in THREAD_VARIABLES})
        assert list(seen.values()) == [dict.fromkeys(THREAD_VARIABLES, "16")]
        assert all(pgid != os.getpgid(0) for pgid in client.run(os.getpgid, 0).values())
        # Dask's nanny wrote them into this process's environment too; undone, so they pass for nobody's choice
        assert all(os.environ.get(v) is None for v in THREAD_VARIABLES)
    finally:
        client.close()
        cluster.close()


def test_data_explorations_go_first_and_by_seed_keeps_its_meaning():
    def spec(notebook, seed, label):
        return RunSpec("s", notebook, {"seed": seed} if seed is not None else {}, label)

    specs = [spec("10_embedding_head", 0, "a"), spec("10_embedding_head", 1, "a"), spec("30_baselines", 0, "b"),
             spec("30_baselines", 1, "b"), spec("00_data", None, "data")]
    assert [s.label for s in order_runs(specs)] == ["data", "a", "a", "b", "b"]
    assert [(s.label, s.params.get("seed")) for s in order_runs(specs, by_seed=True)] == [
        ("data", None), ("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_gpus_are_dealt_to_local_workers(monkeypatch):
    from llmclf.config import ConfigError
    from llmclf.study.executors import DaskExecutor

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert DaskExecutor(workers=2, gpus_per_run=2)._devices_by_worker() == {"0": "0,1", "1": "2,3"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6")
    assert DaskExecutor(workers=3, gpus_per_run=1)._devices_by_worker() == {"0": "3", "1": "5", "2": "6"}
    with pytest.raises(ConfigError, match="need 4 devices"):
        DaskExecutor(workers=2, gpus_per_run=2)._devices_by_worker()
    assert DaskExecutor(workers=2)._devices_by_worker() is None


def test_a_worker_that_does_not_share_the_runs_folder_stops_the_study_before_it_starts(tmp_path):
    from llmclf.config import ConfigError
    from llmclf.study.executors import _probe_folder, check_shared_folder

    class Client:  # two workers: one sees the client's folder, one has a folder of its own by the same name
        def run(self, fn, folder, token):
            return {"tcp://a:1": fn(folder, token), "tcp://b:1": fn(str(tmp_path / "elsewhere"), token)}

    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match=r"(?s)every Dask worker shares.*tcp://b:1: does not see"):
        check_shared_folder(Client(), tmp_path / "runs" / "study")
    assert not list((tmp_path / "runs" / "study").iterdir())  # the probe cleaned up after itself
    assert _probe_folder(str(tmp_path), "no-such-token").startswith("does not see")


def test_runs_side_by_side_train_a_shared_instruction_adapter_once(tmp_path, tiny_csv, monkeypatch):
    from llmclf.models.registry import tiny_causal_lm
    from llmclf.study.executors import DaskExecutor

    from conftest import TOPICS

    model = tiny_causal_lm(tmp_path / "label-llama", words=" ".join(TOPICS.values()).split() + sorted(TOPICS))
    study = tmp_path / "adapters.yaml"
    study.write_text(f"""
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 64, model: "{model}"}}
runs:
  - notebook: 20_instruction_tuning
    params: {{epochs: 1.0, max_new_tokens: 4}}
    grid: {{predict_mode: [generate, score]}}
""")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models gain nothing from threads on a busy machine
    outcomes = run_study(study, tmp_path / "runs", executor=DaskExecutor(workers=2, dashboard_address=None,
                                                                         poll_seconds=0.5))
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    records = [read_record(tmp_path / "runs" / "adapters" / o.spec.run_id) for o in outcomes]
    assert len({r["ran_on"]["worker"] for r in records}) == 2  # side by side, on both workers
    assert sorted(bool(r.get("adapter_reused")) for r in records) == [False, True]  # one trained, one waited
    assert records[0]["adapter_key"] == records[1]["adapter_key"]


def test_a_study_process_killed_mid_run_leaves_a_record_saying_so_and_a_rerun_takes_over(study):
    runs = study.parent / "killed-study" / "tiny"
    proc = cli(study, runs.parent)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/notebook.ipynb")):
        time.sleep(0.1)
    proc.kill()  # kill -9 of `llmclf run` itself: nothing of it can clean up
    proc.wait()
    (run_dir,) = [d for d in run_dirs(runs) if (d / "notebook.ipynb").exists()]
    record = read_record(run_dir)
    assert record["status"] == "running" and record["ran_on"]["pid"] == proc.pid  # not done, and where it ran
    assert (run_dir / "lock").exists() and json.loads((run_dir / "lock.json").read_text())["pid"] == proc.pid
    rerun = run_study(study, runs.parent, only=run_dir.name)  # the dead process's lock is taken over
    assert [o.status for o in rerun] == ["done"]
    record = read_record(run_dir)
    (attempt,) = record["previous_attempts"]
    assert attempt["pid"] == proc.pid and (run_dir / attempt["partial_notebook"]).exists()
    assert not (run_dir / "lock").exists()


def test_a_student_waits_for_the_runs_it_may_take_its_teacher_from():
    from llmclf.study.predict import teacher_candidates

    def spec(notebook, label, **params):
        return RunSpec("s", notebook, params, label)

    head, head2 = spec("10_embedding_head", "head"), spec("10_embedding_head", "head (4-bit)", seed=1)
    instr, tfidf = spec("20_instruction_tuning", "instr"), spec("30_baselines", "tfidf")
    earlier = [head, head2, instr, tfidf]
    assert teacher_candidates(spec("40_distillation", "s", teacher_run="best"), earlier) == [head, head2, instr]
    assert teacher_candidates(spec("40_distillation", "s", teacher_run="label:head"), earlier) == [head, head2]
    assert teacher_candidates(spec("40_distillation", "s", teacher_run="label:tfidf"), earlier) == [tfidf]
    assert teacher_candidates(spec("40_distillation", "s", teacher_run=""), earlier) == []
    assert teacher_candidates(tfidf, earlier) == []


def test_side_by_side_a_student_of_the_best_starts_after_every_candidate_teacher(tmp_path, tiny_llama, tiny_bert,
                                                                                tiny_csv, monkeypatch):
    """Two workers, an embedding head and a student of the study's best LLM run: without the wait the student
    would start beside the head and find no finished teacher (or, in a bigger study, choose among the runs that
    happened to be finished)."""
    from llmclf.study.executors import DaskExecutor

    study = tmp_path / "distil.yaml"
    study.write_text(f"""
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 32}}
runs:
  - notebook: 10_embedding_head
    label: head
    params: {{model: "{tiny_llama}", epochs: 2.0, learning_rate: 0.005}}
  - notebook: 40_distillation
    label: student of the best
    params: {{model: "{tiny_bert}", teacher_run: best}}
""")
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))
    outcomes = run_study(study, tmp_path / "runs",
                         executor=DaskExecutor(workers=2, dashboard_address=None, poll_seconds=0.5))
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    head, student = (read_record(tmp_path / "runs" / "distil" / o.spec.run_id) for o in outcomes)
    assert student["teacher"]["run_id"] == head["run_id"]
    assert student["started_at"] >= head["finished_at"]
