"""Each submission's code in a sandbox that nothing escapes, without Docker (issue 33). Not for students.

``genimg grade`` runs a student's code in two places: the notebook's kernel (``grader.run_worker`` starts it) and
the answers process (``answers.Server``). Where the machine allows it, both run inside bubblewrap (``bwrap``, the
Debian package ``bubblewrap``, what Flatpak uses; it needs unprivileged user namespaces or root):

* no network (a network namespace of its own: only a loopback);
* the whole file system read-only, with ``/tmp`` and the home folder replaced by small empty ones, so that the
  course, the Python environment and the rest of the machine cannot be written, and another student's
  submission, the gradebook (``--out``) and the grader's own folders cannot even be seen (they are hidden under
  empty folders: the submissions' and the output folders, wherever they are); only the submission's own work
  folder (its copy of the notebook) is writable;
* a process namespace of its own: when the sandbox's first process ends, the kernel kills everything left in it,
  so a daemon (``setsid``, double fork) cannot outlive its submission;
* ``/dev/shm`` and ``/tmp`` are memory file systems of a fixed size (a file there is memory no process owns).

Memory and processes are limited for the whole tree of processes, not per process (``RLIMIT_DATA`` misses a shared
mapping and sums nothing over children): ``Watchdog`` reads every process of the tree from ``/proc`` ten times a
second, their proportional set sizes (PSS: a shared page counts once in all) and their number, and kills the whole
tree when either passes its limit. Python has no portable way to put a process tree under a cgroup without root or
systemd, so this is polling: a tree can overshoot for up to a tenth of a second before it is killed.

Without bubblewrap (or where it cannot run: no user namespaces) the grader says so in one line and goes on with
what it had before: process groups, per-process limits and the watchdog over the tree it can still see.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ENV = "GENIMG_SANDBOX"  # "0": never sandbox (the route without one, for instructors and the tests)
TMPFS_MB = 64  # the sandbox's /tmp and /dev/shm, each
MAX_PROCESSES = 64  # per submission's tree: a notebook needs about 5 (worker, bwrap, kernel, its threads are not processes)
POLL_SECONDS = 0.1


@dataclass
class Isolation:
    """How submissions are isolated: ``kind`` "bubblewrap" or "none", and one line saying what that means."""
    kind: str
    line: str
    bwrap: str | None = None
    hide: list[Path] = field(default_factory=list)  # folders no submission may see (submissions, gradebook)

    @property
    def sandboxed(self) -> bool:
        return self.kind == "bubblewrap"


_DETECTED: dict[str, tuple[str, str]] = {}


def detect(hide: list[Path] | None = None) -> Isolation:
    """Bubblewrap if it is installed and can start a sandbox here (tried once per process), else none and why."""
    hide = [Path(p).resolve() for p in (hide or [])]
    if os.environ.get(ENV, "").strip() == "0":
        return Isolation("none", f"no sandbox ({ENV}=0): each submission's code runs with your rights; see "
                                 "INSTRUCTORS.md, 'Threat model'", None, hide)
    if "result" not in _DETECTED:
        bwrap = shutil.which("bwrap")
        if not bwrap:
            _DETECTED["result"] = ("", "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        else:
            try:
                done = subprocess.run([bwrap, *base_args(), "true"], capture_output=True, text=True, timeout=20)
                why = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["exit status "
                                                                                           f"{done.returncode}"])[-1]
            except (OSError, subprocess.SubprocessError) as err:
                why = str(err)
            _DETECTED["result"] = (bwrap, "") if not why else ("", f"bubblewrap cannot start a sandbox here ({why}: "
                                                                    "user namespaces disabled?)")
    bwrap, why = _DETECTED["result"]
    if bwrap:
        return Isolation("bubblewrap", "each submission runs in a bubblewrap sandbox: no network, the course and "
                                       "the other submissions out of reach, its own processes, memory and process "
                                       "limits for its whole tree", bwrap, hide)
    return Isolation("none", f"no sandbox: {why}. Each submission's code runs with your rights (it could write "
                             "your files or leave a process running); see INSTRUCTORS.md, 'Threat model'", None, hide)


def base_args() -> list[str]:
    """Namespaces and the read-only root every sandbox starts from."""
    return ["--unshare-all", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc", "--size", str(TMPFS_MB << 20), "--tmpfs", "/dev/shm"]


def _readable_paths() -> list[Path]:
    """What a kernel needs to read under the hidden /tmp and home: Python, the environment, the course."""
    import genimg_course

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
             Path(genimg_course.__file__).resolve().parent.parent, Path(sys.executable).resolve().parent.parent}
    paths.update(Path(p) for p in sys.path if p and Path(p).is_dir())
    return sorted({p.resolve() for p in paths})


def command(isolation: Isolation, argv: list[str], writable: list[Path], cwd: Path) -> list[str]:
    """``argv`` inside a sandbox where only ``writable`` can be written (``argv`` unchanged without one)."""
    if not isolation.sandboxed:
        return argv
    home = Path.home().resolve()
    hidden = [Path("/tmp")] + ([home] if home != Path("/") else [])
    hidden += [p for p in isolation.hide if p.is_dir() and not any(p.is_relative_to(h) for h in hidden)]
    args = [isolation.bwrap, *base_args()]
    for path in hidden:  # /tmp, the home folder, the submissions and the gradebook: empty folders instead
        args += ["--size", str(TMPFS_MB << 20), "--tmpfs", str(path)]
    shown = [p for p in _readable_paths() if any(p.is_relative_to(h) for h in hidden)]
    shown = [p for p in shown if not any(p.is_relative_to(q) and p != q for q in shown)]  # the outermost only
    for path in shown:  # back into view, read-only: Python, the environment, the course, where those hid them
        args += ["--ro-bind", str(path), str(path)]
    for path in isolation.hide:  # hidden again where a path shown again holds it (submissions inside the course)
        if path.is_dir() and any(path.is_relative_to(p) and path != p for p in shown):
            args += ["--tmpfs", str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    # JPY_PARENT_PID: ipykernel would watch its parent's pid, which in the sandbox's process namespace is 1
    # (bubblewrap's init), and take that for "the parent exited"; --die-with-parent does that job here
    return [*args, "--setenv", "HOME", str(home), "--setenv", "TMPDIR", "/tmp", "--unsetenv", "JPY_PARENT_PID",
            "--chdir", str(cwd), *argv]


# ----------------------------------------------------------------------------- the watchdog
def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])  # after "(comm)": state, ppid
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it (as this machine's /proc sees them)."""
    children, found, todo = _children_map(), [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def memory_mb(pid: int) -> float:
    """A process's proportional set size in MB (a page shared by n processes counts 1/n in each), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every process below it. Each is stopped first, and the tree read again
    until no new process appears (a signal takes effect asynchronously: a process still forking when it was read
    would otherwise leave a child to init), then all are killed."""
    seen: set[int] = set()
    for _ in range(50):
        new = set(tree(pid)) - seen
        if not new:
            break
        for p in new:
            try:
                os.kill(p, signal.SIGSTOP)
            except OSError:
                pass
        seen |= new
        time.sleep(0.005)
    for p in seen:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class Watchdog:
    """Limits for a process tree: ``check(pid)`` returns why it must be killed, or ''."""
    memory_mb: float
    max_processes: int = MAX_PROCESSES
    peak_mb: float = 0.0
    peak_processes: int = 0

    def check(self, pid: int) -> str:
        pids = tree(pid)
        self.peak_processes = max(self.peak_processes, len(pids))
        if len(pids) > self.max_processes:
            return (f"it started more than {self.max_processes} processes at once ({len(pids)}: a fork bomb?) and was "
                    "stopped")
        used = sum(memory_mb(p) for p in pids)
        self.peak_mb = max(self.peak_mb, used)
        if used > self.memory_mb:
            return (f"its processes together used more than the memory limit of {self.memory_mb:.0f} MB "
                    f"({used:.0f} MB) and were stopped")
        return ""


def wait(proc: subprocess.Popen, watchdog: Watchdog, timeout: float) -> str:
    """Wait for ``proc`` up to ``timeout`` seconds, checking its tree every POLL_SECONDS; kill the tree and return
    why when it passes a limit or the time ('' when it ended by itself)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=POLL_SECONDS)
            return ""
        except subprocess.TimeoutExpired:
            pass
        why = watchdog.check(proc.pid)
        if not why and time.monotonic() > deadline:
            why = "the grading process did not stop by itself and was killed"
        if why:
            kill_tree(proc.pid)
            return why
