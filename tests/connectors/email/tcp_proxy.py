"""A TCP proxy between the code under test and Postgres, whose plug the test can pull.

`cut()` closes every open connection and refuses new ones, which is what a crashed or
unreachable database looks like from the client's side; `restore()` lets traffic
through again. Runs on its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo

START_TIMEOUT = 10.0  # seconds
CHUNK = 65536  # bytes per read


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        """`target_host` may be a directory: Postgres's Unix socket lives there."""
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = True

    def start(self) -> TcpProxy:
        self._thread.start()
        self.port = self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._loop.close()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._open = True

    @classmethod
    def to_database(cls, database_url: str) -> TcpProxy:
        params = conninfo_to_dict(database_url)
        return cls(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))

    def url_for(self, database_url: str) -> str:
        """`database_url` rewritten to go through the proxy."""
        params = conninfo_to_dict(database_url)
        params.update(host="127.0.0.1", port=str(self.port))
        return make_conninfo(**params)

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _shutdown(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _cut(self) -> None:
        self._open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not self._open:
            writer.transport.abort()
            return
        host, port = self.target
        try:
            if host.startswith("/"):
                socket_path = f"{host}/.s.PGSQL.{port}"
                up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
