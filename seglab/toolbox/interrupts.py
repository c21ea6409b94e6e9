"""Stopping a training run cleanly: SIGTERM and Ctrl-C end it the same way, never half-way through writing files."""
from __future__ import annotations

import contextlib
import signal


class CleanStop:
    """Within the block, SIGTERM and Ctrl-C stop training the same clean way (KeyboardInterrupt); inside ``hold()``
    the interrupt waits until the epoch's files are all written, so last.pt and history.csv always agree.

    The signal is also remembered: Python drops an exception raised where it cannot propagate (a fork hook while a
    DataLoader starts its workers, a ``__del__``), so ``hold()`` raises it again when the epoch's files are saved."""

    def __enter__(self) -> CleanStop:
        self.holding = self.pending = False
        try:
            self.previous = {sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread (e.g. some notebook runners): leave signals alone
            self.previous = {}
        return self

    def _interrupt(self, signum, frame) -> None:
        self.pending = True
        if not self.holding:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def hold(self):
        """Delay a stop until the block (writing an epoch's files) is done."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
        return False
