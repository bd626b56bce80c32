"""llmclf: fine-tuning causal LLMs for text classification, measured against each other and against baselines.

The package, in layers that import downwards only (a test walks the imports):

    config, artifacts     run configurations; pinned wheels -> verified cache entries
    data, models          tasks and splits; model names -> folders, loading, LoRA
    approaches            the classifiers, behind one contract
    analysis              metrics, tables, plots
    study                 study files, runner, records
    cli                   the command line

The names below are what a notebook calls; they load lazily, so `llmclf run` and `llmclf report` start without
importing torch.
"""

from importlib import import_module

from .version import __version__, code_version  # noqa: F401

_EXPORTS = {
    "load_task": "data.tasks", "Task": "data.tasks", "Split": "data.tasks", "DataError": "data.tasks",
    "resolve_model": "models.registry", "model_checksum": "models.loading", "fetch": "artifacts",
    "EmbeddingHeadClassifier": "approaches.embedding_head",
    "InstructionClassifier": "approaches.instruction",
    "make_baseline": "approaches.baselines", "EncoderClassifier": "approaches.encoder",
    "FrozenEmbeddingClassifier": "approaches.frozen", "TfidfClassifier": "approaches.tfidf",
    "tuned": "approaches.tuning", "LearningRateSearch": "approaches.tuning",
    "fit_and_evaluate": "study.experiment", "save_run": "study.record", "save_exploration": "study.record",
    "show_examples": "analysis.display", "metrics_table": "analysis.display",
    "classification_metrics": "analysis.metrics", "load_study": "study.spec", "run_study": "study.runner",
    "load_run": "study.predict", "keep_model": "study.predict", "export": "study.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmclf' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
