"""The reconciliation report as a self-contained HTML page."""

from __future__ import annotations

from typing import Any

from settlement.writers import _CSS, _e

MAX_ROWS = 500  # the CSV has every row; the page shows the first differences


def report_html(summary: dict[str, Any], pairs: list[Any], disputes: list[dict[str, Any]]) -> str:
    from settlement.reconcile import PAIR_COLUMNS, pair_row

    s = summary
    ic = s["invoice_compare"]
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Reconciliation {_e(s['partner'])} {_e(s['period'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Reconciliation {_e(s['partner'])} {_e(s['period'])}</h1>",
        f"<p>Their file {_e(s['their_file'])}: {s['their_rows']} rows "
        f"({s['their_rows_outside_period']} outside the period). Tolerance: start and duration "
        f"&plusmn;{s['tolerance_seconds']} s, or {_e(s['tolerance_pct'])}% of duration and "
        f"amount.</p>",
        f"<p>Amounts in {_e(s['currency'])}"
        + "".join(f"; {_e(f['from'])}&rarr;{_e(f['to'])} {_e(f['rate'])} ({_e(f['date'])}, "
                  f"{_e(f['source'])})" for f in s.get("fx", []))
        + f". Durations are exact; billed {_e(s.get('duration_rounding', 'up'))} to "
        f"{_e(s.get('billing_increment', 1))} s.</p>",
        "<table><tr><th>Class</th><th class=n>Calls</th><th class=n>Variance (ours - theirs)"
        "</th></tr>",
    ]
    for cls, n in s["counts"].items():
        out.append(f"<tr><td>{_e(cls)}</td><td class=n>{n}</td>"
                   f"<td class=n>{_e(s['variance_by_class'][cls])}</td></tr>")
    out += [
        f"<tr class=total><td>Total</td><td class=n>{sum(s['counts'].values())}</td>"
        f"<td class=n>{_e(s['variance'])} {_e(s['currency'])}</td></tr></table>",
        '<div class="box">',
        f"<p>Invoice totals: ours <b>{_e(ic['ours'])}</b>, theirs <b>{_e(ic['theirs'])}</b> "
        f"{_e(s['currency'])}; difference <b>{_e(ic['difference'])}</b> "
        f"({'within' if ic['within_tolerance'] else 'OUTSIDE'} tolerance).</p>",
        f"<p>Disputes opened: <b>{s['disputes_opened']}</b></p></div>",
        "<h2>Differences</h2><table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in PAIR_COLUMNS)
        + "</tr>",
    ]
    shown = 0
    for pr in pairs:
        if pr.cls == "exact":
            continue
        shown += 1
        if shown > MAX_ROWS:
            out.append(f"<tr><td colspan={len(PAIR_COLUMNS)}>... more in the CSV</td></tr>")
            break
        out.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in pair_row(pr)) + "</tr>")
    out.append("</table>")
    if disputes:
        out.append(f"<h2>Disputes</h2><p>{len(disputes)} disputes (ids {_e(disputes[0]['id'])} "
                   f"&hellip; {_e(disputes[-1]['id'])}); status per dispute in the dispute file."
                   "</p>")
    out += ["</body></html>", ""]
    return "\n".join(out)
