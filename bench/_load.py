"""A request/response load generator: CONNS connections over one epoll loop, each with one request
in flight (send, wait for the answer line, send again). Prints answers per second.

    python bench/_load.py SOCKET CONNS SECONDS [REQUEST_JSON]

It runs as its own process so the client never shares a core's time slice with the server's
Python process more than the machine forces it to; it is kept minimal so the server is the limit.
"""

import select
import socket
import sys
import time

path, conns, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
request = (sys.argv[4] if len(sys.argv) > 4 else '{"jsonrpc":"2.0","id":1,"method":"daemon.status"}').encode() + b"\n"
poller = select.epoll()
socks = {}
for _ in range(conns):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.setblocking(False)
    socks[s.fileno()] = s
    poller.register(s.fileno(), select.EPOLLIN)
for s in socks.values():
    s.send(request)
answered = 0
start = time.perf_counter()
end = start + seconds
while time.perf_counter() < end:
    for fd, _ in poller.poll(0.5):
        s = socks[fd]
        data = s.recv(1 << 20)
        n = data.count(b"\n")
        if n:
            answered += n
            s.send(request * n)
print(answered / (time.perf_counter() - start))
