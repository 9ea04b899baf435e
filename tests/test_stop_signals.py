"""A stop signal that lands while the main thread holds the stop Event's lock.

Each case runs in a child process: the failure this guards against is a hang, which the
child's timeout turns into a failed test instead of a stuck suite."""
import subprocess
import sys
import textwrap

import pytest

HOLDS_THE_LOCK = textwrap.dedent('''
    import os, signal, threading
    from trpo_robot.stop_signals import StopSignals
    stop = threading.Event()
    with StopSignals(stop) as signals:
        with stop._cond:  # where Event.wait is when its timeout ends
            os.kill(os.getpid(), signal.{name})
            landed = list(signals.received)  # the handler has run by now
        print(landed == [signal.{name}], signals.wait(5.0), stop.is_set(), signals.first)
    print(signal.getsignal(signal.{name}) is {previous})
''')


def _child(code, cli_env):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=cli_env, timeout=30)


@pytest.mark.parametrize('name, previous', [('SIGINT', 'signal.default_int_handler'),
                                            ('SIGTERM', 'signal.SIG_DFL')])
def test_a_signal_inside_the_events_lock_stops_the_wait_without_a_deadlock(
        name, previous, cli_env):
    result = _child(HOLDS_THE_LOCK.format(name=name, previous=previous), cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True', 'True', name, 'True'], result.stdout


def test_wait_returns_false_after_its_timeout_and_true_once_another_thread_sets_it(
        cli_env):
    code = textwrap.dedent('''
        import threading
        from trpo_robot.stop_signals import StopSignals
        stop = threading.Event()
        with StopSignals(stop) as signals:
            quiet = signals.wait(0.1)
            threading.Timer(0.05, stop.set).start()
            print(quiet, signals.wait(30.0), repr(signals.first))
    ''')
    result = _child(code, cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'True', "''"], result.stdout
