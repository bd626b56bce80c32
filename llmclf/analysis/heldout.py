"""Held-out confirmation: do the ranking and the floor claims hold on test rows that nothing has read?

`llmclf confirm <study>` scores the kept models on the test rows `max_test` left out (analysis.verdict keeps them
as `TaskAnalysis.held_out`). Here, on those rows, with the same statistics as the report's (bootstrap over the
examples and the seeds, Holm within each family): each configuration's F1 micro with its interval; whether the
best chosen on validation is shown worse than any other there; whether the configurations shown better than the
best floor on test are better than it there too; and how well the test ranking predicts the held-out one
(Spearman's rank correlation of the F1 estimates, a description).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import statistics as st
from .verdict import ALPHA, BEATS, FLOOR, TaskAnalysis, _Bootstrap, md


def confirmation(t: TaskAnalysis, n_resamples: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """(table, lines); both empty when the task has no held-out predictions."""
    if not t.held_out:
        return pd.DataFrame(), []
    first = next(iter(t.held_out.values()))[0]
    y, multi, n_labels = first.y, t.multi_label, len(t.labels)
    preds = {k: [r.predicted() for r in v] for k, v in t.held_out.items()}
    table = t.table.set_index("configuration")
    order = [k for k in t.table.configuration if k in preds]  # validation order
    floor = t.best_floor
    if floor is not None:
        proba, threshold = t.floor_preds[floor]
        preds[floor] = [st.predictions(np.tile(proba[:1], (len(y), 1)), multi, threshold)]  # floors are constant
    boot = _Bootstrap(y, multi, n_labels, st.resamples_for_holm(2 * max(len(order), 1), n_resamples, ALPHA), seed)
    rows = []
    for name in [*order, *([floor] if floor else [])]:
        ci = boot.ci(name, preds[name], "f1_micro")
        rows.append({"configuration": name, "kind": FLOOR if name == floor else "configuration",
                     "seeds": len(preds[name]), "test f1_micro": table.loc[name, "f1_micro"],
                     "held-out f1_micro": ci["estimate"], "held-out low": ci["low"], "held-out high": ci["high"]})
    out = pd.DataFrame(rows)
    lines = [f"Held-out confirmation ({len(y):,} test rows that `max_test` left out (all of them, or a stratified "
             "sample of them, `max_held_out`), which no run, threshold or "
             f"choice read; scored by the kept models of {len(order)} configuration{'s' * (len(order) != 1)}"
             + (f"; not scored: {', '.join(md(k) for k in table.index if k not in preds and table.loc[k, 'kind'] != FLOOR)}"
                " (no kept model, or not every seed confirmed)"
                if any(k not in preds for k in table.index[table.kind != FLOOR]) else "") + "):"]
    best = t.best
    if best in preds and len(order) > 1:
        diffs = [(k, boot.difference(best, preds[best], k, preds[k], "f1_micro")) for k in order if k != best]
        p_holm = st.holm([d["p_value"] for _, d in diffs])
        worse = [k for (k, d), p in zip(diffs, p_holm) if p < ALPHA and d["difference"] < 0]
        b = out.set_index("configuration").loc[best]
        lines.append(f"the best on validation, {md(best)}, has held-out F1 micro {b['held-out f1_micro']:.3f} "
                     f"[{b['held-out low']:.3f}, {b['held-out high']:.3f}]; "
                     + (f"there it is worse than {', '.join(md(k) for k in worse)} (Holm-adjusted p < {ALPHA:g}): "
                        "the held-out rows contradict the choice." if worse else
                        f"no configuration is shown better than it there (Holm-adjusted p ≥ {ALPHA:g}): the held-out "
                        "rows do not contradict the choice (not a proof that it is the best)."))
    elif best not in preds:
        lines.append(f"The best on validation, {md(best)}, was not scored on the held-out rows: its choice is not "
                     "checked there.")
    confs = out[out.kind != FLOOR]
    if len(confs) >= 3:
        from scipy.stats import spearmanr

        rho = spearmanr(confs["test f1_micro"], confs["held-out f1_micro"]).statistic
        lines.append(f"The test ranking and the held-out ranking agree with Spearman's ρ = {rho:.2f} over "
                     f"{len(confs)} configurations.")
    claimed = [k for k in order if table.loc[k].get("vs floor") == BEATS]
    if floor is not None and claimed:
        diffs = [boot.difference(k, preds[k], floor, preds[floor], "f1_micro") for k in claimed]
        p_holm = st.holm([d["p_value"] for d in diffs])
        held = [k for k, d, p in zip(claimed, diffs, p_holm) if p < ALPHA and d["difference"] > 0]
        lost = [k for k in claimed if k not in held]
        lines.append(f"Of the {len(claimed)} configuration{'s' * (len(claimed) != 1)} shown better than the floor "
                     f"({md(floor)}) on test, {len(held)} {'are' if len(held) != 1 else 'is'} better than it on the "
                     f"held-out rows too (Holm-adjusted p < {ALPHA:g})"
                     + (f"; not confirmed there: {', '.join(md(k) for k in lost)}." if lost else "."))
    return out, lines
