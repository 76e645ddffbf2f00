"""kube-proxy's part for one LoadBalancer Service, inside a Gateway's network
namespace: each `PORT=TARGET` argument forwards TCP connections arriving on
PORT (any address of the namespace, so the MetalLB address too) to TARGET on
127.0.0.1, where Envoy binds the listener's container port.
"""

import asyncio
import sys

from lb_forward import pipe  # run as a script: its directory is on the path


def forwarder(target):
    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer)
        )

    return handle


async def main(maps):
    servers = []
    for m in maps:
        port, target = (int(x) for x in m.split("="))
        servers.append(await asyncio.start_server(forwarder(target), "0.0.0.0", port))
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
