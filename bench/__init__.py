"""Benchmarks and reference measurements that run outside the server (the server never imports this package)."""
