"""`llmclf export RUN DIR`: a run's kept model as a folder to hand on, with a model card written from its record.

The folder holds the trained parts as the run kept them (a peft adapter with its `score` / classifier layer, a
model folder, or the linear baselines' safetensors + JSON), the tokenizer, `llmclf_model.json`, the run's record
(`run_record.json`) and `model_card.md`: task, labels, metrics with bootstrap intervals, costs, data and model
checksums, the commit, and a Python snippet that predicts with transformers and peft alone (no llmclf).
`merge=True` folds the LoRA weights into the base for the embedding head and the encoder: a plain
`AutoModelForSequenceClassification` folder (safetensors) that needs no base model and no peft.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..approaches.persistence import MODEL_FILE, read_metadata
from .predict import MODEL_DIR, PredictError, find_run, load_run
from .record import PREDICTIONS_FILE, read_record

MERGEABLE = ("embedding_head", "encoder")
LINEAR = ("tfidf", "frozen")
PORTABLE = "portable"  # <folder>/portable.safetensors + portable.json: a linear baseline for numpy alone
VECTORIZER_SETTINGS = ("lowercase", "strip_accents", "analyzer", "token_pattern", "ngram_range", "norm", "use_idf",
                       "smooth_idf", "sublinear_tf", "binary")


def export(run, dest: str | Path, *, merge: bool = False, study: str | None = None, runs_root="runs",
           model_path: str | None = None) -> Path:
    run_dir = find_run(run, study, runs_root)
    record = read_record(run_dir) or {}
    model = load_run(run_dir, model_path=model_path) if merge else None  # fails early, with the reason
    source = run_dir / (record.get("model_dir") or MODEL_DIR)
    if not (source / MODEL_FILE).is_file():
        load_run(run_dir)  # raises the explanation (no record, no model)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise PredictError(f"{dest} exists and is not empty: export into a new folder")
    meta = read_metadata(source)
    if merge:
        merge_into(model, meta, dest)
    else:
        shutil.copytree(source, dest, dirs_exist_ok=True)
    shutil.copy2(run_dir / "record.json", dest / "run_record.json")
    meta = read_metadata(dest)
    if meta["approach"] in LINEAR:
        meta["portable"] = write_portable(dest, meta)
    (dest / "model_card.md").write_text(model_card(record, meta, run_dir))
    return dest


def merge_into(model, meta: dict, dest: Path) -> None:
    """The adapter folded into its base: save the merged `AutoModelForSequenceClassification` and the tokenizer."""
    approach = meta["approach"]
    if approach not in MERGEABLE:
        raise PredictError(f"--merge applies to the embedding head and the encoder, not to {approach!r}")
    cfg = meta["config"]
    if cfg.get("quantization", "none") != "none":
        raise PredictError(f"--merge needs a 16/32-bit base; this run's base was quantized ({cfg['quantization']}): "
                           "export the adapter without --merge")
    clf = model.classifier
    peft_model = clf.net.model if approach == "embedding_head" else clf.net
    merged = peft_model.merge_and_unload() if hasattr(peft_model, "merge_and_unload") else peft_model
    dest.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(dest), safe_serialization=True)
    clf.tokenizer.save_pretrained(str(dest))
    meta = {**meta, "merged": True, "config": {**cfg, "use_lora": False},
            "base_model": {**meta["base_model"], "needed": False}}
    (dest / MODEL_FILE).write_text(json.dumps(meta, indent=1, default=str) + "\n")


def write_portable(dest: Path, meta: dict) -> bool:
    """A linear baseline as plain arrays beside its scikit-learn state: `portable.safetensors` (W, b in label order,
    the scaler folded in; the TF-IDF idf) and `portable.json` (the TF-IDF vocabulary and settings), which the card's
    snippet reads with numpy, safetensors and (TF-IDF) scikit-learn's TfidfVectorizer. False (nothing written) for a
    model that is not a logistic regression (a calibrated SVM)."""
    from safetensors.numpy import save_file

    from ..approaches.linear import as_weight_matrix
    from ..approaches.persistence import load_sklearn

    approach = meta["approach"]
    parts = load_sklearn(dest, approach)
    model = parts["model"] if approach == "tfidf" else parts["linear"]
    weights = as_weight_matrix(model, len(meta["labels"]), meta["multi_label"], scaler=parts.get("scaler"))
    if weights is None:
        return False
    arrays = {"weight": weights[0], "bias": weights[1]}
    spec: dict = {"approach": approach}
    if approach == "tfidf":
        vec = parts["vectorizer"]
        arrays["idf"] = np.asarray(vec.idf_, dtype=np.float32)
        spec["vectorizer"] = {k: getattr(vec, k) for k in VECTORIZER_SETTINGS}
        spec["vectorizer"]["ngram_range"] = list(vec.ngram_range)
        spec["vocabulary"] = {term: int(i) for term, i in vec.vocabulary_.items()}
    save_file(arrays, str(dest / f"{PORTABLE}.safetensors"))
    (dest / f"{PORTABLE}.json").write_text(json.dumps(spec))
    return True


# ---------------------------------------------------------------------------------------------------------------
# the model card


def _intervals(run_dir: Path, record: dict, meta: dict) -> dict:
    """Bootstrap 95% intervals of F1 micro / macro over the run's test predictions (as the report computes them)."""
    path = run_dir / PREDICTIONS_FILE
    if not path.is_file():
        return {}
    import pandas as pd

    from ..analysis.statistics import bootstrap_ci, predictions

    frame = pd.read_parquet(path)
    labels = meta["labels"]
    proba = frame[[f"p:{l}" for l in labels]].to_numpy()
    truth = frame[[f"y:{l}" for l in labels]].to_numpy()
    multi = meta["multi_label"]
    y = truth if multi else truth.argmax(axis=1)
    threshold = meta["threshold"][0] if len(meta["threshold"]) == 1 else np.asarray(meta["threshold"])
    invalid = frame["invalid"].to_numpy(dtype=bool) if "invalid" in frame.columns else None  # as the record scored
    pred = predictions(proba, multi, threshold, invalid)
    return {m: bootstrap_ci(y, [pred], m, multi, len(labels), n_resamples=1000) for m in ("f1_micro", "f1_macro")}


def _source(source) -> str:
    if isinstance(source, dict):
        files = source.get("sha256")
        return f"{source.get('dataset')}" + (f", file sha256 {files}" if files else "")
    return str(source)


def _fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def model_card(record: dict, meta: dict, run_dir: Path) -> str:
    task = record.get("task") or {}
    metrics = record.get("metrics") or {}
    prov = record.get("provenance") or {}
    base = meta.get("base_model") or {}
    intervals = _intervals(run_dir, record, meta)
    lines = [f"# {record.get('label') or meta['approach']}: a text classifier from llmclf run "
             f"{record.get('run_id') or run_dir.name}", ""]
    lines += [f"- approach: `{meta['approach']}` ({record.get('notebook')})" + (" — LoRA merged into the base"
                                                                            if meta.get("merged") else ""),
              f"- study: {record.get('study')}; task: {task.get('name')} "
              f"({'multi' if meta['multi_label'] else 'single'}-label, {len(meta['labels'])} labels; "
              f"train/validation/test sizes {task.get('sizes')})",
              f"- labels (column order of the probabilities): {', '.join(meta['labels'])}",
              f"- decision: " + (f"a label is predicted when its probability >= threshold {meta['threshold']} "
                                 "(one value: every label; else one per label, in label order)"
                                 if meta["multi_label"] else "the label with the highest probability"),
              f"- max_length: {meta.get('max_length')} tokens per text (longer texts are truncated)", ""]
    lines += ["## Test metrics", "", "| metric | value | 95% interval (bootstrap over test examples) |",
              "|---|---|---|"]
    for m in ("f1_micro", "f1_macro", "f1_weighted", "accuracy"):
        if m in metrics:
            ci = intervals.get(m)
            interval = f"{ci['low']:.3f} – {ci['high']:.3f}" if ci else ""
            lines.append(f"| {m} | {_fmt(metrics[m])} | {interval} |")
    lines += ["", f"Test examples: {metrics.get('n')}.", ""]
    timings, throughput, params = (record.get(k) or {} for k in ("timings", "throughput", "parameters"))
    lines += ["## Costs", "",
              f"- training: {_fmt(timings.get('train_seconds'), 1)} s; test inference: "
              f"{_fmt(timings.get('predict_seconds'), 1)} s "
              f"({_fmt(throughput.get('inference_examples_per_second'), 1)} examples/s)",
              f"- parameters: {params.get('trainable')} trainable of {params.get('total')}",
              f"- peak memory: {_fmt((record.get('memory') or {}).get('peak_rss_mb'), 0)} MB; machine: "
              f"{(prov.get('machine') or {}).get('cpu')}, GPU {(prov.get('machine') or {}).get('gpu')}", ""]
    git = prov.get("git") or {}
    lines += ["## Provenance", "",
              f"- base model: {base.get('name')} (sha256 of its files: {base.get('checksum') or prov.get('model_checksum')})"
              + ("" if base.get("needed") else " — not needed to load this folder"),
              f"- data: {_source(prov.get('data_source'))} (checksum of the split data {prov.get('data_checksum')})",
              f"- code: llmclf commit {git.get('commit')}{' (with uncommitted changes)' if git.get('dirty') else ''}",
              f"- packages: {', '.join(f'{k} {v}' for k, v in (prov.get('packages') or {}).items() if v)}", ""]
    lines += ["## Loading it", "", "With llmclf: `llmclf predict THIS_FOLDER texts.csv`, or in Python "
              "`llmclf.load_run(THIS_FOLDER).predict_proba(texts)`.", ""]
    if meta["approach"] in LINEAR and not meta.get("portable"):
        lines += ["This linear model is a calibrated SVM, not a single weight matrix: load it with llmclf.", ""]
    cfg = meta.get("config") or {}
    if cfg.get("long_text", "truncate") == "chunks":
        lines += [f"This model reads a text as up to {cfg.get('max_chunks')} windows of {cfg.get('max_length')} "
                  f"tokens ({cfg.get('chunk_stride')} shared) and pools them ({cfg.get('chunk_pooling')}): load it "
                  "with llmclf, which windows texts as in training.", ""]
    snippet = loading_snippet(meta)
    if snippet:
        what = ("`predict_proba(texts)` returns the probabilities above, in label order" if "def predict_proba"
                in snippet else "`generate(texts)` returns the greedy answers (llmclf scores every label instead)")
        needs = {"tfidf": "numpy, safetensors and scikit-learn's TfidfVectorizer"
                          + (", transformers for the tokenizer that cuts each text" if cfg.get("tfidf_input")
                             == "truncated" else ""),
                 "frozen": "numpy, safetensors and transformers for the frozen model"}.get(
                     meta["approach"], "transformers and peft only")
        rounding = ("" if meta["approach"] == "tfidf" else
                    f" It computes in float32; the run used {cfg.get('dtype')}"
                    + (f" on a {cfg.get('quantization')} base" if cfg.get("quantization", "none") != "none" else "")
                    + ", so probabilities may differ by rounding.")
        lines += [f"Without llmclf ({needs}); {what}.{rounding}", "", "```python", snippet.rstrip(), "```", ""]
    return "\n".join(lines)


def loading_snippet(meta: dict) -> str | None:
    """Python that predicts with transformers (and peft for an adapter) alone, for the approaches that allow it."""
    approach, cfg, base = meta["approach"], meta["config"], meta.get("base_model") or {}
    if cfg.get("long_text", "truncate") == "chunks":
        return None  # a snippet that read the first window only would predict otherwise than the run did
    adapter = base.get("needed") and cfg.get("use_lora") and not meta.get("merged")
    activation = "torch.sigmoid({})" if meta["multi_label"] else "torch.softmax({}, dim=-1)"
    head = [
        "import json", "", "import numpy as np", "import torch",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
    ]
    if adapter:
        head.append("from peft import PeftModel")
    head += ["", 'FOLDER = "."  # this folder']
    if adapter:
        head.append(f"BASE = {str(base.get('path') or base.get('name'))!r}  # the base model {base.get('name')!r}, "
                    f"files' sha256 {base.get('checksum')}")
    head += ['meta = json.load(open(f"{FOLDER}/llmclf_model.json"))',
             'labels, max_length = meta["labels"], meta["max_length"]',
             "tokenizer = AutoTokenizer.from_pretrained(FOLDER)"]
    if adapter:
        load = ["model = AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=len(labels), "
                "dtype=torch.float32)",
                "model = PeftModel.from_pretrained(model, FOLDER).eval()  # the adapter and the trained head"]
    else:
        load = ["model = AutoModelForSequenceClassification.from_pretrained(FOLDER, dtype=torch.float32).eval()"]
    if approach == "embedding_head":
        body = [
            *load,
            "inner = model.get_base_model() if hasattr(model, 'get_base_model') else model",
            "backbone, head = getattr(inner, inner.base_model_prefix), inner.score",
            "",
            "",
            "@torch.inference_mode()",
            "def predict_proba(texts):",
            "    # The head reads the pooled hidden state of the real tokens. (Do not call model(...) itself:",
            "    # transformers' own pooling looks for the pad id, which here is the EOS id.)",
            *_pooled_rows("backbone", meta.get("append_eos_token") is not None, meta.get("pooling"),
                          f"{activation.format('head(pooled)')}.numpy()"),
            "    return np.stack(rows)",
        ]
    elif approach == "encoder":
        body = [
            *load, "", "",
            "@torch.inference_mode()",
            "def predict_proba(texts):",
            "    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors='pt')",
            "    logits = model(input_ids=enc['input_ids'], attention_mask=enc['attention_mask']).logits.float()",
            f"    return {activation.format('logits')}.numpy()",
        ]
    elif approach == "instruction":
        return instruction_snippet(meta, adapter, base)
    elif approach in LINEAR:
        return linear_snippet(meta, base) if meta.get("portable") else None
    else:
        return None
    return "\n".join(head + body) + "\n"


def _pooled_rows(backbone: str, eos: bool, pooling: str | None, row: str) -> list[str]:
    """The loop of a snippet's predict_proba that reads each text, unpadded, through `backbone`, pools its hidden
    states as the run did into `pooled`, and appends `row` (made from `pooled`) to `rows`."""
    pool = "hidden[-1]" if pooling == "last" else "hidden.mean(dim=0)"
    return [
        "    rows = []",
        "    for text in texts:  # one text at a time, unpadded",
        ("        ids = tokenizer(text, truncation=True, max_length=max_length - 1)['input_ids'] + "
         "[tokenizer.eos_token_id]  # EOS ends every text" if eos else
         "        ids = tokenizer(text, truncation=True, max_length=max_length)['input_ids']"),
        f"        hidden = {backbone}(input_ids=torch.tensor([ids])).last_hidden_state[0].float()",
        f"        pooled = {pool}  # pooling: {pooling}",
        f"        rows.append({row})",
    ]


def linear_snippet(meta: dict, base: dict) -> str:
    """TF-IDF: scikit-learn's TfidfVectorizer with the saved vocabulary and idf, then numpy. Frozen embeddings: the
    base model through transformers' AutoModel, pooled as the run pooled, then numpy."""
    cfg, approach = meta["config"], meta["approach"]
    activation = (["    return 1 / (1 + np.exp(-z))"] if meta["multi_label"] else
                  ["    e = np.exp(z - z.max(1, keepdims=True))", "    return e / e.sum(1, keepdims=True)"])
    lines = ["import json", "", "import numpy as np", "from safetensors.numpy import load_file"]
    truncated = approach == "tfidf" and cfg.get("tfidf_input") == "truncated"
    if approach == "tfidf":
        lines.append("from sklearn.feature_extraction.text import TfidfVectorizer")
    if approach == "frozen" or truncated:
        lines += ["import torch", "from transformers import AutoModel, AutoTokenizer"] if approach == "frozen" else [
            "from transformers import AutoTokenizer"]
    lines += ["", 'FOLDER = "."  # this folder']
    if approach == "frozen":
        lines.append(f"BASE = {str(base.get('path') or base.get('name'))!r}  # the frozen model "
                     f"{base.get('name')!r}, files' sha256 {base.get('checksum')}")
    lines += ['meta = json.load(open(f"{FOLDER}/llmclf_model.json"))',
              'labels, max_length = meta["labels"], meta["max_length"]',
              f'arrays, spec = load_file(f"{{FOLDER}}/{PORTABLE}.safetensors"), json.load(open(f"{{FOLDER}}/{PORTABLE}.json"))',
              'W, b = arrays["weight"], arrays["bias"]  # (labels, features), label order; scaling folded in']
    if approach == "tfidf":
        lines += ['settings = {**spec["vectorizer"], "ngram_range": tuple(spec["vectorizer"]["ngram_range"])}',
                  'vectorizer = TfidfVectorizer(vocabulary=spec["vocabulary"], dtype=np.float32, **settings)',
                  'vectorizer.idf_ = arrays["idf"]']
        if truncated:
            lines += ["tokenizer = AutoTokenizer.from_pretrained(FOLDER)  # the run read each text's first max_length "
                      "tokens", "",
                      "",
                      "def cut(texts):",
                      "    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, "
                      "max_length=max_length)['input_ids']",
                      "    return tokenizer.batch_decode(ids, skip_special_tokens=True)"]
        lines += ["", "", "def predict_proba(texts):",
                  f"    z = vectorizer.transform({'cut(texts)' if truncated else 'list(texts)'}) @ W.T + b",
                  *activation]
    else:
        lines += ["tokenizer = AutoTokenizer.from_pretrained(BASE)",
                  "model = AutoModel.from_pretrained(BASE, dtype=torch.float32).eval()", "", "",
                  "@torch.inference_mode()", "def predict_proba(texts):",
                  *_pooled_rows("model", bool(meta.get("append_eos")), cfg.get("pooling"), "pooled.numpy()"),
                  "    z = np.stack(rows) @ W.T + b",
                  *activation]
    return "\n".join(lines) + "\n"


def instruction_snippet(meta: dict, adapter: bool, base: dict) -> str:
    """The prompt rebuilt as llmclf builds it; single-label: every label's answer scored (softmax over labels, as
    predict_mode 'score'); multi-label: the greedy answer, to split at the answer separator."""
    cfg = meta["config"]
    zero_shot = cfg.get("zero_shot")
    lines = ["import json", "", "import numpy as np", "import torch",
             "from transformers import AutoModelForCausalLM, AutoTokenizer"]
    if adapter and not zero_shot:
        lines.append("from peft import PeftModel")
    lines += ["", 'FOLDER = "."  # this folder']
    if base.get("needed"):
        lines.append(f"BASE = {str(base.get('path') or base.get('name'))!r}  # the base model {base.get('name')!r}, "
                     f"files' sha256 {base.get('checksum')}")
    source = "BASE" if base.get("needed") else "FOLDER"
    lines += [
        'meta = json.load(open(f"{FOLDER}/llmclf_model.json"))',
        'labels, max_length, p = meta["labels"], meta["max_length"], meta["prompt"]',
        "tokenizer = AutoTokenizer.from_pretrained(FOLDER)",
        f"model = AutoModelForCausalLM.from_pretrained({source}, dtype=torch.float32)",
    ]
    if adapter and not zero_shot:
        lines.append("model = PeftModel.from_pretrained(model, FOLDER)")
    lines += [
        "model.eval()",
        "",
        "# The prompt: the template with the task and the labels, in the chat template, the text cut to fit",
        'shown = ", ".join(labels) if p["label_verbalizer"] == "names" else "\\n" + "\\n".join(',
        '''    f"- {l}: {p['label_descriptions'][l]}" for l in labels)''',
        'MARK = "\\ue000"',
        'filled = p["template"].format(task_description=p["task_description"], labels=shown, text=MARK)',
        'chat = p["use_chat_template"]',
        'rendered = (tokenizer.apply_chat_template([{"role": "user", "content": filled}], tokenize=False,',
        '                                          add_generation_prompt=True) if chat else filled + "\\nAnswer: ")',
        "prefix, suffix = rendered.split(MARK)",
        'text_lead, answer_lead = prefix[len(prefix.rstrip(" ")):], suffix[len(suffix.rstrip(" ")):]',
        'prefix_ids = tokenizer(prefix.rstrip(" "), add_special_tokens=not chat)["input_ids"]',
        'suffix_ids = tokenizer(suffix.rstrip(" "), add_special_tokens=False)["input_ids"]',
        'budget = max_length - len(prefix_ids) - len(suffix_ids) - p["answer_reserve"]',
        "",
        "",
        "def prompt_ids(text):",
        '    ids = tokenizer(text_lead + text.strip(), add_special_tokens=False)["input_ids"][:budget]',
        "    return prefix_ids + ids + suffix_ids",
        "",
        "",
    ]
    if not meta["multi_label"]:
        lines += [
            "@torch.inference_mode()",
            "def predict_proba(texts):",
            "    # every label's answer (the label, then EOS) scored after the prompt; softmax over the labels",
            '    answers = [tokenizer(answer_lead + l, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]',
            "               for l in labels]",
            "    rows = []",
            "    for text in texts:",
            "        prompt = prompt_ids(text)",
            "        scores = []",
            "        for answer in answers:",
            "            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0].float()",
            "            logp = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)",
            "            scores.append(logp.gather(-1, torch.tensor(answer)[:, None]).sum().item())",
            "        rows.append(torch.softmax(torch.tensor(scores), dim=-1).numpy())",
            "    return np.stack(rows)",
        ]
    else:
        lines += [
            "@torch.inference_mode()",
            "def generate(texts, max_new_tokens=32):",
            '    # the greedy answer: labels in label order, separated by p["answer_separator"]',
            "    out = []",
            "    for text in texts:",
            "        ids = torch.tensor([prompt_ids(text)])",
            "        new = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False,",
            "                             pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]",
            "        out.append(tokenizer.decode(new, skip_special_tokens=True).strip())",
            "    return out",
        ]
    return "\n".join(lines) + "\n"
