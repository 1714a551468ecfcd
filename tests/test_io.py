"""Atomic writes: complete or absent, and a killed job's leftovers are cleared on restart."""

import signal
import subprocess
import sys

import pytest
from hcebench.io import atomic_path


def test_failed_write_leaves_nothing_and_keeps_the_old_artifact(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_directory_is_replaced_whole(tmp_path):
    with atomic_path(tmp_path / "store", is_dir=True) as tmp:
        (tmp / "x").write_text("1")
    with atomic_path(tmp_path / "store", is_dir=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["y"]


def test_restart_clears_a_killed_jobs_leftovers(tmp_path):
    stale = tmp_path / ".store.abc123.tmp"
    stale.mkdir()
    (stale / "X.data.f32").write_bytes(b"\0" * 10)
    other = tmp_path / ".other.abc123.tmp"
    other.mkdir()
    with atomic_path(tmp_path / "store", is_dir=True) as tmp:
        (tmp / "done").write_text("ok")
    assert not stale.exists() and other.exists()  # only the same artifact's leftovers go
    assert (tmp_path / "store" / "done").exists()


# A rule writing an artifact through atomic_path, run as its own process so the test can kill it or starve it.
WRITER = """
import resource, signal, sys, time
from hcebench.io import atomic_path
mode, final = sys.argv[1], sys.argv[2]
if mode == "full":  # the OS refuses writes past 4 KiB, as a full disk would (EFBIG here, ENOSPC there)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
with atomic_path(final) as tmp, open(tmp, "wb") as out:
    out.write(b"new " * 1024)
    out.flush()
    print("half written", flush=True)
    if mode == "kill":
        time.sleep(60)  # killed here
    out.write(b"new " * 100_000)
"""


def _writer(mode: str, final) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, mode, str(final)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_full_disk_fails_the_write_and_keeps_the_old_artifact(tmp_path):
    final = tmp_path / "metrics.tsv"
    final.write_text("old")
    job = _writer("full", final)
    out, err = job.communicate(timeout=60)
    assert job.returncode != 0 and "half written" in out
    assert err.strip().splitlines()[-1] == "OSError: [Errno 27] File too large"
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.tsv"]  # no temporary sibling left behind


def test_a_job_killed_mid_write_leaves_the_old_artifact_and_its_restart_clears_the_leftover(tmp_path):
    final = tmp_path / "metrics.tsv"
    final.write_text("old")
    job = _writer("kill", final)
    assert job.stdout.readline().strip() == "half written"
    job.send_signal(signal.SIGKILL)  # no handler runs: nothing can clean up
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL
    assert final.read_text() == "old"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "metrics.tsv"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".metrics.tsv.")  # the killed job's half file
    with atomic_path(final) as tmp:  # the rerun
        tmp.write_text("new")
    assert final.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["metrics.tsv"]


def test_an_atomic_directory_follows_the_umask_like_mkdir(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "store", is_dir=True) as tmp:
            (tmp / "meta.json").write_text("{}")
        os.mkdir(tmp_path / "plain")
        assert (tmp_path / "store").stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "store").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
        os.umask(0o077)
        with atomic_path(tmp_path / "private", is_dir=True):
            pass
        assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    finally:
        os.umask(old)


def test_a_live_writers_temporary_sibling_is_left_alone(tmp_path):
    # Two runs writing the same output at once (snakemake --nolock): the second must not delete the first's work.
    import os

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / f".store.{live.pid}.x1y2.tmp"
        theirs.mkdir()
        dead = tmp_path / f".store.{2**22 + 12345}.x1y2.tmp"  # above the kernel's default pid range
        dead.mkdir()
        mine = tmp_path / f".store.{os.getpid()}.x1y2.tmp"  # this process's own leftover
        mine.mkdir()
        with atomic_path(tmp_path / "store", is_dir=True) as tmp:
            assert tmp.name.startswith(f".store.{os.getpid()}.")
        assert theirs.exists() and not dead.exists() and not mine.exists()
    finally:
        live.kill()
        live.wait()
    with atomic_path(tmp_path / "store", is_dir=True):
        pass
    assert not theirs.exists()  # its writer is gone: a leftover like any other
