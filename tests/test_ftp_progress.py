"""The progress callback's data, and the rich adapter the demo uses (no sockets)."""

from __future__ import annotations

import io

from rich.console import Console

from asyncnet.ftp import RichTransfers, TransferProgress


def test_rate_and_eta_come_from_done_total_and_time() -> None:
    state = TransferProgress("f.bin", "download", total=1000, done=100, offset=100)
    state.started -= 1000.0  # as if it had been running for 1000 s (a pause cannot skew it)
    assert state.rate == 0.0  # the resumed prefix does not count as speed
    state.done = 500
    assert 0.39 < state.rate <= 0.4
    eta = state.eta
    assert eta is not None
    assert 1249 < eta < 1290
    assert TransferProgress("x", "upload").eta is None  # no total, no ETA


def test_rich_transfers_tracks_each_transfer_to_completion() -> None:
    out = io.StringIO()
    with RichTransfers(console=Console(file=out, force_terminal=False, width=100)) as bars:
        down = TransferProgress("big.bin", "download", total=300)
        up = TransferProgress("copy.bin", "upload", total=None)
        for step in (0, 100, 300):
            down.done = step
            bars.callback(down)
            up.done = step
            bars.callback(up)
        tasks = {task.description: task for task in bars.progress.tasks}
        assert tasks["<- big.bin"].completed == 300
        assert tasks["<- big.bin"].total == 300
        assert tasks["-> copy.bin"].completed == 300
        down.finished = up.finished = True
        bars.callback(down)
        bars.callback(up)
    assert "big.bin" in out.getvalue()
