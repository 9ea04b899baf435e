"""trpo_robot: TRPO on real robot arms, with a MuJoCo twin and a ROS 2 edge."""
__version__ = '0.1.0'
