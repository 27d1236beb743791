"""bench/cold_start.py — `godelctl status` as a whole process against a running godeld, with the
interpreter's own start-up (`python -c pass`) measured in the same run as the floor.

Target (issue 3): at most 150 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import median, running_godeld  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
GODELCTL = str(Path(sys.executable).with_name("godelctl"))


def timed(cmd: list[str], env: dict[str, str]) -> list[float]:
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    with running_godeld() as socket_path:
        env = dict(os.environ, GODEL_SOCKET=str(socket_path))
        # As installed for a user: bytecode is written once and reused (a sandbox may turn that off
        # with PYTHONDONTWRITEBYTECODE, which would time the compiler, not godelctl).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        status = timed([GODELCTL, "status"], env)
        floor = timed([sys.executable, "-c", "pass"], env)
    print(f"godelctl status (whole process, {RUNS} runs): median {median(status) * 1000:.0f} ms, min {min(status) * 1000:.0f} ms, max {max(status) * 1000:.0f} ms")
    print(f"python -c pass (the interpreter alone): median {median(floor) * 1000:.0f} ms")
    print("target: <= 150 ms")


if __name__ == "__main__":
    main()
