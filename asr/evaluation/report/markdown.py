"""Reports and comparisons as Markdown that also reads well in a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from asr.evaluation.metrics import RATES


def percent(rate: float | None, digits: int = 2) -> str:
    return "—" if rate is None else f"{100 * rate:.{digits}f}%"


def points(delta: float | None) -> str:
    """A difference of rates in signed percentage points."""
    return "—" if delta is None else f"{100 * delta:+.2f} pts"


def aligned_text(alignment: Sequence[dict]) -> tuple[str, str]:
    """sclite-style REF and HYP lines: errors upper-cased, gaps as asterisks, columns padded."""
    reference, hypothesis = [], []
    for span in alignment:
        words_ref, words_hyp = span["reference"], span["hypothesis"]
        if span["op"] == "equal":
            pairs = zip(words_ref, words_hyp)
        elif span["op"] == "substitute":
            pairs = ((ref.upper(), hyp.upper()) for ref, hyp in zip(words_ref, words_hyp))
        elif span["op"] == "delete":
            pairs = ((ref.upper(), "*" * len(ref)) for ref in words_ref)
        else:
            pairs = (("*" * len(hyp), hyp.upper()) for hyp in words_hyp)
        for ref, hyp in pairs:
            width = max(len(ref), len(hyp))
            reference.append(ref.ljust(width))
            hypothesis.append(hyp.ljust(width))
    return " ".join(reference).rstrip(), " ".join(hypothesis).rstrip()


def render_markdown(report: dict, worst: int = 10) -> str:
    """The summary, commonest errors, worst speakers and worst utterances of a report."""
    meta, summary, counts = report["metadata"], report["summary"], report["counts"]
    confidence = round(100 * meta["bootstrap"]["confidence"])
    hours = f" ({counts['duration_seconds'] / 3600:.2f} h)" if counts["duration_seconds"] else ""
    lines = ["# ASR evaluation", ""]
    facts = (("model", "model"), ("data", "data"), ("decoder", "decoder"), ("normalisation", "normalization"))
    lines += [f"- {name}: {meta[key]}" for name, key in facts if meta.get(key)]
    lines += [f"- utterances: {counts['utterances']}{hours}, "
              f"missing hypotheses: {counts['missing_hypotheses']}",
              "", f"| metric | value | {confidence}% CI |", "|:--|--:|:--|"]
    for name in RATES:
        interval = report["intervals"][name]
        span = f"{percent(interval[0])} – {percent(interval[1])}" if interval else "—"
        lines.append(f"| {name.upper()} | {percent(summary[name])} | {span} |")
    words = summary["reference_words"]
    lines += ["", "| words | count | of reference |", "|:--|--:|--:|", f"| reference | {words} | |"]
    lines += [f"| {name} | {summary[name]} | {percent(summary[name] / words if words else None)} |"
              for name in ("hits", "substitutions", "deletions", "insertions")]
    lines += ["", "## Commonest errors", "", _confusion_line(report["confusions"])]
    lines += [_confusion_line(report["confusions"], kind) for kind in ("deletions", "insertions")]
    if report["speakers"]:
        lines += ["", f"## Worst speakers (of {len(report['speakers'])})", "",
                  "| speaker | utterances | words | WER | CER |", "|:--|--:|--:|--:|--:|"]
        lines += [f"| {group['speaker']} | {group['utterances']} | {group['reference_words']} | "
                  f"{percent(group['wer'])} | {percent(group['cer'])} |"
                  for group in report["speakers"][:worst]]
    rows = sorted(report["utterances"], key=lambda row: (-row["errors"], row["id"]))[:worst]
    lines += ["", f"## Worst utterances (by errors; {len(rows)} of {counts['utterances']})", ""]
    for rank, row in enumerate(rows, 1):
        reference, hypothesis = aligned_text(row["alignment"])
        plural = "" if row["errors"] == 1 else "s"
        lines += [f"{rank}. `{row['id']}`: {row['errors']} error{plural} (S {row['substitutions']}, "
                  f"D {row['deletions']}, I {row['insertions']}), WER {percent(row['wer'])}"
                  + (" (missing hypothesis)" if row["missing"] else ""),
                  "", "   ```", f"   REF: {reference}", f"   HYP: {hypothesis}", "   ```", ""]
    failures = report.get("failures", [])
    if failures:
        lines += [f"## Failed files ({len(failures)}, scored as empty hypotheses)", ""]
        lines += [f"- {failure['audio_filepath']}: {failure['error']}" for failure in failures]
    return "\n".join(lines).rstrip() + "\n"


def _verdict(result: dict, name_b: str) -> str:
    if not result["significant"]:
        return "no"
    return f"yes: {name_b} {'better' if result['delta'] < 0 else 'worse'}"


def comparison_markdown(comparison: dict) -> str:
    """The delta table of `compare_reports`, with paired-bootstrap significance."""
    a, b = comparison["systems"]
    bootstrap = comparison["bootstrap"]
    confidence = round(100 * bootstrap["confidence"])
    lines = [f"# {b['name']} vs {a['name']}", ""]
    lines += [f"- {system['name']}: {system['model'] or '?'} on {system['data'] or '?'} "
              f"({system['utterances']} utterances)" for system in (a, b)]
    lines += [f"- matched {comparison['matched']} utterances by id ({comparison['only_a']} only in "
              f"{a['name']}, {comparison['only_b']} only in {b['name']})",
              f"- paired bootstrap over the matched utterances, {bootstrap['resamples']} resamples, seed "
              f"{bootstrap['seed']}; p is two-sided (Δ < 0: {b['name']} makes fewer errors)", "",
              f"| metric | {a['name']} | {b['name']} | Δ ({b['name']} − {a['name']}) "
              f"| {confidence}% CI of Δ | p | significant |", "|:--|--:|--:|--:|:--|--:|:--|"]
    for name, result in comparison["metrics"].items():
        interval = result["interval"]
        span = f"{points(interval[0])} … {points(interval[1])}" if interval else "—"
        p_value = "—" if result["p_value"] is None else f"{result['p_value']:.3f}"
        lines.append(f"| {name.upper()} | {percent(result['a'])} | {percent(result['b'])} | "
                     f"{points(result['delta'])} | {span} | {p_value} | "
                     f"{_verdict(result, b['name'])} |")
    lines += [f"\nWarning: {warning}." for warning in comparison["warnings"]]
    return "\n".join(lines) + "\n"


def _confusion_line(confusions: dict, kind: str = "substitutions", top: int = 8) -> str:
    if kind == "substitutions":
        items = [f"{pair['reference']} → {pair['hypothesis']} ×{pair['count']}"
                 for pair in confusions[kind][:top]]
    else:
        items = [f"{item['word']} ×{item['count']}" for item in confusions[kind][:top]]
    return f"- {kind}: " + (", ".join(items) or "none")
