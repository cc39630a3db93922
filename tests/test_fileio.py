import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from asr import fileio
from asr.errors import EXIT_USAGE, exit_status
from asr.fileio import (atomic_open, atomic_path, is_temporary, remove_stale_temporaries, temporary_path,
                        write_json, write_text)


def temporaries(folder):
    return [path for path in folder.rglob("*") if is_temporary(path.name)]


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_json(path, {"text": "héllo"})
    write_json(path, {"text": "again"})
    assert path.read_text(encoding="utf-8") == '{\n "text": "again"\n}\n'
    assert temporaries(tmp_path) == []


def test_an_exception_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "manifest.jsonl"
    write_text(path, "old\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path) as file:
            file.write("half of the new")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_full_disk_names_the_file_being_written_in_one_line(tmp_path, capsys):
    """A write's OSError names no file, and so had shown its traceback as a bug."""
    path = tmp_path / "transcripts.jsonl"
    write_text(path, "old\n")

    def write():
        with atomic_open(path) as file:
            file.write("new")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a flush to a full disk does

    assert exit_status(write) == EXIT_USAGE
    assert capsys.readouterr().err == f"asr: error: {path}: No space left on device\n"
    assert path.read_text() == "old\n" and temporaries(tmp_path) == []


def test_a_writer_killed_midway_leaves_the_old_file_and_a_temporary_cleanup_removes(tmp_path):
    path = tmp_path / "manifest.jsonl"
    write_text(path, "old\n")
    script = ("import os, signal, sys\n"
              "from asr.fileio import atomic_open\n"
              "with atomic_open(sys.argv[1]) as file:\n"
              "    file.write('half of the new'); file.flush()\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert path.read_text() == "old\n"
    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].read_text() == "half of the new"
    assert remove_stale_temporaries(tmp_path) == 1
    assert list(tmp_path.iterdir()) == [path]


def test_the_file_and_then_its_folder_are_synced(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync

    def record(descriptor):
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        fsync(descriptor)

    monkeypatch.setattr(fileio.os, "fsync", record)
    path = tmp_path / "clip.txt"
    write_text(path, "hello\n")
    assert len(synced) == 2
    assert is_temporary(os.path.basename(synced[0])) and synced[1] == str(tmp_path)
    synced.clear()
    with atomic_open(tmp_path / "cache.npy", "wb", sync=False) as file:
        np.save(file, np.zeros(3))
    assert synced == []


def test_temporaries_keep_the_final_name_as_their_suffix(tmp_path):
    # Keras checks the suffix of the files it saves: .keras, .weights.h5
    temporary = temporary_path(tmp_path / "00001-0000002.weights.h5")
    assert temporary.parent == tmp_path and temporary.name.endswith(".00001-0000002.weights.h5")
    assert temporary.name.startswith(".tmp-") and is_temporary(temporary.name)
    assert temporary != temporary_path(tmp_path / "00001-0000002.weights.h5")
    assert not is_temporary("00001-0000002.weights.h5") and not is_temporary(".tmp-notes.txt")
    with atomic_path(tmp_path / "x.npy") as temporary:
        np.save(temporary, np.arange(3))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2]


def test_only_temporaries_whose_writer_is_gone_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    host = fileio._HOST
    stale = tmp_path / "sub" / f".tmp-{host}-{dead_pid()}-0123abcd.clip.txt"
    live = tmp_path / f".tmp-{host}-{os.getpid()}-0123abcd.clip.json"
    foreign_new = tmp_path / f".tmp-{host}x-{os.getpid()}-0123abcd.clip.srt"
    foreign_old = tmp_path / f".tmp-{host}x-{os.getpid()}-0123abcd.clip.vtt"
    output = tmp_path / "sub" / "clip.txt"
    for path in (stale, live, foreign_new, foreign_old, output):
        path.write_text("x")
    day_ago = time.time() - fileio.FOREIGN_SECONDS - 60
    os.utime(foreign_old, (day_ago, day_ago))
    assert remove_stale_temporaries(tmp_path) == 2
    assert not stale.exists() and not foreign_old.exists()
    assert live.exists() and foreign_new.exists() and output.exists()


def test_a_foreign_temporary_renamed_during_the_walk_is_passed_over(tmp_path, monkeypatch):
    foreign = tmp_path / f".tmp-{fileio._HOST}x-{os.getpid()}-0123abcd.clip.txt"
    foreign.write_text("x")
    walk = os.walk

    def walk_then_rename(folder):  # another host's writer finishes between listing and stat
        for parent, folders, names in walk(folder):
            foreign.rename(tmp_path / "clip.txt")
            yield parent, folders, names

    monkeypatch.setattr(fileio.os, "walk", walk_then_rename)
    assert remove_stale_temporaries(tmp_path) == 0
    assert (tmp_path / "clip.txt").read_text() == "x"
