"""Atomic writes: complete or absent, and a killed job's leftovers are cleared on restart."""

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
