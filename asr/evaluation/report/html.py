"""A report as one self-contained HTML page: inline CSS and JS, plots as PNG data URIs.

The page works offline and as a mail attachment: nothing is fetched, every
piece of text goes through `html.escape`, and the tables sort (click a header)
and filter (type in the box) with a few lines of vanilla JavaScript.
"""

from __future__ import annotations

from html import escape

from asr.evaluation.metrics import RATES
from asr.evaluation.report.markdown import percent
from asr.evaluation.report.plots import report_plots

# Light versions of the plots' colours, behind the alignment's error spans.
TINTS = {"substitutions": "#fbe3b0", "deletions": "#f7c9b3", "insertions": "#c6e0f3"}
EDITS = ("substitutions", "deletions", "insertions")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
  background:#f6f8fa;margin:0}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}
.meta{color:#57606a;margin:0 0 20px}.meta b{color:#1f2328;font-weight:600}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px}
.grid{display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(340px,1fr))}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{font-weight:600;color:#57606a;white-space:nowrap;background:#fff}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;position:sticky;top:0}
table.sortable th:hover{color:#0969da}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.summary{display:flex;flex-wrap:wrap;gap:16px}.summary>.panel{flex:1 1 auto}
caption{caption-side:bottom;font-size:12px;color:#57606a;padding-top:6px}
#summary-table td,#counts-table td{font-size:24px;font-weight:600;text-align:center;border:0;
  padding:2px 6px;white-space:nowrap}
#counts-table td{font-size:18px}
#summary-table th,#counts-table th{text-align:center;border:0;white-space:normal;font-size:12px;
  vertical-align:bottom}
#summary-table td.ci,#counts-table td.ci{font-size:12px;font-weight:400;color:#57606a}
#summary-table td.main{color:#0969da;font-size:32px}
h3{font-size:15px;margin:0 0 8px}
td.bar{background-repeat:no-repeat;background-position:right}
img{max-width:100%;display:block;margin:auto}
.controls{display:flex;gap:16px;align-items:center;margin-bottom:10px;flex-wrap:wrap}
.controls input[type=search]{flex:1;min-width:240px;padding:6px 10px;border:1px solid #d0d7de;
  border-radius:6px;font:inherit}
.legend{color:#57606a}.legend>span{margin-right:16px;white-space:nowrap}
.align{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9}
.sub,.del,.ins{border-radius:3px;padding:1px 3px;text-decoration:none}
.sub{background:#fbe3b0}.sub s{color:#8a5a00;margin-right:5px}
.del{background:#f7c9b3;color:#8f2d00;text-decoration:line-through}
.ins{background:#c6e0f3;color:#00466e}
.badge{background:#d55e00;color:#fff;border-radius:8px;padding:0 6px;font-size:11px;margin-left:6px}
.count{color:#57606a}
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(table => {
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach((header, column) => header.addEventListener("click", () => {
    const numeric = header.classList.contains("n");
    // First click: numbers worst (largest) first, text A to Z; later clicks flip.
    const current = header.getAttribute("aria-sort");
    const descending = current ? current === "ascending" : numeric;
    const key = row => {
      const cell = row.cells[column];
      return numeric ? parseFloat(cell.dataset.value) : cell.textContent.toLowerCase();
    };
    const body = table.tBodies[0];
    const keyed = Array.from(body.rows, row => [key(row), row]).sort(([x], [y]) =>
      (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1));
    const fragment = document.createDocumentFragment();
    keyed.forEach(([, row]) => fragment.appendChild(row));
    body.appendChild(fragment);
    headers.forEach(other => other.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }));
});
(() => {
  const table = document.getElementById("utterance-table");
  const filter = document.getElementById("filter"), errorsOnly = document.getElementById("errors-only");
  const shown = document.getElementById("shown");
  const rows = Array.from(table.tBodies[0].rows).map(row => [row, row.textContent.toLowerCase()]);
  const apply = () => {
    const needle = filter.value.trim().toLowerCase();
    let count = 0;
    for (const [row, text] of rows) {
      row.hidden = (needle && !text.includes(needle)) ||
        (errorsOnly.checked && row.dataset.errors === "0");
      count += !row.hidden;
    }
    shown.textContent = count;
  };
  filter.addEventListener("input", apply);
  errorsOnly.addEventListener("change", apply);
})();
"""


def render_html(report: dict) -> str:
    """The whole report as one HTML document (a string)."""
    meta = report["metadata"]
    title = "ASR evaluation" + (f": {meta['model']}" if meta.get("model") else "")
    bootstrap = f"{meta['bootstrap']['resamples']} resamples, seed {meta['bootstrap']['seed']}"
    facts = [("data", meta.get("data")), ("decoder", meta.get("decoder")),
             ("normalisation", meta.get("normalization")), ("created", meta.get("created")),
             ("bootstrap", bootstrap)]
    plots = "".join(f'<div class="panel"><img alt="{escape(alt)}" src="{uri}"></div>'
                    for alt, uri in report_plots(report))
    sections = [
        f"<h1>{escape(title)}</h1>",
        '<p class="meta">' + " &middot; ".join(f"{name} <b>{escape(str(value))}</b>"
                                                for name, value in facts if value) + "</p>",
        _summary(report),
        f'<h2>Where the errors are</h2><div class="grid">{plots}</div>',
        _confusions(report["confusions"]),
        _speakers(report["speakers"]),
        _failures(report.get("failures", [])),
        _utterances(report["utterances"]),
    ]
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body><main>\n"
            + "\n".join(section for section in sections if section)
            + f"\n</main><script>{SCRIPT}</script></body></html>\n")


def alignment_html(alignment: list[dict]) -> str:
    """Alignment spans as inline HTML spans: class sub, del and ins mark the errors."""
    pieces = []
    for span in alignment:
        reference = [escape(word) for word in span["reference"]]
        hypothesis = [escape(word) for word in span["hypothesis"]]
        if span["op"] == "equal":
            pieces.append(" ".join(reference))
        elif span["op"] == "substitute":
            pieces += [f'<span class="sub" title="substitution"><s>{ref}</s>{hyp}</span>'
                       for ref, hyp in zip(reference, hypothesis)]
        elif span["op"] == "delete":
            pieces += [f'<span class="del" title="deletion">{ref}</span>' for ref in reference]
        else:
            pieces += [f'<span class="ins" title="insertion">{hyp}</span>' for hyp in hypothesis]
    return " ".join(pieces)


def _summary(report: dict) -> str:
    summary, counts, intervals = report["summary"], report["counts"], report["intervals"]
    confidence = round(100 * report["metadata"]["bootstrap"]["confidence"])
    rates = "".join(f'<td class="{"main" if name == "wer" else ""}">{percent(summary[name])}</td>'
                    for name in RATES)
    spans = "".join(f'<td class="ci">{percent(intervals[name][0])} – {percent(intervals[name][1])}</td>'
                    if intervals[name] else '<td class="ci">—</td>' for name in RATES)
    seconds, words = counts["duration_seconds"], summary["reference_words"]
    figures = [("utterances", counts["utterances"], ""),
               ("audio", f"{seconds / 3600:.2f} h" if seconds else "—", ""),
               ("reference words", words, "")]
    figures += [(name, summary[name], percent(summary[name] / words, 1) if words else "") for name in EDITS]
    # Edge cases earn a column only when they happened.
    figures += [(name.replace("_", " "), counts[name], "")
                for name in ("missing_hypotheses", "empty_references", "empty_hypotheses") if counts[name]]
    return ('<div class="summary"><div class="panel"><table id="summary-table"><tr>'
            + "".join(f"<th>{name.upper()}</th>" for name in RATES)
            + f"</tr><tr>{rates}</tr><tr>{spans}</tr><caption>{confidence}% bootstrap confidence "
            "intervals over utterances</caption></table></div>"
            '<div class="panel"><table id="counts-table"><tr>'
            + "".join(f"<th>{escape(name)}</th>" for name, _, _ in figures) + "</tr><tr>"
            + "".join(f"<td>{escape(str(value))}</td>" for _, value, _ in figures) + "</tr><tr>"
            + "".join(f'<td class="ci">{share}</td>' for _, _, share in figures)
            + "</tr></table></div></div>")


def _confusions(confusions: dict) -> str:
    tables = {"substitutions": (["reference", "hypothesis"],
                                [(pair["reference"], pair["hypothesis"], pair["count"])
                                 for pair in confusions["substitutions"]]),
              "deletions": (["word"], [(item["word"], item["count"]) for item in confusions["deletions"]]),
              "insertions": (["word"], [(item["word"], item["count"]) for item in confusions["insertions"]])}
    panels = []
    for kind, (columns, rows) in tables.items():
        head = "".join(f"<th>{column}</th>" for column in columns) + '<th class="n">count</th>'
        most = max((row[-1] for row in rows), default=1)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(value))}</td>" for value in row[:-1])
                       + _bar(row[-1], most, TINTS[kind]) + "</tr>" for row in rows)
        body = body or f'<tr><td colspan="{len(columns) + 1}" class="count">none</td></tr>'
        panels.append(f'<div class="panel"><h3>{kind.capitalize()}</h3>'
                      f'<table id="{kind}-table" class="sortable"><thead><tr>{head}</tr></thead>'
                      f"<tbody>{body}</tbody></table></div>")
    return '<h2>Commonest errors</h2><div class="grid">' + "".join(panels) + "</div>"


def _speakers(speakers: list[dict]) -> str:
    if not speakers:
        return ""
    rows = "".join(f"<tr><td>{escape(str(group['speaker']))}</td>"
                   + _number(group["utterances"]) + _number(group["reference_words"])
                   + _rate(group["wer"]) + _rate(group["cer"])
                   + "".join(_number(group[name]) for name in EDITS) + "</tr>" for group in speakers)
    head = "".join(f'<th class="n">{name}</th>'
                   for name in ("utterances", "words", "WER", "CER", "S", "D", "I"))
    return (f'<h2>Speakers ({len(speakers)})</h2><div class="panel">'
            f'<table id="speaker-table" class="sortable"><thead><tr><th>speaker</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _failures(failures: list[dict]) -> str:
    if not failures:
        return ""
    items = "".join(f"<li><code>{escape(str(failure.get('audio_filepath')))}</code>: "
                    f"{escape(str(failure.get('error')))}</li>" for failure in failures)
    return (f"<h2>Failed files ({len(failures)}, scored as empty hypotheses)</h2>"
            f'<div class="panel"><ul>{items}</ul></div>')


def _utterances(utterances: list[dict]) -> str:
    with_speaker = any(row["speaker"] is not None for row in utterances)
    with_duration = any(row["duration"] is not None for row in utterances)
    head = "<th>id</th>" + ("<th>speaker</th>" if with_speaker else "")
    head += '<th class="n">seconds</th>' if with_duration else ""
    head += "".join(f'<th class="n">{name}</th>' for name in ("words", "S", "D", "I", "errors", "WER"))
    rows = []
    # Worst first: the rows a reader should look at need no sorting.
    for row in sorted(utterances, key=lambda row: (-row["errors"], row["id"])):
        cells = f"<td>{escape(row['id'])}" + ('<span class="badge">missing</span>' if row["missing"] else "")
        cells += f"</td><td>{escape(str(row['speaker'] or ''))}</td>" if with_speaker else "</td>"
        if with_duration:
            duration = row["duration"]
            cells += _number(duration, f"{duration:.1f}") if duration is not None else _number(0, "")
        cells += "".join(_number(row[name]) for name in ("reference_words", *EDITS, "errors"))
        cells += _rate(row["wer"]) + f'<td class="align">{alignment_html(row["alignment"])}</td>'
        rows.append(f'<tr data-errors="{row["errors"]}">{cells}</tr>')
    legend = ('<div class="legend"><span>correct words plain</span>'
              '<span><span class="sub"><s>reference</s>hypothesis</span> substitution</span>'
              '<span><span class="del">reference</span> deletion</span>'
              '<span><span class="ins">hypothesis</span> insertion</span></div>')
    return ('<h2>Utterances</h2><div class="panel"><div class="controls">'
            '<input type="search" id="filter" placeholder="Filter by id, speaker or words…">'
            '<label><input type="checkbox" id="errors-only"> only with errors</label>'
            f'<span class="count">showing <b id="shown">{len(utterances)}</b> of {len(utterances)}</span>'
            f'</div><div class="controls">{legend}</div>'
            f'<table id="utterance-table" class="sortable"><thead><tr>{head}<th>alignment</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _number(value, text: str | None = None) -> str:
    return f'<td class="n" data-value="{value}">{escape(str(value) if text is None else text)}</td>'


def _bar(count: int, most: int, tint: str) -> str:
    """A count cell with a bar behind it, so the long tail reads at a glance."""
    style = f"background-image:linear-gradient({tint},{tint});background-size:{100 * count / most:.0f}% 70%"
    return f'<td class="n bar" data-value="{count}" style="{style}">{count}</td>'


def _rate(rate: float | None) -> str:
    # Undefined rates (errors against an empty reference) sort above every defined one.
    return f'<td class="n" data-value="{"Infinity" if rate is None else rate}">{percent(rate)}</td>'
