"""llmclf: fine-tuning causal LLMs for text classification, measured against each other and against baselines.

The names below load lazily, so `llmclf run` and `llmclf report` start without importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_task": "data", "Task": "data", "Split": "data", "DataError": "data",
    "resolve_model": "models", "fetch": "artifacts",
    "EmbeddingHeadClassifier": "embedding_head",
    "InstructionClassifier": "instruction",
    "make_baseline": "baselines", "EncoderClassifier": "encoder", "FrozenEmbeddingClassifier": "frozen",
    "TfidfClassifier": "tfidf", "baselines": None,
    "fit_and_evaluate": "experiment", "save_run": "record", "save_exploration": "record",
    "show_examples": "display", "metrics_table": "display",
    "classification_metrics": "metrics", "load_study": "study", "run_study": "runner",
    "config": None, "plots": None, "metrics": None, "report": None, "explore": None,
}


def model_checksum(path: str) -> str | None:
    """The model folder's checksum for the record; None for a hub id (its revision is not pinned here)."""
    from pathlib import Path

    from .artifacts import folder_checksum

    return folder_checksum(Path(path)) if Path(path).is_dir() else None


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmclf' has no attribute {name!r}")
    module = import_module(f".{_EXPORTS[name] or name}", __name__)
    return module if _EXPORTS[name] is None else getattr(module, name)
