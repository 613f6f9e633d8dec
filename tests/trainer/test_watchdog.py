"""The watchdog fails a run for a worker that died, not for an actor the job ended on purpose."""

from __future__ import annotations

import os
import signal
import time

import pytest

from entropy_verl.trainer.watchdog import WorkerDied, WorkerWatchdog, unintended


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

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # listen on 127.0.0.1 only
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
