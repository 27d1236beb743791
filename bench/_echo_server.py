"""The baseline: a bare trio Unix-socket server that echoes each line back (no JSON, no dispatch)."""

import sys

import trio


async def handle(stream):
    pending = b""
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                await stream.send_all(line + b"\n")
    except trio.BrokenResourceError:
        pass


async def main(path):
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(path)
    sock.listen(512)
    print("ready", flush=True)
    await trio.serve_listeners(handle, [trio.SocketListener(sock)])


trio.run(main, sys.argv[1])
