"""The SMTP benchmark's baseline: aiosmtpd with the listener's protocol options and a
handler that throws every message away. Started by bench/smtp_intake.py as
`python -m bench.bare_smtp --port N`; imports nothing of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiosmtpd.smtp import SMTP, Envelope, Session


class Discard:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 OK: discarded"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            Discard(),
            data_size_limit=25 * 1024 * 1024,
            enable_SMTPUTF8=True,
            hostname="bare",
            ident="bare-aiosmtpd",
        ),
        "127.0.0.1",
        port,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("bare.ready", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
