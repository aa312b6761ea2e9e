"""Compiled twins of proven hot paths; each has a pure-Python reference in its owning package.

Selection point: `cython_ext.load(name)` returns the compiled module, or None when extensions
are disabled (ICX_NO_EXTENSIONS=1) or not built.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def extensions_enabled() -> bool:
    """True unless ICX_NO_EXTENSIONS=1 forces pure Python."""
    return os.environ.get("ICX_NO_EXTENSIONS", "") not in ("1", "true", "yes")


def load(name: str) -> ModuleType | None:
    """Return the compiled module cython_ext.<name>, or None (disabled or not built)."""
    if not extensions_enabled():
        return None
    try:
        return importlib.import_module(f"cython_ext.{name}")
    except ImportError:
        return None
