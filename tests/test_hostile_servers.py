"""The servers the project starts for itself, run as root (issue 17, item 9): each runs as
its own user from a private folder, and nothing above the state folder changes (root's
home folder used to get o+x, and every other parent with it)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import asyncpg
import pytest

from ioc.servers import MosquittoBroker, PostgresCluster, ServerError, private_home
from protocol import MqttEndpoint

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="what root does (CI runs as root)")


def _modes(path: Path, top: Path) -> dict[Path, int]:
    """Modes of ``path`` and its parents up to ``top``: this test's own folders (the shared
    ones above may be changed meanwhile by another test session on the machine)."""
    return {
        folder: folder.stat().st_mode
        for folder in [path, *path.parents]
        if folder.is_relative_to(top)
    }


@pytest.mark.postgres
@pytest.mark.mosquitto
async def test_as_root_servers_run_from_a_private_home_and_change_no_parent(
    tmp_path: Path,
) -> None:
    closed = tmp_path / "home-of-root"  # like /root: 0700, no way through for others
    closed.mkdir(mode=0o700)
    state = closed / "state"
    state.mkdir()
    before = _modes(state, tmp_path)
    cluster = PostgresCluster(state / "postgres", durable=False)
    broker = MosquittoBroker(state / "mosquitto")
    try:
        cluster.start()
        broker.start()
        conn = await asyncpg.connect(cluster.url)
        try:
            assert await conn.fetchval("SELECT current_setting('data_directory')") == str(
                cluster.data
            )
        finally:
            await conn.close()
        async with MqttEndpoint.from_url(broker.url).client("root-check") as client:
            await client.publish("root/check", b"reached", qos=1)
        assert _modes(state, tmp_path) == before
        for server, user in ((cluster, "postgres"), (broker, "mosquitto")):
            home = server.home.lstat()
            assert server.home.parent == Path("/var/tmp")  # noqa: S108
            assert home.st_uid == pwd.getpwnam(user).pw_uid
            assert stat.S_IMODE(home.st_mode) == 0o700
        assert stat.S_IMODE((state / "postgres" / "password").stat().st_mode) == 0o600
    finally:
        cluster.discard()
        broker.discard()
    assert not cluster.home.exists()
    assert not broker.home.exists()
    assert _modes(state, tmp_path) == before


def test_a_private_home_planted_by_someone_else_is_refused(tmp_path: Path) -> None:
    """The shared base is everyone's: a folder there not the user's own and 0700 is not used."""
    user = pwd.getpwnam("postgres")
    base = tmp_path / "shared"
    base.mkdir()
    for state in ("state", "other"):
        (tmp_path / state).mkdir()
    home = private_home(tmp_path / "state", user, base)
    os.chmod(home, 0o750)  # noqa: S103 - the lax folder this test needs
    with pytest.raises(ServerError, match="refusing to use it"):
        private_home(tmp_path / "state", user, base)
    os.chmod(home, 0o700)
    assert private_home(tmp_path / "state", user, base) == home
    # Once its state folder is gone, the next start anywhere removes it.
    private_home(tmp_path / "other", user, base)
    assert home.exists()
    (tmp_path / "state").rmdir()
    private_home(tmp_path / "other", user, base)
    assert not home.exists()
