"""A real local EVM node for block-trigger tests: anvil from npm's @foundry-rs/anvil
(`npm ci` at the repository root puts it in node_modules/.bin/anvil; DESIGN.md §9).

    anvil           session   Anvil (chain id 31337) on 127.0.0.1:<free port>, mining only on demand
    anvil_chain     function  settings.CHAINS = [that chain], confirmations = CONFIRMATIONS
    own_anvil       function  a private Anvil (chain id 31338) a test may stop and start;
                              the test lists it in settings.CHAINS itself (chain_config)

Test files import the fixtures they use: `from tests.anvil import anvil, anvil_chain  # noqa: F401`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ANVIL_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
CHAIN_ID = 31337  # anvil's default
OWN_CHAIN_ID = 31338
CONFIRMATIONS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Anvil:
    """One anvil process (its own session, killed with its group: the npm launcher is a
    node wrapper that spawns the real binary)."""

    def __init__(self, log_path: Path, *, chain_id: int = CHAIN_ID, port: int | None = None):
        self.chain_id = chain_id
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Anvil:
        if not ANVIL_BIN.exists():
            raise RuntimeError(f"{ANVIL_BIN} is missing: run `npm ci` at the repository root")
        log = open(self.log_path, "ab")  # handed to the child, closed here once it has it
        # No automatic mining: blocks appear only when a test mines them.
        self.process = subprocess.Popen(
            [str(ANVIL_BIN), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(self.chain_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.block_number()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start:\n{self.log_path.read_text(errors='replace')}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None

    def rpc(self, method: str, params: list | None = None):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> int:
        """Mine `blocks` blocks at once (anvil_mine); returns the new head."""
        self.rpc("anvil_mine", [hex(blocks)])
        return self.block_number()

    def mine_to(self, number: int) -> int:
        head = self.block_number()
        return self.mine(number - head) if number > head else head

    def block(self, number: int) -> dict:
        return self.rpc("eth_getBlockByNumber", [hex(number), False])


@pytest.fixture(scope="session")
def anvil(tmp_path_factory):
    node = Anvil(tmp_path_factory.mktemp("anvil") / "anvil.log").start()
    try:
        yield node
    finally:
        node.stop()


def chain_config(node: Anvil, *, confirmations: int = CONFIRMATIONS) -> dict:
    return {
        "chain_id": node.chain_id,
        "name": f"anvil-{node.chain_id}",
        "rpc_url": node.url,
        "confirmations": confirmations,
    }


@pytest.fixture
def anvil_chain(anvil, settings) -> dict:
    anvil.mine_to(CONFIRMATIONS + 1)  # a confirmed block exists, whatever test runs first
    config = chain_config(anvil)
    settings.CHAINS = [config]
    return config


@pytest.fixture
def own_anvil(tmp_path):
    node = Anvil(tmp_path / "own-anvil.log", chain_id=OWN_CHAIN_ID).start()
    try:
        yield node
    finally:
        node.stop()
