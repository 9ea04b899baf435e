"""A stand-in commander for the guard tests: publishes one fixed joint-velocity command
every period until it is killed (as an actor that dies mid-motion leaves it).

    python command_sender.py TOPIC PERIOD V1 V2 ...
"""
import sys

import rclpy
from std_msgs.msg import Float64MultiArray

from trpo_robot.ros import node_utils as U


def main():
    topic, period, values = sys.argv[1], float(sys.argv[2]), [float(v) for v in sys.argv[3:]]
    rclpy.init()
    node = rclpy.create_node('command_sender')
    pub = node.create_publisher(Float64MultiArray, topic, U.QOS_COMMAND)
    msg = Float64MultiArray(data=values)
    node.create_timer(period, lambda: pub.publish(msg))
    rclpy.spin(node)


if __name__ == '__main__':
    main()
