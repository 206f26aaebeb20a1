"""Profiles: pyroscope-io for CPU, leaktrace's span-linked heap sampler, pprof encoding and push."""
