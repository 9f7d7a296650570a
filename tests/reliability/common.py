"""What the campaigns share: the installed console script, real processes, and the table."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def console_script() -> Path:
    path = Path(sys.executable).parent / "vcp-migrate"
    if not path.exists():
        raise SystemExit(f"vcp-migrate is not installed beside {sys.executable}: pip install -e .")
    return path


def unprivileged(command: list[str]) -> list[str]:
    """Root ignores file permissions; drop that power so permissions mean what they say."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SystemExit("running as root without setpriv: file permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *command]


def vcp(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion."""
    return subprocess.run(
        [str(console_script()), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or clean_env()
    )


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start the console script."""
    return subprocess.Popen(
        [str(console_script()), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VCP_MIGRATE_") and k != "NO_COLOR"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def tree(root: Path) -> dict[str, str]:
    """Every file below ``root`` with its sha256: 'nothing changed on disk' compares two of these."""
    return {
        str(path.relative_to(root)): sha256(path) if path.is_file() and not path.is_symlink() else "other"
        for path in sorted(root.rglob("*"))
    }


@dataclass
class Figures:
    """One campaign's counts, in the order they are printed; ``failures`` must all be 0."""

    campaign: str
    counts: dict[str, float | int | str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.failures.values())


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.monotonic() - self.started
