import io
import tarfile
import zipfile

import pytest

from asr.corpora.archive import extract
from asr.corpora.fsdd import CorpusError


def tar_with(path, name: str, link_to: str | None = None):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link_to is None:
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
        else:
            info.type, info.linkname = tarfile.SYMTYPE, link_to
            tar.addfile(info)
    return path


def test_tar_is_extracted_once(tmp_path):
    archive = tar_with(tmp_path / "ok.tar.gz", "corpus/readme.txt")
    out = extract(archive, tmp_path / "out")
    assert (out / "corpus" / "readme.txt").read_text() == "hello"
    (out / "corpus" / "readme.txt").unlink()
    extract(archive, tmp_path / "out")  # the marker says it is done
    assert not (out / "corpus" / "readme.txt").exists()


@pytest.mark.parametrize("name, link_to", [("../escaped.txt", None), ("corpus/link", "../../outside")])
def test_unsafe_tar_members_are_refused(tmp_path, name, link_to):
    archive = tar_with(tmp_path / "bad.tar.gz", name, link_to)
    with pytest.raises(CorpusError, match="unsafe member refused"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_absolute_tar_members_land_inside(tmp_path):
    absolute = tmp_path / "absolute.txt"
    extract(tar_with(tmp_path / "abs.tar.gz", str(absolute)), tmp_path / "out")
    assert not absolute.exists()
    assert (tmp_path / "out" / str(absolute).lstrip("/")).read_text() == "hello"


def test_zip_members_cannot_escape(tmp_path):
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("../escaped.txt", "hello")
    extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert (tmp_path / "out" / "escaped.txt").read_text() == "hello"


def test_a_broken_archive_is_named(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(CorpusError, match="broken.tar.gz: cannot be extracted"):
        extract(archive, tmp_path / "out")
