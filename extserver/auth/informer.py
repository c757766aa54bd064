"""List+watch of one collection on the main apiserver, kept in a local store (client-go's
reflector + informer, reduced to what the ConfigMap watcher and the NamespaceLifecycle
admission plugin need).

List (paged) -> watch from the list's resourceVersion with bookmarks; a watch that ends
is resumed from the last seen resourceVersion; ``410 Gone`` (as an HTTP status or an
``ERROR`` event) forces a relist; any other failure waits a bounded, jittered exponential
backoff (0.8 s doubling to 30 s, as the reflector's) and resumes."""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable

from .kubeclient import ApiError, KubeClient

log = logging.getLogger("extserver.auth")

Transform = Callable[[dict], Any]


def _key(obj: dict) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace") or ""
    return f"{ns}/{md.get('name', '')}" if ns else str(md.get("name", ""))


class Informer:
    """Mirror of ``path`` (a collection URL such as ``/api/v1/namespaces``) filtered by
    ``field_selector``. ``store`` maps ``<ns>/<name>`` (or ``<name>``) to ``transform(obj)``;
    ``on_change`` runs after every list and every event (synchronously, on the loop)."""

    MIN_BACKOFF = 0.8
    MAX_BACKOFF = 30.0
    PAGE_SIZE = 500
    MAX_PAGES = 10_000
    #: the server ends each watch after a random time in [min, 2*min) (kube: 5 minutes)
    MIN_WATCH_TIMEOUT = 300

    def __init__(self, client: KubeClient, path: str, *, name: str, field_selector: str = "",
                 transform: Transform = lambda o: o, on_change: Callable[[], None] | None = None):
        self.client = client
        self.path = path
        self.name = name
        self.field_selector = field_selector
        self.transform = transform
        self.on_change = on_change
        self.store: dict[str, Any] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.last_error = ""
        self.lists = 0  # how many full lists were made (relists included)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def wait_synced(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _params(self) -> dict[str, str]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a consumer bug must not stop the watch
                log.exception("%s: change handler failed", self.name)

    async def _list(self) -> None:
        items: dict[str, Any] = {}
        cont, rv = "", ""
        for _ in range(self.MAX_PAGES):
            params = {**self._params(), "limit": str(self.PAGE_SIZE)}
            if cont:
                params["continue"] = cont
            page = await self.client.request("GET", self.path, params=params, timeout=30.0)
            for obj in page.get("items") or []:
                items[_key(obj)] = self.transform(obj)
            md = page.get("metadata") or {}
            rv = str(md.get("resourceVersion") or "")
            cont = str(md.get("continue") or "")
            if not cont:
                break
        self.store = items
        self.resource_version = rv
        self.lists += 1
        self.synced.set()
        self._changed()

    async def _watch(self) -> int:
        """One watch call; returns the number of events when the server ends it normally.
        Raises ApiError."""
        timeout = random.randint(self.MIN_WATCH_TIMEOUT, 2 * self.MIN_WATCH_TIMEOUT - 1)
        params = {**self._params(), "resourceVersion": self.resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout)}
        events = 0
        async for ev in self.client.watch(self.path, params, read_timeout=timeout + 30.0):
            typ, obj = ev.get("type"), ev.get("object") or {}
            if typ == "ERROR":
                raise ApiError(int(obj.get("code") or 0), str(obj.get("message") or "watch error"),
                               reason=str(obj.get("reason") or ""))
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if typ in ("ADDED", "MODIFIED"):
                self.store[_key(obj)] = self.transform(obj)
            elif typ == "DELETED":
                self.store.pop(_key(obj), None)
            elif typ != "BOOKMARK":
                continue
            events += 1
            if rv:
                self.resource_version = rv
            if typ != "BOOKMARK":
                self._changed()
        return events

    async def _run(self) -> None:
        backoff = self.MIN_BACKOFF
        need_list, gone_in_a_row = True, 0
        loop = asyncio.get_running_loop()
        while True:  # ends when stop() cancels the task; every await below is bounded
            try:
                if need_list:
                    await self._list()
                    need_list = False
                started = loop.time()
                events = await self._watch()
                gone_in_a_row = 0
                if events or loop.time() - started >= 1.0:
                    backoff = self.MIN_BACKOFF
                    self.last_error = ""
                    continue
                # a watch that ends at once with nothing in it: do not spin
                self.last_error = "watch closed immediately"
            except ApiError as e:
                self.last_error = str(e)
                if e.code == 410:
                    need_list = True
                    gone_in_a_row += 1
                    if gone_in_a_row == 1:  # the normal case: relist at once
                        log.info("%s: resource version too old, relisting", self.name)
                        continue
                log.warning("%s: %s (retrying in %.1fs)", self.name, e, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # malformed answers must not end the watch
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("%s: unexpected error: %s (retrying in %.1fs)", self.name, self.last_error, backoff)
                need_list = True
            await asyncio.sleep(backoff * (1 + random.random() * 0.2))
            backoff = min(backoff * 2, self.MAX_BACKOFF)
