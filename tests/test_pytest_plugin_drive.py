"""The pytest plugin's asyncnet_drive fixture and the test kit's re-exports."""

from __future__ import annotations

import pytest

from asyncnet import LineHandler
from asyncnet.pytest_plugin import DriveFactory
from asyncnet.testing import FakeClock, FakeTimer, FakeTransport, drive


class Upper(LineHandler):
    finished: list[str] = []

    def handle_line(self, line: str) -> str:
        return line.upper()

    def finish(self) -> None:
        self.finished.append("done")


async def test_drive_fixture_runs_a_handler_without_sockets(asyncnet_drive: DriveFactory) -> None:
    conn = asyncnet_drive(Upper)
    conn.feed(b"abc\nxyz\n")
    assert await conn.replies() == ["ABC", "XYZ"]
    assert isinstance(conn.transport, FakeTransport)


async def test_drive_fixture_takes_a_fake_clock(asyncnet_drive: DriveFactory) -> None:
    """The fixture passes drive()'s clock on: an idle timeout passes at advance()."""
    clock = FakeClock()
    conn = asyncnet_drive(Upper, clock=clock, idle_timeout=30)
    assert conn.server.clock is clock
    clock.advance(31 + 2 * conn.server.deadlines.resolution)
    await conn.wait_closed()
    assert conn.server.stats.connections_timed_out == 1


def test_teardown_ends_open_connections(pytester: pytest.Pytester) -> None:
    """A connection left open by the test is ended at teardown: its finish() has run."""
    pytester.makepyfile(
        """
        import pytest
        from asyncnet import LineHandler

        FINISHED = []

        class Echo(LineHandler):
            def handle_line(self, line):
                return line

            def finish(self):
                FINISHED.append(True)

        @pytest.mark.asyncio
        async def test_left_open(asyncnet_drive):
            conn = asyncnet_drive(Echo)
            conn.feed(b"hi\\n")
            assert await conn.replies() == ["hi"]

        def test_after():
            assert FINISHED == [True]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)


def test_testing_reexports_the_memory_kit() -> None:
    from asyncnet import _memory as memory

    assert drive is memory.drive
    assert FakeTransport is memory.FakeTransport
    assert FakeClock is memory.FakeClock
    assert FakeTimer is memory.FakeTimer
