"""Put an arm under a learning TRPO controller.

    ros2 launch trpo_robot learn.launch.py robot:=ur5 use_sim:=true
    ros2 launch trpo_robot learn.launch.py robot:=ur5 use_sim:=false   # the real UR driver
    ros2 launch trpo_robot learn.launch.py robot:=dxl use_sim:=false port:=/dev/serial/by-id/...
    ros2 launch trpo_robot learn.launch.py robot:=dxl out:=runs/dxl     # results folder
    ros2 launch trpo_robot learn.launch.py --show-args                 # every argument

With use_sim:=true the MuJoCo twin (twin_node) stands in for the UR ROS 2 driver and
stamps joint_states with sim time (and publishes it on /clock), which every node keeps time
by. With use_sim:=false nothing changes but
the absence of the twin: the actor talks to the driver's joint_states and, through the
command guard (guard_node), to forward_velocity_controller/commands, which must be up (see
docs/hardware.md); for robot:=dxl this file starts that driver itself (dxl_driver_node, on
the serial port).
The graph itself (nodes, namespaces, parameters, remaps) is defined once, in
trpo_robot/ros/plan.py, which `trpo-robot learn` reads too.
"""
import math
import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from trpo_robot.ros import params as P
from trpo_robot.ros import plan

PACKAGE = 'trpo_robot'
ROBOTS = ['ur5', 'ur5e', 'dxl']


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', name])


def declare_arguments():
    return [
        DeclareLaunchArgument('robot', default_value='ur5', choices=ROBOTS,
                              description='Which arm: ur5 (UR5 CB3 through the UR ROS 2 '
                              'driver) or dxl (a Dynamixel chain).'),
        DeclareLaunchArgument('use_sim', default_value='true', choices=['true', 'false'],
                              description='true: the MuJoCo twin stands in for the arm and '
                              'the graph runs on its /clock; false: the real driver topics.'),
        DeclareLaunchArgument('task', default_value='',
                              description='Task name or alias (reacher_2d, reacher_6d, '
                              'reacher, tracker); empty: the one in the robot YAML.'),
        DeclareLaunchArgument('config', default_value='',
                              description='Robot parameter YAML; empty: '
                              'config/<robot>.yaml of this package.'),
        DeclareLaunchArgument('learner_config', default_value=_config('learner.yaml'),
                              description='Learner parameter YAML (TRPO preset, overrides, '
                              'checkpoints).'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the arm (driver, guard, actor), e.g. '
                              'cell1; with arms > 1 the prefix of arm1..armN.'),
        DeclareLaunchArgument('arms', default_value='1',
                              description='A fleet: N arms, each in its own namespace '
                              '(arm1..armN) with its own driver, guard, actor and seed, '
                              'feeding one learner.'),
        DeclareLaunchArgument('reset_mode', default_value='',
                              choices=['', 'auto', 'teleop', 'freedrive'],
                              description='Reset between episodes: auto, teleop (gamepad or '
                              'trpo-robot teleop-keyboard) or freedrive; empty: the robot '
                              'YAML.'),
        DeclareLaunchArgument('out', default_value='',
                              description='Results folder: episodes/ (the actor\'s episode '
                              'store), checkpoint/, progress.csv and logs/ (the actor\'s '
                              'timing.json) go there, as with '
                              '`trpo-robot learn --out`, an earlier run there moved to '
                              'out/earlier/<UTC time>; empty: the folders the YAML names '
                              '(runs/learn/..., relative to the working directory).'),
        DeclareLaunchArgument('policy', default_value='',
                              description='use_sim:=false: the checkpoint the actors start '
                              'from (it must pass `trpo-robot validate` for this robot '
                              'YAML) and the learner resumes; docs/validation.md.'),
        DeclareLaunchArgument('validation_override', default_value='false',
                              choices=['true', 'false'],
                              description='use_sim:=false: start without a passing validation '
                              'record (logged at every start); for people who know why.'),
        DeclareLaunchArgument('only', default_value='',
                              description='A lab with several hosts: start only this part '
                              'of the graph here, learner or an arm (arm2); empty: all.'),
        DeclareLaunchArgument('real_time_factor', default_value='auto',
                              description='Twin only: sim seconds per wall second, the '
                              'actor keeping time at the same rate. auto: 1 (as the '
                              'hardware would run), or for a fleet more than this host '
                              'carries in real time, 1/2 or 1/4 (the rule of `trpo-robot '
                              'learn`); a number: that rate.'),
        DeclareLaunchArgument('port', default_value='',
                              description='robot:=dxl use_sim:=false: serial device of the '
                              'Dynamixel bus for dxl_driver_node (prefer /dev/serial/by-id/'
                              '...); empty: the port in config/dxl_hw.yaml.'),
    ]


def _nodes(context):
    """The graph of trpo_robot/ros/plan.py (the one `trpo-robot learn` starts too), from
    this launch's arguments."""
    arg = {name: LaunchConfiguration(name).perform(context)
           for name in ('robot', 'use_sim', 'task', 'config', 'learner_config', 'arms',
                        'namespace', 'only', 'real_time_factor', 'reset_mode', 'port', 'out',
                        'policy', 'validation_override')}
    sim = arg['use_sim'] == 'true'
    robot_yaml = arg['config'] or _config(f'{arg["robot"]}.yaml').perform(context)
    common, notes = {}, []
    if sim:  # the actor extrapolates the twin's stamps at this rate (RosBackend.now)
        common['real_time_factor'], note = twin_rtf(arg['real_time_factor'], robot_yaml,
                                                    _arms(arg['arms']))
        notes.append(LogInfo(msg=note))
    if arg['task']:
        common['task'] = arg['task']
    results = {}
    if arg['out']:
        out = os.path.abspath(arg['out'])
        common['episode_dir'] = os.path.join(out, 'episodes')
        common['timing_dir'] = os.path.join(out, 'logs')
        results = {'checkpoint_dir': os.path.join(out, 'checkpoint'), 'log_dir': out}
        notes += _set_aside(out, arg['policy'])
    actor = {} if sim else {'teleport': False}  # a real arm cannot be teleported
    if arg['reset_mode']:
        actor['reset_mode'] = arg['reset_mode']
    # The driver: the twin, or for a Dynamixel chain dxl_driver_node on the serial bus; a
    # UR is driven by the UR ROS 2 driver, started apart (docs/hardware.md).
    driver = 'twin_node' if sim else ('dxl_driver_node' if arg['robot'] == 'dxl' else None)
    specs = plan.learning_graph(
        robot_yaml, arg['learner_config'], driver=driver, arms=_arms(arg['arms']),
        namespace=arg['namespace'], use_sim_time=sim, common=common, actor=actor,
        learner=results, driver_params={'port': arg['port']} if arg['port'] else {},
        policy=os.path.abspath(arg['policy']) if arg['policy'] else '',
        validation_override=arg['validation_override'] == 'true')
    actions = notes
    for s in plan.on_host(specs, arg['only']):
        node = Node(package=PACKAGE, executable=s.executable, name=s.name,
                    namespace=s.namespace, parameters=[*s.param_files, s.params],
                    remappings=list(s.remaps.items()), output='screen', emulate_tty=True,
                    sigterm_timeout=str(plan.STOP_GRACE_S))
        actions.append(node)
        if s.role == 'actor':
            actions.append(RegisterEventHandler(OnProcessExit(target_action=node,
                                                              on_exit=_refused)))
    return actions


class Refused(RuntimeError):
    """Raised from an event handler: launch then shuts down and exits 1, as for a plan
    error, instead of running the rest of the graph without its actor."""


def _refused(event, context):
    """An actor that exits 2 refused to start (a parameter, or the sim-first gate on a real
    arm): nothing the rest of the graph does helps, so the launch ends, pointing at why."""
    if event.returncode == 2:
        raise Refused(f'{event.action.name} refused to start (exit 2): its error line is '
                      'above')
    return []


def _set_aside(out, policy):
    """An earlier run in out:= moves to out/earlier/<UTC time>, as with `trpo-robot learn
    --out`: a new run would overwrite its checkpoint and mix its counts into the new ones.
    Not when policy:= lies inside out: the run then continues from its checkpoint."""
    from trpo_robot.ros.learn import set_aside_earlier_run
    if policy and Path(os.path.abspath(policy)).is_relative_to(out):
        return []
    earlier = set_aside_earlier_run(Path(out))
    return [LogInfo(msg=f'an earlier run in {out} was moved to {earlier}')] if earlier else []


def twin_rtf(text, robot_yaml, arms, cores=None):
    """(real-time factor, a line saying why) for real_time_factor:=text. auto is real time
    unless the host cannot carry this many twins at it (trpo-robot learn's rule,
    trpo_robot/ros/learn.py: a 2-core host runs 4 UR5 twins at 0.5); a number stays as
    given, with learn's warning when it is more than the host carries."""
    from trpo_robot.ros.learn import default_rtf, overload_warning
    period = float(P.node_parameters([robot_yaml], 'twin_node').get(
        'driver_period', P.RobotParams.driver_period))
    if text == 'auto':
        rtf = min(1.0, default_rtf(period, arms, cores))
        return rtf, (f'real_time_factor {rtf:g} (auto: '
                     f'{"real time" if rtf == 1.0 else "what this host carries"} for '
                     f'{arms} arm{"s" if arms > 1 else ""})')
    try:
        rtf = float(text)
    except ValueError:
        rtf = math.nan
    if not (math.isfinite(rtf) and rtf > 0):
        raise plan.PlanError(f'real_time_factor:={text}: auto or a number above 0')
    warning = overload_warning(rtf, period, arms, cores).replace('--rtf ', 'real_time_factor:=')
    return rtf, warning or f'real_time_factor {rtf:g}'


def _arms(text):
    if not text.isdigit() or int(text) < 1:
        raise plan.PlanError(f"arms:={text}: a number of arms, 1 or more")
    return int(text)


def generate_launch_description():
    return LaunchDescription(declare_arguments() + [OpaqueFunction(function=_nodes)])
