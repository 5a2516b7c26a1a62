"""The report as Markdown, for a pull request: counts per backend next to onnxruntime's and the
reference implementation's, the targets, regressions and unexpected passes, the slowest tests."""
from __future__ import annotations

from .results import Report

__all__ = ["render_markdown"]

_LIST_LIMIT = 50


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def render_markdown(report: Report) -> str:
    env = report.environment
    lines = ["# hal conformance report", ""]
    if env:
        lines += [", ".join(f"{k}: {v}" for k, v in env.items()), ""]
    verdict = "PASS" if report.ok else "FAIL"
    lines += [f"**{verdict}**: {len(report.regressions())} regression(s), {len(report.api_failures())} API failure(s), "
              f"{len(report.unexpected_passes())} unexpected pass(es)" + (" (strict)" if report.strict_xfail else ""), ""]

    columns = report.columns()
    if columns:
        ort, ref = report.baseline_passes("onnxruntime"), report.baseline_passes("reference")
        lines += ["## ONNX node tests", "",
                  "| backend | device | mode | passed | failed | expected failures | unexpected passes | unsupported | total | onnxruntime CPU | onnx reference |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for column in columns:
            c = report.counts(column)
            device = report.devices.get(column.target, "-")
            lines.append(f"| {column.target} | {device} | {column.mode} | {c['passed']} | {c['failed']} | {c['xfail']} | "
                         f"{c['xpass']} | {c['unsupported']} | {c['total']} | {'-' if ort is None else ort} | "
                         f"{'-' if ref is None else ref} |")
        lines.append("")
    api = report.api_counts()
    if api:
        lines += ["## API suite", "", "| backend | device | passed | failed | skipped | total |", "|---|---|---:|---:|---:|---:|"]
        for backend, c in api.items():
            lines.append(f"| {backend} | {report.devices.get(backend, '-')} | {c['passed']} | {c['failed']} | {c['skipped']} | {c['total']} |")
        lines.append("")
    goals = report.goals()
    if goals:
        lines += ["## Targets", ""]
        for goal in goals:
            mark = "met" if goal["holds"] else "NOT met"
            lines.append(f"- {goal['goal']}: **{mark}** ({goal['measured']})")
            if goal.get("missing"):
                shown = ", ".join(goal["missing"][:_LIST_LIMIT])
                more = f" and {len(goal['missing']) - _LIST_LIMIT} more" if len(goal["missing"]) > _LIST_LIMIT else ""
                lines.append(f"  - not passed: {shown}{more}")
        lines.append("")
    for title, rows in (("Regressions", report.regressions()), ("Unexpected passes (shrink the expected-failure list)", report.unexpected_passes())):
        if not rows:
            continue
        lines += [f"## {title}", "", "| backend | mode | test | reason |", "|---|---|---|---|"]
        for r in rows[:_LIST_LIMIT]:
            lines.append(f"| {r.target} | {r.mode} | {r.test} | {_escape(r.reason)[:300]} |")
        if len(rows) > _LIST_LIMIT:
            lines.append(f"| | | ... and {len(rows) - _LIST_LIMIT} more (report.json has them all) | |")
        lines.append("")
    failures = report.api_failures()
    if failures:
        lines += ["## API failures", "", "| backend | test | reason |", "|---|---|---|"]
        lines += [f"| {r.backend} | {r.test} | {_escape(r.reason)[:300]} |" for r in failures[:_LIST_LIMIT]]
        lines.append("")
    slow = report.slowest()
    if slow:
        lines += ["## Slowest tests", "", "| seconds | where | test |", "|---:|---|---|"]
        for r in slow:
            where = f"{r.target} ({r.mode})" if hasattr(r, "mode") else f"{r.backend} (api)"
            lines.append(f"| {r.seconds:.3f} | {where} | {r.test} |")
        lines.append("")
    return "\n".join(lines)
