"""Loading the pickles that MulT and Moviescope publish without letting them run code.

A pickle can name any importable callable and have it called while loading (``os.system`` is one
line away), so a downloaded ``iemocap_data.pkl`` or ``PosterFeatures/<id>.p`` could run code in
``src.train`` and in ``src.data.check``, the tool meant to vet downloads. :func:`load_pickle` uses an
unpickler that resolves only the globals the published files need: numpy arrays, dtypes and
scalars (how numpy pickles them, in python 2 and 3 protocols) and plain builtin containers and
scalars. Anything else is refused with :class:`UnsafePickleError`, naming the file and the global.

Users who trust their files (e.g. pickles they wrote with other objects) opt out with
``data.trust_pickle_files=true``, which uses Python's unrestricted ``pickle.load``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from src.errors import DataFormatError

#: (module, name) the restricted unpickler resolves: how numpy (1 and 2) pickles arrays, dtypes and
#: scalars, and the builtin containers that have no pickle opcode of their own (python 2 spellings
#: included; ``pickle`` maps them to python 3 names)
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        *(
            (core, name)
            for core in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        *((core, "_frombuffer") for core in ("numpy.core.numeric", "numpy._core.numeric")),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes objects written by python 3 with protocol <= 2
        ("collections", "OrderedDict"),
        *(("builtins", name) for name in ("set", "frozenset", "bytearray", "complex", "slice", "range")),
        *(("__builtin__", name) for name in ("set", "frozenset", "bytearray", "complex", "slice", "xrange")),
    }
)

TRUST_OPTION = "data.trust_pickle_files=true"


class UnsafePickleError(DataFormatError):
    """A pickle names a global outside :data:`ALLOWED_GLOBALS`; nothing of it was executed."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS` (see the module docstring)."""

    def __init__(self, file: Any, path: Path, **options: Any) -> None:
        super().__init__(file, **options)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.path}: the pickle names {module}.{name}, which the published files never contain "
            "(numpy arrays and python containers only); refused without running it. If you trust this "
            f"file, set {TRUST_OPTION}."
        )


def load_pickle(path: Path, trusted: bool = False) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (``trusted``: Python's unrestricted loader).

    Python-2-era pickles (py2 ``str`` objects holding raw bytes) are retried with ``encoding="bytes"``.
    A file that is not a readable pickle raises :class:`DataFormatError` naming it.
    """

    def load(**options: Any) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f, **options) if trusted else RestrictedUnpickler(f, path, **options).load()

    try:
        try:
            return load()
        except UnicodeDecodeError:
            return load(encoding="bytes")
    except UnsafePickleError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ValueError,
        ImportError,
        TypeError,
        IndexError,
    ) as err:
        raise DataFormatError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
