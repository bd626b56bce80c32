"""The claim on a run folder (exactly once) and the build lock of shared caches, without running notebooks."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmclf.study.locks import LOCK_FILE, LOCK_INFO_FILE, claim_run, claimed, read_lock_info

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from llmclf.study.locks import claim_run
claim = claim_run(sys.argv[1])
print("acquired" if claim.acquired else "refused", flush=True)
time.sleep(60)
"""


def holder(run_dir):
    """A process that claims `run_dir` and sleeps: its pid, once it holds the claim."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "acquired"
    return proc


def test_a_live_holder_keeps_its_claim_and_its_record(tmp_path):
    from llmclf.study.runner import RunOutcome, execute
    from llmclf.study.spec import RunSpec

    spec = RunSpec("s", "30_baselines", {"baseline": "tfidf"}, "tfidf")
    run_dir = tmp_path / "s" / spec.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps({"status": "failed", "error": "an earlier attempt"}))
    proc = holder(run_dir)
    try:
        claim = claim_run(run_dir)
        assert not claim.acquired and claim.holder["pid"] == proc.pid
        assert f"pid {proc.pid}" in claim.message()
        outcome = execute(spec, tmp_path)  # the runner: skipped, and says by whom
        assert isinstance(outcome, RunOutcome) and outcome.status == "locked" and f"pid {proc.pid}" in outcome.error
        # the record belongs to the holder: not removed, not rewritten
        assert json.loads((run_dir / "record.json").read_text())["error"] == "an earlier attempt"
        assert (run_dir / LOCK_FILE).exists() and read_lock_info(run_dir)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("reaped", [True, False], ids=["gone", "zombie"])
def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, reaped):
    proc = holder(tmp_path)
    info = read_lock_info(tmp_path)
    assert {"host", "pid", "started_at", "worker", "cuda_visible_devices"} <= set(info)
    proc.kill()  # kill -9: it leaves its lock and lock.json behind
    if reaped:
        proc.wait()
    else:
        time.sleep(0.5)  # killed, not yet waited for: a zombie, which a pid probe still finds
    try:
        with claimed(tmp_path) as claim:
            assert claim.acquired
            assert claim.previous["pid"] == proc.pid  # the attempt that died, for the run's record
            assert [a["pid"] for a in claim.previous_attempts] == [proc.pid]
            assert read_lock_info(tmp_path)["pid"] == os.getpid()
        assert not (tmp_path / LOCK_FILE).exists() and not (tmp_path / LOCK_INFO_FILE).exists()
    finally:
        proc.wait()


def test_a_holder_on_another_host_is_taken_over_only_when_proven_gone(tmp_path):
    other = {"host": "elsewhere", "pid": 1234, "worker": "tcp://10.0.0.9:4000", "scheduler": "tcp://10.0.0.1:8786",
             "started_at": "2026-01-01T00:00:00+00:00"}
    (tmp_path / LOCK_FILE).write_text("1234\nelsewhere\n")
    (tmp_path / LOCK_INFO_FILE).write_text(json.dumps(other))
    assert not claim_run(tmp_path).acquired  # cannot be probed from here
    assert not claim_run(tmp_path, holder_gone=lambda info: False).acquired
    with claimed(tmp_path, holder_gone=lambda info: info["worker"] == other["worker"]) as claim:
        assert claim.acquired and claim.previous["host"] == "elsewhere"


def test_one_claim_among_racing_threads(tmp_path):
    wins = []

    def contend():
        claim = claim_run(tmp_path)
        if claim.acquired:
            wins.append(claim)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    wins[0].release()
    assert claim_run(tmp_path).acquired


def test_build_lock_makes_a_second_builder_wait(tmp_path):
    from llmclf.locking import build_lock

    target = tmp_path / "cache" / "entry"
    code = (f"import time\nfrom llmclf.locking import build_lock\nwith build_lock({str(target)!r}):\n"
            "    print('building', flush=True)\n    time.sleep(1.5)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "building"
    start = time.perf_counter()
    with build_lock(target):
        waited = time.perf_counter() - start
    proc.wait()
    assert waited > 0.5
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "building"
    os.kill(proc.pid, signal.SIGKILL)  # a builder that dies does not block the next: the OS drops its lock
    proc.wait()
    start = time.perf_counter()
    with build_lock(target):
        assert time.perf_counter() - start < 1.0
