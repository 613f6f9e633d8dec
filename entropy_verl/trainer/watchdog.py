"""A dead Ray worker fails the run instead of hanging it.

verl's replay buffer waits for the step's rollouts by polling with no deadline: if an agent-loop worker dies
mid-step, its samples never finish and the driver logs ``pending: 0, running: 8`` every minute, forever. While it
waits, the watchdog asks Ray (its public state API) every ``worker_check_s`` seconds whether an actor of this job
has died since the run started, and raises ``WorkerDied`` naming it; verl's driver then fails, and Ray ends the
job's other workers. A checkpoint-resumed run continues from the last checkpoint as after any failure.

Other deaths do fail the step, but not always with an error that says why (a dead rollout server surfaces as
"no materializable trajectories"); ``name_the_dead`` turns such a failure into ``WorkerDied`` naming the worker.

Only deaths the job did not intend count (``unintended``): a worker that crashed, was killed by a signal or the OOM
killer, lost its node or owner, or failed to start. An actor that exited on purpose (``ray.actor.exit_actor()``),
went out of scope, or that the job's own code ended with ``ray.kill`` (verl tears down servers and engines that way)
is not a failure.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


DEFAULT_WORKER_CHECK_S = 5.0  # how often the trainer asks Ray for dead workers while it waits for rollouts (0: never)
DEFAULT_LOST_WORKER_GRACE_S = 30.0  # on a joined cluster, the driver ends the job this long after a worker died
NODE_DEATH_WAIT_S = 30.0  # how long to wait for Ray to report a lost node's workers dead (declared after 12 s measured)


class WorkerDied(RuntimeError):
    """A Ray actor of this job died while the trainer waited for it."""


# Ray's ActorDiedErrorContext reasons for an ending the job asked for; WORKER_DIED is intended only with this exit type
INTENDED_REASONS = ("OUT_OF_SCOPE", "REF_DELETED", "RAY_KILL")
INTENDED_EXIT = "Worker exit type: INTENDED_USER_EXIT"


def unintended(death_cause: dict | None) -> bool:
    """Whether Ray's ``death_cause`` of an actor (``list_actors(detail=True)``) is a failure rather than an ending the
    job intended; an unknown or missing cause counts as a failure."""
    if not isinstance(death_cause, dict) or set(death_cause) != {"actor_died_error_context"}:
        return True  # creation task failed, runtime env failed, unschedulable, OOM-killed, or no cause recorded
    context = death_cause["actor_died_error_context"] or {}
    reason = context.get("reason", "UNSPECIFIED")
    if reason in INTENDED_REASONS:
        return False
    return not (reason == "WORKER_DIED" and INTENDED_EXIT in context.get("error_message", ""))


def dead_actors(job_id: str, address: str | None = None) -> dict[str, str]:
    """{actor id: "ClassName (pid N): cause"} for this job's actors that died unintendedly (``unintended``), on the
    cluster at ``address`` (its GCS address; None: the only cluster on this machine)."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=address,
        filters=[("job_id", "=", job_id), ("state", "=", "DEAD")],
        detail=True,
        raise_on_missing_output=False,
    )
    described = {}
    for actor in actors:
        if not unintended(actor.death_cause):
            continue
        cause = actor.death_cause or {}
        context = next(iter(cause.values()), {}) if isinstance(cause, dict) else {}
        message = context.get("error_message", "") if isinstance(context, dict) else ""
        described[actor.actor_id] = (
            f"{actor.class_name} (pid {actor.pid}): {message.splitlines()[0] if message else 'died'}"
        )
    return described


class WorkerWatchdog:
    def __init__(self, check_every_s: float):
        import ray

        self.check_every_s = check_every_s
        self.job_id = ray.get_runtime_context().get_job_id()
        # this run's own cluster: with another run's Ray on the machine (make demo runs two), Ray cannot guess
        self.address = ray.get_runtime_context().gcs_address
        # actors dead before this run's trainer started are not its workers
        self.known_dead = set(dead_actors(self.job_id, self.address)) if check_every_s > 0 else set()
        self.next_check = time.monotonic() + check_every_s

    def newly_dead(self) -> dict[str, str]:
        """This job's actors that died since the watchdog started: {actor id: description}."""
        return {
            actor: text
            for actor, text in dead_actors(self.job_id, self.address).items()
            if actor not in self.known_dead
        }

    def check(self) -> None:
        """Raise ``WorkerDied`` if an actor of this job died since the watchdog started (at most every
        ``check_every_s``)."""
        now = time.monotonic()
        if self.check_every_s <= 0 or now < self.next_check:
            return
        self.next_check = now + self.check_every_s
        try:
            new = self.newly_dead()
        except Exception as exc:  # noqa: BLE001 - the state API unavailable: never fail a run for the watchdog itself
            logger.warning("worker watchdog: cannot list Ray actors (%r); not checking this time", exc)
            return
        if new:
            raise _died(named(new, lost_nodes()), "while the trainer waited for rollouts")

    def name_the_dead(self, failure: BaseException, settle_s: float = 2.0) -> None:
        """Raise ``WorkerDied`` from ``failure`` if a worker of this job died: the step failed because of it.

        Ray marks an actor dead a moment after its process ends, so an empty answer is asked again once after
        ``settle_s``. On a cluster of several nodes, a step can fail before Ray knows a node is lost (a rollout
        server's connection refused, then verl's "no materializable trajectories"), and Ray marks the lost node's
        actors dead only once its health checks declare the node dead (12 s in the two-node rehearsal): there it asks
        every second for up to ``NODE_DEATH_WAIT_S``. A failure that no death explains is reported that much later."""
        if self.check_every_s <= 0:
            return
        import ray

        several_nodes = len(ray.nodes()) > 1
        deadline = time.monotonic() + (NODE_DEATH_WAIT_S if several_nodes else settle_s)
        while True:
            try:
                new = self.newly_dead()
                lost = lost_nodes() if new else []
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                return
            if new:
                raise _died(named(new, lost), "and the step failed") from failure
            if time.monotonic() >= deadline:
                return
            time.sleep(1.0 if several_nodes else settle_s)


def lost_nodes() -> list[str]:
    """The cluster's nodes that are not alive, as ``node id (address)``."""
    import ray

    return [f"{n['NodeID']} ({n['NodeManagerAddress']})" for n in ray.nodes() if not n["Alive"]]


def named(dead: dict[str, str], lost: list[str]) -> list[str]:
    """What died, in words: the first few dead actors (those that died themselves before those that died because
    their owner did), then the lost nodes."""
    described = sorted(dead.values(), key=lambda text: "because its owner has died" in text)
    out = described[:MAX_NAMED]
    if len(dead) > MAX_NAMED:
        out.append(f"and {len(dead) - MAX_NAMED} more")
    if lost:
        out.append(f"node(s) lost: {', '.join(lost)}")
    return out


class LostWorkerMonitor:
    """In the job's driver (``entropy_verl.main``), on a cluster the job joined: a thread that ends the job
    ``grace_s`` seconds after one of its workers died, wherever the trainer is blocked.

    The trainer's own watchdog (``WorkerWatchdog``) fails the step while it waits for rollouts. But where a node is
    lost the trainer can be blocked elsewhere: TransferQueue waits up to 200 s
    (``TQ_SIMPLE_STORAGE_SEND_RECV_TIMEOUT``) for a storage unit on the lost node (the two-node rehearsal caught verl's
    replay buffer in ``kv_clear`` after the node died), then verl's teardown calls actors that are gone. The grace
    lets the trainer's own error come first; after it, ``on_lost`` gets ``WorkerDied`` naming the dead workers and
    lost nodes (the driver prints it and exits)."""

    def __init__(self, check_every_s: float, grace_s: float, on_lost):
        import threading

        self.check_every_s, self.grace_s, self.on_lost = check_every_s, grace_s, on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="entropy_verl-lost-worker-monitor", daemon=True)

    def __enter__(self):
        if self.check_every_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def _run(self) -> None:
        import ray

        while not ray.is_initialized():  # verl's run_ppo connects to the cluster
            if self._stop.wait(1.0):
                return
        watchdog, first_seen = None, None  # actors dead before the monitor first looked are not the run's
        while not self._stop.wait(self.check_every_s):
            try:
                watchdog = watchdog or WorkerWatchdog(self.check_every_s)
                dead = watchdog.newly_dead()
                lost = lost_nodes() if dead else []
            except Exception as exc:  # noqa: BLE001 - never fail a run for the monitor itself
                logger.warning("lost-worker monitor: cannot list Ray actors (%r); not checking this time", exc)
                continue
            if not dead:
                continue
            first_seen = first_seen or time.monotonic()
            waited = time.monotonic() - first_seen
            if waited >= self.grace_s and not self._stop.is_set():
                self.on_lost(_died(named(dead, lost), f"and the trainer was still waiting {waited:.0f} s later"))
                return


def name_lost_workers(failure: BaseException, wait_s: float = NODE_DEATH_WAIT_S) -> None:
    """In the job's driver (``entropy_verl.main``), after verl's ``run_ppo`` failed: raise ``WorkerDied`` from
    ``failure`` naming this job's workers that died and the nodes lost, when the failure is an actor lost. verl runs
    the trainer itself as an actor (``TaskRunner``) placed on any node; when that node dies, nothing inside the run is
    left to say why, and Ray's error names only an actor id ("actor ... is unavailable"). Ray marks the actors of a
    lost node dead once it has declared the node dead, so this waits up to ``wait_s`` for a cause."""
    import ray

    if not isinstance(failure, ray.exceptions.RayActorError) or not ray.is_initialized():
        return
    job_id = ray.get_runtime_context().get_job_id()
    address = ray.get_runtime_context().gcs_address
    start = time.monotonic()
    while True:
        try:
            dead = dead_actors(job_id, address)
            lost = lost_nodes()
        except Exception:  # noqa: BLE001 - the state API unavailable: the original failure is the one to report
            return
        waited = time.monotonic() - start
        if (dead and (lost or waited >= wait_s / 2)) or waited >= wait_s:  # a lost node is declared last
            break
        time.sleep(1.0)
    if not dead and not lost:
        return
    raise _died(named(dead, lost), "and the run failed (verl's trainer, TaskRunner, may be among them)") from failure


MAX_NAMED = 6  # a lost node takes every actor on it, and the ones they owned: name the first few


def _died(described, when: str) -> WorkerDied:
    """WorkerDied listing ``described`` (what died, in words) and when it was found."""
    return WorkerDied(
        f"a Ray worker of this run died {when}: "
        + "; ".join(described)
        + " (the step can never complete; resume from the last checkpoint)"
    )
