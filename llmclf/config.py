"""Run configurations: one dataclass per notebook, its fields equal to the notebook's parameters cell.

As in peft's LoraConfig, every field carries its help text in `metadata["help"]`. Types are checked and values
validated in `__post_init__`, so a bad parameter fails before any data is read or any model is loaded, and
`from_dict` refuses unknown names with the list of known ones.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    pass


# names that become folder names: letters, digits, '.', '_' and '-', no leading dot, at most 100 characters
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(value, what: str) -> str:
    """A study or task name that is safe as a folder name (no '/', no '..', no leading dot), as a str."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # `name: 2024` is a fine name, YAML just reads it as a number
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not a safe name: use letters, digits, '.', '_' and '-' only, "
                          "not starting with a dot, at most 100 characters (it becomes a folder name)")
    return value


SEED_RANGE = (0, 2**32 - 1)  # what numpy's and torch's seeding accept
# model names every notebook knows besides packaged artifacts (built in code by llmclf.models.registry)
TINY_MODEL_NAMES = ("tiny-llama", "tiny-bert")


def _check_seed(name: str, value: int) -> None:
    if not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
        raise ConfigError(f"parameter {name!r} must be in [0, 2**32 - 1] (numpy's seed range), got {value}")


def check_model_name(name: str, field_name: str = "model") -> None:
    """A model is a packaged name, a local folder or a Hugging Face id ('org/name'); anything else is refused
    here, before a notebook starts, with the names that exist."""
    from .artifacts import ARTIFACTS

    packaged = sorted(n for n, a in ARTIFACTS.items() if a.kind == "model")
    if name in packaged or name in TINY_MODEL_NAMES or Path(name).expanduser().exists():
        return
    if "/" in name.strip("/") and not name.startswith((".", "/", "~")):
        return  # a Hugging Face id; whether it is cached is for the loader to say
    raise ConfigError(f"parameter {field_name!r}: unknown model {name!r}: not a packaged name "
                      f"({', '.join(packaged + list(TINY_MODEL_NAMES))}), not an existing folder, and not a "
                      "Hugging Face id of the form 'org/name'")


def param(default, help: str, choices: tuple | None = None, check=None):
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if check is not None:
        meta["check"] = check  # a function that validates and normalizes the value
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def _check_type(name: str, value, annotation) -> object:
    """Check `value` against a (simple) annotation; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _check_type(name, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        names = " or ".join(getattr(a, "__name__", str(a)) for a in args)
        raise ConfigError(f"parameter {name!r} must be {names}, got {value!r} ({type(value).__name__})")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"parameter {name!r} must be None, got {value!r}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"parameter {name!r} must be a list, got {value!r} ({type(value).__name__})")
        return [_check_type(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"parameter {name!r} must be a mapping, got {value!r} ({type(value).__name__})")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter {name!r} must be a number, got {value!r} ({type(value).__name__})")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"parameter {name!r} must be an integer, got {value!r} ({type(value).__name__})")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise ConfigError(
                f"parameter {name!r} must be {annotation.__name__}, got {value!r} ({type(value).__name__})"
            )
        return value
    return value


@dataclass
class Config:
    """Base class: type checking, choices, and construction from a parameters mapping."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(f.name, getattr(self, f.name), hints[f.name])
            choices = f.metadata.get("choices")
            if choices is not None:
                for v in value if isinstance(value, list) else [value]:
                    if v not in choices:
                        raise ConfigError(f"parameter {f.name!r} = {v!r} is not one of {list(choices)}")
            if "check" in f.metadata:
                value = f.metadata["check"](value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses extend."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, params: dict) -> "Config":
        unknown = sorted(set(params) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {unknown} for {cls.__name__}; known parameters: {cls.field_names()}"
            )
        return cls(**params)

    @classmethod
    def from_namespace(cls, namespace: dict) -> "Config":
        """Build from a notebook's globals: picks exactly the config's fields (the parameters cell's names)."""
        missing = [n for n in cls.field_names() if n not in namespace]
        if missing:
            raise ConfigError(f"the parameters cell does not define {missing} needed by {cls.__name__}")
        return cls(**{n: namespace[n] for n in cls.field_names()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls) -> str:
        lines = [cls.__name__ + ":"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            choices = f" (one of {list(f.metadata['choices'])})" if "choices" in f.metadata else ""
            lines.append(f"  {f.name} = {default!r}{choices}\n      {f.metadata.get('help', '')}")
        return "\n".join(lines)


@dataclass
class DataParams(Config):
    """Which task a run uses. Shared by every notebook."""

    dataset: str = param("bbc-news", "Built-in data set name (bbc-news) or a path to a CSV / JSON Lines / Parquet "
                         "file, or to a folder of train/validation/test files.")
    text_fields: list[str] = param(["text"], "Column(s) holding the text; several are joined with a newline.")
    label_field: str = param("label", "Column holding the label (single-label) or labels (multi-label).")
    multi_label: bool = param(False, "Whether an example can carry several labels.")
    label_separator: str = param(",", "Separator of labels in a string column, for multi-label data.")
    max_train: int | None = param(None, "Cap on training examples (stratified); None for all.")
    max_eval: int | None = param(None, "Shorthand for max_val and max_test: a cap on validation and on test "
                                 "examples each (stratified); None for all.")
    max_val: int | None = param(None, "Cap on validation examples (stratified); None: max_eval, else all.")
    max_test: int | None = param(None, "Cap on test examples (stratified); None: max_eval, else all.")
    split_seed: int = param(0, "Seed of the train/validation/test split when the source has none, and of a "
                            "validation split carved from train.")
    validation_fraction: float = param(0.1, "Share of the training split carved out as validation when the source "
                                       "has train and test only (a `split` column or split files).")
    label_level: str = param("section", "CPC level of uspto-10k's labels.",
                             choices=("section", "class", "subclass", "main_group"))
    min_label_count: int = param(1, "Labels with fewer examples are dropped (then examples left without a label).")
    data_dir: str = param("", "Folder of a patent data set, or of the folder holding it; empty: $LLMCLF_DATA_DIR, "
                          "else ../shared/data beside the checkout.")

    def validate(self):
        super().validate()
        for name in ("max_train", "max_eval", "max_val", "max_test"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"parameter {name!r} must be a positive integer or None, got {v}")
        if self.min_label_count < 1:
            raise ConfigError(f"parameter 'min_label_count' must be >= 1, got {self.min_label_count}")
        if not self.text_fields:
            raise ConfigError("parameter 'text_fields' must name at least one column")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"parameter 'validation_fraction' must be in (0, 1), got {self.validation_fraction}")
        _check_seed("split_seed", self.split_seed)

    def task_kwargs(self) -> dict:
        return dict(text_fields=self.text_fields, label_field=self.label_field, multi_label=self.multi_label,
                    label_separator=self.label_separator, max_train=self.max_train, max_eval=self.max_eval,
                    max_val=self.max_val, max_test=self.max_test, validation_fraction=self.validation_fraction,
                    split_seed=self.split_seed, label_level=self.label_level, min_label_count=self.min_label_count,
                    data_dir=self.data_dir or None)


@dataclass
class RunParams(Config):
    """Where a run writes; set by `llmclf run`, empty when a person runs the notebook by hand."""

    run_dir: str = param("", "Folder for record.json and predictions.parquet; empty: record nothing to disk.")


@dataclass
class TrainParams(Config):
    """What every fine-tuning approach shares: transformers' Trainer settings."""

    seed: int = param(0, "Seed of model initialization and data order.")
    learning_rate: float = param(2e-4, "Peak learning rate (AdamW, linear decay).")
    learning_rate_grid: list[float] | None = param(
        None, "Learning rates to choose from on validation (approaches.tuning): the run trains once per value, "
        "keeps the model with the best validation F1 micro (ties: the earlier value) and records every value's "
        "score; `learning_rate` is then not used. In a study the choice is made once per configuration (by the "
        "first of its seeds to run, kept in runs/<study>/_tuning) and the other seeds train at the chosen value. "
        "None: train at `learning_rate`.")
    epochs: float = param(1.0, "Training epochs.")
    batch_size: int = param(8, "Examples per device step.")
    grad_accum: int = param(1, "Gradient accumulation steps.")
    warmup_ratio: float = param(0.1, "Share of steps spent warming the learning rate up.")
    weight_decay: float = param(0.0, "AdamW weight decay.")
    max_length: int = param(128, "Tokens kept per text (longer texts are truncated).")
    eval_batch_size: int = param(8, "Examples per inference step. 8: on a 2-core AVX2 CPU, SmolLM2 inference ran "
                                 "8-13% slower at 16 (64 and 256 tokens); a GPU likes more.")

    def validate(self):
        super().validate()
        for name in ("batch_size", "grad_accum", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"parameter {name!r} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"parameter 'learning_rate' must be > 0, got {self.learning_rate}")
        if self.learning_rate_grid is not None:
            grid = self.learning_rate_grid
            if len(grid) < 2 or len(set(grid)) != len(grid) or not all(v > 0 for v in grid):
                raise ConfigError(f"parameter 'learning_rate_grid' must hold at least 2 distinct values > 0 "
                                  f"(or be None), got {grid}")
        if not self.epochs > 0:
            raise ConfigError(f"parameter 'epochs' must be > 0, got {self.epochs}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"parameter 'warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"parameter 'weight_decay' must be >= 0, got {self.weight_decay}")
        _check_seed("seed", self.seed)


QUANTIZATIONS = ("none", "8bit", "4bit")
MODEL_HELP = ("Packaged model name, Hugging Face id or local folder. A study must name it (no default: a batch run "
              "never falls back to the notebook's tiny test model).")
THRESHOLD_RULES = ("validation", "validation_per_label")
THRESHOLD_HELP = ("Multi-label decision threshold: 'validation' (one global threshold tuned on validation), "
                  "'validation_per_label' (one per label, tuned on validation; labels with too few positives there "
                  "fall back to the global one), or a fixed number such as '0.5'.")
CLASS_WEIGHTS = ("none", "balanced")
CLASS_WEIGHT_HELP = ("Loss weights: 'balanced' weighs classes inversely to their training frequency (single-label: "
                     "cross-entropy weights; multi-label: BCE pos_weight; linear models: class_weight).")


def check_threshold(value) -> str:
    """'validation', 'validation_per_label' or a number in (0, 1), as a string (a YAML number is accepted)."""
    if isinstance(value, bool):
        raise ConfigError(f"parameter 'threshold' must be one of {list(THRESHOLD_RULES)} or a number, got {value!r}")
    if isinstance(value, (int, float)):
        value = repr(float(value))
    if value in THRESHOLD_RULES:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"parameter 'threshold' = {value!r} is not one of {list(THRESHOLD_RULES)} nor a number "
                          "in (0, 1)") from None
    if not 0 < number < 1:
        raise ConfigError(f"parameter 'threshold' must be in (0, 1) when a number, got {value!r}")
    return value


LONG_TEXT_HELP = ("How a text longer than `max_length` tokens is read: 'truncate' (its first max_length tokens) or "
                  "'chunks' (windows of max_length tokens, `chunk_stride` of them shared with the window before, at "
                  "most `max_chunks` a text, run as one batch and pooled by `chunk_pooling`), in training and "
                  "prediction alike.")


@dataclass
class LongTextParams(Config):
    """Long documents: read the first window only, or several windows pooled (the embedding head, the encoder
    and frozen embeddings)."""

    long_text: str = param("truncate", LONG_TEXT_HELP, choices=("truncate", "chunks"))
    max_chunks: int = param(4, "'chunks': windows read per text at most (the first ones); bounds the cost at "
                            "max_chunks x a window's. The record says how many tokens a text was read on average.")
    chunk_stride: int = param(0, "'chunks': tokens each window repeats from the end of the one before (the "
                              "`stride` of Hugging Face tokenizers), so that no sentence is only ever seen cut; "
                              "at most max_length // 2 - 2.")
    chunk_pooling: str = param("mean", "'chunks': how a text's windows become one prediction: 'mean' of the "
                               "windows' embeddings (for a linear head, the same as the mean of their logits) or "
                               "'max' of the windows' logits (frozen embeddings: the per-dimension max of the "
                               "embeddings); 'max' lets one window decide, as a multi-label 'any part says so'. "
                               "batch_size and eval_batch_size count texts: a batch holds up to max_chunks times as "
                               "many windows.", choices=("mean", "max"))

    def validate(self):
        super().validate()
        if self.max_chunks < 1:
            raise ConfigError(f"parameter 'max_chunks' must be >= 1, got {self.max_chunks}")
        most = max(self.max_length // 2 - 2, 0)
        if not 0 <= self.chunk_stride <= most:
            raise ConfigError(f"parameter 'chunk_stride' must be in [0, max_length // 2 - 2] = [0, {most}] (a window "
                              f"must move forward by at least half of itself), got {self.chunk_stride}")


# papermill starts kernels with these: the kernel's "running over TCP without encryption" warning is not shown
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
NOTEBOOKS_DIR = Path(__file__).resolve().parent / "notebooks"  # package data: found wherever llmclf is installed
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoraParams(Config):
    """LoRA adapters on a (possibly quantized) base, shared by the embedding head and instruction tuning."""

    use_lora: bool = param(True, "Train LoRA adapters (True) or every weight of the base (False).")
    lora_r: int = param(8, "LoRA rank.")
    lora_alpha: int = param(16, "LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = param(0.0, "Dropout on the LoRA input. 0 (the default): peft skips the dropout of every "
                                "adapted layer's full-width input, 17-21% of a training step on an AVX2 CPU "
                                "(bench/bench.py measures it beside 0.05).")
    lora_target_modules: list[str] = param(["q_proj", "k_proj", "v_proj", "o_proj"],
                                           "Module names that get adapters; ['all-linear'] for every linear layer.")
    quantization: str = param("none", "Quantization of the frozen base (bitsandbytes); 4bit is NF4 (QLoRA).",
                              choices=QUANTIZATIONS)
    dtype: str = param("auto", "Compute dtype of the base model (and of a 4-bit base's matmuls): auto is bfloat16 "
                       "where the hardware runs it natively (a GPU with bf16; a CPU with AMX or AVX512_BF16), "
                       "float16 on a GPU without bf16, float32 on any other CPU (where bf16 is emulated and "
                       "several times slower). The record keeps the requested and the resolved dtype.",
                       choices=DTYPES)

    def validate(self):
        super().validate()
        if self.lora_r < 1:
            raise ConfigError(f"parameter 'lora_r' must be >= 1, got {self.lora_r}")
        if self.lora_alpha < 1:
            raise ConfigError(f"parameter 'lora_alpha' must be >= 1 (the LoRA scale is alpha / r: 0 would train "
                              f"adapters that change nothing), got {self.lora_alpha}")
        if not self.lora_target_modules:
            raise ConfigError("parameter 'lora_target_modules' must name at least one module, or ['all-linear']")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"parameter 'lora_dropout' must be in [0, 1), got {self.lora_dropout}")
        if self.quantization != "none" and not self.use_lora:
            raise ConfigError("a quantized base cannot be fully fine-tuned: set use_lora=True or quantization='none'")


@dataclass
class DataExplorationConfig(DataParams, RunParams):
    """notebooks/00_data.ipynb: what a task looks like before any model sees it."""

    tokenizer_model: str = param("", "Model whose tokenizer measures text lengths (e.g. smollm2-135m); a study must "
                                 "name it (no default: a tiny test tokenizer's lengths mean nothing).")
    max_length_candidates: list[int] = param([64, 128, 256, 512], "max_length values to show the truncation of.")
    top_labels: int = param(15, "Labels shown in the co-occurrence heatmap (the most frequent).")
    examples_per_label: int = param(2, "Example texts shown per label.")

    def validate(self):
        super().validate()
        check_model_name(self.tokenizer_model, "tokenizer_model")


@dataclass
class EmbeddingHeadConfig(DataParams, TrainParams, LoraParams, LongTextParams, RunParams):
    """notebooks/10_embedding_head.ipynb: a classification head on a causal LM's pooled hidden state."""

    model: str = param("", MODEL_HELP)
    pooling: str = param("last", "Hidden state the head reads: the last real token, or the mean over tokens.",
                         choices=("last", "mean"))
    append_eos: bool = param(True, "End every (truncated) text with the EOS token, so that the last token, which "
                             "the head reads, is the same summary position for every text.")
    head_init: str = param("random", "Initial head: 'random' (transformers' init of the `score` layer) or "
                           "'label_tokens': each label's row is the LM head's row of the label's first token (the "
                           "label name after a space, as a verbalizer), so that before any training step the head "
                           "scores labels as the LM scores them as the next token at the position it reads (with "
                           "append_eos: after the EOS, where no question was asked; what the start is worth is "
                           "measured, e.g. params/long.yaml).", choices=("random", "label_tokens"))
    threshold: str | float = param("validation", THRESHOLD_HELP, check=lambda v: check_threshold(v))
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    trust_remote_code: bool = param(False, "Allow code shipped with the model (off: never run code from folders).")
    save_model: bool = param(True, "Keep the trained model in <run_dir>/model (adapter, head, tokenizer, thresholds), "
                             "for `llmclf predict` and `llmclf export`; False keeps only the record.")

    def validate(self):
        super().validate()
        check_model_name(self.model)
        if self.append_eos and self.max_length < 2:
            raise ConfigError(f"max_length={self.max_length} with append_eos=True leaves no token for the text (the "
                              "EOS takes one): every input would be the EOS alone; use max_length >= 2, in "
                              "practice 64 or more")


@dataclass
class InstructionConfig(DataParams, TrainParams, LoraParams, RunParams):
    """notebooks/20_instruction_tuning.ipynb: the causal LM trained with LoRA to answer with the label(s).

    Here `max_length` bounds the whole sequence, prompt and answer: the text is cut inside the prompt to fit."""

    model: str = param("", MODEL_HELP)
    zero_shot: bool = param(False, "Skip training: the instruct model as it is (the zero-shot baseline).")
    task_description: str = param("Classify the text into one of the categories.",
                                  "First line of the prompt: what the model is asked to do.")
    prompt_template: str = param(
        "{task_description}\nCategories: {labels}\n\nText: {text}\n\nAnswer with the category.",
        "Prompt with the slots {task_description}, {labels} and {text}; wrapped in the chat template if any.")
    label_verbalizer: str = param("names", "Show labels in the prompt by name, or by name and description.",
                                  choices=("names", "descriptions"))
    answer_separator: str = param("; ", "Separator of labels in a multi-label answer (labels in a fixed order).")
    predict_mode: str = param("score", "generate: greedy decoding then parsing (unparseable answers count as "
                              "wrong); constrained: decoding restricted to valid labels; score: the likelihood of "
                              "every label's answer (multi-label: each label's probability of being in the answer).",
                              choices=("generate", "constrained", "score"))
    max_new_tokens: int = param(16, "Token budget of a generated answer (generate; constrained gets at least the "
                                "longest valid answer).")
    threshold: str | float = param("validation", "(score mode; generated answers are 0/1) " + THRESHOLD_HELP,
                                   check=lambda v: check_threshold(v))
    trust_remote_code: bool = param(False, "Allow code shipped with the model (off: never run code from folders).")
    save_model: bool = param(True, "Keep the trained model in <run_dir>/model (adapter, head, tokenizer, thresholds), "
                             "for `llmclf predict` and `llmclf export`; False keeps only the record.")

    def validate(self):
        import string

        super().validate()
        try:
            slots = [name for _, name, _, _ in string.Formatter().parse(self.prompt_template) if name is not None]
        except ValueError as e:
            raise ConfigError(f"parameter 'prompt_template' is not a valid format string: {e}") from None
        unknown = sorted(set(slots) - {"task_description", "labels", "text"})
        if unknown:
            raise ConfigError(f"parameter 'prompt_template' has unknown slot(s) {unknown}; the slots are "
                              "{task_description}, {labels} and {text} (write {{ and }} for literal braces)")
        if slots.count("text") != 1:
            raise ConfigError("parameter 'prompt_template' must contain the slot {text} exactly once")
        if not self.answer_separator.strip():
            raise ConfigError("parameter 'answer_separator' must contain a non-space character, e.g. '; '")
        if self.max_new_tokens < 1:
            raise ConfigError(f"parameter 'max_new_tokens' must be >= 1, got {self.max_new_tokens}")
        if self.zero_shot and self.learning_rate_grid is not None:
            raise ConfigError("parameter 'learning_rate_grid' has nothing to choose with zero_shot=True (nothing "
                              "is trained); set it to None")
        check_model_name(self.model)


@dataclass
class BaselineConfig(DataParams, TrainParams, LoraParams, LongTextParams, RunParams):
    """notebooks/30_baselines.ipynb: one baseline per run, chosen by `baseline`."""

    baseline: str = param("tfidf", "encoder: fine-tune a BERT-style encoder; frozen: linear head on frozen "
                          "embeddings; tfidf: TF-IDF with a linear model.", choices=("encoder", "frozen", "tfidf"))
    model: str = param("", "Model for 'encoder' and 'frozen' (packaged name, Hugging Face id or folder); a study "
                       "must name it for those baselines ('tfidf' needs none).")
    pooling: str = param("mean", "Embedding pooling for 'frozen': last real token (causal LMs) or mean.",
                         choices=("last", "mean"))
    append_eos: bool = param(False, "'frozen' on a causal LM: end every (truncated) text with the EOS token, as "
                             "the embedding head does (an encoder's tokenizer ends texts with [SEP] already). Off "
                             "by default: untrained, SmolLM2's last-token embedding of bbc-news fell from F1 0.87 "
                             "to 0.72 with it; the mean hardly changed.")
    linear_model: str = param("logreg", "Linear model for 'tfidf': logistic regression or a linear SVM with "
                              "calibrated probabilities.", choices=("logreg", "svm"))
    c_values: list[float] = param([0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
                                  "Inverse regularization strengths C tried for 'frozen' and 'tfidf'; the one with "
                                  "the best validation F1 micro is kept (bbc-news: about 0.01 on standardized "
                                  "embeddings, 100 or more on TF-IDF).")
    tfidf_input: str = param("full", "'tfidf': read the whole text (full), or only the first max_length tokens of "
                             "`model`'s tokenizer (truncated), the text the other approaches see: equal inputs.",
                             choices=("full", "truncated"))
    threshold: str | float = param("validation", THRESHOLD_HELP, check=lambda v: check_threshold(v))
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    trust_remote_code: bool = param(False, "Allow code shipped with the model (off: never run code from folders).")
    # The encoder is fully fine-tuned by default, as the paper's BERT baselines were; its LoRA option targets BERT's
    # attention projections, which are named query/key/value rather than q_proj/k_proj/v_proj.
    use_lora: bool = param(False, "'encoder': train LoRA adapters (True) or every weight (False).")
    lora_target_modules: list[str] = param(["query", "key", "value"],
                                           "Module names that get adapters ('encoder' with use_lora); "
                                           "['all-linear'] for every linear layer.")
    learning_rate: float = param(3e-4, "Peak learning rate (AdamW, linear decay) of 'encoder' (3e-4 suits "
                                 "all-MiniLM-L6-v2 on a few hundred examples; BERT-base and larger want less).")
    save_model: bool = param(True, "Keep the trained model in <run_dir>/model (adapter, head, tokenizer, thresholds), "
                             "for `llmclf predict` and `llmclf export`; False keeps only the record.")

    def validate(self):
        if self.baseline != "encoder" and self.quantization != "none":
            raise ConfigError(f"parameter 'quantization' applies to the 'encoder' baseline only (with use_lora); "
                              f"got quantization={self.quantization!r} with baseline={self.baseline!r}")
        super().validate()
        if not self.c_values or any(not c > 0 for c in self.c_values):
            raise ConfigError(f"parameter 'c_values' must be a non-empty list of positive numbers, got {self.c_values}")
        if self.baseline != "encoder" and self.learning_rate_grid is not None:
            raise ConfigError(f"parameter 'learning_rate_grid' applies to the 'encoder' baseline only ('frozen' and "
                              f"'tfidf' choose C from c_values on validation); got baseline={self.baseline!r}")
        if self.baseline == "tfidf" and self.long_text != "truncate":
            raise ConfigError("parameter 'long_text' applies to 'encoder' and 'frozen' (TF-IDF reads the whole text "
                              f"already with tfidf_input='full'); got long_text={self.long_text!r} with baseline='tfidf'")
        if self.baseline != "tfidf":  # TF-IDF reads no model
            check_model_name(self.model)
            # an encoder's tokenizer adds [CLS] and [SEP]; a causal LM with append_eos adds the EOS
            least = 3 if self.baseline == "encoder" else 2 if self.append_eos else 1
            if self.max_length < least:
                raise ConfigError(f"max_length={self.max_length} leaves no token for the text with the "
                                  f"{self.baseline} baseline (its special tokens take {least - 1}); use "
                                  f"max_length >= {least}, in practice 64 or more")


@dataclass
class ReportConfig(Config):
    """notebooks/90_report.ipynb: the study's records into tables and plots."""

    study: str = param("default", "Study name: the records are read from runs/<study>/.")
    runs_root: str = param("runs", "Folder holding one folder per study.")
    notebook_links: str = param("runs", "Folder (relative to the report) of the rendered run notebooks.")
    tidy_dir: str = param("", "Folder for results.csv, predictions.parquet and comparisons.csv ('' writes none).")
    n_resamples: int = param(2000, "Bootstrap resamples of the test examples for intervals and paired comparisons.")
    report_commit: str = param("", "Commit of the report's code, to flag runs made by older code ('' reads git).")
    study_runs: str = param("", "JSON file of the runs the study file names (written by `llmclf report`); only "
                            "those are reported. Empty: every record under runs/<study>/.")


NOTEBOOK_CONFIGS: dict[str, type[Config]] = {
    "00_data": DataExplorationConfig,
    "10_embedding_head": EmbeddingHeadConfig,
    "20_instruction_tuning": InstructionConfig,
    "30_baselines": BaselineConfig,
    "90_report": ReportConfig,
}


def config_for(notebook: str) -> type[Config]:
    stem = notebook.rsplit("/", 1)[-1].removesuffix(".ipynb")
    if stem not in NOTEBOOK_CONFIGS:
        raise ConfigError(f"unknown notebook {notebook!r}; known notebooks: {sorted(NOTEBOOK_CONFIGS)}")
    return NOTEBOOK_CONFIGS[stem]


@dataclass
class DistillationConfig(DataParams, TrainParams, LoraParams, RunParams):
    """notebooks/40_distillation.ipynb: a student encoder trained on a teacher run's probabilities.

    The loss mixes the teacher's soft targets at a temperature (weight `distill_weight`) with the true labels:
    single-label, KL divergence between the tempered distributions (times temperature^2) plus cross-entropy;
    multi-label, binary cross-entropy on the tempered per-label probabilities plus binary cross-entropy."""

    model: str = param("tiny-bert", "Student encoder (packaged name, Hugging Face id or folder), e.g. minilm-l6.")
    teacher_run: str = param("", "The teacher: a run folder with a kept model; in a study, 'label:<configuration "
                             "label>' (that configuration's run with the same seed, else its best) or 'best' (the "
                             "study's best embedding-head or instruction run by F1 micro). Empty: a TF-IDF "
                             "teacher fitted in the notebook, so that it runs on its own (a demonstration).")
    temperature: float = param(2.0, "Softening temperature of the teacher's and the student's distributions.")
    distill_weight: float = param(0.5, "Weight of the teacher's soft targets in the loss; 1 - weight goes to the "
                                  "true labels (1.0: the teacher alone).")
    threshold: str | float = param("validation", THRESHOLD_HELP, check=lambda v: check_threshold(v))
    trust_remote_code: bool = param(False, "Allow code shipped with the model (off: never run code from folders).")
    use_lora: bool = param(False, "Train LoRA adapters on the student (True) or every weight (False).")
    lora_target_modules: list[str] = param(["query", "key", "value"],
                                           "Module names that get adapters (with use_lora); ['all-linear'] for "
                                           "every linear layer.")
    learning_rate: float = param(3e-4, "Peak learning rate (AdamW, linear decay) of the student.")
    save_model: bool = param(True, "Keep the trained student in <run_dir>/model, for `llmclf predict` and "
                             "`llmclf export`; False keeps only the record.")

    def validate(self):
        super().validate()
        if not self.temperature > 0:
            raise ConfigError(f"parameter 'temperature' must be > 0, got {self.temperature}")
        if not 0 <= self.distill_weight <= 1:
            raise ConfigError(f"parameter 'distill_weight' must be in [0, 1], got {self.distill_weight}")


NOTEBOOK_CONFIGS["40_distillation"] = DistillationConfig
