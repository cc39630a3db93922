"""Safe extraction of corpus archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip).

Tar members go through tarfile's "data" filter: leading slashes are
stripped, and members that would land outside the destination (`..`, links
pointing out), device files and links to absolute paths are refused. Zip
members cannot be links, and `zipfile` already strips leading slashes and
`..`. A marker file records a finished extraction, so a second call returns
at once and an interrupted one starts over.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from asr.corpora.fsdd import CorpusError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


def is_archive(path) -> bool:
    return Path(path).is_file() and str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive, destination) -> Path:
    """Extract `archive` into `destination` (created) and return `destination`."""
    archive, destination = Path(archive), Path(destination)
    marker = destination / f".{archive.name}.extracted"
    if marker.is_file():
        return destination
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as members:
                members.extractall(destination)
        else:
            with tarfile.open(archive) as members:
                members.extractall(destination, filter="data")
    except tarfile.FilterError as error:
        raise CorpusError(f"{archive}: unsafe member refused ({error})") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise CorpusError(f"{archive}: cannot be extracted ({error})") from None
    marker.touch()
    return destination
