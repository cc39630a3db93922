from asr.evaluation.metrics import Scored
from asr.evaluation.report import build_report, compare_reports
from asr.evaluation.report.markdown import aligned_text, comparison_markdown, percent, points, render_markdown


def report_of(rows, **options) -> dict:
    return build_report(rows, model="m.keras", data="test.jsonl", normalization="lower-case", bootstrap=50,
                        **options)


def test_aligned_text_marks_errors_sclite_style():
    alignment = [{"op": "equal", "reference": ["the"], "hypothesis": ["the"]},
                 {"op": "substitute", "reference": ["cat"], "hypothesis": ["bat"]},
                 {"op": "delete", "reference": ["sat"], "hypothesis": []},
                 {"op": "insert", "reference": [], "hypothesis": ["down"]}]
    assert aligned_text(alignment) == ("the CAT SAT ****", "the BAT *** DOWN")


def test_formatting_of_undefined_and_signed_figures():
    assert (percent(0.1234), percent(None)) == ("12.34%", "—")
    assert (points(-0.02), points(0.015), points(None)) == ("-2.00 pts", "+1.50 pts", "—")


def test_markdown_lists_summary_errors_and_worst_utterances_first():
    rows = [Scored("short", "the cat sat on the mat", "the cat sat on mat", speaker="ann"),
            Scored("bad", "speech recognition is fun", "speech wreck ignition is fun", speaker="bob"),
            Scored("gone", "nothing came back", "", speaker="bob")]
    report = report_of(rows, missing=["gone"])
    report["failures"] = [{"audio_filepath": "gone.wav", "error": "gone.wav: contains no samples"}]
    markdown = render_markdown(report)
    assert "- model: m.keras" in markdown and "| WER | 46.15% |" in markdown
    assert "- deletions: back ×1, came ×1, nothing ×1, the ×1" in markdown
    worst_first = ("1. `gone`: 3 errors", "2. `bad`: 2 errors", "3. `short`: 1 error ")
    ranks = [markdown.index(line) for line in worst_first]
    assert ranks == sorted(ranks)
    assert "(missing hypothesis)" in markdown and "gone.wav: contains no samples" in markdown
    assert "   REF: speech ***** RECOGNITION is fun\n   HYP: speech WRECK IGNITION    is fun" in markdown
    assert "| bob | 2 | 7 | 71.43% |" in markdown


def test_comparison_markdown_reports_matches_and_significance():
    references = [f"word{index} is spoken clearly here" for index in range(40)]
    good = [Scored(f"u{index}", text, text) for index, text in enumerate(references)]
    bad = [Scored(row.id, row.reference, row.reference.replace("spoken", "broken")) for row in good]
    comparison = compare_reports(report_of(bad), report_of(good[:30]), names=("old", "new"))
    markdown = comparison_markdown(comparison)
    assert "# new vs old" in markdown
    assert "matched 30 utterances by id (10 only in old, 0 only in new)" in markdown
    assert "| WER | 20.00% | 0.00% | -20.00 pts | -20.00 pts … -20.00 pts | 0.000 | yes: new better |" in markdown
