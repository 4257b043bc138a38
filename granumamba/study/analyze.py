"""Analyse returned ratings: join with the answer key, drop participants who fail the attention
checks, and report per condition and dimension the mean, standard deviation, 95% confidence
interval (t distribution over participants) and a paired test against a reference condition
(paired t-test and Wilcoxon signed-rank on per-participant means). Writes summary.csv,
summary.md, exclusions.csv and chart.png."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from .page import ANSWER_FIELDS


class ResponseError(ValueError):
    """Responses or key that cannot be analysed; the message says which file and why."""


@dataclass
class AttentionRule:
    max_catch_rating: float = 2.0  # a motionless body rated above this (mean over dimensions) fails
    max_mismatched_rating: float = 3.0  # speech and gesture of different clips rated above this in synchrony fails
    synchrony_dimension: str = "synchrony"


def read_key(path: str | os.PathLike) -> dict[str, dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ResponseError(f"{path}: cannot read the answer key ({err})") from None
    if not rows or not {"stimulus_id", "kind", "condition"} <= set(rows[0]):
        raise ResponseError(f"{path}: not an answer key (needs stimulus_id, kind, condition columns)")
    return {r["stimulus_id"]: r for r in rows}


def read_responses(folder: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """All answer CSVs in `folder`; returns the rows and a list of problems (skipped rows/files)."""
    rows, problems = [], []
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise ResponseError(f"{folder}: no answer files (*.csv) here")
    for file in files:
        try:
            with file.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if not reader.fieldnames or not set(ANSWER_FIELDS) <= set(reader.fieldnames):
                    problems.append(f"{file.name}: not an answers file (columns {', '.join(ANSWER_FIELDS)})")
                    continue
                for line, r in enumerate(reader, start=2):
                    text = r["rating"]
                    try:
                        r["rating"] = float(text)
                    except (TypeError, ValueError):
                        r["rating"] = float("nan")
                    if not math.isfinite(r["rating"]):  # "nan", "inf" and words alike
                        problems.append(f"{file.name}:{line}: rating {text!r} is not a finite number: skipped")
                        continue
                    rows.append(r)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            problems.append(f"{file.name}: unreadable ({err})")
    return rows, problems


def attention_failures(rows: list[dict], key: dict[str, dict], rule: AttentionRule) -> dict[str, str]:
    """participant -> why they are excluded."""
    failures: dict[str, str] = {}
    by_item: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_item.setdefault((r["participant"], r["stimulus_id"]), []).append(r)
    for (participant, sid), answers in by_item.items():
        kind = key[sid]["kind"]
        if kind == "catch":
            mean = float(np.mean([a["rating"] for a in answers]))
            if mean > rule.max_catch_rating:
                failures.setdefault(participant, f"rated the motionless catch trial {sid} {mean:.1f} (> {rule.max_catch_rating})")
        elif kind == "mismatched":
            sync = [a["rating"] for a in answers if a["dimension"] == rule.synchrony_dimension] or [a["rating"] for a in answers]
            value = float(np.mean(sync))
            if value > rule.max_mismatched_rating:
                failures.setdefault(participant, f"rated mismatched speech and gesture {sid} {value:.1f} (> {rule.max_mismatched_rating})")
    return failures


def summarize(rows: list[dict], key: dict[str, dict], reference: str | None) -> list[dict]:
    """One row per condition and dimension over participants' mean ratings."""
    per_participant: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        item = key[r["stimulus_id"]]
        if item["kind"] not in ("stimulus", "pair"):
            continue
        per_participant.setdefault((item["condition"], r["dimension"], r["participant"]), []).append(r["rating"])
    means = {k: float(np.mean(v)) for k, v in per_participant.items()}
    conditions = sorted({k[0] for k in means}, key=lambda c: (c != reference, c))
    dimensions = list(dict.fromkeys(r["dimension"] for r in rows))
    summary = []
    for condition in conditions:
        for dimension in dimensions:
            scores = {p: v for (c, d, p), v in means.items() if c == condition and d == dimension}
            if not scores:
                continue
            values = np.array(list(scores.values()))
            n = len(values)
            mean = float(values.mean())
            sd = float(values.std(ddof=1)) if n > 1 else float("nan")
            half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
            row = {
                "condition": condition,
                "dimension": dimension,
                "n": n,
                "mean": mean,
                "sd": sd,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "t": "",
                "p_ttest": "",
                "p_wilcoxon": "",
            }
            if reference and condition != reference:
                ref = {p: v for (c, d, p), v in means.items() if c == reference and d == dimension}
                both = sorted(set(ref) & set(scores))
                if len(both) > 1:
                    a, b = np.array([scores[p] for p in both]), np.array([ref[p] for p in both])
                    if np.any(a != b):
                        test = stats.ttest_rel(a, b)
                        row["t"], row["p_ttest"] = float(test.statistic), float(test.pvalue)
                        row["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue)
            summary.append(row)
    return summary


def _chart(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = list(dict.fromkeys(r["condition"] for r in summary))
    dimensions = list(dict.fromkeys(r["dimension"] for r in summary))
    width = 0.8 / max(1, len(conditions))
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(dimensions), 3.6), dpi=120)
    for i, condition in enumerate(conditions):
        rows = {r["dimension"]: r for r in summary if r["condition"] == condition}
        xs = np.arange(len(dimensions)) + (i - (len(conditions) - 1) / 2) * width
        means = [rows[d]["mean"] if d in rows else np.nan for d in dimensions]
        errors = [(rows[d]["ci_high"] - rows[d]["mean"]) if d in rows else 0 for d in dimensions]
        ax.bar(xs, means, width, yerr=np.nan_to_num(errors), capsize=3, label=condition)
    ax.set_xticks(np.arange(len(dimensions)), dimensions)
    ax.set_ylabel("mean rating (95% CI)")
    ax.set_ylim(0, max(5.0, max(r["mean"] for r in summary) + 0.5))
    ax.legend(frameon=False, fontsize=8, ncols=min(4, len(conditions)))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def analyze(key_path, responses, out, reference: str | None = None, rule: AttentionRule | None = None) -> dict:
    rule = rule or AttentionRule()
    key = read_key(key_path)
    rows, problems = read_responses(responses)
    unknown = sorted({r["stimulus_id"] for r in rows if r["stimulus_id"] not in key})
    if unknown:
        problems.append(f"{len(unknown)} answer(s) name stimuli not in the key, e.g. {unknown[0]}: ignored")
        rows = [r for r in rows if r["stimulus_id"] in key]
    if not rows:
        raise ResponseError("no usable answers: " + "; ".join(problems))
    failures = attention_failures(rows, key, rule)
    kept = [r for r in rows if r["participant"] not in failures]
    conditions = {key[r["stimulus_id"]]["condition"] for r in kept}
    if reference is not None and reference not in conditions:
        raise ResponseError(f"reference condition {reference!r} has no answers; conditions: {', '.join(sorted(conditions))}")
    summary = summarize(kept, key, reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["condition", "dimension", "n", "mean", "sd", "ci_low", "ci_high", "t", "p_ttest", "p_wilcoxon"]
    with (out / "summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(summary)
    with (out / "exclusions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["participant", "reason"])
        writer.writerows(sorted(failures.items()))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [
        f"# Ratings: {len({r['participant'] for r in kept})} participants kept, {len(failures)} excluded by the attention checks",
        "",
        "| " + " | ".join(fields) + " |",
        "|" + "---|" * len(fields),
    ]
    lines += ["| " + " | ".join(fmt(r[f]) for f in fields) + " |" for r in summary]
    if failures:
        lines += ["", "Excluded:"] + [f"- {p}: {why}" for p, why in sorted(failures.items())]
    if problems:
        lines += ["", "Problems in the responses:"] + [f"- {p}" for p in problems]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    _chart(summary, out / "chart.png")
    return {"summary": summary, "excluded": failures, "problems": problems}
