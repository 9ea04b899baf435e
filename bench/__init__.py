"""The benchmarks behind docs/benchmarks.md, one script each; bench/run_all.py runs every
one's --quick mode and bench/record.py writes their results (bench/results/<bench>.jsonl).

Each script runs as `python bench/<name>.py ...` (the commands the docs quote) or as
`python -m bench.<name> ...`, and exposes build_parser() so that those commands can be
checked without running them."""
