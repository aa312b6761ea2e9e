"""Deterministic file writers: invoice JSON/CSV/HTML, netting statement, run summary.

Byte-identical output for the same input: JSON with sorted keys and fixed indentation, CSV
with ``\\n`` line endings, HTML from a fixed template with every value escaped; no clock, no
hostname, no random ids. Files are written to a temp name and renamed (atomic per file).
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CSV_COLUMNS = (
    "invoice_no", "line", "section", "agreement", "direction", "service", "destination", "deck",
    "kind", "ref", "ref_period", "count", "usage", "unit", "minutes", "avg_rate", "currency",
    "source_amount", "fx_rate", "fx_date", "fx_source", "exact", "rounding", "amount",
)


def write_atomic(path: Path, text: str) -> None:
    """Write *text* (UTF-8) to *path* whole or not at all: a temp file of this call's own in
    the same directory (two writers of one path never rename each other's half-written
    file), fsync, rename over *path*, fsync the directory (the rename survives a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes it 0600: give it the mode the file had, else what open() gives
        # under the usual umask 022 (the self-care portal's user reads invoices)
        os.chmod(name, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def to_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def invoice_csv(inv: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for line in inv["lines"]:
        row = {**line, "invoice_no": inv["invoice_no"]}
        w.writerow([row.get(c, "") for c in CSV_COLUMNS])
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{margin-bottom:0} .muted{color:#666} table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} tr.total td{font-weight:bold;
border-top:2px solid #222} .box{border:1px solid #ccc;padding:1em;margin:1em 0;background:#fafafa}
.draft{color:#b00;font-weight:bold} .grid{display:flex;gap:3em}
""".strip()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def invoice_html(inv: dict[str, Any]) -> str:
    """A self-contained HTML invoice a person can read (no scripts, no external assets)."""
    p = inv["partner"]
    ccy = inv["currency"]
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(inv['invoice_no'])} {_e(p['name'])} {_e(inv['period'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Invoice {_e(inv['invoice_no'])}</h1>",
    ]
    if inv["status"] != "final":
        out.append('<p class="draft">DRAFT: the period is still open; amounts may change.</p>')
    out += [
        '<div class="grid"><div>',
        f"<p><b>From</b><br>{_e(inv['issuer'])}</p>",
        f"<p><b>To</b><br>{_e(p['name'])} ({_e(p['id'])})<br>{_e(p['address'])}<br>"
        f"{_e(', '.join(p['contacts']))}</p></div><div>",
        f"<p><b>Period</b> {_e(inv['period'])} ({_e(p['timezone'])})<br>"
        f"<b>Issue date</b> {_e(inv['issue_date'])}<br><b>Due date</b> {_e(inv['due_date'])}<br>"
        f"<b>Currency</b> {_e(ccy)}</p></div></div>",
        "<p><b>Agreements:</b> "
        + "; ".join(f"{_e(a['id'])} ({_e(a['type'])}) {_e(a['description'])}"
                    for a in inv["agreements"]) + "</p>",
    ]
    by_no = {line["line"]: line for line in inv["lines"]}
    for sec in inv["sections"]:
        out.append(f"<h2>{_e(sec['title'])}</h2>")
        out.append("<table><tr><th>#</th><th>Service</th><th>Destination / detail</th>"
                   "<th>Deck</th><th>Kind</th><th class=n>Calls/items</th><th class=n>Usage</th>"
                   "<th class=n>Avg rate /min or /item</th><th class=n>Source amount</th><th>FX</th>"
                   f"<th class=n>Exact ({_e(ccy)})</th><th class=n>Rounding</th>"
                   f"<th class=n>Amount ({_e(ccy)})</th></tr>")
        for no in sec["lines"]:
            d = by_no[no]
            usage = f"{d['minutes']} min" if d["minutes"] else (
                f"{d['usage']} {d['unit']}" if d["unit"] else "")
            fx = (f"{d['currency']}&rarr;{_e(ccy)} {_e(d['fx_rate'])} ({_e(d['fx_date'])}, "
                  f"{_e(d['fx_source'])})" if d["fx_rate"] else "")
            ref = f" [corrects {_e(d['ref'])} {_e(d['ref_period'])}]" if d["ref"] else ""
            out.append(
                f"<tr><td>{no}</td><td>{_e(d['service'])}</td><td>{_e(d['destination'])}{ref}</td>"
                f"<td>{_e(d['deck'])}</td><td>{_e(d['kind'])}</td><td class=n>{d['count']}</td>"
                f"<td class=n>{_e(usage)}</td><td class=n>{_e(d['avg_rate'])}</td>"
                f"<td class=n>{_e(d['source_amount'])} {_e(d['currency'])}</td><td>{fx}</td>"
                f"<td class=n>{_e(d['exact'])}</td><td class=n>{_e(d['rounding'])}</td>"
                f"<td class=n>{_e(d['amount'])}</td></tr>")
        if "gross_exact" in sec:
            out.append(f"<tr><td colspan=10>Gross revenue (exact, refunds netted)</td>"
                       f"<td class=n>{_e(sec['gross_exact'])}</td><td></td><td></td></tr>")
        out.append(f"<tr class=total><td colspan=10>Total "
                   f"({'receivable' if sec['sign'] == 1 else 'payable'})</td>"
                   f"<td class=n>{_e(sec['exact_total'])}</td><td class=n>{_e(sec['rounding'])}"
                   f"</td><td class=n>{_e(sec['total'])}</td></tr></table>")
    t = inv["totals"]
    out += [
        '<div class="box">',
        f"<p>Receivable (you pay us): <b>{_e(t['receivable'])} {_e(ccy)}</b><br>",
        f"Payable (we pay you): <b>{_e(t['payable'])} {_e(ccy)}</b><br>",
        f"Net: <b>{_e(t['net'])} {_e(ccy)}</b> &mdash; {_e(t['net_direction'])}</p></div>",
        f"<p class=muted><b>Rounding policy.</b> {_e(inv['rounding_policy'])}</p>",
        "</body></html>", "",
    ]
    return "\n".join(out)


def netting_statement(inv: dict[str, Any]) -> dict[str, Any]:
    """The bilateral netting statement: what each side owes and the one net payment."""
    t = inv["totals"]
    return {
        "statement": f"NET-{inv['period']}-{inv['partner']['id'].upper()}",
        "invoice_no": inv["invoice_no"], "status": inv["status"],
        "partner": inv["partner"]["id"], "period": inv["period"], "currency": inv["currency"],
        "we_bill_partner": t["receivable"], "partner_bills_us": t["payable"],
        "net": t["net"], "net_direction": t["net_direction"],
        "issue_date": inv["issue_date"], "due_date": inv["due_date"],
    }


def netting_html(net: dict[str, Any]) -> str:
    ccy = _e(net["currency"])
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(net['statement'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Netting statement {_e(net['statement'])}</h1>",
        f"<p>Partner {_e(net['partner'])}, period {_e(net['period'])}, "
        f"status {_e(net['status'])}, invoice {_e(net['invoice_no'])}</p>",
        "<table><tr><th>Item</th><th class=n>Amount</th></tr>",
        f"<tr><td>We bill partner</td><td class=n>{_e(net['we_bill_partner'])} {ccy}</td></tr>",
        f"<tr><td>Partner bills us</td><td class=n>{_e(net['partner_bills_us'])} {ccy}</td></tr>",
        f"<tr class=total><td>Net ({_e(net['net_direction'])})</td>"
        f"<td class=n>{_e(net['net'])} {ccy}</td></tr></table>",
        f"<p>Due {_e(net['due_date'])}</p></body></html>", "",
    ])


def summary_html(summary: dict[str, Any]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Settlement summary {_e(summary['period'])}</title><style>{_CSS}</style>"
           "</head><body>",
           f"<h1>Settlement summary {_e(summary['period'])} ({_e(summary['status'])})</h1>",
           f"<p>{summary['records']} journal records read, {summary['settled']} settled.</p>",
           "<table><tr><th>Partner</th><th>Invoice</th><th>Currency</th>"
           "<th class=n>Receivable</th><th class=n>Payable</th><th class=n>Net</th>"
           "<th>Direction</th></tr>"]
    for row in summary["partners"]:
        out.append(f"<tr><td>{_e(row['partner'])}</td><td>{_e(row['invoice_no'])}</td>"
                   f"<td>{_e(row['currency'])}</td><td class=n>{_e(row['receivable'])}</td>"
                   f"<td class=n>{_e(row['payable'])}</td><td class=n>{_e(row['net'])}</td>"
                   f"<td>{_e(row['net_direction'])}</td></tr>")
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def write_partner(out_dir: Path, inv: dict[str, Any], *, bilateral: bool) -> list[Path]:
    """Write one partner's files; return their paths."""
    base = out_dir / inv["partner"]["id"]
    stem = inv["invoice_no"]
    files = {
        base / f"{stem}.json": to_json(inv),
        base / f"{stem}.csv": invoice_csv(inv),
        base / f"{stem}.html": invoice_html(inv),
    }
    if bilateral:
        net = netting_statement(inv)
        files[base / f"{net['statement']}.json"] = to_json(net)
        files[base / f"{net['statement']}.html"] = netting_html(net)
    for path, text in files.items():
        write_atomic(path, text)
    return sorted(files)
