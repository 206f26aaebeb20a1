# Native parts of leaktrace are declared here; everything else lives in pyproject.toml.
from setuptools import Extension, setup

setup(
    ext_modules=[
        # The span-linked heap sampler (docs/heap-profiler.md). Plain C against the CPython API,
        # so gcc and the Python headers are all a build needs (pip, wheel and the Docker image).
        Extension(
            "leaktrace.profiling._heapsampler",
            sources=["instrumentation/leaktrace/profiling/_heapsampler.c"],
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
