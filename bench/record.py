"""Benchmark results as JSON lines under bench/results/: one line per measured result,
appended, so that reruns add up and docs/benchmarks.md can cite each line."""
import json
from pathlib import Path


def append_results(path, *results) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as fh:
        for result in results:
            fh.write(json.dumps(result) + '\n')
