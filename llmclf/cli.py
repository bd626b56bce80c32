"""Command line: `llmclf fetch`, `llmclf run`, `llmclf report`, `llmclf params`, `llmclf predict`, `llmclf export`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmclf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="download, verify and unpack the pinned models and data into the cache")
    p.add_argument("names", nargs="*", help="artifact names (default: all)")
    p.add_argument("--list", action="store_true", help="list the artifacts and whether they are cached")
    p.add_argument("--verify", action="store_true",
                   help="check every file of the built artifacts against its manifest's sha256")
    p.add_argument("--rebuild", action="store_true",
                   help="remove the built artifacts named and build them again from the verified wheels")

    p = sub.add_parser("run", help="execute a study's notebooks over its grid (skips runs already done)")
    p.add_argument("study_file", help="params/<study>.yaml")
    p.add_argument("--runs-root", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--only", help="run only the runs whose id or label contains this text")
    p.add_argument("--dry-run", action="store_true",
                   help="expand and validate, read the data, list the runs with their task, split sizes after caps, "
                        "model and dtype; run nothing")
    p.add_argument("--stall-minutes", type=float, default=None,
                   help="flag a run whose progress has not moved for this long (default: $LLMCLF_STALL_SECONDS "
                        "seconds, else 10 minutes)")
    p.add_argument("--by-seed", action="store_true",
                   help="run every configuration's first seed before any second seed")
    p.add_argument("--force", action="store_true", help="run every run again, done or not")
    p.add_argument("--rerun", choices=("failed", "stale"),
                   help="failed: only the runs whose record says failed; stale: also the done runs made by other "
                        "code (their record's code_version differs from this llmclf's)")
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
    p.add_argument("study", help="study file (params/<study>.yaml) or study name; the report shows the runs the "
                   "study file names (found as params/<name>.yaml), or every record when there is no study file")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--reports-root", default="reports")
    p.add_argument("--strict", action="store_true",
                   help="leave records that the study file no longer names out entirely (default: listed in a note)")

    p = sub.add_parser("confirm", help="score the kept models on the test rows the study's max_test left out "
                       "(the report's held-out confirmation)")
    p.add_argument("study", help="study file (params/<study>.yaml) or study name")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--max-held-out", type=int, default=None, metavar="N",
                   help="score at most N held-out rows a task (a stratified sample, the same rows for every run); "
                   "default: the study file's max_held_out, else every row")

    p = sub.add_parser("params", help="list a notebook's parameters with their help text")
    p.add_argument("notebook", help="e.g. 10_embedding_head")

    p = sub.add_parser("predict", help="classify texts with a run's kept model (or an exported folder)")
    p.add_argument("run", help="a run folder, an exported folder, or a run id (with --study, or found in --runs-root)")
    p.add_argument("input", help="a CSV, JSON Lines or Parquet file, or - for one text a line on standard input")
    p.add_argument("--output", "-o", help="OUT.csv, OUT.jsonl or OUT.parquet (default: CSV on standard output)")
    p.add_argument("--text-field", action="append", dest="text_fields",
                   help="text column(s) of the input (repeat for several; default: the run's text_fields)")
    p.add_argument("--study", help="the study of a run id")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--model-path", help="the base model's folder, when it is not where it was at training")

    p = sub.add_parser("export", help="copy a run's kept model into a folder to hand on, with a model card")
    p.add_argument("run", help="a run folder, or a run id (with --study, or found in --runs-root)")
    p.add_argument("dest", help="the folder to write (new or empty)")
    p.add_argument("--merge", action="store_true",
                   help="embedding head and encoder: fold the LoRA weights into the base (a plain "
                        "AutoModelForSequenceClassification folder)")
    p.add_argument("--study", help="the study of a run id")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--model-path", help="the base model's folder, when it is not where it was at training")

    args = parser.parse_args(argv)
    from .artifacts import ArtifactError
    from .config import ConfigError

    try:
        if args.command == "fetch":
            from . import artifacts

            if args.list:
                for a in artifacts.describe():
                    print(f"{a['name']:14s} {a['kind']:5s} {'cached' if a['cached'] else 'missing':7s} "
                          f"{a['description']}")
                return 0
            names = args.names or list(artifacts.ARTIFACTS)
            unknown = [n for n in names if n not in artifacts.ARTIFACTS]
            if unknown:
                raise ConfigError(f"unknown artifact(s) {unknown}; known: {', '.join(sorted(artifacts.ARTIFACTS))}")
            for name in names:
                if args.rebuild:
                    artifacts.remove(name)
                print(f"{name}: {artifacts.fetch(name, verify=args.verify)}")
            return 0
        if args.command == "run":
            from .study.spec import load_study

            if args.dry_run:
                from .study.runner import check_only, format_sizes, order_runs, plan

                specs = order_runs(load_study(args.study_file), args.by_seed)  # in the order they would start
                if args.only:
                    specs = check_only(specs, args.only)
                for row in plan(specs):
                    print(f"{row['run_id']}  seed {row['seed']!s:3}  {row['task']:22s}  "
                          f"{format_sizes(row['sizes']):32s}  model {row['model']}  dtype {row['dtype']}  "
                          f"{row['label']}")
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
            stall = None if args.stall_minutes is None else args.stall_minutes * 60
            outcomes = run_study(args.study_file, args.runs_root, only=args.only, by_seed=args.by_seed,
                                 stall_seconds=stall, force=args.force, rerun=args.rerun, executor=executor)
            if any(o.status in ("interrupted", "cancelled") for o in outcomes):
                return 130
            return 1 if any(o.status == "failed" for o in outcomes) else 0
        if args.command == "report":
            from .analysis.report import render_report

            name, study_runs = _study_runs(args.study)
            if study_runs is None:
                print(f"llmclf report: no study file found for {args.study!r} (looked for params/{name}.yaml): "
                      f"reporting every record under {args.runs_root}/{name}/", file=sys.stderr)
            print(render_report(name, args.runs_root, args.reports_root, study_runs=study_runs, strict=args.strict))
            return 0
        if args.command == "confirm":
            from .study.confirm import confirm_study

            name, study_runs = _study_runs(args.study)
            ids = list((study_runs or {}).get("runs") or {}) or None
            cap = (study_runs or {}).get("max_held_out")
            if args.max_held_out is not None:
                from .study.spec import study_max_held_out

                cap = study_max_held_out({"max_held_out": args.max_held_out}, "--max-held-out")
            out = confirm_study(name, args.runs_root, run_ids=ids, max_held_out=cap)
            print(f"llmclf confirm {name}: {len(out['scored'])} run(s) scored on the held-out test rows, "
                  f"{len(out['skipped'])} skipped, {len(out['failed'])} failed")
            for run_id, why in {**out["skipped"], **out["failed"]}.items():
                if why != "already confirmed":
                    print(f"  {run_id}: {why}")
            return 1 if out["failed"] else 0
        if args.command == "params":
            from .config import config_for

            print(config_for(args.notebook).help())
            return 0
        if args.command == "predict":
            from .study.predict import predict_file

            predict_file(args.run, args.input, args.output, study=args.study, runs_root=args.runs_root,
                         text_fields=args.text_fields, model_path=args.model_path)
            return 0
        if args.command == "export":
            from .study.export import export

            print(export(args.run, args.dest, merge=args.merge, study=args.study, runs_root=args.runs_root,
                         model_path=args.model_path))
            return 0
    except KeyboardInterrupt:
        print(f"llmclf {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, ArtifactError) as e:
        print(f"llmclf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # PredictError and the data loader's errors: a message for the user, no traceback
        if args.command not in ("predict", "export"):
            raise
        print(f"llmclf {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


def _study_runs(study: str) -> tuple[str, dict | None]:
    """(study name, the study file's expansion for the report) from a study file or a name; None: no file."""
    from pathlib import Path

    from .config import check_name
    from .study.spec import load_study, read_yaml, study_contrasts, study_max_held_out

    path = Path(study)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        check_name(study, "study name")
        path = Path("params") / f"{study}.yaml"
        if not path.is_file():
            return study, None
    specs = load_study(path)
    doc = read_yaml(path) or {}
    runs = {s.run_id: {"label": s.label, "notebook": s.notebook, "task": s.task} for s in specs}
    return specs[0].study, {"study": specs[0].study, "file": str(path), "description": doc.get("description") or "",
                            "runs": runs, "contrasts": study_contrasts(doc, specs, path),
                            "max_held_out": study_max_held_out(doc, path)}


if __name__ == "__main__":
    sys.exit(main())
