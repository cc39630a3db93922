"""Score a model on a labelled manifest and write the WER/CER report."""

from __future__ import annotations

from pathlib import Path

from asr.manifest import read_manifest
from asr.metrics import Scored
from asr.model import load_model
from asr.report import build_report, write_report
from asr.text import normalize
from asr.transcribe import transcribe

NORMALIZATION = ("asr.text.normalize: NFKD accent stripping, lower case, digits spelled as words, "
                 "punctuation except inner apostrophes removed, whitespace collapsed")


def evaluate(model_path, manifest, output_dir, *, decoder=None, batch_size: int = 16):
    """Transcribe `manifest`'s audio, score it against its texts, write report.{json,md,html}.

    Returns (report dict, paths written, failed transcripts). Files that fail to
    load are scored as empty hypotheses, so they count against the model, and
    are listed in the report.
    """
    model = load_model(model_path)
    utterances = read_manifest(manifest)
    results = {t.path: t for t in transcribe([u.audio_filepath for u in utterances], model,
                                             batch_size=batch_size, decoder=decoder)}
    rows = [Scored(id=u.key, reference=normalize(u.text), hypothesis=results[u.audio_filepath].text or "",
                   duration=u.duration or results[u.audio_filepath].duration, speaker=u.speaker)
            for u in utterances]
    failures = [t for t in results.values() if not t.ok]
    report = build_report(rows, model=str(model_path), data=str(manifest), normalization=NORMALIZATION,
                          decoder=getattr(decoder, "description", "greedy"))
    report["failures"] = [{"audio_filepath": t.path, "error": t.error} for t in failures]
    return report, write_report(report, Path(output_dir)), failures
