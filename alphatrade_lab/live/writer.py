"""The engine's store writer: batches go to the lab store from a thread of their own.

The bar loop never waits for the database: it hands each batch (rows and the engine's
state, built in the loop's thread) to the writer and goes on. At most one batch waits
behind the one being written; a loop that outpaces the database waits for it there
(back-pressure), so memory stays bounded. A write that fails is kept and raised by the
next :meth:`StoreWriter.submit` or by :meth:`StoreWriter.close`: a run does not trade on
without recording what it does.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pandas as pd

__all__ = ["StoreWriter", "columns_frame"]

_DONE = object()
_TIMES = ("timestamp", "bar_time")


def columns_frame(cols: dict[str, list]) -> pd.DataFrame:
    """A frame of column lists; time columns the engine kept as nanoseconds (ints, on its
    hot path) become UTC timestamps."""
    frame = pd.DataFrame(cols)
    for c in _TIMES:
        if c in frame and len(frame) and pd.api.types.is_integer_dtype(frame[c]):
            frame[c] = pd.to_datetime(frame[c], unit="ns", utc=True)
    return frame


class StoreWriter:
    """Write :meth:`LabStore.record_live` batches of one run in a background thread."""

    def __init__(self, store: Any, run_id: str):
        self.store, self.run_id = store, run_id
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.batches = 0
        self._thread = threading.Thread(target=self._loop, name=f"store-writer-{run_id}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                self._queue.task_done()
                return
            if self.error is not None:
                self._queue.task_done()
                continue  # after a failure nothing more is written: the state would skip it
            rows, state, last = item
            try:
                frames = {k: columns_frame(v) for k, v in rows.items() if v}
                self.store.record_live(self.run_id, orders=frames.get("orders"),
                                       fills=frames.get("fills"), equity=frames.get("equity"),
                                       positions=frames.get("positions"),
                                       signals=frames.get("signals"),
                                       events=frames.get("events"), state=state,
                                       last_bar_time=last)
                self.batches += 1
            except BaseException as exc:  # kept for the engine's thread to raise
                self.error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, rows: dict[str, dict[str, list]], state: dict[str, Any],
               last: pd.Timestamp, *, wait: bool = False) -> None:
        """Queue a batch (blocks while one batch already waits); ``wait``: return only once
        it is written."""
        self._raise()
        self._queue.put((rows, state, last))
        if wait:
            self.wait()

    def wait(self) -> None:
        """Block until every queued batch is written; raise a failed write's error."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Write what is queued, stop the thread, raise a failed write's error."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()
