"""Subcommands contributed by the layers: each module registers its own parsers."""
from trpo_robot.dxl_emulator import register as register_dxl_emulator
from trpo_robot.hw.cli import REGISTRARS as HW_REGISTRARS
from trpo_robot.ros.learn import add_parser as register_learn
from trpo_robot.ros.teleop_keyboard import add_parser as register_teleop_keyboard
from trpo_robot.rollout_cli import register_rollout
from trpo_robot.validation.cli import add_parser as register_validate

REGISTRARS = [*HW_REGISTRARS, register_dxl_emulator, register_learn, register_teleop_keyboard,
              register_rollout, register_validate]
