"""A stand-in commander for the guard tests: publishes one fixed joint-velocity command
every period until it is killed (as an actor that dies mid-motion leaves it).

    python command_sender.py TOPIC PERIOD V1 V2 ...                    (to a controller)
    python command_sender.py TOPIC PERIOD V1 V2 ... --joints a,b,c     (to a command guard)

With --joints it speaks the guard's language, as the actor does: a JointState stamped with
the newest joint_states it has heard (and silent until it has heard one).
"""
import argparse

import rclpy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from trpo_robot.ros import node_utils as U


def _args():
    parser = argparse.ArgumentParser()
    parser.add_argument('topic')
    parser.add_argument('period', type=float)
    parser.add_argument('values', type=float, nargs='+')
    parser.add_argument('--joints', help='comma-separated joint names: stamped commands')
    parser.add_argument('--states', default='/joint_states')
    return parser.parse_args()


def main():
    args = _args()
    rclpy.init()
    node = rclpy.create_node('command_sender')
    if args.joints is None:
        pub = node.create_publisher(Float64MultiArray, args.topic, U.QOS_COMMAND)
        msg = Float64MultiArray(data=args.values)
        node.create_timer(args.period, lambda: pub.publish(msg))
    else:
        pub = node.create_publisher(JointState, args.topic, U.QOS_COMMAND)
        msg = JointState(name=args.joints.split(','), velocity=args.values)
        heard = []

        def on_state(state):
            heard[:] = [state.header.stamp]

        def send():
            if heard:
                msg.header.stamp = heard[0]
                pub.publish(msg)
        node.create_subscription(JointState, args.states, on_state, U.QOS_STATE_SUB)
        node.create_timer(args.period, send)
    rclpy.spin(node)


if __name__ == '__main__':
    main()
