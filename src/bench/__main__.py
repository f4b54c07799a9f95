"""``python -m src.bench <suite> [--out FILE] ...``: run one benchmark suite (a module of this package)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import src.bench


def suites() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(src.bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    available = suites()
    if not argv or argv[0] not in available:
        print(f"usage: python -m src.bench {{{','.join(available)}}} [options]", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"src.bench.{argv[0]}").main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
