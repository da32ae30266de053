"""Markdown sections of ``report.md`` for text tasks and multi-stage programs."""

from __future__ import annotations

from typing import Any

__all__ = ["extra_sections"]


def _text(text: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Text outputs",
        "",
        f"Reference: {text['reference']}.",
        *([f"Feature word: {text['feature']}."] if text.get("feature") else []),
        f"Scoring: {text['scoring']}.",
        "",
        "| system | words mean | words median | words p90 | empty | copies input |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in text["systems"].items():
        n = row["lengths"]
        lines.append(
            f"| {name} | {n['words_mean']:.1f} | {n['words_median']:g} | {n['words_p90']:g} | "
            f"{n['empty_rate']:.1%} | {row['copy_rate']:.1%} |"
        )
    ref = text["reference_lengths"]
    lines.append(
        f"| reference | {ref['words_mean']:.1f} | {ref['words_median']:g} | "
        f"{ref['words_p90']:g} | {ref['empty_rate']:.1%} | – |"
    )
    lines += [
        "",
        f"{text.get('cases_whose_review_is_in_train', 0)} of {text['cases']} held-out reviews "
        "also appear verbatim in the training split (one review posted on several product "
        "variants); retrieval baselines skip such copies.",
        "",
        "Examples:",
        "",
    ]
    for example in text["examples"][:3]:
        lines.append(f"- `{example['id']}` reference: {example['reference']!r}")
        for key, value in example.items():
            if key not in ("id", "reference"):
                lines.append(f"  - {key}: {value!r}")
    return lines


def _stages(stages: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Cost per stage",
        "",
        "| stage | spec | per | distinct keys | computed | reused | calls | prompt tokens | "
        "completion tokens | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in stages.items():
        if name == "final":
            usage = row["all_invocations"]
            lines.append(
                f"| final | {row['spec']} | case | – | – | – | {usage.get('calls', 0):g} | "
                f"{usage.get('prompt_tokens', 0):g} | {usage.get('completion_tokens', 0):g} | "
                f"{usage.get('seconds', 0):.1f} |"
            )
            continue
        usage = row["all_invocations"] or row["this_invocation"]
        reused = row["reused_in_memory"] + row["reused_from_store"]
        lines.append(
            f"| {name} | {row['spec']} | {row['per']} | {row['distinct_keys']} | "
            f"{row['computed']} | {reused} | {usage.get('calls', 0):g} | "
            f"{usage.get('prompt_tokens', 0):g} | {usage.get('completion_tokens', 0):g} | "
            f"{usage.get('seconds', 0):.1f} |"
        )
    lines += ["", "Stage costs count every output in `stages.jsonl` (all invocations)."]
    return lines


def extra_sections(report: dict[str, Any]) -> list[str]:
    """Lines for report.md: the text section and the per-stage cost, when present."""
    lines: list[str] = []
    if report.get("text"):
        lines += _text(report["text"])
    if report.get("stages"):
        lines += _stages(report["stages"])
    return lines
