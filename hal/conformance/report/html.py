"""The report as one self-contained HTML page (inline CSS and JS, nothing fetched): pass counts
per backend, the targets, the op x backend matrix (hover a cell for its tests and reasons; the
buttons filter the rows), regressions and the slowest tests."""
from __future__ import annotations

from html import escape

from .results import Report

__all__ = ["render_html"]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .2em}h2{margin:1.4em 0 .4em}
.env{color:#666}.verdict{font-weight:bold;padding:.2em .6em;border-radius:4px;display:inline-block}
.verdict.pass{background:#d4f4d4}.verdict.fail{background:#f8d0d0}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 6px}
th{background:#f2f2f2;position:sticky;top:0}td.num{text-align:right}
#matrix td.op{font-family:monospace;white-space:nowrap}
#matrix td.cell{text-align:center;min-width:5em;cursor:help}
.cell.passed{background:#c9efc9}.cell.supported{background:#e3f3c6}.cell.failed{background:#f4b4b4}
.cell.xfail{background:#f9e0b0}.cell.unsupported{background:#e4e4e4;color:#777}.cell.absent{background:#fff}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid #ccc}
.filters button{margin-right:6px}.filters button.active{font-weight:bold;outline:2px solid #468}
.goal.met{color:#185c18}.goal.unmet{color:#a01010;font-weight:bold}
"""

_SCRIPT = """
(function(){
  var rows = Array.prototype.slice.call(document.querySelectorAll('#matrix tbody tr'));
  var search = document.getElementById('op-search');
  var mode = 'all';
  function apply(){
    var text = search.value.toLowerCase(), shown = 0;
    rows.forEach(function(row){
      var keep = row.dataset.op.toLowerCase().indexOf(text) >= 0;
      if (mode === 'failed') keep = keep && row.querySelector('.cell.failed, .cell.xfail') !== null;
      if (mode === 'gaps') keep = keep && row.querySelector('.cell.unsupported, .cell.supported') !== null;
      row.style.display = keep ? '' : 'none';
      if (keep) shown++;
    });
    document.getElementById('shown-count').textContent = shown + ' of ' + rows.length + ' ops shown';
  }
  document.querySelectorAll('.filters button').forEach(function(button){
    button.addEventListener('click', function(){
      mode = button.dataset.filter;
      document.querySelectorAll('.filters button').forEach(function(b){ b.classList.toggle('active', b === button); });
      apply();
    });
  });
  search.addEventListener('input', apply);
  apply();
})();
"""


def _table(headers: list[str], rows: list[list[str]], table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f"<td{klass}>{escape(str(value))}</td>"


def render_html(report: Report) -> str:
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>hal conformance report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>hal conformance report</h1>"]
    env = report.environment
    if env:
        parts.append(f'<p class="env">{escape(", ".join(f"{k}: {v}" for k, v in env.items()))}</p>')
    verdict = "PASS" if report.ok else "FAIL"
    parts.append(f'<p><span id="verdict" class="verdict {verdict.lower()}">{verdict}</span> '
                 f"{len(report.regressions())} regression(s), {len(report.api_failures())} API failure(s), "
                 f"{len(report.unexpected_passes())} unexpected pass(es)</p>")

    columns = report.columns()
    ort, ref = report.baseline_passes("onnxruntime"), report.baseline_passes("reference")
    if columns:
        parts.append("<h2>Pass counts</h2>")
        rows = []
        for column in columns:
            c = report.counts(column)
            rows.append([_td(column.label), _td(report.devices.get(column.target, "-")), _td(column.mode),
                         f'<td class="num passed-count" data-target="{escape(column.target)}" data-mode="{escape(column.mode)}">{c["passed"]}</td>',
                         _td(c["failed"], "num"), _td(c["xfail"], "num"), _td(c["xpass"], "num"),
                         _td(c["unsupported"], "num"), _td(c["total"], "num"),
                         _td("-" if ort is None else ort, "num"), _td("-" if ref is None else ref, "num")])
        parts.append(_table(["backend", "device", "mode", "passed", "failed", "expected failures", "unexpected passes",
                             "unsupported", "total", "onnxruntime CPU passes", "onnx reference passes"], rows, "counts"))
    api = report.api_counts()
    if api:
        parts.append("<h2>API suite</h2>")
        parts.append(_table(["backend", "device", "passed", "failed", "skipped", "total"],
                            [[_td(b), _td(report.devices.get(b, "-")), _td(c["passed"], "num"), _td(c["failed"], "num"),
                              _td(c["skipped"], "num"), _td(c["total"], "num")] for b, c in api.items()], "api"))
    goals = report.goals()
    if goals:
        parts.append('<h2>Targets</h2><ul id="goals">')
        for goal in goals:
            cls, mark = ("met", "met") if goal["holds"] else ("unmet", "NOT met")
            missing = goal.get("missing") or []
            extra = f" (not passed: {escape(', '.join(missing[:40]))}{' ...' if len(missing) > 40 else ''})" if missing else ""
            parts.append(f'<li class="goal {cls}">{escape(goal["goal"])}: {mark} ({escape(goal["measured"])}){extra}</li>')
        parts.append("</ul>")

    ops, columns, cells = report.matrix()
    if ops:
        parts.append("<h2>Ops by backend</h2>")
        parts.append('<p class="legend"><span class="cell passed">passed</span><span class="cell supported">'
                     'partly supported, all run passed</span><span class="cell failed">failed</span><span class="cell xfail">'
                     'expected failure</span><span class="cell unsupported">unsupported</span> Hover a cell for its tests '
                     'and reasons.</p>')
        parts.append('<p class="filters"><button data-filter="all" class="active">all ops</button>'
                     '<button data-filter="failed">ops with failures</button>'
                     '<button data-filter="gaps">ops a backend lacks</button>'
                     '<input id="op-search" type="search" placeholder="filter ops"> <span id="shown-count"></span></p>')
        rows = []
        for op in ops:
            row = [f'<td class="op">{escape(op)}</td>']
            for column in columns:
                cell = cells.get((op, column))
                if cell is None:
                    row.append('<td class="cell absent"></td>')
                    continue
                c = cell.counts
                text = f"{c['passed']}/{c['total']}" if cell.state != "unsupported" else "-"
                row.append(f'<td class="cell {cell.state}" data-column="{escape(column.label)}" '
                           f'title="{escape(cell.detail)}">{escape(text)}</td>')
            rows.append(row)
        head = "".join(f"<th>{escape(c.label)}</th>" for c in columns)
        body = "".join(f'<tr data-op="{escape(op)}">' + "".join(row) + "</tr>" for op, row in zip(ops, rows))
        parts.append(f'<table id="matrix"><thead><tr><th>op</th>{head}</tr></thead><tbody>{body}</tbody></table>')

    for title, ident, results in (("Regressions", "regressions", report.regressions()),
                                  ("Unexpected passes", "xpasses", report.unexpected_passes())):
        if results:
            parts.append(f"<h2>{title}</h2>")
            parts.append(_table(["backend", "mode", "test", "reason"],
                                [[_td(r.target), _td(r.mode), _td(r.test), _td(r.reason)] for r in results], ident))
    failures = report.api_failures()
    if failures:
        parts.append("<h2>API failures</h2>")
        parts.append(_table(["backend", "test", "reason"], [[_td(r.backend), _td(r.test), _td(r.reason)] for r in failures], "api-failures"))
    slow = report.slowest()
    if slow:
        parts.append("<h2>Slowest tests</h2>")
        rows = [[_td(f"{r.seconds:.3f}", "num"), _td(f"{r.target} ({r.mode})" if hasattr(r, "mode") else f"{r.backend} (api)"),
                 _td(r.test)] for r in slow]
        parts.append(_table(["seconds", "where", "test"], rows, "slowest"))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)
