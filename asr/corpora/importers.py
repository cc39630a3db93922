"""Public corpora, in the layouts they are published in, to NeMo JSONL manifests.

Each importer takes the corpus folder, or the archive it is distributed as
(extracted safely under `out`), and writes one `<split>.jsonl` per split into
`out`. Audio stays where it is, and manifests may not point outside their
folder, so a corpus folder must lie inside `out` (pass the folder itself as
`out` to write the manifests beside it). Transcripts are kept as published;
training normalises them. Utterances whose audio is missing or unreadable are
skipped, counted and logged.
"""

from __future__ import annotations

import collections
import csv
import logging
import zlib
from pathlib import Path

from asr import audio
from asr.corpora.archive import extract, is_archive
from asr.corpora.fsdd import CorpusError
from asr.manifest import Utterance, write_manifest

log = logging.getLogger(__name__)
COMMON_VOICE_SPLITS = ("train", "dev", "test")


def import_librispeech(source, out) -> dict[str, Path]:
    """LibriSpeech: `<subset>/<reader>/<chapter>/<reader>-<chapter>.trans.txt` beside FLAC files.

    One manifest per subset found (`dev-clean.jsonl`, ...); the speaker is the reader.
    """
    root, out = _root(source, out)
    subsets = collections.defaultdict(list)
    for transcripts in sorted(root.rglob("*.trans.txt")):
        reader, subset = transcripts.parent.parent.name, transcripts.parents[2].name
        for number, line in enumerate(transcripts.read_text(encoding="utf-8").splitlines(), 1):
            key, _, text = line.strip().partition(" ")
            if not text:
                raise CorpusError(f"{transcripts}:{number}: expected '<utterance id> <transcript>'")
            subsets[subset].append((transcripts.parent / f"{key}.flac", text, reader, key))
    if not subsets:
        raise CorpusError(f"{root}: no LibriSpeech *.trans.txt files found")
    return {name: _write(rows, out / f"{name}.jsonl") for name, rows in subsets.items()}


def import_common_voice(source, out, splits=COMMON_VOICE_SPLITS) -> dict[str, Path]:
    """Common Voice: `<split>.tsv` (columns client_id, path, sentence, ...) beside `clips/` (MP3).

    The speaker is the client id. MP3 needs libsndfile 1.1 or later.
    """
    root, out = _root(source, out)
    folders = sorted({tsv.parent for tsv in root.rglob("*.tsv") if (tsv.parent / "clips").is_dir()})
    if len(folders) != 1:
        raise CorpusError(f"{root}: expected one Common Voice folder (TSV files beside clips/), "
                          f"found {len(folders)}")
    folder, manifests = folders[0], {}
    for split in splits:
        table = folder / f"{split}.tsv"
        if not table.is_file():
            raise CorpusError(f"{table}: no such file")
        rows = [(folder / "clips" / record["path"], record["sentence"], record["client_id"],
                 Path(record["path"]).stem)
                for _, record in _records(table, ("client_id", "path", "sentence"), delimiter="\t")]
        manifests[split] = _write(rows, out / f"{split}.jsonl")
    return manifests


def import_ljspeech(source, out, dev_percent: int = 2, test_percent: int = 2) -> dict[str, Path]:
    """LJSpeech: `metadata.csv` (id|transcript|normalised transcript) beside `wavs/`.

    The corpus has no published split; each utterance goes to dev, test or
    train by the CRC-32 of its id, so the split never changes.
    """
    root, out = _root(source, out)
    tables = sorted(root.rglob("metadata.csv"))
    if not tables:
        raise CorpusError(f"{root}: no LJSpeech metadata.csv found")
    table, splits = tables[0], {"train": [], "dev": [], "test": []}
    for number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("|")  # transcripts hold quotes, so no CSV quoting rules
        if len(fields) != 3:
            raise CorpusError(f"{table}:{number}: expected id|transcript|normalised transcript")
        key, _, text = fields
        bucket = zlib.crc32(key.encode()) % 100
        split = "dev" if bucket < dev_percent else "test" if bucket < dev_percent + test_percent \
            else "train"
        splits[split].append((table.parent / "wavs" / f"{key}.wav", text, "LJ", key))
    return {name: _write(rows, out / f"{name}.jsonl") for name, rows in splits.items()}


def import_csv(table, manifest=None, *, audio_column: str = "audio_filepath",
               text_column: str = "text", speaker_column: str | None = None,
               id_column: str | None = None) -> Path:
    """A CSV (or `.tsv`) table with a header row -> one manifest (default: beside the table).

    Audio paths are relative to the table's folder, or absolute; either way they
    must lie under the manifest's folder.
    """
    table = Path(table)
    manifest = Path(manifest) if manifest else table.with_suffix(".jsonl")
    columns = [c for c in (audio_column, text_column, speaker_column, id_column) if c]
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    root, rows = manifest.parent.resolve(), []
    for line, record in _records(table, columns, delimiter):
        path = table.parent / record[audio_column]
        if not path.resolve().is_relative_to(root):
            raise CorpusError(f"{table}:{line}: audio {path} lies outside the manifest's folder {root}")
        rows.append((path, record[text_column], record.get(speaker_column) or None,
                     record.get(id_column) or None))
    return _write(rows, manifest)


def _root(source, out) -> tuple[Path, Path]:
    source, out = Path(source), Path(out)
    if is_archive(source):
        return extract(source, out), out
    if not source.is_dir():
        raise CorpusError(f"{source}: not a folder or a .tar/.tar.gz/.zip archive")
    if not source.resolve().is_relative_to(out.resolve()):
        raise CorpusError(f"{source}: must lie inside the output folder {out} (manifests may not "
                          "point outside their folder); pass the corpus folder as the output")
    return source, out


def _records(table: Path, columns, delimiter: str):
    """(line number, {column: value}) for each row of a table with a header row."""
    try:
        with open(table, encoding="utf-8", newline="") as lines:
            reader = csv.DictReader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing:
                raise CorpusError(f"{table}: no column(s) {', '.join(missing)} "
                                  f"(found: {', '.join(reader.fieldnames or ())})")
            for record in reader:
                short = [c for c in columns if record[c] is None]
                if short:
                    raise CorpusError(f"{table}:{reader.line_num}: a short row, without "
                                      f"{', '.join(short)}")
                yield reader.line_num, record
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CorpusError(f"{table}: cannot be read ({error})") from None


def _write(rows, manifest: Path) -> Path:
    """(audio path, text, speaker, id) rows -> manifest of the readable ones, with durations.

    Each file left out is logged with its reason, as transcription reports a bad file.
    """
    utterances, skipped = [], collections.Counter()
    for path, text, speaker, key in rows:
        try:
            seconds = audio.duration(path)
            if not seconds:
                raise audio.EmptyAudio(str(path))
            utterances.append(Utterance(str(path.resolve()), round(seconds, 4), text, speaker, key))
        except audio.AudioError as error:
            log.warning("%s", error)
            skipped[error.detail.split(" (")[0]] += 1
    if skipped:
        log.warning("%s: skipped %d utterance(s): %s", manifest, sum(skipped.values()), dict(skipped))
    write_manifest(utterances, manifest)
    return manifest
