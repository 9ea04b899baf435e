"""ros layer of trpo_robot (see docs/architecture.md)."""
