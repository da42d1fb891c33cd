"""`manage.py platform` — the README's first command — as a newcomer runs it: a real
process tree (moto, two workers, beat, web) on the embedded defaults (SQLite in a fresh
CONVEYOR_VAR_DIR), the example run ending `success`, the admin answering with the printed
credentials, and Ctrl-C (SIGINT) stopping everything with exit 0 and nothing left behind.

Every process the platform starts inherits CONVEYOR_VAR_DIR=<the test's own directory>,
so "nothing left behind" is checked by looking for that value in every process's
environment, whatever became of its parent.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 75.0
STOP_TIMEOUT_S = 60.0
# Variables tests/testenv.py sets for the suite: the platform must run on its own defaults.
_SUITE_ONLY = (
    "DATABASE_URL",
    "DJANGO_SECRET_KEY",
    "CONVEYOR_MESSAGE_SIGNING_KEY",
    "CONVEYOR_SECRETS_ENCRYPTION_KEYS",
    "CONVEYOR_TEST_DATABASE_NAME",
    "CONVEYOR_ADMIN_PASSWORD",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _marked_pids(marker: str) -> list[int]:
    """Living processes whose environment holds *marker* (NAME=value)."""
    needle = marker.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read() + b"\0"
        except OSError:
            continue
        if b"\0" + needle in b"\0" + environ:
            found.append(int(entry))
    return found


def _wait(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Platform:
    def __init__(self, var_dir: Path, *args: str):
        self.var_dir = var_dir
        self.web_port, self.sqs_port = _free_port(), _free_port()
        while self.sqs_port == self.web_port:
            self.sqs_port = _free_port()
        self.marker = f"CONVEYOR_VAR_DIR={var_dir}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in _SUITE_ONLY}
        env.update({"CONVEYOR_EMBEDDED": "1", "CONVEYOR_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
        self.output_path = var_dir / "platform-output.txt"
        self._output = open(self.output_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", "platform", "--port", str(self.web_port), "--sqs-port", str(self.sqs_port)]
            + list(args),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def logs(self) -> str:
        parts = [f"--- platform output ---\n{self.output()}"]
        for log in sorted((self.var_dir / "logs").glob("*.log")):
            parts.append(f"--- {log.name} (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(parts)

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match:
        found: list[re.Match] = []

        def seen() -> bool:
            match = re.search(pattern, self.output(), re.M)
            if match:
                found.append(match)
            return bool(match) or self.popen.poll() is not None

        assert _wait(seen, timeout), f"{pattern!r} not printed within {timeout} s\n{self.logs()}"
        assert found, f"the platform exited ({self.popen.returncode}) before printing {pattern!r}\n{self.logs()}"
        return found[0]

    def cleanup(self) -> None:
        """Whatever happened, leave nothing running."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        for pid in _marked_pids(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._output.close()


@pytest.fixture
def platform_factory(tmp_path):
    started: list[Platform] = []

    def start(*args: str) -> Platform:
        platform = Platform(tmp_path / f"var{len(started)}", *args)
        started.append(platform)
        return platform

    for path in ("var0", "var1"):
        (tmp_path / path).mkdir()
    yield start
    for platform in started:
        platform.cleanup()


def _admin_login(base_url: str, username: str, password: str) -> str:
    """Log in to the admin with a real form post; return the path it redirects to."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(
        f"{base_url}/admin/login/", data=data, headers={"Referer": f"{base_url}/admin/login/"}
    )
    response = opener.open(request, timeout=10)
    runs = opener.open(f"{base_url}/admin/executions/execution/", timeout=10).read().decode()
    assert "cv-badge-success" in runs, "the runs list shows no success badge"
    return urllib.parse.urlparse(response.geturl()).path


@pytest.mark.e2e
def test_platform_runs_the_example_serves_the_admin_and_stops_cleanly_on_ctrl_c(platform_factory):
    platform = platform_factory()

    ended = platform.wait_for_output(r"example run ([0-9a-f-]{36}) ended: (\w+)", START_TIMEOUT_S)
    run_id, status = ended.group(1), ended.group(2)
    assert status == "success", platform.logs()
    login = platform.wait_for_output(r"Admin login: (\S+)  username: (\S+)  password: (\S+)", 10)
    assert login.group(1) == f"{platform.base_url}/admin/"
    assert _admin_login(platform.base_url, login.group(2), login.group(3)) == "/admin/"

    # The run as the database has it (SQLite in the platform's own var dir).
    db = sqlite3.connect(platform.var_dir / "conveyor.sqlite3")
    try:
        row = db.execute(
            "SELECT status, error_type, trigger_type FROM executions_execution WHERE id = ?",
            (run_id.replace("-", ""),),
        ).fetchone()
        moves = db.execute(
            "SELECT from_status, to_status FROM executions_transition t JOIN executions_execution e "
            "ON t.execution_id = e.id WHERE e.id = ? ORDER BY t.at, t.id",
            (run_id.replace("-", ""),),
        ).fetchall()
    finally:
        db.close()
    assert row == ("success", "", "manual")
    assert moves == [("", "pending"), ("pending", "running"), ("running", "success")]

    running = _marked_pids(platform.marker)
    # supervisor, moto, 2 workers and their 3 pool processes, beat, web
    assert len(running) >= 9, platform.logs()
    assert (platform.var_dir / "platform.pid").read_text().strip() == str(platform.popen.pid)

    platform.popen.send_signal(signal.SIGINT)
    try:
        code = platform.popen.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the platform did not stop within {STOP_TIMEOUT_S} s of SIGINT\n{platform.logs()}")
    assert code == 0, platform.logs()
    assert "Conveyor stopped cleanly." in platform.output()
    assert _wait(lambda: not _marked_pids(platform.marker), 5), f"left behind: {_marked_pids(platform.marker)}"
    assert not _listening(platform.web_port) and not _listening(platform.sqs_port)
    assert not (platform.var_dir / "platform.pid").exists()
    for name in ("moto", "worker-runs", "worker-maintenance", "beat", "web"):
        assert (platform.var_dir / "logs" / f"{name}.log").stat().st_size > 0, name


def _pids_of(platform: Platform, word: bytes) -> list[int]:
    found = []
    for pid in _marked_pids(platform.marker):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if word in cmdline:
            found.append(pid)
    return found


@pytest.mark.e2e
def test_a_child_that_dies_is_restarted_with_a_back_off_and_the_platform_keeps_running(platform_factory):
    platform = platform_factory("--no-example")
    platform.wait_for_output(r"^Conveyor is running", START_TIMEOUT_S)

    for attempt, delay in ((1, 1), (2, 2)):
        (beat,) = _pids_of(platform, b" beat ")
        os.kill(beat, signal.SIGKILL)
        platform.wait_for_output(
            rf"beat exited unexpectedly \(killed by SIGKILL\); "
            rf"restarting it in {delay} s \(restart {attempt} in a row\)",
            30,
        )
        assert _wait(lambda beat=beat: (pids := _pids_of(platform, b" beat ")) and beat not in pids, 30), (
            platform.logs()
        )
        assert platform.popen.poll() is None, platform.logs()
    # The line is printed just after the new beat starts: the pid can be seen first.
    assert _wait(lambda: platform.output().count("[platform] restarted beat") == 2, 10), platform.output()
    assert len(_pids_of(platform, b" worker ")) >= 2  # the workers were left alone

    platform.popen.send_signal(signal.SIGINT)
    assert platform.popen.wait(timeout=STOP_TIMEOUT_S) == 0, platform.logs()
    assert _wait(lambda: not _marked_pids(platform.marker), 5), f"left behind: {_marked_pids(platform.marker)}"


def test_a_port_in_use_is_refused_before_anything_starts():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"127.0.0.1:{port} .*already in use"):
            call_command("platform", "--port", str(port), "--sqs-port", str(_free_port()), stdout=StringIO())


def test_the_readme_documents_every_setting_and_both_commands():
    """The README's settings table names every CONVEYOR_* variable config/settings.py reads,
    and its two commands are Makefile targets."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    settings_source = (PROJECT_ROOT / "config" / "settings.py").read_text()
    variables = set(
        re.findall(r'env_\w+\(\s*"((?:CONVEYOR|DJANGO|AWS|CELERY)_[A-Z0-9_]+|DATABASE_URL)"', settings_source)
    )
    assert "CONVEYOR_VAR_DIR" in variables
    missing = sorted(name for name in variables if f"| `{name}` |" not in readme)
    assert not missing, f"README.md's settings table lacks {missing}"
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for target in ("up", "test", "lint", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert f"make {target}" in readme, target
