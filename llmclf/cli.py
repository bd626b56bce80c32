"""Command line: `llmclf fetch`, `llmclf run`, `llmclf report`, `llmclf params`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="download, verify and unpack the pinned models and data into the cache")
    p.add_argument("names", nargs="*", help="artifact names (default: all)")
    p.add_argument("--list", action="store_true", help="list the artifacts and whether they are cached")

    p = sub.add_parser("run", help="execute a study's notebooks over its grid (skips runs already done)")
    p.add_argument("study_file", help="params/<study>.yaml")
    p.add_argument("--runs-root", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--only", help="run only the runs whose id or label contains this text")
    p.add_argument("--dry-run", action="store_true", help="expand and validate, list the runs, run nothing")
    p.add_argument("--by-seed", action="store_true",
                   help="run every configuration's first seed before any second seed")
    # issue 13: parallel runs on a Dask cluster
    p.add_argument("--workers", type=int, metavar="N",
                   help="run N runs at once on a local Dask cluster (N worker processes, one thread each)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="submit the runs to an existing Dask cluster (e.g. tcp://host:8786, dask-jobqueue on SLURM); "
                        "the runs folder must be on a filesystem its workers share")
    p.add_argument("--gpus-per-run", type=int, metavar="K",
                   help="each run holds K units of the workers' GPU resource; its kernel sees those devices "
                        "(CUDA_VISIBLE_DEVICES)")
    p.add_argument("--retries", type=int, default=1,
                   help="with --workers: times a run whose worker died is run again on another (default 1); "
                        "with --scheduler the scheduler's own distributed.scheduler.allowed-failures decides")

    p = sub.add_parser("report", help="render reports/<study>/index.html from the study's records")
    p.add_argument("study", help="study name (the params file's stem)")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--reports-root", default="reports")

    p = sub.add_parser("params", help="list a notebook's parameters with their help text")
    p.add_argument("notebook", help="e.g. 10_embedding_head")

    args = parser.parse_args(argv)
    from .config import ConfigError

    try:
        if args.command == "fetch":
            from . import artifacts

            if args.list:
                for a in artifacts.describe():
                    print(f"{a['name']:14s} {a['kind']:5s} {'cached' if a['cached'] else 'missing':7s} "
                          f"{a['description']}")
                return 0
            for name in args.names or list(artifacts.ARTIFACTS):
                print(f"{name}: {artifacts.fetch(name)}")
            return 0
        if args.command == "run":
            from .study.spec import load_study

            if args.dry_run:
                from .study.runner import order_runs

                specs = order_runs(load_study(args.study_file), args.by_seed)  # in the order they would start
                for s in specs:
                    task = s.task or s.params.get("dataset", "")
                    print(f"{s.run_id}  seed {s.params.get('seed', '-')!s:3}  {task:22s}  {s.label}")
                print(f"{len(specs)} runs")
                return 0
            from .study.runner import run_study

            executor = None
            if args.workers is not None or args.scheduler is not None:  # issue 13
                from .study.executors import DaskExecutor

                if args.workers is not None and args.scheduler is not None:
                    raise ConfigError("give --workers (a local cluster) or --scheduler (an existing one), not both")
                executor = DaskExecutor(workers=args.workers, scheduler=args.scheduler,
                                        gpus_per_run=args.gpus_per_run, retries=args.retries)
            elif args.gpus_per_run is not None:
                raise ConfigError("--gpus-per-run needs --workers or --scheduler")
            outcomes = run_study(args.study_file, args.runs_root, only=args.only, by_seed=args.by_seed,
                                 executor=executor)
            if any(o.status in ("interrupted", "cancelled") for o in outcomes):
                return 130
            return 1 if any(o.status == "failed" for o in outcomes) else 0
        if args.command == "report":
            from .analysis.report import render_report

            print(render_report(args.study, args.runs_root, args.reports_root))
            return 0
        if args.command == "params":
            from .config import config_for

            print(config_for(args.notebook).help())
            return 0
    except (ConfigError, FileNotFoundError) as e:
        print(f"llmclf {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
