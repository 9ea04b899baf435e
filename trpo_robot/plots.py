"""The pictures a run leaves in its folder: learning_curve.png (`train` and `learn`) and
timing_histogram.png (`learn`). Drawn with matplotlib's Agg backend, which needs no
display, and imported only when a picture is drawn."""
import csv
import math
from pathlib import Path

FIGSIZE, DPI = (11, 4), 100
"""Every picture is 1100 x 400 pixels: two panels side by side."""


def read_progress(path):
    """progress.csv as dicts: numbers as floats, anything else ('True', a line-search
    reason, '' for a value the run did not have) as the text."""
    rows = []
    try:
        with open(path, newline='') as f:
            for row in csv.DictReader(f):
                rows.append({k: _number(v) for k, v in row.items() if k is not None})
    except FileNotFoundError:
        pass
    return rows


def _number(text):
    if text in ('True', 'False'):
        return text
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _column(rows, key):
    """Floats of one column, NaN where a row has none (matplotlib leaves a gap)."""
    return [r[key] if isinstance(r.get(key), float) else math.nan for r in rows]


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_curve(out, title):
    """learning_curve.png from progress.csv: return (and success rate, when the run has
    one) against steps and against wall-clock time. Returns the path, or None before the
    first update."""
    rows = read_progress(Path(out) / 'progress.csv')
    if not rows:
        return None
    plt = _pyplot()
    ret, succ = _column(rows, 'mean_return'), _column(rows, 'success_rate')
    panels = [(_column(rows, 'steps'), 'learned steps')]
    wall = _column(rows, 'wall_s')
    if any(math.isfinite(w) for w in wall):  # a train run from before the column: steps only
        panels.append(([w / 60 for w in wall], 'wall clock, min'))
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE)
    for ax, (x, label) in zip(axes, panels):
        ax.plot(x, ret, color='tab:blue', marker='.')
        ax.set_xlabel(label)
        ax.set_ylabel('mean episode return', color='tab:blue')
        ax.grid(alpha=0.3)
        if any(math.isfinite(s) for s in succ):
            twin = ax.twinx()
            twin.plot(x, succ, color='tab:green', alpha=0.6)
            twin.set_ylim(0, 1.05)
            twin.set_ylabel('success rate', color='tab:green')
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    return _save(fig, plt, title, Path(out) / 'learning_curve.png')


def plot_timing(out, records, title):
    """timing_histogram.png from the actors' timing.json records ({label: record}): how
    late each answered driver tick was, over the whole run, as counts per log-spaced bin
    (left) and the share of ticks at most that late (right). The driver period is marked:
    a command later than that missed its period. Returns the path, or None without
    records."""
    if not records:
        return None
    plt = _pyplot()
    fig, (hist, share) = plt.subplots(1, 2, figsize=FIGSIZE)
    for label, r in sorted(records.items()):
        edges_ms = [e * 1e3 for e in r['edges_s']]
        hist.stairs(r['counts'], edges_ms)
        below = [r['underflow'] + sum(r['counts'][:k + 1]) for k in range(len(r['counts']))]
        share.step(edges_ms[1:], [b / max(r['total'], 1) for b in below], where='post',
                   label=f'{label}: {r["total"]} ticks ({r["underflow"]} under '
                   f'{edges_ms[0]:g} ms, {r["overflow"]} over {edges_ms[-1]:g} ms)')
    for period in sorted({r['period_s'] for r in records.values() if r.get('period_s')}):
        for ax in (hist, share):
            ax.axvline(period * 1e3, color='tab:red', linestyle='--', alpha=0.7,
                       label=f'driver period {period * 1e3:g} ms' if ax is share else None)
    for ax in (hist, share):
        ax.set_xscale('log')
        ax.set_xlabel('lateness: joint_states in to command out, ms')
        ax.grid(alpha=0.3, which='both')
    hist.set_yscale('log')
    hist.set_ylabel('ticks per bin')
    share.set_ylabel('share of ticks at most this late')
    share.set_ylim(0, 1.02)
    share.legend(fontsize='small', loc='lower right')
    return _save(fig, plt, title, Path(out) / 'timing_histogram.png')


def _save(fig, plt, title, path):
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
