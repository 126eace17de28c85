"""``/readyz``'s check of the artifact store: one check at a time, in a thread of its own, waited for at most
``readyz_store_timeout_s`` (a store that hangs makes the API unready, never a stuck probe)."""

from __future__ import annotations

import threading

from tensorq.core.errors import StorageUnavailable
from tensorq.core.store import ArtifactStore


class StoreProbe:
    """Answers whether the store responds within a timeout."""

    def __init__(self, store: ArtifactStore, timeout_s: float) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._pending: threading.Thread | None = None

    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers in time (a check still hanging counts as no)."""
        if self._pending is not None and self._pending.is_alive():
            raise StorageUnavailable("the artifact store did not answer in time")
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.store.check()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)

        thread = threading.Thread(target=run, name="tensorq-store-probe", daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            self._pending = thread
            raise StorageUnavailable("the artifact store did not answer in time")
        if failure:
            raise failure[0]
