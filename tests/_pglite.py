"""PostgreSQL 17 + TimescaleDB 2.23 compiled to WebAssembly (PGlite), served over the wire
by ``tests/pglite/server.mjs`` on a free port, for the tests of the TimescaleDB path.

Start-up waits for the server's "ready" line; a server that exits (PGlite aborts with
"RuntimeError: unreachable" on what it cannot take) closes the connection, so the test
fails at once with the server's own output rather than hanging.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from ioc.servers import ServerError, free_port
from store import StoreConfig

HERE = Path(__file__).resolve().parent / "pglite"


class PgliteServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def store(self) -> StoreConfig:
        """What the production settings would say for such an engine: no statement cache
        (prepared statements outlive connections there), no COPY, one connection."""
        return StoreConfig(
            url=f"postgresql://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable",
            statement_cache_size=0,
            use_copy=False,
            min_size=1,
            max_size=1,
            close_grace=0.5,  # PGlite never answers a connection's goodbye
            search_path="public",
        )

    def start(self, timeout: float = 60.0) -> None:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules").is_dir():
            raise ServerError("PGlite needs node and `npm ci` in tests/pglite (.ci/run does it)")
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [node, str(HERE / "server.mjs"), str(self.port)],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        ready: list[bytes] = []
        stdout = self._process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].startswith(b"ready"):
            self.stop()
            raise ServerError(f"PGlite did not start: {self.output()}")

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no output)"

    @property
    def crashed(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
