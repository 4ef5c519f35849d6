"""A search's results, read back from KerasTuner's own records.

KerasTuner writes `kt/oracle.json` (trial order) and one
`kt/trial_<id>/trial.json` per trial (values, status, metrics, score,
message). Everything here is derived from those files, so the tables and
plot of an interrupted, resumed or distributed search are always right.
"""

import csv
import glob
import io
import json
import math
import os

from dlrecipes.training.rundir import atomic_write_text

EXTRA_COLUMNS = ("epochs", "seconds")


def read_trials(project_dir):
    """Rows in trial start order: {"trial", "status", "values", "score",
    "metrics", "message"} (metrics: name -> mean over executions)."""
    order = []
    oracle_path = os.path.join(project_dir, "oracle.json")
    if os.path.isfile(oracle_path):
        try:
            with open(oracle_path) as f:
                order = json.load(f).get("start_order", [])
        except (OSError, ValueError):
            order = []
    states = {}
    for path in glob.glob(os.path.join(project_dir, "trial_*",
                                       "trial.json")):
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        states[state["trial_id"]] = state
    ids = [i for i in order if i in states]
    ids += sorted(set(states) - set(ids))
    rows = []
    for trial_id in ids:
        state = states[trial_id]
        metrics = {}
        for name, history in state["metrics"]["metrics"].items():
            observations = history.get("observations") or []
            if observations:
                values = observations[-1]["value"]
                metrics[name] = sum(values) / len(values)
        rows.append({"trial": trial_id, "status": state["status"],
                     "values": state["hyperparameters"]["values"],
                     "score": state["score"], "metrics": metrics,
                     "message": state.get("message")})
    return rows


def error_line(message):
    """`FailedTrialError: loss is nan at epoch 1` from a traceback."""
    if not message:
        return ""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    head, sep, tail = last.partition(": ")
    if sep and "." in head and " " not in head:
        last = f"{head.rsplit('.', 1)[-1]}: {tail}"
    return last


def best_row(rows, direction):
    done = [r for r in rows if r["status"] == "COMPLETED"
            and r["score"] is not None and math.isfinite(r["score"])]
    if not done:
        return None
    pick = max if direction == "max" else min
    return pick(done, key=lambda r: r["score"])


def columns(rows, hp_names):
    names = list(hp_names)
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    return names


def _fmt(value, digits=4):
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def table_records(rows, hp_names, objective):
    """One flat dict per trial: trial, status, hps..., score, epochs,
    seconds, error."""
    names = columns(rows, hp_names)
    out = []
    for row in rows:
        rec = {"trial": row["trial"], "status": row["status"]}
        for name in names:
            rec[name] = row["values"].get(name)
        rec[objective] = row["score"]
        for key in EXTRA_COLUMNS:
            value = row["metrics"].get(key)
            rec[key] = (int(round(value)) if key == "epochs"
                        and value is not None else value)
        rec["error"] = error_line(row["message"]) \
            if row["status"] != "COMPLETED" else ""
        out.append(rec)
    return out


def write_tables(directory, rows, hp_names, objective, direction):
    """`trials.csv` (full precision) and `trials.md` (best trial first)."""
    records = table_records(rows, hp_names, objective)
    keys = list(records[0]) if records else ["trial", "status", objective]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if v is None else v for k, v in rec.items()})
    atomic_write_text(os.path.join(directory, "trials.csv"), buf.getvalue())
    atomic_write_text(os.path.join(directory, "trials.md"),
                      markdown(rows, hp_names, objective, direction))
    return records


def markdown(rows, hp_names, objective, direction):
    records = table_records(rows, hp_names, objective)
    best = best_row(rows, direction)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = [f"{len(rows)} trials: " + ", ".join(
        f"{n} {s.lower()}" for s, n in sorted(counts.items()))]
    if best is not None:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in best["values"].items()
                           if not k.startswith("tuner/"))
        lines.append(f"best trial {best['trial']}: {objective} "
                     f"{best['score']:.4f} ({values})")
    lines.append("")
    if records:
        keys = [k for k in records[0]
                if k != "error" or any(r["error"] for r in records)]
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "|".join("---" for _ in keys) + "|")
        for rec in records:
            cells = []
            for k in keys:
                v = rec[k]
                text = _fmt(v, 4) if k != "seconds" else (
                    "" if v is None else f"{v:.1f}")
                if k == "trial" and best is not None and v == best["trial"]:
                    text += " *"
                cells.append(text.replace("|", "/"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------- importance


def _ranks(values):
    import numpy as np

    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def importance(rows, hp_names):
    """{hp: share of score variance it explains} over completed trials:
    squared Spearman correlation for numeric hps with more than two
    values, eta squared (between-group variance) otherwise."""
    import numpy as np

    done = [r for r in rows if r["status"] == "COMPLETED"
            and r["score"] is not None and math.isfinite(r["score"])]
    out = {}
    if len(done) < 3:
        return out
    for name in hp_names:
        pairs = [(r["values"][name], r["score"]) for r in done
                 if name in r["values"]]
        distinct = {p[0] for p in pairs}
        if len(pairs) < 3 or len(distinct) < 2:
            continue
        xs = [p[0] for p in pairs]
        ys = np.array([p[1] for p in pairs], dtype=float)
        if ys.std() == 0:
            out[name] = 0.0
            continue
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool)
                      for x in xs)
        if numeric and len(distinct) > 2:
            rho = np.corrcoef(_ranks(xs), _ranks(ys))[0, 1]
            out[name] = float(rho ** 2) if math.isfinite(rho) else 0.0
        else:
            total = ((ys - ys.mean()) ** 2).sum()
            between = 0.0
            for value in distinct:
                group = ys[[x == value for x in xs]]
                between += len(group) * (group.mean() - ys.mean()) ** 2
            out[name] = float(between / total)
    return out


# --------------------------------------------------------------------- plot


def plot_search(rows, hp_names, objective, direction, path, log_hps=()):
    """`search.png`: the score of every trial (failed ones marked at the
    bottom, best-so-far line) and the score against the most important hp."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    ranks = importance(rows, hp_names)
    top = max(ranks, key=ranks.get) if ranks else None
    fig, axes = plt.subplots(1, 2 if top else 1,
                             figsize=(11 if top else 6, 3.6))
    axes = axes if hasattr(axes, "__len__") else [axes]
    ax = axes[0]
    xs, ys, failed = [], [], []
    for i, row in enumerate(rows, start=1):
        score = row["score"]
        if row["status"] == "COMPLETED" and score is not None and \
                math.isfinite(score):
            xs.append(i)
            ys.append(score)
        elif row["status"] in ("FAILED", "INVALID"):
            failed.append(i)
    ax.plot(xs, ys, "o", label="trial")
    if ys:
        best, running = [], None
        for y in ys:
            better = running is None or (y > running if direction == "max"
                                         else y < running)
            running = y if better else running
            best.append(running)
        ax.step(xs, best, where="post", label="best so far")
        lo = min(ys)
        span = (max(ys) - lo) or 1.0
        if failed:
            ax.plot(failed, [lo - 0.05 * span] * len(failed), "x",
                    color="tab:red", label="failed")
    elif failed:
        ax.plot(failed, [0] * len(failed), "x", color="tab:red",
                label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} per trial")
    ax.legend()
    if top:
        ax = axes[1]
        pairs = [(r["values"][top], r["score"]) for r in rows
                 if r["status"] == "COMPLETED" and top in r["values"]
                 and r["score"] is not None and math.isfinite(r["score"])]
        values = [p[0] for p in pairs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in values)
        if numeric:
            ax.plot(values, [p[1] for p in pairs], "o")
            if top in log_hps:
                ax.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            pos = {label: i for i, label in enumerate(labels)}
            ax.plot([pos[str(v)] for v in values], [p[1] for p in pairs],
                    "o", alpha=0.7)
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(top)
        ax.set_ylabel(objective)
        ax.set_title(f"most important: {top} ({ranks[top]:.0%} of variance)")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return top
