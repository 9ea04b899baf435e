"""The hardware actor's gate: no starting policy without a passing validation record.

On the twin any policy may act (that is what the twin is for). On a real arm the actor
starts only from a checkpoint whose validation record matches its weights and the robot
configuration the actor runs; after that it takes only versions that pass ``TrustCheck``.
``validation_override`` lets a person who knows what they do skip the record, loudly.
"""
from trpo_robot import auth
from trpo_robot.paths import checkpoint_folder
from trpo_robot.trpo import checkpoint, wire
from trpo_robot.validation.record import check_start, config_digest, GateError, policy_digest


def starting_policy(robot_params, obs_dim, act_dim, keyring: auth.Keyring, log, warn) -> bytes:
    """The signed policy blob the actor starts from (b'': wait for the learner's, under the
    override), or GateError saying what to run."""
    folder = robot_params.policy_checkpoint
    rerun = (f'trpo-robot validate --checkpoint {folder or "DIR"} --config '
             "<this arm's robot YAML>")
    if not folder:
        if robot_params.validation_override:
            warn("validation_override: true and no policy_checkpoint: the learner's first "
                 'policy will drive the arm UNVALIDATED')
            return b''
        raise GateError('on hardware the actor starts only from a validated policy: train on '
                        f'the twin, run `{rerun}`, then pass policy:=DIR (launch) or '
                        '--policy DIR (trpo-robot learn)')
    folder = str(checkpoint_folder(folder))
    try:
        agent, meta = checkpoint.load(folder, expect_obs_dim=obs_dim, expect_act_dim=act_dim)
    except checkpoint.CheckpointError as e:
        raise GateError(f'policy_checkpoint {folder}: {e}') from None
    agent.obs_norm.frozen = True
    snapshot = agent.snapshot()
    try:
        record = check_start(folder, policy_digest(snapshot, agent.obs_norm),
                             config_digest(robot_params), rerun)
        log(f'starting policy {folder} (version {agent.version}) passed validation on '
            f'{record.get("date", "?")}: {record.get("episodes_per_condition", "?")} '
            'episodes per condition')
    except GateError as e:
        if not robot_params.validation_override:
            raise
        warn(f'validation_override: true: starting UNVALIDATED from {folder} ({e})')
    blob = wire.encode_policy(snapshot, agent.obs_norm, agent.version,
                              robot=robot_params.robot, task=robot_params.task_spec().name,
                              max_kl=agent.config.max_kl)
    return keyring.sign(blob, auth.POLICY)
