"""Throughput of llmclf against the authors' public recipe, side by side in one process (issue 15).

    python bench/bench.py [--quick] [--out PATH] [--lengths 256 64] [--texts 16] [--repeats 3]
    make bench            # the full version;  make bench-quick  # about a minute

Same model (SmolLM2-135M-Instruct), same bbc-news texts (file order), same max_length, for every row:
- the matmul peak in float32 and bfloat16 (GFLOP/s; measured at the start and again at the end: the drift shows
  how noisy the machine was);
- the recipe: plain transformers `AutoModelForSequenceClassification` in float32, batch 4, dynamic padding, texts in
  file order (inference); Trainer with LoRA r=8 on q,k,v,o, batch 8 (training);
- llmclf at its defaults (dtype auto, eval_batch_size 8, length-sorted batches): embedding-head inference and
  training, the 4-bit base, instruction tuning's label scoring and greedy generation (zero-shot model: the speed
  of a trained adapter is the same), frozen-embedding extraction; and TF-IDF + logistic regression fitted on
  10,000 documents (uspto-10k when the shared data is there, else bbc-news repeated).
Each figure is the median of `--repeats` runs, with its ratio to the recipe (inference rows to recipe inference,
training rows to recipe training) and the model-FLOPs utilization against the fp32 peak taken in this run:
2 (inference) or 4 (LoRA training: forward, and the backward to the activations only) x non-embedding parameters
x real tokens / time / peak. Not part of the test suite. Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no load reports; Trainer then hides its progress bar

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

N_LABELS = 5
_recipe_model_holder: dict = {}  # the recipe's model, for counting non-embedding parameters


# ---------------------------------------------------------------------------------------------------------------
# measuring


def median_time(fn, repeats: int, warmup=None) -> tuple[float, list[float]]:
    if warmup is not None:
        warmup()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def matmul_peak(dtype: torch.dtype, repeats: int = 3) -> float:
    """GFLOP/s of a square matrix product, the median of `repeats`; sized to take ~0.1-0.3 s each."""
    n = 1024 if dtype == torch.float32 else 384
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    a @ b
    once = time.perf_counter() - start
    k = max(1, int(0.2 / max(once, 1e-6)))

    def run():
        for _ in range(k):
            a @ b

    t, _ = median_time(run, repeats)
    return 2 * n**3 * k / t / 1e9


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def non_embedding_params(model) -> int:
    inner = model
    emb = inner.get_input_embeddings().weight.numel() if hasattr(inner, "get_input_embeddings") else 0
    total = sum(p.numel() for p in model.parameters())
    return int(total - emb)


# ---------------------------------------------------------------------------------------------------------------
# the recipe (what the paper's authors publish: plain transformers, float32)


def recipe_inference(model_path: str, texts: list[str], max_length: int, batch_size: int = 4):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=N_LABELS,
                                                               dtype=torch.float32).eval()
    model.config.pad_token_id = tok.pad_token_id
    _recipe_model_holder.setdefault("model", model)

    def run(sub=texts):
        with torch.no_grad():
            for i in range(0, len(sub), batch_size):
                enc = tok(sub[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
                model(**enc).logits
    return model, run


def recipe_training(model_path: str, texts: list[str], max_length: int, batch_size: int = 8, bf16: bool = False):
    """The recipe's LoRA training, float32 (or with Trainer's bf16 autocast over float32 weights: `bf16`)."""
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=N_LABELS, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="SEQ_CLS",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    enc = tok(texts, truncation=True, max_length=max_length)
    data = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": i % N_LABELS}
            for i in range(len(texts))]
    out = tempfile.mkdtemp(prefix="llmclf-bench-")

    def run():
        # the arguments are made with their Trainer: TrainingArguments resets accelerate's process-wide mixed
        # precision, which another row's Trainer (bf16) set in between (made at build time, this row crashed on a
        # CPU with native bf16: "AcceleratorState has already been initialized and cannot be changed")
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=1,
                                 learning_rate=2e-4, save_strategy="no", report_to="none", logging_strategy="no",
                                 use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, bf16=bf16)
        Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok)).train()
    return model, run


# ---------------------------------------------------------------------------------------------------------------
# llmclf at its defaults


def head_config(model_path, max_length, **kw):
    from llmclf.config import EmbeddingHeadConfig

    return EmbeddingHeadConfig(model=model_path, max_length=max_length, **kw)


def llmclf_head(model_path: str, max_length: int, **kw):
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier

    clf = EmbeddingHeadClassifier(head_config(model_path, max_length, **kw), model_path)
    clf.labels, clf.multi_label = [f"l{i}" for i in range(N_LABELS)], False
    clf.fit_stats.update(clf.precision.record())
    clf._build(N_LABELS, False)
    return clf


def llmclf_head_inference(model_path, texts, max_length, **kw):
    clf = llmclf_head(model_path, max_length, **kw)
    return clf, (lambda sub=texts: clf.predict_proba(sub))


def llmclf_head_training(model_path, texts, max_length, **kw):
    from llmclf.approaches.training import TokenizedDataset, train_with_trainer

    clf = llmclf_head(model_path, max_length, **kw)
    y = np.arange(len(texts)) % N_LABELS
    data = TokenizedDataset(clf.tokenizer, texts, max_length, labels=y, append_token=clf.append_token)
    return clf, (lambda: train_with_trainer(clf.net, data, clf.tokenizer, clf.cfg))


def bench_task(texts: list[str]):
    from llmclf.data.tasks import Split, Task

    labels = [f"label{i}" for i in range(N_LABELS)]
    y = np.arange(len(texts)) % N_LABELS
    split = Split(texts=list(texts), y=y, ids=[str(i) for i in range(len(texts))])
    return Task(name="bench", labels=labels, multi_label=False, train=split, validation=split, test=split)


def llmclf_instruction(model_path, texts, max_length, mode: str, bbc_labels: list[str]):
    from llmclf.approaches.instruction import InstructionClassifier
    from llmclf.config import InstructionConfig
    from llmclf.data.tasks import Split, Task

    cfg = InstructionConfig(model=model_path, zero_shot=True, predict_mode=mode, max_length=max_length,
                            max_new_tokens=8)
    y = np.arange(len(texts)) % len(bbc_labels)
    split = Split(texts=list(texts), y=y, ids=[str(i) for i in range(len(texts))])
    task = Task(name="bench", labels=sorted(bbc_labels), multi_label=False, train=split, validation=split,
                test=split)
    clf = InstructionClassifier(cfg, model_path)
    clf._build(task)
    clf.model.eval()
    return clf, (lambda sub=texts: clf.predict_proba(sub))


def llmclf_frozen(model_path, texts, max_length):
    from transformers import AutoModel

    from llmclf.approaches.frozen import embed_texts
    from llmclf.config import BaselineConfig
    from llmclf.models.loading import load_pretrained, load_tokenizer

    cfg = BaselineConfig(baseline="frozen", model=model_path, pooling="mean", max_length=max_length)
    tok = load_tokenizer(model_path)
    model = load_pretrained(AutoModel, model_path, precision=cfg.dtype).eval()
    return model, (lambda sub=texts: embed_texts(model, tok, sub, pooling="mean", max_length=max_length,
                                                 batch_size=cfg.eval_batch_size, causal=True))


def tfidf_task(n_docs: int, data_dir: str | None):
    """A single-label task with `n_docs` training documents: uspto-10k (sections) when found, else bbc-news
    repeated. Validation and test are the task's own."""
    from llmclf.data.tasks import Split, Task, load_task

    try:
        task = load_task("uspto-10k", label_level="section", data_dir=data_dir)
        name = "uspto-10k sections"
    except Exception:  # noqa: BLE001 - no shared data here
        task = load_task("bbc-news")
        name = "bbc-news (repeated)"
    pool_texts = task.train.texts + task.test.texts  # 8,572 labelled abstracts in the train and test splits
    pool_y = np.concatenate([task.train.y, task.test.y])
    idx = np.arange(n_docs) % len(pool_texts)
    train = Split(texts=[pool_texts[i] for i in idx], y=pool_y[idx], ids=[str(i) for i in range(n_docs)])
    return Task(name=name, labels=task.labels, multi_label=False, train=train, validation=task.validation,
                test=task.validation), name, len(set(idx.tolist()))


# ---------------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 tokens, 8 texts, no 4-bit / bf16 / TF-IDF 10k")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--texts", type=int, default=None, help="texts per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tfidf-docs", type=int, default=None)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", default=None, help="folder holding uspto-10k (default: the shared data)")
    parser.add_argument("--skip", nargs="*", default=[], help="row groups to skip: train, 4bit, bf16, mixed, instruction, "
                        "frozen, tfidf")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one a core)")
    parser.add_argument("--out", default=None, help="JSON path (default: bench/results/<cpu>.json)")
    args = parser.parse_args(argv)
    lengths = args.lengths or ([64] if args.quick else [256, 64])
    n_texts = args.texts or (8 if args.quick else 16)
    tfidf_docs = args.tfidf_docs or (2000 if args.quick else 10_000)
    skip = set(args.skip) | ({"4bit", "bf16"} if args.quick else set())
    if args.threads:
        torch.set_num_threads(args.threads)
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore")
    hf_logging.disable_progress_bar()

    from llmclf.data.tasks import load_task
    from llmclf.models.hardware import cpu_has_native_bf16, resolve_dtype
    from llmclf.models.registry import resolve_model

    model_path = str(resolve_model(args.model))
    bbc = load_task("bbc-news")
    texts = bbc.test.texts[:n_texts]  # the task's test split in its order
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    started = time.time()
    resolved = resolve_dtype("auto")
    emulated_bf16 = not cpu_has_native_bf16() and resolved != "bfloat16"
    few = max(2, n_texts // 4)  # emulated bf16 is slow: fewer texts

    # Every row is built first; then each round times every row once, so that a busy machine slows every row
    # alike (the peak is measured in every round too), and each figure is the median over the rounds.
    specs = []  # (name, kind, length, build, tokens per example, flops factor, examples, group, note)
    for L in lengths:
        toks = float(np.mean([min(len(tok(t)["input_ids"]), L) for t in texts]))
        toks_eos = float(np.mean([min(len(tok(t)["input_ids"]), L - 1) + 1 for t in texts]))
        toks_few = float(np.mean([min(len(tok(t)["input_ids"]), L - 1) + 1 for t in texts[:few]]))
        specs += [
            ("recipe fp32 inference (batch 4)", "inference", L, lambda L=L: recipe_inference(model_path, texts, L),
             toks, 2, n_texts, None, ""),
            (f"llmclf head inference ({resolved})", "inference", L,
             lambda L=L: llmclf_head_inference(model_path, texts, L), toks_eos, 2, n_texts, None, ""),
            ("llmclf head inference, 4-bit base", "inference", L,
             lambda L=L: llmclf_head_inference(model_path, texts, L, quantization="4bit"), toks_eos, 2, n_texts,
             "4bit", f"NF4, compute dtype {resolved}"),
            ("llmclf head inference, bf16 (emulated)", "inference", L,
             lambda L=L: llmclf_head_inference(model_path, texts[:few], L, dtype="bfloat16"), toks_few, 2, few,
             "bf16" if emulated_bf16 and L == min(lengths) else "skip", f"explicit dtype bfloat16, {few} texts"),
            ("llmclf frozen embeddings (mean)", "inference", L, lambda L=L: llmclf_frozen(model_path, texts, L),
             toks, 2, n_texts, "frozen", ""),
            # the prompt adds the instructions and the label list: the text keeps about L tokens
            ("llmclf instruction score (5 labels)", "inference", L,
             lambda L=L: llmclf_instruction(model_path, texts, L + 64, "score", bbc.labels), None, 2, n_texts,
             "instruction", "zero-shot model, max_length L+64 (prompt)"),
            ("llmclf instruction generate (<= 8 tokens)", "inference", L,
             lambda L=L: llmclf_instruction(model_path, texts, L + 64, "generate", bbc.labels), None, 2, n_texts,
             "instruction", "zero-shot model, max_length L+64 (prompt)"),
            ("recipe fp32 training (Trainer, LoRA)", "training", L, lambda L=L: recipe_training(model_path, texts, L),
             toks, 4, n_texts, "train", "batch 8"),
            (f"llmclf head training ({resolved})", "training", L,
             lambda L=L: llmclf_head_training(model_path, texts, L), toks_eos, 4, n_texts, "train", "batch 8"),
            # mixed precision (issue 24): where bf16 is native, `auto` trains in bf16 under autocast over float32
            # masters; beside it the same code forced to pure float32, and the recipe with Trainer's bf16 autocast
            ("llmclf head inference, float32 forced", "inference", L,
             lambda L=L: llmclf_head_inference(model_path, texts, L, dtype="float32"), toks_eos, 2, n_texts,
             "mixed" if resolved != "float32" else "skip", "pure float32, to compare with auto's bf16"),
            ("llmclf head training, float32 forced", "training", L,
             lambda L=L: llmclf_head_training(model_path, texts, L, dtype="float32"), toks_eos, 4, n_texts,
             "mixed" if resolved != "float32" else "skip", "batch 8; pure float32"),
            ("recipe training, Trainer bf16 autocast", "training", L,
             lambda L=L: recipe_training(model_path, texts, L, bf16=True), toks, 4, n_texts,
             "mixed" if resolved == "bfloat16" else "skip", "batch 8; the recipe's own mixed precision"),
            # the kept speed-up: lora_dropout 0 (the default) against the recipe's 0.05
            ("llmclf head training, lora_dropout 0.05", "training", L,
             lambda L=L: llmclf_head_training(model_path, texts, L, lora_dropout=0.05), toks_eos, 4, n_texts,
             "train", "batch 8; the default is 0"),
            # where instruction scoring's time goes: the same length with the prompt inside it (the text gets
            # fewer tokens), and 2 labels instead of 5 (the cost of a label)
            ("llmclf head inference, eval_batch_size 16", "inference", L,
             lambda L=L: llmclf_head_inference(model_path, texts, L, eval_batch_size=16), toks_eos, 2, n_texts,
             None, "the default before: 8 is the default"),
            ("llmclf instruction score, prompt within L", "inference", L,
             lambda L=L: llmclf_instruction(model_path, texts, L, "score", bbc.labels), None, 2, n_texts,
             "instruction" if L >= 128 else "skip", "zero-shot model, max_length L: prompt + text + answer"),
            ("llmclf instruction score (2 labels)", "inference", L,
             lambda L=L: llmclf_instruction(model_path, texts, L + 64, "score", bbc.labels[:2]), None, 2, n_texts,
             "instruction", "zero-shot model, max_length L+64, 2 of the 5 labels"),
        ]
    specs = [s for s in specs if s[7] not in skip and s[7] != "skip"]
    rows: list[dict] = []
    peaks: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    n_params = None
    for length in lengths:  # one length at a time: its models are held together, then freed
        built = []
        for name, kind, L, build, tokens, factor, count, group, note in specs:
            if L != length:
                continue
            t0 = time.perf_counter()
            model, fn = build()
            load = time.perf_counter() - t0
            if kind == "inference":
                fn(texts[:2])  # warm-up: first-call costs (oneDNN, bitsandbytes) are not throughput
            built.append(dict(name=name, kind=kind, max_length=L, fn=fn, tokens=tokens, factor=factor,
                              count=count, note=note, load=load, times=[]))
            del model
            print(f"  built {name} L={L} ({load:.1f} s)", flush=True)
        if n_params is None and "model" in _recipe_model_holder:
            n_params = non_embedding_params(_recipe_model_holder["model"])
        for r in range(args.repeats):
            peaks["float32"].append(matmul_peak(torch.float32, 1))
            peaks["bfloat16"].append(matmul_peak(torch.bfloat16, 1))
            for row in built:
                t0 = time.perf_counter()
                row["fn"]()
                row["times"].append(time.perf_counter() - t0)
            print(f"  L={length} round {r + 1}/{args.repeats}: fp32 peak {peaks['float32'][-1]:.1f} GFLOP/s; ex/s "
                  + ", ".join(f"{b['name']} {b['count'] / b['times'][-1]:.2f}" for b in built), flush=True)
        for b in built:
            t = statistics.median(b["times"])
            rows.append({"name": b["name"], "kind": b["kind"], "max_length": b["max_length"], "examples": b["count"],
                         "seconds": t, "seconds_all": b["times"], "examples_per_second": b["count"] / t,
                         "load_seconds": b["load"], "note": b["note"], "tokens_per_example": b["tokens"],
                         "flops_factor": b["factor"]})
        built.clear()
        _recipe_model_holder.clear()
    peak = {k: statistics.median(v) for k, v in peaks.items()}
    print(f"matmul peak (median of rounds): float32 {peak['float32']:.1f} GFLOP/s, bfloat16 {peak['bfloat16']:.2f}",
          flush=True)
    for row in rows:
        if row["tokens_per_example"] is not None and n_params:
            # against the peak of the dtype the row computes in
            dtype = "bfloat16" if ("bf16" in row["name"] or "bfloat16" in row["name"]) else "float32"
            row["mfu"] = (row["flops_factor"] * n_params * row["tokens_per_example"] * row["examples"]
                          / row["seconds"] / (peak[dtype] * 1e9))
            row["mfu_against"] = dtype
        recipe = next((r for r in rows if r["name"].startswith("recipe") and r["kind"] == row["kind"]
                       and r["max_length"] == row["max_length"]), None)
        if recipe and recipe is not row:
            row["vs_recipe"] = row["examples_per_second"] / recipe["examples_per_second"]

    if "tfidf" not in skip:
        from llmclf.approaches.tfidf import TfidfClassifier
        from llmclf.config import BaselineConfig

        task, source, distinct = tfidf_task(tfidf_docs, args.data_dir)
        clf = TfidfClassifier(BaselineConfig(baseline="tfidf"))
        cpu0 = time.process_time()
        repeats = 1 if tfidf_docs >= 5000 else args.repeats
        t, times = median_time(lambda: clf.fit(task), repeats)
        cpu = (time.process_time() - cpu0) / repeats  # scikit-learn's solvers use one core: a quiet machine's wall
        acc = float((clf.predict_proba(task.validation.texts).argmax(1) == task.validation.y).mean())
        rows.append({"name": "TF-IDF + logistic regression fit", "kind": "tfidf", "max_length": None,
                     "examples": tfidf_docs, "seconds": t, "seconds_all": times,
                     "examples_per_second": tfidf_docs / t, "note": f"{source}, {distinct} distinct documents; "
                     f"validation accuracy {acc:.3f}, C={clf.selection.C:g}",
                     "validation_accuracy": acc, "cpu_seconds": cpu,
                     "vectorize_seconds": clf.prediction_stats["feature_seconds"]["train_and_validation"],
                     "n_features": clf.prediction_stats["linear_model"]["n_features"]})
        rows[-1]["note"] += f"; {cpu:.1f} s of CPU time"
        print(f"  TF-IDF fit on {tfidf_docs} docs: {t:.1f} s, {cpu:.1f} s CPU ({source}; val acc {acc:.3f})",
              flush=True)

    peak_end = {"float32": matmul_peak(torch.float32, args.repeats)}
    peak["float32_rounds"], peak["bfloat16_rounds"] = peaks["float32"], peaks["bfloat16"]
    result = {
        "cpu": cpu_name(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu_capability":
        torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_has_native_bf16(), "resolved_dtype": resolved,
        "matmul_gflops": peak, "matmul_gflops_fp32_at_end": peak_end["float32"], "non_embedding_params": n_params,
        "texts": n_texts, "repeats": args.repeats, "quick": args.quick, "wall_seconds": time.time() - started,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None, "rows": rows,
    }
    print_table(result)
    out = Path(args.out) if args.out else (Path(__file__).parent / "results" /
                                           f"{slug(result['cpu'])}{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-").lower() or "cpu"


def print_table(result: dict) -> None:
    print(f"\n{result['cpu']} ({result['cpu_capability']}, native bf16: {result['native_bf16']}), "
          f"{result['threads']} threads, torch {result['torch']}; dtype auto -> {result['resolved_dtype']}")
    print(f"matmul peak fp32 {result['matmul_gflops']['float32']:.1f} GFLOP/s (at the end "
          f"{result['matmul_gflops_fp32_at_end']:.1f}), bf16 {result['matmul_gflops']['bfloat16']:.2f}; "
          f"median of {result['repeats']}, {result['texts']} bbc-news texts")
    print(f"| {'row':<40} | {'L':>4} | {'ex/s':>8} | {'vs recipe':>9} | {'MFU':>5} | note")
    print(f"|{'-' * 42}|{'-' * 6}|{'-' * 10}|{'-' * 11}|{'-' * 7}|------")
    for r in result["rows"]:
        vs = f"{r['vs_recipe']:.2f}x" if "vs_recipe" in r else ""
        mfu = f"{r['mfu']:.0%}" if "mfu" in r else ""
        print(f"| {r['name']:<40} | {r['max_length'] or '':>4} | {r['examples_per_second']:8.2f} | {vs:>9} | "
              f"{mfu:>5} | {r.get('note', '')}")


if __name__ == "__main__":
    raise SystemExit(main())
