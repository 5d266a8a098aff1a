"""Formatting shared by every text format: numbers, p-values, intervals, rules, tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cactus_features.metrics.results import EfficiencyRow, Estimate, ProtocolRow

DASH = "—"
"""Shown for a value that is absent or undefined."""


def rule_description(rule: str, val_criterion: str) -> str:
    """A readable description of a threshold rule."""
    if rule == "val":
        crit = "Youden's J" if val_criterion == "youden" else "F1"
        return f"threshold chosen on each backbone's validation split (max {crit})"
    return f"fixed threshold {rule}"


def rule_short(rule: str) -> str:
    """A short description of a threshold rule (for legends)."""
    return "validation-chosen threshold" if rule == "val" else f"threshold {rule}"


def format_estimate(estimate: Estimate, digits: int = 3, ci: bool = True) -> str:
    """``0.912 [0.901, 0.925]``, or just the value when no interval exists."""
    if not math.isfinite(estimate.value):
        return DASH
    text = f"{estimate.value:.{digits}f}"
    if ci and math.isfinite(estimate.low) and math.isfinite(estimate.high):
        text += f" [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"
    return text


def format_number(value: float | None, digits: int) -> str:
    """A number with ``digits`` decimals, or :data:`DASH` when absent or not finite."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.{digits}f}"


def format_p(p: float) -> str:
    """A p-value with three decimals, ``<0.001`` below that, :data:`DASH` when undefined."""
    if not math.isfinite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_optional(value: Any) -> str:
    """``str(value)``, or :data:`DASH` for ``None``."""
    return DASH if value is None else str(value)


def md_escape(text: str) -> str:
    """Escape the characters that would break a Markdown table cell."""
    return text.replace("|", "\\|")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool, left: int = 1
) -> str:
    """A Markdown table, or a plain-text one with the first ``left`` columns left-aligned."""
    if markdown:
        esc = [[md_escape(str(x)) for x in r] for r in [headers, *rows]]
        out = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
        return "\n".join(out)
    cells = [[str(x) for x in r] for r in [headers, *rows]]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    out = []
    for k, r in enumerate(cells):
        out.append(
            "  ".join(
                x.ljust(widths[j]) if j < left else x.rjust(widths[j]) for j, x in enumerate(r)
            ).rstrip()
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def protocol_table(rows: Sequence[ProtocolRow], *, markdown: bool) -> str:
    """How each backbone's head was trained and chosen (the same table in text and Markdown)."""
    headers = ["Backbone", "Protocol", "Chosen", "Criterion", "Val loss", "Val AUC", "Converged"]
    body = []
    for p in rows:
        chosen = DASH if p.chosen is None else f"{p.param} {p.chosen:g}"
        if p.at_edge:
            chosen += " (grid edge)"
        converged = DASH if p.converged is None else ("yes" if p.converged else "NO")
        body.append(
            [
                p.backbone,
                p.protocol or DASH,
                chosen,
                p.criterion or DASH,
                format_number(p.val_loss, 4),
                format_number(p.val_auc, 4),
                converged,
            ]
        )
    return table(headers, body, markdown=markdown, left=4)


def efficiency_table(rows: Sequence[EfficiencyRow], *, markdown: bool) -> str:
    """The efficiency figures of each backbone (the same table in text and Markdown)."""
    headers = [
        "Backbone",
        "Weights",
        "Params",
        "GFLOPs",
        "Res",
        "Extract img/s",
        "Extract s",
        "Head train s",
        "One-off s",
        "Dim",
    ]
    body = [
        [
            e.backbone,
            e.weights or DASH,
            DASH if e.params is None else f"{e.params / 1e6:.1f}M",
            format_number(e.gflops, 2),
            DASH if e.resolution is None else f"{e.resolution:.0f}",
            format_number(e.images_per_second, 0),
            format_number(e.extract_seconds, 1),
            format_number(e.train_seconds, 1),
            format_number(e.one_off_seconds, 1),
            DASH if e.dim is None else f"{e.dim:.0f}",
        ]
        for e in rows
    ]
    return table(headers, body, markdown=markdown, left=2)
