import ctypes
import subprocess
import sys

import pytest

from asr.training.allocator import keep_freed_memory

# Frees 100 MB in blocks of argv[2] bytes and prints how much of it the heaps still hold, by
# glibc's own count (mallinfo2): 64 KiB blocks come from a heap, 128 MiB ones from their own mapping.
FREE_AND_COUNT = """
import ctypes, sys
from asr.training.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory()
size = int(sys.argv[2])
blocks = [libc.malloc(size) for _ in range(max(1, 100 * 10**6 // size))]
for block in reversed(blocks):
    libc.free(block)
print(libc.mallinfo2().fordblks)
"""

glibc = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33+")


def freed_bytes_kept(setting: str, block_bytes: int) -> int:
    run = subprocess.run([sys.executable, "-c", FREE_AND_COUNT, setting, str(block_bytes)],
                         capture_output=True, text=True, check=True)
    return int(run.stdout)


@glibc
@pytest.mark.parametrize("block_bytes", [64 << 10, 128 << 20])
def test_freed_memory_stays_in_the_heap_instead_of_going_back_to_the_kernel(block_bytes):
    assert freed_bytes_kept("default", block_bytes) < 10 * 2**20  # trimmed or unmapped
    assert freed_bytes_kept("keep", block_bytes) > 100 * 10**6  # all of it, for the next step


@glibc
def test_repeating_it_is_harmless():
    assert keep_freed_memory() and keep_freed_memory()
