"""An SMTP sink for retain's several-senders test and benchmark (aiosmtpd).

Binds 127.0.0.1 on a free port and prints the port on its first line. Every accepted message
appends "<unix time>\t<recipient>\n" to LOG (the time it was accepted). With FAULT_EVERY = k > 0,
every k-th transaction is refused instead with a transient "slow down" answer, alternating
451 4.7.0 and 421 4.7.0, and not logged.

usage: python smtp_sink.py LOG [FAULT_EVERY]
"""
import asyncio
import sys
import time

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, log, fault_every):
        self.log = open(log, "a", buffering=1)
        self.fault_every = fault_every
        self.n = 0
        self.faults = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        if self.fault_every > 0 and self.n % self.fault_every == 0:
            self.faults += 1
            if self.faults % 2:
                return "451 4.7.0 Too many messages, slow down"
            return "421 4.7.0 Too many messages, slow down"
        now = time.time()
        for rcpt in envelope.rcpt_tos:
            self.log.write(f"{now:.6f}\t{rcpt.lower()}\n")
        return "250 2.0.0 OK"


def main():
    log = sys.argv[1]
    fault_every = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    handler = Sink(log, fault_every)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", 0)
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
