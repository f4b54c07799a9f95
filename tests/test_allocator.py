"""The allocator policy (src/utils/allocator.py): freed large blocks are reused instead of unmapped."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from src.utils.allocator import configure_malloc
from tests.helpers import REPO_ROOT

# a process importing src under $MMFUSION_MALLOC: page faults of 9 rounds of a fresh 64 MB array
FAULTS = """
import resource
import src  # applies $MMFUSION_MALLOC
import numpy as np
np.ones(8 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    np.ones(8 << 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(policy: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS],
        cwd=REPO_ROOT,
        env={**os.environ, "MMFUSION_MALLOC": policy},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy is glibc's mallopt")
def test_reuse_keeps_large_blocks_mapped() -> None:
    # the fewest faults of 9 fresh mappings: one per 2 MB page (numpy asks for huge pages)
    huge_pages = 9 * (64 << 20) // (2 << 20)
    assert page_faults("system") >= huge_pages
    assert page_faults("reuse") < 0.1 * huge_pages


def test_an_unknown_policy_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"MMFUSION_MALLOC='fast': expected one of \['reuse', 'system'\]"):
        configure_malloc("fast")
    assert configure_malloc("system") is False
