"""Judging validation figures against the YAML's pass marks, and showing the verdict.

Each failed mark comes with what to change, because "failed" alone sends a person to read
code; the table is printed, and drawn with the histograms into PNG pages.
"""
from dataclasses import dataclass, replace
import math
from pathlib import Path

import numpy as np
import yaml

from trpo_robot.errors import UsageError

MARKS = {
    # metric: (the figure's key, 'min' or 'max', what to change when it fails)
    'success_rate_min': ('success_rate', 'min', 'train longer (more --steps, or --resume)'),
    'final_distance_p90_max': ('final_distance_p90', 'max', 'train longer; raise the '
                               'precision bonus of the task'),
    'interventions_per_episode_max': ('interventions_per_episode', 'max', 'the policy pushes '
                                      'against limits or the box: narrow the target region, '
                                      'or train with the shield limits it will meet'),
    'smoothed_share_max': ('smoothed_share', 'max', 'jerky commands: raise action_cost, or '
                           'lower the exploration noise (init_log_std)'),
    'peak_joint_speed_max': ('peak_joint_speed', 'max', 'lower the task max_velocity, or '
                             'check the twin damping against the arm'),
    'peak_command_acceleration_max': ('peak_command_acceleration', 'max', 'the shield let '
                                      'a jump through: check max_acceleration in the task'),
    'time_at_limit_max': ('time_at_limit', 'max', 'targets near the range ends: widen '
                          'target_margin, or narrow the task joint range'),
    'reset_holds_max': ('reset_holds', 'max', 'an auto reset did not reach the start pose '
                        'in time: check auto_timeout, the workspace box and start_noise'),
    'policy_cpu_p99_ms_max': ('policy_cpu_p99_ms', 'max', 'a smaller network (hidden sizes)'),
}
CONDITIONS = ('nominal', 'randomized', 'latency', 'noise')
TRAIN_UNDER = {
    'randomized': 'train with --randomize (the config\'s twin_* ranges)',
    'latency': 'train with --latency at the latency validated here (or --randomize with '
               'twin_latency_periods that wide)',
    'noise': 'train with --noise at the noise validated here',
}
"""What to change when a competence mark fails only under a harder condition."""
COMPETENCE = ('success_rate_min', 'final_distance_p90_max')
FUZZ_HINT = 'the shield let a command or a state beyond the limits through: fix the config'


@dataclass(frozen=True)
class Check:
    condition: str
    mark: str
    value: float
    limit: float
    ok: bool
    hint: str

    def row(self) -> str:
        verdict = 'pass' if self.ok else 'FAIL'
        op = '>=' if self.mark.endswith('_min') else '<='
        change = '' if self.ok else f'  -> {self.hint}'
        return (f'{self.condition:<10} {self.mark[:-4]:<28} {_num(self.value):>10} '
                f'{op} {_num(self.limit):<8} {verdict}{change}')


def _num(x) -> str:
    return 'n/a' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.4g}'


def load_marks(path, task: str) -> dict:
    """{condition: {mark: limit}} for this task, with a clear error for a bad file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f'--thresholds {path}: no such file') from None
    except yaml.YAMLError as e:
        raise UsageError(f'--thresholds {path}: not valid YAML ({e})') from None
    if not isinstance(data, dict) or not isinstance(data.get('default'), dict):
        raise UsageError(f'--thresholds {path}: needs a `default:` section of marks')
    merged = {**data['default'], **data.get(task, {})}
    per_condition = merged.pop('conditions', {}) or {}
    marks = {}
    for condition in CONDITIONS:
        marks[condition] = {**merged, **per_condition.get(condition, {})}
        for name, value in marks[condition].items():
            if name not in MARKS and name != 'fuzz_violations_max':
                raise UsageError(f'--thresholds {path}: unknown mark {name!r}; known: '
                                 f'{", ".join([*MARKS, "fuzz_violations_max"])}')
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f'--thresholds {path}: {name} must be a number')
    return marks


def judge(figures: dict, fuzz, marks: dict) -> list:
    """Checks for every condition's marks, and one for the shield fuzz. A competence mark
    that fails only under a harder condition says to train under it; one that fails on
    the nominal twin too says to train longer."""
    checks = []
    for condition, values in figures.items():
        for mark, limit in marks[condition].items():
            if mark in MARKS:
                checks.append(_check(condition, mark, values, float(limit)))
    nominal_ok = {c.mark for c in checks if c.condition == 'nominal' and c.ok}
    checks = [_with_hint(c, nominal_ok) for c in checks]
    limit = float(marks['nominal'].get('fuzz_violations_max', 0))
    checks.append(Check('fuzz', 'fuzz_violations_max', float(fuzz.violations), limit,
                        fuzz.violations <= limit, FUZZ_HINT))
    return checks


def _check(condition, mark, values, limit) -> Check:
    key, kind, hint = MARKS[mark]
    value = values[key]
    ok = value >= limit if kind == 'min' else value <= limit
    return Check(condition, mark, value, limit, bool(ok), hint)


def _with_hint(check, nominal_ok) -> Check:
    if check.mark in COMPETENCE and check.condition in TRAIN_UNDER and \
            check.mark in nominal_ok:
        return replace(check, hint=TRAIN_UNDER[check.condition])
    return check


def table(checks) -> str:
    head = f'{"condition":<10} {"figure":<28} {"value":>10}    {"mark":<8} verdict'
    return '\n'.join([head, '-' * len(head), *(c.row() for c in checks)])


def figures_table(figures: dict) -> str:
    """Every measured figure, one column per condition: the numbers behind the verdict."""
    names = list(next(iter(figures.values())))
    head = f'{"figure":<28}' + ''.join(f'{c:>12}' for c in figures)
    rows = [f'{n:<28}' + ''.join(f'{_num(figures[c][n]):>12}' for c in figures)
            for n in names]
    return '\n'.join([head, *rows])


# ---------------------------------------------------------------- pictures

def draw_pages(out_dir, title, checks, episodes: dict, frames=None) -> list:
    """report-1.png (verdict table, return and distance histograms) and report-2.png
    (a rollout strip and the control step time histogram)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = [out_dir / 'report-1.png', out_dir / 'report-2.png']
    fig = plt.figure(figsize=(11, 8.5), dpi=100)
    _verdict_panel(fig.add_axes([0.03, 0.45, 0.94, 0.5]), title, checks)
    _histogram(fig.add_subplot(2, 2, 3), episodes, lambda e: e.ret, 'episode return')
    _histogram(fig.add_subplot(2, 2, 4), episodes, lambda e: e.final_distance * 100,
               'final distance (cm)')
    fig.savefig(paths[0])
    plt.close(fig)
    fig = plt.figure(figsize=(11, 8.5), dpi=100)
    _strip(fig.add_axes([0.03, 0.52, 0.94, 0.43]), frames)
    ax = fig.add_axes([0.1, 0.08, 0.85, 0.36])
    for name, eps in episodes.items():
        ms = np.concatenate([e.step_ms for e in eps])
        ax.hist(ms, bins=np.logspace(-2, 2, 60), histtype='step', label=name)
    ax.set_xscale('log')
    ax.set_xlabel('control step time, ms (policy + shield + twin physics)')
    ax.set_ylabel('agent steps')
    ax.legend()
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _verdict_panel(ax, title, checks):
    """One row per figure, one column per condition: 'value (mark)', failures in red."""
    ax.axis('off')
    failed = [c for c in checks if not c.ok]
    verdict = 'PASS' if not failed else f'FAIL ({len(failed)} marks)'
    ax.set_title(f'{title}: {verdict}', loc='left', fontsize=13,
                 color='tab:green' if not failed else 'tab:red')
    columns = list(dict.fromkeys(c.condition for c in checks))
    marks = list(dict.fromkeys(c.mark for c in checks))
    by_cell = {(c.mark, c.condition): c for c in checks}
    rows, colours = [], []
    for mark in marks:
        cells = [by_cell.get((mark, col)) for col in columns]
        op = '>=' if mark.endswith('_min') else '<='
        rows.append([mark[:-4]] + [f'{_num(c.value)} ({op} {_num(c.limit)})' if c else ''
                                   for c in cells])
        colours.append(['white'] + ['white' if c is None or c.ok else '#f8d0d0'
                                    for c in cells])
    table = ax.table(cellText=rows, colLabels=['figure', *columns], cellColours=colours,
                     loc='upper left', cellLoc='left')
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.4)


def _histogram(ax, episodes, value, label):
    for name, eps in episodes.items():
        ax.hist([value(e) for e in eps], bins=20, histtype='step', label=name)
    ax.set_xlabel(label)
    ax.set_ylabel('episodes')
    ax.legend(fontsize=7)


def _strip(ax, frames):
    ax.axis('off')
    if not frames:
        ax.text(0.5, 0.5, 'no rollout pictures (no OpenGL: set MUJOCO_GL=egl or osmesa)',
                ha='center', va='center')
        return
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, 6).round().astype(int)]
    ax.imshow(np.concatenate(picks, axis=1))
    ax.set_title('rollout on the twin (nominal, mean action), six moments of one episode; '
                 'red: the shield acted', loc='left')
