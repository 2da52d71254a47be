"""Benchmarks run by `scripts/bench` against the stack that `scripts/stack up` started."""
