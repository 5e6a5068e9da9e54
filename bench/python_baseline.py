#!/usr/bin/env python3
"""Times the Python implementation of the format (tests/interop/fmes_format.py,
written from FORMAT.md the way the Python implementation works).

    python_baseline.py send DIR N        seconds for N sends
    python_baseline.py receive DIR       seconds to read the mailbox of "sink" whole
    python_baseline.py peek DIR          seconds to count it (in this process)

Prints one number: seconds.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "interop"))
from fmes_format import FileMessageExchange  # noqa: E402


def main():
    what, comm = sys.argv[1], sys.argv[2]
    fmes = FileMessageExchange(comm, agents=["bench", "sink"])
    start = time.perf_counter()
    if what == "send":
        for i in range(int(sys.argv[3])):
            # A sender per message: the Python naming would otherwise replace
            # messages sent in the same second, and the timing would not count them.
            fmes.send(f"bench{i}", "sink", {"seq": i})
    elif what == "receive":
        fmes.receive("sink")
    elif what == "peek":
        fmes.peek("sink")
    else:
        raise SystemExit(f"unknown measurement {what}")
    print(time.perf_counter() - start)


if __name__ == "__main__":
    main()
