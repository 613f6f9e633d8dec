"""The watchdog fails a run for a worker that died, not for an actor the job ended on purpose."""

from __future__ import annotations

import os
import signal
import time

import pytest

from entropy_verl.trainer.watchdog import (
    LostWorkerMonitor,
    WorkerDied,
    WorkerWatchdog,
    name_lost_workers,
    unintended,
)


def died(reason: str, message: str = "") -> dict:
    """A death cause as Ray's state API reports it (``list_actors(detail=True)``, Ray 2.60)."""
    return {"actor_died_error_context": {"reason": reason, "error_message": message, "class_name": "A"}}


@pytest.mark.parametrize(
    ("cause", "failure"),
    [
        (died("WORKER_DIED", "... Worker exit type: SYSTEM_ERROR Worker exit detail: ..."), True),  # SIGKILL, crash
        (died("WORKER_DIED", "... Worker exit type: INTENDED_USER_EXIT ... exit_actor() is called."), False),
        (died("OUT_OF_SCOPE", "all references to the actor were removed"), False),
        (died("REF_DELETED"), False),
        (died("RAY_KILL", "killed by `ray.kill`"), False),
        (died("NODE_DIED"), True),
        (died("OWNER_DIED"), True),
        (died("UNSPECIFIED"), True),
        ({"creation_task_failure_context": {"error_message": "boom"}}, True),
        ({"oom_context": {"error_message": "killed by the memory monitor"}}, True),
        (None, True),
    ],
)
def test_which_deaths_are_failures(cause, failure):
    assert unintended(cause) is failure


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from entropy_verl.main import keep_ray_on_loopback

    keep_ray_on_loopback()  # listen on 127.0.0.1 only (Ray read its switch when first imported)
    ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


def wait_for(condition, timeout_s: float = 30.0):
    """Poll ``condition`` until it returns something truthy (Ray marks an actor dead a moment after it ends)."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def check_now(watchdog: WorkerWatchdog) -> WorkerDied | None:
    watchdog.next_check = 0.0
    try:
        watchdog.check()
    except WorkerDied as exc:
        return exc
    return None


def test_intended_endings_pass_and_a_killed_worker_fails_the_run(local_ray):
    ray = local_ray

    @ray.remote(num_cpus=0)
    class Worker:
        def pid(self):
            return os.getpid()

        def leave(self):
            ray.actor.exit_actor()

    watchdog = WorkerWatchdog(check_every_s=0.1)
    leaving, dropped, killed = Worker.remote(), Worker.remote(), Worker.remote()
    ray.get([w.pid.remote() for w in (leaving, dropped, killed)])
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(leaving.leave.remote())
    del dropped
    ray.kill(killed)
    from ray.util.state import list_actors

    dead = [("job_id", "=", watchdog.job_id), ("state", "=", "DEAD")]
    assert wait_for(lambda: len(list_actors(address=watchdog.address, filters=dead)) == 3)
    assert check_now(watchdog) is None

    crashing = Worker.remote()
    os.kill(ray.get(crashing.pid.remote()), signal.SIGKILL)
    failure = wait_for(lambda: check_now(watchdog))
    assert failure is not None and "Worker (pid" in str(failure) and "SYSTEM_ERROR" in str(failure)


def test_the_driver_names_a_lost_trainer_actor_and_leaves_other_failures_alone(local_ray):
    """verl runs its trainer as an actor (TaskRunner): when it dies (with its node, or here by SIGKILL), the driver's
    ``ray.get`` raises a RayActorError naming only an actor id; ``name_lost_workers`` turns it into WorkerDied naming
    the dead actor, and lets any other failure through unchanged."""
    ray = local_ray

    @ray.remote(num_cpus=0)
    class TaskRunner:
        def pid(self):
            return os.getpid()

        def run(self):
            time.sleep(60)

    runner = TaskRunner.remote()
    os.kill(ray.get(runner.pid.remote()), signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError) as lost:
        ray.get(runner.run.remote())
    with pytest.raises(WorkerDied, match=r"TaskRunner \(pid \d+\)") as named:
        name_lost_workers(lost.value, wait_s=10.0)
    assert named.value.__cause__ is lost.value and "resume from the last checkpoint" in str(named.value)
    assert name_lost_workers(ValueError("not an actor lost"), wait_s=0.0) is None


def test_the_drivers_monitor_ends_the_job_a_grace_after_a_worker_died_wherever_the_trainer_waits(local_ray):
    """On a joined cluster the driver's monitor thread calls ``on_lost`` with WorkerDied naming the dead worker once
    ``grace_s`` has passed since it saw the death (the trainer may be blocked in TransferQueue for 200 s); an actor
    the job ended on purpose, or one dead before the monitor started, is no reason."""
    import threading

    ray = local_ray

    @ray.remote(num_cpus=0)
    class Storage:
        def pid(self):
            return os.getpid()

    earlier = Storage.remote()  # dead before the monitor started
    os.kill(ray.get(earlier.pid.remote()), signal.SIGKILL)
    assert wait_for(lambda: is_dead(ray, earlier))
    ended, lost = threading.Event(), []
    monitor = LostWorkerMonitor(check_every_s=0.2, grace_s=2.0, on_lost=lambda e: (lost.append(e), ended.set()))
    with monitor:
        time.sleep(1.0)  # the monitor's first look
        intended = Storage.remote()
        ray.get(intended.pid.remote())
        ray.kill(intended)
        assert not ended.wait(4.0)  # nothing died unintendedly since it started
        storage = Storage.remote()
        pid = ray.get(storage.pid.remote())
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert ended.wait(30.0)
    assert time.monotonic() - killed_at >= 2.0  # not before the grace
    (error,) = lost
    assert isinstance(error, WorkerDied) and f"Storage (pid {pid})" in str(error) and "still waiting" in str(error)


def is_dead(ray, actor) -> bool:
    """Whether Ray lists ``actor`` as dead yet."""
    from ray.util.state import list_actors

    filters = [("actor_id", "=", actor._actor_id.hex()), ("state", "=", "DEAD")]
    return bool(list_actors(address=ray.get_runtime_context().gcs_address, filters=filters))  # not another cluster's
