"""The data path of a LoadBalancer Service, inside the network namespace
that holds its load-balancer addresses: each Service port (TCP or UDP)
forwards to the ready endpoints of the Service, round robin. The table is a
JSON file, read again whenever it changes:
`{"tcp": {"80": [["10.244.0.11", 10080], ...]}, "udp": {"5300": [...]}}`.
"""

import asyncio
import itertools
import json
import os
import sys

UDP_IDLE = 30.0


class Table:
    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.data = {"tcp": {}, "udp": {}}
        self.turn = itertools.count()

    def pick(self, protocol, port):
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime != self.mtime:
                with open(self.path) as f:
                    self.data = json.load(f)
                self.mtime = mtime
        except (OSError, ValueError):
            pass
        targets = self.data.get(protocol, {}).get(str(port)) or []
        if not targets:
            return None
        return tuple(targets[next(self.turn) % len(targets)])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


def tcp(table, port):
    async def handle(client_reader, client_writer):
        target = table.pick("tcp", port)
        try:
            if target is None:
                raise OSError("no endpoint")
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    return handle


class UdpPort(asyncio.DatagramProtocol):
    """One UDP Service port: a socket toward an endpoint per client."""

    def __init__(self, table, port):
        self.table = table
        self.port = port
        self.flows = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        flow = self.flows.get(client)
        if flow is None:
            target = self.table.pick("udp", self.port)
            if target is None:
                return
            asyncio.ensure_future(self.open(client, target, data))
            return
        flow.transport.sendto(data)
        flow.seen = asyncio.get_running_loop().time()

    async def open(self, client, target, first):
        loop = asyncio.get_running_loop()
        front = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data, _):
                front.transport.sendto(data, client)
                self.seen = loop.time()

        transport, back = await loop.create_datagram_endpoint(Back, remote_addr=target)
        back.transport = transport
        back.seen = loop.time()
        self.flows[client] = back
        transport.sendto(first)

    async def expire(self):
        while True:
            await asyncio.sleep(5)
            now = asyncio.get_running_loop().time()
            for client, flow in list(self.flows.items()):
                if now - flow.seen > UDP_IDLE:
                    flow.transport.close()
                    del self.flows[client]


async def main(path, ports):
    table = Table(path)
    loop = asyncio.get_running_loop()
    tasks = []
    for spec in ports:
        protocol, port = spec.split("/")
        if protocol == "udp":
            _, proto = await loop.create_datagram_endpoint(
                lambda p=int(port): UdpPort(table, p), local_addr=("0.0.0.0", int(port))
            )
            tasks.append(proto.expire())
        else:
            server = await asyncio.start_server(tcp(table, int(port)), "0.0.0.0", int(port))
            tasks.append(server.serve_forever())
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
