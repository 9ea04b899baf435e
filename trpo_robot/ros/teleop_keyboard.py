"""`trpo-robot teleop-keyboard`: jog the arm from a terminal during a teleop reset.

A small rclpy node: raw terminal bytes -> trpo_robot.robot.keyboard (all the key rules) ->
sensor_msgs/Joy on <namespace>/joy at a steady rate, which the actor reads with the
keyboard layout exactly as it reads a gamepad (deadman, timeout, shield). The terminal is
put in raw mode and restored on every way out (q, Ctrl-C, an error).
"""
import os
import select
import sys
import termios
import time
import tty

from trpo_robot.errors import UsageError
from trpo_robot.robot.keyboard import decode_keys, KeyboardJoy

HELP = ('space: deadman on/off | up/down: jog | s: stop | left/right or 1-9: joint | '
        'enter: confirm reset | e: E-STOP | q or Ctrl-C: quit')


def add_parser(sub):
    p = sub.add_parser('teleop-keyboard', help='jog the arm from this terminal during a '
                       'teleop reset (publishes sensor_msgs/Joy for the actor)')
    p.add_argument('--namespace', default='', help="the arm's namespace (e.g. arm1); "
                   'publishes on <namespace>/joy')
    p.add_argument('--rate', type=float, default=20.0,
                   help='Joy messages per second (default 20; above 1 / the layout timeout)')
    p.set_defaults(func=cmd_teleop_keyboard)


def cmd_teleop_keyboard(args):
    if not sys.stdin.isatty():
        raise UsageError('teleop-keyboard needs a terminal on stdin')
    if not (0.0 < args.rate <= 1000.0):
        raise UsageError(f'--rate must be in (0, 1000], got {args.rate}')
    try:
        import rclpy
        from sensor_msgs.msg import Joy
    except ImportError:
        raise UsageError("rclpy is not importable: pip install -e '.[ros]'") from None
    rclpy.init(args=None)
    node = rclpy.create_node('teleop_keyboard', namespace='/' + args.namespace.strip('/'))
    pub = node.create_publisher(Joy, 'joy', 10)
    keys = KeyboardJoy()

    def publish():
        axes, buttons = keys.state(time.monotonic())
        msg = Joy(axes=[float(a) for a in axes], buttons=[int(b) for b in buttons])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
    node.create_timer(1.0 / args.rate, publish)
    print(f'publishing on {pub.topic_name}\r\n{HELP}\r', flush=True)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.0)
            ready, _, _ = select.select([fd], [], [], 0.01)
            if not ready:
                continue
            for key in decode_keys(os.read(fd, 64)):
                if key in ('ctrl-c', 'q'):
                    return 0
                line = keys.press(key, time.monotonic())
                if line:
                    print(f'{line}\r', flush=True)
                    publish()  # at once: an e-stop must not wait for the timer
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
