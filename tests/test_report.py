import json

import jiwer
import pytest

from asr.evaluation.metrics import Scored
from asr.evaluation.report import (ReportError, build_report, compare_reports, read_pairs, read_report,
                                   write_comparison, write_report)
from asr.evaluation.report.markdown import comparison_markdown

REFERENCES = ["the cat sat on the mat", "a quick brown fox", "jumps over the lazy dog", "hello world",
              "one two three four five six", "speech recognition is fun"]
HYPOTHESES = ["the cat sat on mat", "a quick brown box", "jumps over the lazy dog today", "",
              "one two tree four five six", "speech wreck ignition is fun"]


def make_rows(hypotheses=HYPOTHESES, durations=True) -> list[Scored]:
    return [Scored(id=f"utt{index}", reference=reference, hypothesis=hypothesis,
                   duration=1.5 * (index + 1) if durations else None, speaker=f"spk{index % 2}")
            for index, (reference, hypothesis) in enumerate(zip(REFERENCES, hypotheses))]


def report_of(rows, **options) -> dict:
    return build_report(rows, model="m.keras", data="test.jsonl", normalization="asr.text.normalize",
                        bootstrap=200, **options)


def test_report_figures_equal_jiwer_and_intervals_contain_them():
    report = report_of(make_rows())
    expected = jiwer.process_words(REFERENCES, HYPOTHESES)
    summary = report["summary"]
    assert (summary["wer"], summary["mer"], summary["wil"]) == (expected.wer, expected.mer, expected.wil)
    assert summary["cer"] == jiwer.cer(REFERENCES, HYPOTHESES)
    assert summary["deletions"] == expected.deletions and summary["insertions"] == expected.insertions
    for name, (low, high) in report["intervals"].items():
        assert low <= summary[name] <= high
    assert sum(row["errors"] for row in report["utterances"]) == summary["errors"]
    json.dumps(report, allow_nan=False)


def test_report_groups_by_speaker_and_length():
    report = report_of(make_rows())
    assert {group["speaker"] for group in report["speakers"]} == {"spk0", "spk1"}
    wers = [group["wer"] for group in report["speakers"]]
    assert wers == sorted(wers, reverse=True)
    assert report["lengths"]["unit"] == "seconds"
    assert sum(group["utterances"] for group in report["lengths"]["bins"]) == len(REFERENCES)
    by_words = report_of(make_rows(durations=False))["lengths"]
    assert by_words["unit"] == "words"
    assert [group["label"] for group in by_words["bins"]] == ["0–5 words", "6–10 words"]


def test_report_counts_edge_cases():
    rows = make_rows() + [Scored(id="silence", reference="", hypothesis="uh")]
    report = report_of(rows, missing=["utt3"])
    counts = report["counts"]
    assert counts["missing_hypotheses"] == counts["empty_references"] == counts["empty_hypotheses"] == 1
    assert counts["duration_seconds"] is None  # one row has no duration
    rows_by_id = {row["id"]: row for row in report["utterances"]}
    assert rows_by_id["utt3"]["missing"] and rows_by_id["silence"]["wer"] is None
    json.dumps(report, allow_nan=False)


def test_repeated_ids_are_rejected():
    rows = make_rows()
    with pytest.raises(ReportError, match="utt0"):
        report_of(rows + [rows[0]])


def test_write_report_round_trips_through_read_report(tmp_path):
    report = report_of(make_rows())
    paths = write_report(report, tmp_path / "out")
    assert sorted(path.name for path in paths.values()) == ["report.html", "report.json", "report.md"]
    assert read_report(paths["json"]) == json.loads(json.dumps(report))
    assert "| WER |" in paths["markdown"].read_text(encoding="utf-8")


def test_read_report_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"wer": 0.1}')
    with pytest.raises(ReportError, match="other.json: not an evaluation report"):
        read_report(path)


def test_compare_finds_a_clearly_better_system_significant(tmp_path):
    references = [f"word{index} is spoken clearly here" for index in range(60)]
    good = [Scored(id=f"u{index}", reference=text, hypothesis=text) for index, text in enumerate(references)]
    bad = [Scored(id=row.id, reference=row.reference, hypothesis=row.reference.replace("spoken", "broken"))
           for row in good]
    extra = Scored(id="extra", reference="a", hypothesis="")
    comparison = compare_reports(report_of(bad), report_of(good + [extra]))
    wer = comparison["metrics"]["wer"]
    assert comparison["matched"] == 60 and comparison["only_b"] == 1
    assert wer["delta"] == pytest.approx(-0.2) and wer["significant"] and wer["p_value"] == 0.0
    paths = write_comparison(comparison, tmp_path)
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(comparison))
    assert paths["markdown"].read_text(encoding="utf-8") == comparison_markdown(comparison)


def test_compare_identical_systems_is_not_significant():
    report = report_of(make_rows())
    comparison = compare_reports(report, report)
    for result in comparison["metrics"].values():
        assert not result["significant"] and result["delta"] == 0 and result["p_value"] == 1.0
    assert comparison["warnings"] == []


def test_compare_needs_shared_ids():
    other = report_of([Scored(id="elsewhere", reference="a b", hypothesis="a b")])
    with pytest.raises(ReportError, match="share no utterance ids"):
        compare_reports(report_of(make_rows()), other)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_read_pairs_matches_by_id_then_stem_and_counts_missing(tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [
        {"audio_filepath": "audio/a.wav", "text": "Hello, World!", "duration": 1.2, "speaker": 7},
        {"audio_filepath": "audio/b.wav", "text": "Second one", "id": "second"},
        {"audio_filepath": "audio/c.wav", "text": "no hypothesis here"},
    ])
    hyps = write_jsonl(tmp_path / "hyps.jsonl", [
        {"audio_filepath": "/elsewhere/a.flac", "text": "HELLO world"},
        {"id": "second", "text": "second 1"},
        {"id": "stray", "text": "nobody asked"},
    ])
    pairs = read_pairs(refs, hyps)
    assert [(row.id, row.reference, row.hypothesis) for row in pairs] == [
        ("a", "hello world", "hello world"), ("second", "second one", "second one"),
        ("c", "no hypothesis here", "")]
    assert pairs[0].speaker == "7" and pairs[0].duration == 1.2 and pairs[1].duration is None
    assert pairs.missing == ["c"] and pairs.unmatched == ["stray"]
    report = report_of(pairs, missing=pairs.missing)
    assert report["counts"]["missing_hypotheses"] == 1 and report["summary"]["deletions"] == 3


def test_read_pairs_uses_the_given_normalizer(tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"audio_filepath": "x.wav", "text": "Keep CASE"}])
    hyps = write_jsonl(tmp_path / "hyps.jsonl", [{"id": "x", "text": "keep case"}])
    [row] = read_pairs(refs, hyps, normalizer=str.strip)
    assert (row.reference, row.hypothesis) == ("Keep CASE", "keep case")


@pytest.mark.parametrize("lines, message", [
    (['{"id": "x", "text": "a"}', "not json"], r"hyps.jsonl:2: not JSON"),
    (['{"text": "a"}'], r"hyps.jsonl:1: a hypothesis needs"),
    (['{"id": "x", "text": "a"}', '{"audio_filepath": "x.wav", "text": "b"}'],
     r"hyps.jsonl:2: a second hypothesis"),
])
def test_read_pairs_rejects_bad_hypotheses(tmp_path, lines, message):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"audio_filepath": "x.wav", "text": "a"}])
    hyps = tmp_path / "hyps.jsonl"
    hyps.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReportError, match=message):
        read_pairs(refs, hyps)


def test_a_hypothesis_file_that_is_not_utf8_names_its_line(tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"audio_filepath": "x.wav", "text": "a"}])
    (tmp_path / "hyps.jsonl").write_bytes(b'{"id": "x", "text": "a"}\n{"id": "y", "text": "\xff"}\n')
    with pytest.raises(ReportError, match="hyps.jsonl:2: not JSON"):
        read_pairs(refs, tmp_path / "hyps.jsonl")


def test_read_pairs_rejects_repeated_reference_ids(tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"audio_filepath": "one/x.wav", "text": "a"},
                                                 {"audio_filepath": "two/x.wav", "text": "b"}])
    hyps = write_jsonl(tmp_path / "hyps.jsonl", [])
    with pytest.raises(ReportError, match="refs.jsonl: utterance id 'x' appears more than once"):
        read_pairs(refs, hyps)
