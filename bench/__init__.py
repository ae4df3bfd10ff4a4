"""syscage benchmarks: `make bench` runs bench/run.py, which prints a table and writes bench/results.json."""
