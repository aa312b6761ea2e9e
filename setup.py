"""Build script: compiles every Cython twin in cython_ext/ (*.pyx).

The pure-Python reference of each twin lives in its owning package; the extensions are
optional at run time (ICX_NO_EXTENSIONS=1 forces pure Python), but `make build` compiles them.
Set ICX_SKIP_BUILD_EXT=1 to install without compiling (pure Python only).
"""

from __future__ import annotations

import glob
import os

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    if os.environ.get("ICX_SKIP_BUILD_EXT") == "1":
        return []
    sources = sorted(glob.glob("cython_ext/*.pyx"))
    if not sources:
        return []
    from Cython.Build import cythonize

    exts = [
        Extension(
            src[:-4].replace("/", "."),
            [src],
            extra_compile_args=["-O3"],
        )
        for src in sources
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        quiet=True,
    )


setup(ext_modules=_extensions())
