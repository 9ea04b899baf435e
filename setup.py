"""Packaging for trpo_robot: works under colcon (ament_python) and plain pip alike."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'trpo_robot'

# The ROS wheels stand in for a ROS distribution on machines without one; on a ROS machine
# the system rclpy and messages are used and this extra is not installed.
ROS_WHEELS = [
    'ros-rclpy[fastrtps]',
    'ros-std-msgs',
    'ros-sensor-msgs',
    'ros-std-srvs',
    'ros-diagnostic-msgs',
    'ros-rosgraph-msgs',
    'ros-builtin-interfaces',
]


def data(folder, pattern='*'):
    return (f'share/{PACKAGE}/{folder}', sorted(glob(f'{folder}/{pattern}')))


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['tests', 'tests.*', 'bench']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        data('launch', '*.launch.py'),
        data('config', '*.yaml'),
        data('urdf', '*.urdf'),
        data('sim', '*.xml'),
        data('sim', '*.yaml'),
    ],
    package_data={PACKAGE: ['assets/*']},
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'torch==2.13.0',
        'gymnasium>=1.0',
        'mujoco>=3.2',
        'safetensors>=0.4',
        'pyyaml>=6',
        'matplotlib>=3.7',
        'pillow>=9.1',  # video frames: captions, GIFs (matplotlib needs it too)
        'imageio>=2',  # `trpo-robot rollout --video x.mp4` (GIFs need only Pillow)
        'imageio-ffmpeg>=0.4',
        'tensorboard>=2.14',
        'pyserial>=3.5',
        'dynamixel-sdk>=3.7',
        'mcap>=1.1',
        'mcap-ros2-support>=0.5',
    ],
    extras_require={
        'ros': ROS_WHEELS,
        'test': ['pytest>=7', 'hypothesis>=6', 'pytest-timeout>=2'],
        'bench': ['sb3-contrib==2.9.2', 'stable-baselines3==2.9.2', 'psutil>=5',
                  'gymnasium[mujoco]', 'imageio>=2'],
    },
    zip_safe=True,
    maintainer='trpo_robot developers',
    maintainer_email='trpo-robot@example.org',
    description='Trust Region Policy Optimization on real robot arms over ROS 2, '
                'with a MuJoCo twin.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'trpo-robot = trpo_robot.cli:main',
            'twin_node = trpo_robot.ros.twin_node:main',
            'actor_node = trpo_robot.ros.actor_node:main',
            'learner_node = trpo_robot.ros.learner_node:main',
            'guard_node = trpo_robot.ros.guard_node:main',
            'dxl_driver_node = trpo_robot.ros.dxl_driver_node:main',
        ],
    },
)
