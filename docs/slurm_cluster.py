"""A Dask cluster on SLURM for `llmclf run --scheduler ...` (an example; it needs a SLURM cluster to run).

    pip install dask-jobqueue
    python docs/slurm_cluster.py --jobs 4 &        # prints the scheduler's address, keeps the cluster up
    llmclf run params/patents.yaml --scheduler tcp://<login-node>:8786 --gpus-per-run 1

Each SLURM job is one Dask worker with one thread and one GPU (`--resources GPU=1`), so one run at a time per job;
SLURM sets CUDA_VISIBLE_DEVICES in the job and the run's kernel inherits it. The checkout, its virtual environment
and the runs folder must be on a filesystem every node mounts (the same absolute paths): workers import llmclf
from it and write runs/<study>/<run id>/ there. `llmclf run` checks this before the first run.
"""

import argparse
import time

import dask
from dask_jobqueue import SLURMCluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="SLURM jobs, one worker and one GPU each")
    parser.add_argument("--queue", default="gpu", help="SLURM partition")
    parser.add_argument("--walltime", default="04:00:00")
    parser.add_argument("--retries", type=int, default=1, help="times a run whose worker died is run again")
    args = parser.parse_args()
    # the scheduler (in this process) retries a task whose worker died this many times: `llmclf run --retries`
    # only sets it for the local clusters it starts itself
    dask.config.set({"distributed.scheduler.allowed-failures": args.retries})
    cluster = SLURMCluster(
        queue=args.queue, cores=1, processes=1, memory="32GB", walltime=args.walltime,
        job_extra_directives=["--gres=gpu:1"],
        worker_extra_args=["--nthreads", "1", "--resources", "GPU=1"],
        scheduler_options={"port": 8786, "dashboard_address": ":8787"},
        # the workers run with the environment llmclf runs in (the shared checkout's virtual environment)
        job_script_prologue=["source .venv/bin/activate"],
    )
    cluster.scale(jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}\ndashboard: {cluster.dashboard_link}", flush=True)
    print(cluster.job_script())
    try:
        while True:
            time.sleep(60)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
