"""The C allocator policy of every ``src`` process: freed memory is kept and reused (glibc).

glibc's malloc serves every allocation above its mmap threshold (128 KB, growing to at most 32 MB)
with a fresh ``mmap`` and returns it with ``munmap`` when freed, so a CPU forward pass whose
activations are larger (EfficientNet-Lite0 on a batch of 64 posters: ~80 MB per layer output) faults
in every page of every activation again on every batch. Measured on this project's 2-core machine,
64 posters of 256x160 through the frozen Lite0: 7.9 s per batch, of which 2.8 s of system time for
1.6 M page faults; with the heap kept (``reuse``), 4.6 s and no page faults. Small activations gain
little (a LeNet training step on 128 MNIST images: 0.95x the wall time). The cost: a process's
resident memory stays near its peak instead of shrinking after it (+8% peak for that LeNet).

``MMFUSION_MALLOC``: ``reuse`` (default) calls ``mallopt(M_MMAP_MAX, 0)`` (large blocks come from the
heap, whose freed space is reused) and ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)`` (the heap is
not shrunk below 2 GB of free top), the same as the environment variables ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...``;
``system`` leaves glibc's defaults. Elsewhere than glibc (macOS, musl) nothing changes. DataLoader
workers forked from the process inherit the policy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV = "MMFUSION_MALLOC"
POLICIES = ("reuse", "system")
#: glibc's <malloc.h> parameter numbers
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int


def configure_malloc(policy: str | None = None) -> bool:
    """Apply ``policy`` (default: ``$MMFUSION_MALLOC`` or ``reuse``); True when glibc's policy changed.

    Raises ValueError naming the variable for an unknown policy."""
    policy = policy if policy is not None else os.environ.get(ENV, "reuse")
    if policy not in POLICIES:
        raise ValueError(f"{ENV}={policy!r}: expected one of {list(POLICIES)}")
    if policy == "system" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
