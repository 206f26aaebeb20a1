# Native parts of leaktrace are declared here; everything else lives in pyproject.toml.
from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("instrumentation/leaktrace/profiling/_native")

setup(
    ext_modules=[
        # The span-linked heap sampler (docs/heap-profiler.md): one file per concern, one state
        # struct (lt_state.h). Plain C against the CPython API, so gcc and the Python headers are
        # all a build needs (pip, wheel and the Docker image).
        Extension(
            "leaktrace.profiling._heapsampler",
            sources=sorted(str(p) for p in NATIVE.glob("*.c")),
            depends=sorted(str(p) for p in NATIVE.glob("*.h")),
            include_dirs=[str(NATIVE)],
            extra_compile_args=[
                "-O2",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
                "-Wno-cast-function-type",
            ],
            libraries=["m"],
            optional=False,
        )
    ]
)
