"""Workload scripts the benchmarks run as fresh child processes (bare, alternative stack, leaktrace)."""
