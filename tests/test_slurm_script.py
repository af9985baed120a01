"""scripts/slurm_cluster.sh status: one line and exit 3 when the cluster is not installed or stopped,
exit 1 when some daemons run, 0 with the daemons and sinfo when all run.  Runs without a cluster:
PATH holds only the few tools the script needs, and fake slurm commands where a test wants them."""
import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
PID_FILES = ["munged.pid", "mariadb-run/mariadb.pid", "slurmdbd.pid", "slurmctld.pid", "slurmd.pid"]


@pytest.fixture
def cluster(tmp_path):
    """(bin folder on PATH, GEN_SLURM_DIR, status()) with no slurm commands on PATH yet."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    for tool in ("bash", "hostname", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)

    def status() -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / "bash"), str(SCRIPT), "status"], capture_output=True, text=True,
                              env={"PATH": str(bin_dir), "GEN_SLURM_DIR": str(state)}, timeout=30)
    return bin_dir, state, status


def install_fakes(bin_dir, sinfo_output="debug*  up  idle"):
    for name in ("slurmctld", "sinfo"):
        fake = bin_dir / name
        fake.write_text(f"#!{bin_dir / 'bash'}\necho '{sinfo_output}'\n")
        fake.chmod(0o755)


def write_pid_files(state, names):
    for name in names:
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text(str(os.getpid()))  # a live process, as a running daemon's pid file names


def test_status_before_installation_says_not_installed(cluster):
    _, _, status = cluster
    proc = status()
    assert proc.returncode == 3
    assert proc.stdout.splitlines() == ["slurm_cluster: not installed (`bash scripts/slurm_cluster.sh start` "
                                        "installs it, as root)"] and proc.stderr == ""


def test_status_of_a_stopped_cluster_says_stopped(cluster):
    bin_dir, _, status = cluster
    install_fakes(bin_dir, "Unable to contact slurm controller")
    proc = status()
    assert proc.returncode == 3
    assert proc.stdout.splitlines() == ["slurm_cluster: stopped (`bash scripts/slurm_cluster.sh start` starts it)"]


def test_status_of_a_partly_running_cluster_names_what_stopped(cluster):
    bin_dir, state, status = cluster
    install_fakes(bin_dir)
    write_pid_files(state, PID_FILES[:2])
    proc = status()
    assert proc.returncode == 1
    assert "partly running: munged" in proc.stdout and "stopped: slurmdbd slurmctld slurmd" in proc.stdout


def test_status_of_a_running_cluster_lists_the_daemons_and_sinfo(cluster):
    bin_dir, state, status = cluster
    install_fakes(bin_dir)
    write_pid_files(state, PID_FILES)
    proc = status()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("slurm_cluster: running: munged (pid") and "debug*  up  idle" in proc.stdout
