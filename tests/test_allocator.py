import ctypes
import subprocess
import sys

import pytest

from asr.allocator import keep_freed_memory

# Frees 100 MB of 64 KiB blocks (below glibc's mmap threshold, so on the heap) and prints
# how much of it the heap still holds, by glibc's own count (mallinfo2).
FREE_AND_COUNT = """
import ctypes, sys
from asr.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory()
blocks = [libc.malloc(64 * 1024) for _ in range(1600)]
for block in reversed(blocks):
    libc.free(block)
print(libc.mallinfo2().fordblks)
"""

glibc = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33+")


def freed_bytes_kept(setting: str) -> int:
    run = subprocess.run([sys.executable, "-c", FREE_AND_COUNT, setting],
                         capture_output=True, text=True, check=True)
    return int(run.stdout)


@glibc
def test_freed_memory_stays_in_the_heap_instead_of_going_back_to_the_kernel():
    assert freed_bytes_kept("default") < 10 * 2**20  # trimmed back to the kernel
    assert freed_bytes_kept("keep") > 100 * 10**6  # all of it, for the next step


@glibc
def test_repeating_it_is_harmless():
    assert keep_freed_memory() and keep_freed_memory()
