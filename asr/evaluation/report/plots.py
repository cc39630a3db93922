"""The report's plots, drawn with matplotlib's Agg canvas and returned as PNG data URIs."""

from __future__ import annotations

import base64
import io

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLORS = {"substitutions": "#e69f00", "deletions": "#d55e00", "insertions": "#0072b2"}
MAX_SPEAKERS = 30
WIDTH = 4.6  # inches; three plots share a 1200-pixel row


def report_plots(report: dict) -> list[tuple[str, str]]:
    """(alt text, PNG data URI) per plot: error types, WER by length, WER by speaker if known."""
    plots = [("Error types as a share of reference words", _png(_error_types(report["summary"]))),
             ("WER by utterance length", _png(_by_length(report["lengths"])))]
    if report["speakers"]:
        plots.append(("WER by speaker", _png(_by_speaker(report["speakers"]))))
    return plots


def _error_types(summary: dict):
    figure, axes = _figure(3.2)
    names = ("substitutions", "deletions", "insertions")
    words = summary["reference_words"]
    shares = [100 * summary[name] / words if words else 0.0 for name in names]
    bars = axes.bar([name.capitalize() for name in names], shares, color=[COLORS[name] for name in names])
    axes.bar_label(bars, labels=[str(summary[name]) for name in names], padding=2)
    axes.set_ylabel("% of reference words")
    _title(axes, "Error types (counts above bars)")
    return figure


def _by_length(lengths: dict):
    figure, axes = _figure(3.2)
    bins = lengths["bins"]
    _stacked(axes, [f"{group['label']}\nn={group['utterances']}" for group in bins], bins, horizontal=False)
    axes.set_ylabel("WER %")
    axes.tick_params(axis="x", labelsize=7)
    _title(axes, f"WER by utterance length ({lengths['unit']})")
    return figure


def _by_speaker(speakers: list[dict]):
    shown = speakers[:MAX_SPEAKERS]
    figure, axes = _figure(max(2.4, 0.9 + 0.22 * len(shown)))
    # Reversed so the worst speaker is drawn at the top.
    _stacked(axes, [str(group["speaker"]) for group in reversed(shown)], shown[::-1], horizontal=True)
    axes.set_xlabel("WER %")
    axes.tick_params(axis="y", labelsize=7)
    _title(axes, "WER by speaker" + (f" (worst {len(shown)} of {len(speakers)})" if len(speakers) > len(shown)
                                     else ""))
    return figure


def _stacked(axes, labels: list[str], groups: list[dict], horizontal: bool) -> None:
    """Bars of WER per group, split into substitution, deletion and insertion rates."""
    base = [0.0] * len(groups)
    draw = axes.barh if horizontal else axes.bar
    for name in ("substitutions", "deletions", "insertions"):
        heights = [100 * group[name] / group["reference_words"] if group["reference_words"] else 0.0
                   for group in groups]
        draw(labels, heights, color=COLORS[name], label=name, **{"left" if horizontal else "bottom": base})
        base = [low + height for low, height in zip(base, heights)]
    # Above the axes, so the legend never hides a bar.
    axes.legend(fontsize=7, frameon=False, ncol=3, loc="lower left", bbox_to_anchor=(0, 1), borderaxespad=0.2)


def _figure(height: float):
    # Imported here so scoring does not pay for matplotlib until a page is drawn. A bare
    # Figure renders through Agg without pyplot's global state or backend switching.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, height))
    return figure, figure.subplots()


def _title(axes, title: str) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(title, fontsize=10, pad=18 if axes.get_legend() else 6)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
