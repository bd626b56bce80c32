"""What a 4-bit or 8-bit base costs and saves on this machine (issue 15, point 4): weight memory, peak memory, speed.

    python bench/quantization.py [--texts 8] [--max-length 64] [--out bench/results/quantization-<cpu>.json]

Each variant (the base unquantized at dtype auto, 8-bit, 4-bit NF4) runs in its own process, so that its peak
resident memory is its own: load the embedding head's model, then embed `--texts` bbc-news texts (median of 3).
bitsandbytes on a CPU dequantizes every weight on every forward pass: it saves the weights' memory and costs time;
its point is a GPU's memory. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(quantization: str, n_texts: int, max_length: int, repeats: int) -> dict:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.config import EmbeddingHeadConfig
    from llmclf.data.tasks import load_task
    from llmclf.models.registry import resolve_model

    path = str(resolve_model("smollm2-135m"))
    texts = load_task("bbc-news").test.texts[:n_texts]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=path, quantization=quantization, max_length=max_length),
                                  path)
    clf.labels, clf.multi_label = ["a", "b", "c", "d", "e"], False
    clf._build(5, False)
    load = time.perf_counter() - start
    inner = clf.net.model.get_base_model()
    weights_mb = inner.get_memory_footprint() / 2**20
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clf.predict_proba(texts[:2])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        proba = clf.predict_proba(texts)
        times.append(time.perf_counter() - t)
    t = statistics.median(times)
    return {"quantization": quantization, "dtype": str(next(p for p in inner.parameters()
                                                            if p.is_floating_point()).dtype),
            "weights_mb": weights_mb, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_after_load_mb": rss_loaded, "rss_before_mb": rss_before, "load_seconds": load,
            "examples_per_second": n_texts / t, "seconds_all": times, "threads": torch.get_num_threads(),
            "first_proba": proba[0].tolist()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.texts, args.max_length, args.repeats)))
        return 0
    rows = []
    for q in ("none", "8bit", "4bit"):
        out = subprocess.run([sys.executable, __file__, "--one", q, "--texts", str(args.texts), "--max-length",
                              str(args.max_length), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{q:>5}: weights {r['weights_mb']:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"{r['examples_per_second']:.2f} ex/s", flush=True)
    from bench import cpu_name, slug  # noqa: E402

    base = rows[0]["examples_per_second"]
    print(f"\n{cpu_name()}; SmolLM2-135M embedding head, {args.texts} bbc-news texts, max_length {args.max_length}")
    print("| base | weights MB | peak RSS MB | ex/s | vs unquantized |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['quantization']} ({r['dtype']}) | {r['weights_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
              f"{r['examples_per_second']:.2f} | {r['examples_per_second'] / base:.2f}x |")
    result = {"cpu": cpu_name(), "texts": args.texts, "max_length": args.max_length, "rows": rows,
              "load_average": os.getloadavg()}
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"quantization-{slug(cpu_name())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
