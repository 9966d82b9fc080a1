#!/usr/bin/env python3
"""A bad uplink between the box and the commune, as a TCP proxy on loopback.

It throttles (one token bucket per direction, shared by all connections, like one link),
delays every chunk by a one-way delay (RTT = 2 x delay), and flaps: every --flap-every seconds
the link goes down for --flap-seconds. While down nothing is forwarded and new connections hang;
when it comes back every connection that lived through the flap is reset (a 4G modem that
re-attaches gets a new address; old connections die). Packet loss is not done here: the tests add
it with iptables inside a network namespace they create.

It writes --stats (JSON) every second and on exit: bytes forwarded each way, connections, and for
each flap how long after the link came back the first client byte was forwarded again, and the
wall-clock times at which upload requests (PATCH, or POST /files carrying a first chunk) started,
for flag -> first byte.

usage: flaky_link.py --listen PORT --target PORT [--rate-kbps N] [--delay-ms N]
                     [--flap-every S --flap-seconds S] [--stats FILE] [--duration S]
"""
import argparse
import asyncio
import json
import signal
import time


class Bucket:
    def __init__(self, kbps):
        self.rate = kbps * 1000 / 8 if kbps else 0
        self.tokens = 0.0
        self.last = time.monotonic()

    async def take(self, n):
        if not self.rate:
            return
        now = time.monotonic()
        self.tokens = min(self.rate / 10, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


class Link:
    def __init__(self, args):
        self.args = args
        self.up = Bucket(args.rate_kbps)
        self.down_bucket = Bucket(args.rate_kbps)
        self.is_down = False
        self.came_back_at = None
        self.flap_epoch = 0
        self.conns = set()
        self.stats = {"bytes_up": 0, "bytes_down": 0, "connections": 0, "flaps": 0, "resume_after_flap_s": [],
                      "upload_request_at": []}

    async def pump(self, reader, writer, bucket, key, epoch, upstream):
        """Reads, pays the bucket, and forwards each chunk once its delay has passed."""
        queue = asyncio.Queue()
        delay = self.args.delay_ms / 1000

        async def deliver():
            while True:
                due, data = await queue.get()
                if data is None:
                    writer.close()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while self.is_down:
                    await asyncio.sleep(0.05)
                if epoch != self.flap_epoch:
                    return
                writer.write(data)
                await writer.drain()
                self.stats[key] += len(data)
                if upstream and (data.startswith(b"PATCH ") or data.startswith(b"POST /files")) and len(self.stats["upload_request_at"]) < 1000:
                    self.stats["upload_request_at"].append(time.time())
                if upstream and self.came_back_at is not None:
                    self.stats["resume_after_flap_s"].append(round(time.monotonic() - self.came_back_at, 3))
                    self.came_back_at = None

        deliverer = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                await bucket.take(len(data))
                await queue.put((time.monotonic() + delay, data))
            await queue.put((time.monotonic() + delay, None))
            await deliverer
        except (ConnectionError, asyncio.CancelledError):
            deliverer.cancel()

    async def handle(self, client_r, client_w):
        self.stats["connections"] += 1
        epoch = self.flap_epoch
        while self.is_down:  # a connection made while down hangs, then dies with the flap
            await asyncio.sleep(0.05)
            if epoch != self.flap_epoch:
                client_w.transport.abort()
                return
        await asyncio.sleep(self.args.delay_ms / 1000 * 2)  # the handshake's round trip
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.args.target)
        except OSError:
            client_w.transport.abort()
            return
        conn = (client_w, server_w)
        self.conns.add(conn)
        try:
            await asyncio.gather(
                self.pump(client_r, server_w, self.up, "bytes_up", epoch, True),
                self.pump(server_r, client_w, self.down_bucket, "bytes_down", epoch, False),
            )
        finally:
            self.conns.discard(conn)
            for w in conn:
                w.transport.abort()

    async def flapper(self):
        if not self.args.flap_every:
            return
        while True:
            await asyncio.sleep(self.args.flap_every)
            self.is_down = True
            self.stats["flaps"] += 1
            await asyncio.sleep(self.args.flap_seconds)
            self.flap_epoch += 1
            for conn in list(self.conns):
                for w in conn:
                    w.transport.abort()
            self.conns.clear()
            self.is_down = False
            self.came_back_at = time.monotonic()

    def write_stats(self):
        if self.args.stats:
            with open(self.args.stats + ".tmp", "w") as f:
                json.dump(self.stats, f)
            import os
            os.replace(self.args.stats + ".tmp", self.args.stats)

    async def main(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.args.listen)
        flaps = asyncio.ensure_future(self.flapper())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        started = time.monotonic()
        print(f"flaky link: 127.0.0.1:{self.args.listen} -> 127.0.0.1:{self.args.target}", flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1)
            except asyncio.TimeoutError:
                pass
            self.write_stats()
            if self.args.duration and time.monotonic() - started > self.args.duration:
                break
        flaps.cancel()
        server.close()
        self.write_stats()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--target", type=int, required=True)
    p.add_argument("--rate-kbps", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--flap-every", type=float, default=0)
    p.add_argument("--flap-seconds", type=float, default=5)
    p.add_argument("--stats")
    p.add_argument("--duration", type=float, default=3600, help="exit after this many seconds (bounded)")
    asyncio.run(Link(p.parse_args()).main())
