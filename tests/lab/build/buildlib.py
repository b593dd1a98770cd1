# SPDX-License-Identifier: GPL-3.0-or-later
"""Plumbing of the lab bundle build (build.py): steps, bounded commands, keys, archives.

Every external command goes through run(): an argument list, a timeout (the whole process
group is killed when it runs out), its output in the log of the current step. A failure
raises BuildError naming the command and the log to read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Timeouts (seconds) of the external commands, by kind.
T_QUICK = 120  # --version answers, docker inspect, readelf, sha256sum of one file
T_MODULE = 1800  # go mod download / tidy (may fetch hundreds of MB from the proxy)
T_GO_BUILD = 3600  # one go build (k8s cold: ~12 min on 2 busy cores)
T_DEBIAN = 1800  # apt-get download, mmdebstrap
T_DOCKER = 900  # docker build / save / load of one image
T_SUMS = 600  # sha256sum -c of the whole bundle


class BuildError(Exception):
    """A step failed; the message says what (the step runner adds which step and its log)."""


def say(message: str, *, err: bool = False) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr if err else sys.stdout, flush=True)


@dataclass
class Log:
    """The log file of the running step; commands append their output to it."""

    path: Path
    handle: object = None

    def write(self, text: str) -> None:
        self.handle.write(text if text.endswith("\n") else text + "\n")
        self.handle.flush()


@dataclass
class Outcome:
    result: str = "done"  # done | built | cached | passed
    note: str = ""


@dataclass
class Steps:
    """Runs named steps: one log each, one timed line each, timings.tsv, --until."""

    logs: Path
    timings: Path
    run_id: str
    version: str
    until: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)

    def run(self, name: str, fn: Callable[[], Outcome]) -> Outcome:
        path = self.logs / f"{name}.log"
        start = time.monotonic()
        global _LOG  # noqa: PLW0603 - the one "current step" of this single-threaded build
        with path.open("w", encoding="utf-8") as handle:
            _LOG = Log(path, handle)
            try:
                outcome = fn()
            except BuildError as exc:
                _LOG.write(f"FAILED: {exc}")
                raise StepFailed(name, path, str(exc)) from exc
            except (OSError, ValueError, KeyError) as exc:
                _LOG.write(f"FAILED: {type(exc).__name__}: {exc}")
                raise StepFailed(name, path, f"{type(exc).__name__}: {exc}") from exc
            finally:
                _LOG = None
        took = time.monotonic() - start
        self.seconds[name] = round(took, 1)
        if outcome.result == "built":
            self.built.append(name)
        say(f"{name:<16} {outcome.result:<7} {round(took):>5}s  {outcome.note}")
        with self.timings.open("a", encoding="utf-8") as tsv:
            tsv.write(f"{self.run_id}\t{self.version}\t{name}\t{outcome.result}\t{round(took)}\n")
        if self.until == name:
            raise StopAfter(name)
        return outcome


class StepFailed(Exception):
    def __init__(self, step: str, log: Path, message: str) -> None:
        super().__init__(message)
        self.step, self.log, self.message = step, log, message

    def report(self) -> None:
        say(f"FAILED: step '{self.step}': {self.message}", err=True)
        say(f"last lines of {self.log}:", err=True)
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        print("\n".join(f"    {line}" for line in lines), file=sys.stderr, flush=True)


class StopAfter(Exception):  # not an error: --until reached
    pass


_LOG: Log | None = None  # the log of the running step (Steps.run sets it)


def log() -> Log:
    if _LOG is None:
        raise BuildError("internal: a command ran outside a step")
    return _LOG


def run(
    argv: Sequence[str | os.PathLike],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    capture: bool = False,
    check: bool = True,
    merge: bool = True,
    quiet: bool = False,
    what: str = "",
) -> str:
    """Run argv (no shell), output into the step's log; return its output when `capture`
    (stdout and stderr, or with merge=False stdout only: stderr goes to the log; with quiet
    the captured output is not logged).

    Raises BuildError on a non-zero exit (with `check`) and on the timeout."""
    args = [str(a) for a in argv]
    step_log = log()
    step_log.write(f"$ {shlex.join(args)}" + (f"   (in {cwd})" if cwd else ""))
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else step_log.handle,
        stderr=subprocess.STDOUT if merge or not capture else step_log.handle,
        text=True,
        start_new_session=True,
    )
    try:
        out = proc.communicate(stdin, timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BuildError(f"{what or args[0]}: `{short(args)}` did not finish within {timeout:.0f} s") from None
    out = out or ""
    if capture and out and not quiet:
        step_log.write(out)
    if check and proc.returncode != 0:
        raise BuildError(f"{what or args[0]}: `{short(args)}` failed with exit {proc.returncode}")
    return out


def short(args: Sequence[str], limit: int = 160) -> str:
    text = shlex.join(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect(what: str, pattern: str, argv: Sequence[str | os.PathLike], **kwargs) -> str:
    """argv's output (stdout + stderr, exit status ignored) must match the regex `pattern`."""
    out = run(argv, capture=True, check=False, timeout=kwargs.pop("timeout", T_QUICK), **kwargs)
    match = re.search(pattern, out, re.M)
    if not match:
        raise BuildError(f"{what}: the output of `{short([str(a) for a in argv])}` does not match /{pattern}/")
    log().write(f"ok  {what}: {out[match.start() :].splitlines()[0] if out[match.start() :] else ''}")
    return out


def key(*parts: object) -> str:
    """A content key: sha256 of the JSON of the parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha(root: Path) -> str:
    """sha256 over the relative names and contents of every file below root."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(f"{path.relative_to(root)}\0{sha256(path)}\0".encode())
    return h.hexdigest()


def read_key(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def is_static(path: Path) -> bool:
    out = run(["readelf", "-l", path], capture=True, quiet=True, timeout=T_QUICK)
    return "program interpreter" not in out


def require_static(paths: Sequence[Path]) -> None:
    for path in paths:
        if not is_static(path):
            raise BuildError(f"{path.name} is not statically linked (readelf -l shows a program interpreter)")


def promote(new: Path, final: Path) -> None:
    """Replace the directory `final` by `new`."""
    shutil.rmtree(final, ignore_errors=True)
    new.rename(final)


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def det_tgz(out: Path, base: Path, members: Sequence[str]) -> None:
    """A reproducible .tgz: sorted, root-owned, mtime 0, gzip without name/time (GNU tar + gzip -n)."""
    tar = out.with_name(out.name + ".tar")
    reproducible = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"]
    run(["tar", *reproducible, "-C", base, "-cf", tar, *members], timeout=T_DOCKER)
    run(["gzip", "-n", "-9", "-f", tar], timeout=T_DOCKER)
    Path(f"{tar}.gz").rename(out)


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(f"another build holds {path}") from None
        yield
