"""Where the checkout (or install) is: the root that holds ``conf/`` and ``src/``.

A leaf module (it imports nothing of the repo), so that both the config resolvers and the run
provenance can use it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
