"""Emptying scratch directories and reading the process table, on real files and processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from executor_service.sweeper import (
    CleanupFailed,
    InitSweeper,
    ProcessInfo,
    SessionSweeper,
    empty_directory,
    read_process_table,
    spared_by_the_sweep,
    wipe,
)


def test_empty_directory_removes_everything_inside_but_not_the_directory(tmp_path):
    root = tmp_path / "scratch"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file").write_text("x")
    (root / ".hidden").write_text("x")
    os.mkfifo(root / "fifo")
    empty_directory(root)
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_symlinks_are_removed_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    root = tmp_path / "scratch"
    root.mkdir()
    (root / "link-to-dir").symlink_to(outside)
    (root / "link-to-file").symlink_to(outside / "keep")
    empty_directory(root)
    assert list(root.iterdir()) == []
    assert (outside / "keep").read_text() == "precious"


def test_directories_made_unreadable_or_unwritable_are_removed(tmp_path):
    root = tmp_path / "scratch"
    for mode, name in ((0o000, "none"), (0o500, "readonly"), (0o300, "unlistable")):
        directory = root / name / "inner"
        directory.mkdir(parents=True)
        (directory / "f").write_text("x")
        (root / name).chmod(mode)
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_nesting_deeper_than_recursion_and_path_limits_is_removed(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):  # about 9000 characters of path: beyond PATH_MAX and the recursion limit
        os.mkdir("dd", dir_fd=fd)
        child = os.open("dd", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(os.open("bottom", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_many_files_in_one_directory_are_all_removed(tmp_path):
    root = tmp_path / "scratch"
    (root / "d").mkdir(parents=True)
    for i in range(5000):  # more than one unlink batch
        (root / "d" / f"f{i}").touch()
    empty_directory(root)
    assert list(root.iterdir()) == []


def test_wipe_skips_missing_directories_and_refuses_a_symlinked_one(tmp_path):
    wipe([tmp_path / "missing"])
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").touch()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(CleanupFailed, match="could not empty"):
        wipe([tmp_path / "link"])
    assert (target / "keep").exists()


def test_the_process_table_reads_names_with_spaces_and_parentheses(tmp_path):
    odd = tmp_path / "x) (y z"
    odd.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(odd), "30"], start_new_session=True)
    try:
        info = read_process_table()[child.pid]
        assert info.ppid == os.getpid()
        assert info.session == child.pid
        assert info.state in "RS"
    finally:
        child.kill()
        child.wait()


def test_the_session_sweeper_ends_the_whole_session_even_reparented_members():
    # The job's first process starts a grandchild and exits: the grandchild is re-parented away.
    job = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; print(subprocess.Popen(['sleep', '60']).pid)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    grandchild = int(job.stdout.readline())  # the grandchild keeps the pipe open: no read()
    job.wait()
    job.stdout.close()
    assert read_process_table()[grandchild].session == job.pid
    SessionSweeper().end_leftovers(job.pid)
    entry = read_process_table().get(grandchild)
    assert entry is None or entry.state == "Z"


def test_the_init_sweeper_refuses_to_exist_outside_pid_1():
    with pytest.raises(RuntimeError, match="PID 1"):
        InitSweeper()


def test_the_process_table_tells_dumpable_processes_from_non_dumpable_ones():
    me = os.geteuid()
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    hidden = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ctypes, sys, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print(); "
            "sys.stdout.flush(); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        hidden.stdout.readline()  # it is non-dumpable now
        table = read_process_table()
        assert table[plain.pid].proc_owner == me
        assert table[hidden.pid].proc_owner == 0 != me or me == 0
    finally:
        for child in (plain, hidden):
            child.kill()
            child.wait()


UID = 20000


@pytest.mark.parametrize(
    ("ppid", "owner", "state", "spared"),
    [
        (0, 0, "S", True),  # exec'd from outside, non-dumpable: the healthcheck (or a root `docker exec`)
        (0, 0, "T", True),  # the same, stopped by a job: it still runs nothing but its own code
        (0, UID, "S", False),  # exec'd from outside but dumpable (an operator's shell): a job could read it
        (0, UID, "Z", True),  # a finished `docker exec`, its parent outside reaps it
        (1, 0, "S", False),  # a job's process that made itself non-dumpable
        (1, UID, "S", False),  # a job's process
        (57, 0, "S", False),  # a child of anything: never spared
        (57, UID, "S", False),
    ],
)
def test_the_sweep_spares_only_non_dumpable_processes_exec_d_from_outside(ppid, owner, state, spared):
    info = ProcessInfo(pid=99, ppid=ppid, session=99, state=state, proc_owner=owner)
    assert spared_by_the_sweep(info, UID) is spared


def test_reaping_a_spared_process_stops_sparing_its_pid_and_says_so():
    """The fork server is spared by PID; once the sweep reaps it, that PID could be a job's next."""
    spared_child = subprocess.Popen(["true"])
    other_child = subprocess.Popen(["true"])
    for child in (spared_child, other_child):
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # finished, not reaped
    spared = {spared_child.pid, 424242}
    gone = InitSweeper._reap_ready_children(spared)
    assert gone == {spared_child.pid} and spared == {424242}
    for child in (spared_child, other_child):
        with pytest.raises(ChildProcessError):
            os.waitpid(child.pid, os.WNOHANG)  # both reaped
        child.returncode = 0  # reaped here: keep Popen from waiting for them again


def test_the_session_sweeper_never_ends_a_spared_process():
    job = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert SessionSweeper().end_leftovers(job.pid, frozenset({job.pid})) == set()
        assert job.poll() is None
    finally:
        job.kill()
        job.wait()
