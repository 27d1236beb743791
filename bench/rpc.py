"""bench/rpc.py — daemon.status over JSON-RPC with 16 concurrent clients, against a bare trio echo
server measured in the same run (same load client, same machine, alternating rounds).

Target (issue 3): >= 15,000 req/s and >= 0.5x the echo server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, running_godeld  # noqa: E402

HERE = Path(__file__).resolve().parent
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def load(socket_path: Path, request: str | None = None) -> float:
    args = [sys.executable, str(HERE / "_load.py"), str(socket_path), str(CLIENTS), str(SECONDS)]
    if request:
        args.append(request)
    return float(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    echo_dir = Path(tempfile.mkdtemp(prefix="gecho", dir="/tmp"))
    echo_path = echo_dir / "echo.sock"
    echo = subprocess.Popen([sys.executable, str(HERE / "_echo_server.py"), str(echo_path)], stdout=subprocess.PIPE, text=True)
    echo.stdout.readline()
    try:
        with running_godeld() as godeld_socket:
            load(godeld_socket)  # warm-up
            godeld_rates, echo_rates = [], []
            for _ in range(ROUNDS):
                godeld_rates.append(load(godeld_socket))
                echo_rates.append(load(echo_path, '{"jsonrpc":"2.0","id":1,"method":"daemon.status"}'))
    finally:
        echo.terminate()
        echo.wait()
    g, e = median(godeld_rates), median(echo_rates)
    print(f"daemon.status, {CLIENTS} clients: {g:,.0f} req/s (median of {ROUNDS} x {SECONDS:g}s; rounds: {', '.join(f'{r:,.0f}' for r in godeld_rates)})")
    print(f"bare trio echo server, same client: {e:,.0f} req/s (rounds: {', '.join(f'{r:,.0f}' for r in echo_rates)})")
    print(f"ratio godeld / echo: {g / e:.2f}  (targets: >= 15,000 req/s and >= 0.5x)")


if __name__ == "__main__":
    main()
