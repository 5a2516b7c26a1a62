"""A conformance run's report: the results (results.py: counts per backend and mode, the op x
backend matrix, the slowest tests, regressions, unexpected passes, the targets) written as JSON
(machine), Markdown (a PR comment, markdown.py) and one self-contained HTML page (html.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from .html import render_html
from .markdown import render_markdown
from .results import ApiResult, Cell, Column, Report

__all__ = ["ApiResult", "Report", "Column", "Cell", "write_reports"]


def write_reports(report: Report, folder: str | Path) -> list[Path]:
    """report.json, report.md and report.html in `folder` (created if missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("report.json", json.dumps(report.to_dict(), indent=1)),
                       ("report.md", render_markdown(report)), ("report.html", render_html(report))):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
