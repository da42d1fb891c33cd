"""moto's SQS server as a real HTTP endpoint in its own process.

``MotoServer().start()`` runs this file as a script in a child process (its own session,
so teardown can kill its whole process group). The child starts moto's
``ThreadedMotoServer`` on 127.0.0.1 with port 0, prints the port the kernel chose (no
free-port race), and serves until its stdin closes: if the test process dies, so does
moto.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_READY_PREFIX = "MOTO_PORT "


class MotoServer:
    def __init__(self, log_path: Path | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port: int | None = None
        self.log_path = log_path
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        assert self.port is not None, "call start() first"
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> MotoServer:
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        self._process = subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__).resolve()), self.host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        # The child prints its port first; don't block forever if it hangs before that.
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith(_READY_PREFIX):
            self.stop()
            raise RuntimeError(f"moto server did not start: {line!r}")
        self.port = int(line[len(_READY_PREFIX) :])
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2).read()
                return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto server did not answer in time") from None
                time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()  # the child exits when its stdin closes
            process.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        if process.stdout:
            process.stdout.close()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _serve(host: str) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    sys.stdout.write(f"{_READY_PREFIX}{port}\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # until the parent closes the pipe or dies
    finally:
        os._exit(0)  # werkzeug threads may hold requests open; no need to be polite


if __name__ == "__main__":
    _serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1")
