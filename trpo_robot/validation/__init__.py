"""Sim-first validation: a policy passes on the twin before it drives hardware.

``runner`` plays a checkpoint on the MuJoCo twin under nominal and harder conditions,
``report`` judges the figures against thresholds and draws them, ``record`` binds a passing
result to the exact weights and robot configuration, and ``trust`` checks each new version
a learner sends to an arm on hardware. ``record`` and ``trust`` import neither mujoco nor
rclpy: the actor node uses them.
"""
