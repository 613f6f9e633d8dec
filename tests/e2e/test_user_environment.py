"""A verl user's own environment: our built wheel installed on top of their verl (no checkout importable), and verl's
own entry point (``python -m verl.trainer.main_ppo``) running our start-up checks and a job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from conftest import ENV, REPO

pytestmark = pytest.mark.slow
USER_ENV = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}  # the user's shell: no checkout on the path


@pytest.fixture(scope="module")
def user_env(tmp_path_factory):
    """A fresh venv whose only packages are ours, installed from the built wheel, and the user's verl stack (this
    checkout's venv site-packages on its path as a plain directory: its editable install of entropy_verl is never
    activated, so nothing of the checkout is importable). Returns its python."""
    root = tmp_path_factory.mktemp("user_env")
    source = root / "source"  # a copy: setuptools builds in the source tree, and the checkout stays clean
    for name in ("entropy_verl", "trainer_configs"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source],
        check=True,
        timeout=300,
    )
    (wheel,) = (root / "dist").glob("entropy_verl-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "env"], check=True, timeout=120)
    python = root / "env" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    with open(os.path.join(site, "user_verl_stack.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
        check=True,
        timeout=300,
    )
    return python


def test_the_installed_wheel_is_what_runs_and_carries_the_configs(user_env, tmp_path):
    probe = (
        "import entropy_verl, entropy_verl.main as m, importlib.metadata as md; "
        "print(entropy_verl.__file__); print(m.CONFIG_DIR); print(len(m.group_options('method'))); "
        "print([e.value for e in md.entry_points(group='verl.plugins') if e.name == 'entropy_verl'])"
    )
    out = subprocess.run(
        [user_env, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300, env=USER_ENV
    )
    assert out.returncode == 0, out.stderr[-3000:]
    package_file, config_dir, methods, plugin = out.stdout.strip().splitlines()[-4:]
    env_root = str(user_env.parent.parent)
    assert package_file.startswith(env_root) and config_dir.startswith(env_root), out.stdout
    assert config_dir.endswith(os.path.join("entropy_verl", "trainer_configs")) and not config_dir.startswith(REPO)
    assert int(methods) == len(os.listdir(os.path.join(REPO, "trainer_configs", "method")))
    assert plugin == "['entropy_verl.plugin']"


def test_a_two_step_job_from_outside_the_checkout(user_env, tmp_path, smoke_overrides, read_metrics):
    out = subprocess.run(
        [user_env, "-m", "entropy_verl.main", *smoke_overrides, "method=clip_b"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=USER_ENV,
        timeout=900,
    )
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-5000:])
    (run_dir,) = (tmp_path / "outputs" / "entropy_verl").iterdir()  # the run directory, relative to where it ran
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2] and all("actor/clip_b/dropped_frac" in r for r in rows)


def run_verl_main_ppo(cwd, *overrides):
    """verl's own entry point on a config made of verl's ppo_trainer plus our groups (trainer_configs/config.yaml is
    exactly that) and our keys; no entropy_verl.main code runs on the driver. On CPU, Ray's "GPU" trainer slots are
    declared by hand (entropy_verl.main does it for CPU runs)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            f"--config-path={os.path.join(REPO, 'trainer_configs')}",
            "--config-name=config",
            "trainer.experiment_name=main_ppo",
            "+ray_kwargs.ray_init.num_gpus=1",
            *overrides,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=900,
    )


def test_a_bad_key_is_refused_the_same_way_under_both_entry_points_before_any_worker(run_main, tmp_path):
    bad = "entropy_verl.methods.clip_b.mu=-1"
    message = "entropy_verl.config.ConfigError: entropy_verl.methods.clip_b: mu must be >= 0, got -1.0"
    ours = run_main("method=clip_b", bad)
    verls = run_verl_main_ppo(tmp_path, "method=clip_b", bad, f"entropy_verl.run_dir={tmp_path / 'run'}")
    assert ours.returncode != 0 and message in ours.stderr, ours.stderr[-3000:]
    assert verls.returncode != 0 and message in verls.stderr, verls.stderr[-3000:]
    assert "WorkerDict" not in verls.stdout + verls.stderr  # refused in the trainer's construction: no worker started


def test_verls_entry_point_runs_a_two_step_job_with_our_method(tmp_path, smoke_overrides, read_metrics):
    run_dir = tmp_path / "run"
    out = run_verl_main_ppo(tmp_path, *smoke_overrides, "method=clip_b", f"entropy_verl.run_dir={run_dir}")
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-5000:])
    assert "[entropy_verl] objective: advantages: grpo | weights: clip_b | loss: vanilla" in out.stdout
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:  # the driver's whole-step statistics reached the workers' loss
        assert row["entropy_verl/driver_coef/clip_b/s_mean"] == row["actor/entropy_verl/worker_coef/clip_b/s_mean/min"]
