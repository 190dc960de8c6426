"""The rules in force, reloadable without a restart: on SIGHUP, or when the file changes.

A reload that fails keeps the previous rules and logs every problem; ``last_error`` holds
them for whoever asks (the console, a test). Listeners hear about rules that took effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from protocol import Province

from ._rules import Rules, RulesError
from ._rules_file import load_rules

logger = logging.getLogger(__name__)
Listener = Callable[[Rules], None]


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class RuleBook:
    """Holds the current :class:`Rules`; loading the first time raises, reloads never do."""

    def __init__(
        self, path: str | Path, province: Province, environ: Mapping[str, str] | None = None
    ) -> None:
        self.path = Path(path)
        self.province = province
        self._environ = environ
        self._fingerprint = _fingerprint(self.path)
        self.rules = load_rules(self.path, province, environ)
        self.loads = 1
        """Rules that took effect, counting the first."""
        self.attempts = 1
        self.last_error: RulesError | None = None
        self._listeners: list[Listener] = []
        self._attempted = asyncio.Event()

    @classmethod
    def fixed(cls, rules: Rules) -> RuleBook:
        """A book that never reloads (tests, one-off commands)."""
        book = cls.__new__(cls)
        book.path = Path(rules.source)
        book._environ = None
        book._fingerprint = None
        book.rules = rules
        book.loads = book.attempts = 1
        book.last_error = None
        book._listeners = []
        book._attempted = asyncio.Event()
        return book

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def reload(self) -> bool:
        """Read the file again; True if the new rules took effect."""
        self._fingerprint = _fingerprint(self.path)
        self.attempts += 1
        try:
            rules = load_rules(self.path, self.province, self._environ)
        except RulesError as exc:
            self.last_error = exc
            # The problems are the message; a traceback would only hide them.
            logger.error("rules not reloaded, the previous rules stay in force: %s", exc)  # noqa: TRY400
            ok = False
        else:
            self.rules = rules
            self.loads += 1
            self.last_error = None
            logger.info("rules reloaded from %s", self.path)
            for listener in list(self._listeners):
                listener(rules)
            ok = True
        self._attempted.set()
        self._attempted = asyncio.Event()
        return ok

    def reload_if_changed(self) -> bool | None:
        """Reload when the file's mtime, size or inode changed; None when it did not."""
        if _fingerprint(self.path) == self._fingerprint:
            return None
        return self.reload()

    async def wait_for_attempt(self, attempts: int) -> None:
        """Return once ``attempts`` loads (good or bad) have been tried."""
        while self.attempts < attempts:
            await self._attempted.wait()

    def install_sighup(self) -> Callable[[], None]:
        """Reload on SIGHUP (the running loop's handler); returns the uninstaller."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        logger.info("rules reload on SIGHUP (kill -HUP %d)", os.getpid())

        def uninstall() -> None:
            loop.remove_signal_handler(signal.SIGHUP)

        return uninstall

    def _on_sighup(self) -> None:
        self.reload()
