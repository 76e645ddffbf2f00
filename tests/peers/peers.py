"""Real gRPC and WebSocket peers for portico's traffic tests, run with the
project virtualenv's Python (grpcio, websockets).

  grpc-serve PORT TAG        gRPC server (h2c) answering echo.Echo/Call and
                             echo.Echo/Ping with "TAG:METHOD:REQUEST:x-via"
  grpc-call TARGET AUTHORITY METHOD [k=v ...] [--tls CA_FILE SNI]
                             one unary call of /METHOD; prints the answer, or
                             "status:<CODE>" when the call fails
  ws-serve PORT              WebSocket server echoing each message as "ws:MSG"
  ws-call URL MESSAGE PORT   connects to 127.0.0.1:PORT, upgrades with URL's
                             host and path, sends one message, prints the answer
"""

import sys
from concurrent import futures


def grpc_serve(port, tag):
    import grpc

    def handler(method):
        def answer(request, context):
            via = dict(context.invocation_metadata()).get("x-via", "")
            return f"{tag}:{method}:{request.decode()}:{via}".encode()
        return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("echo.Echo", {m: handler(m) for m in ("Call", "Ping")}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def grpc_call(target, authority, method, rest):
    import grpc

    metadata, tls = [], None
    i = 0
    while i < len(rest):
        if rest[i] == "--tls":
            tls = (rest[i + 1], rest[i + 2])
            i += 3
            continue
        key, _, value = rest[i].partition("=")
        metadata.append((key, value))
        i += 1
    if tls:
        with open(tls[0], "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = [("grpc.ssl_target_name_override", tls[1]), ("grpc.default_authority", authority)]
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
    call = channel.unary_unary(f"/{method}")
    try:
        print(call(b"hello", metadata=metadata, timeout=5).decode())
    except grpc.RpcError as e:
        print(f"status:{e.code().name}")


def ws_serve(port):
    from websockets.sync.server import serve

    def echo(ws):
        for message in ws:
            ws.send(f"ws:{message}")

    with serve(echo, "127.0.0.1", int(port)) as server:
        print("ready", flush=True)
        server.serve_forever()


def ws_call(url, message, port):
    import socket

    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    with connect(url, sock=sock, open_timeout=5) as ws:
        ws.send(message)
        print(ws.recv(timeout=5))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "grpc-serve":
        grpc_serve(int(args[0]), args[1])
    elif command == "grpc-call":
        grpc_call(args[0], args[1], args[2], args[3:])
    elif command == "ws-serve":
        ws_serve(args[0])
    elif command == "ws-call":
        ws_call(args[0], args[1], args[2])
    else:
        sys.exit(f"unknown command {command}")
