"""Benchmarks: each module measures bgservices and its peers side by side in one run."""
