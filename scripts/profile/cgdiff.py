#!/usr/bin/env python3
"""Instructions per operation from two callgrind profiles of the same program.

usage: cgdiff.py SMALL.out BIG.out N [TOP] [--inclusive]

SMALL and BIG are callgrind outputs of runs that did the same start-up and then
a different number of operations, BIG doing N more; the difference divided by N
is the cost of one operation. With one file and SMALL given as `-`, BIG is
divided by N (a profile zeroed with `callgrind_control -z` after warm-up).
Prints the total and the top functions (self cost, or inclusive cost).
"""
import re
import subprocess
import sys


def load(path, inclusive):
    if path == "-":
        return {}, 0
    out = subprocess.run(
        ["callgrind_annotate", "--auto=no", "--threshold=100",
         f"--inclusive={'yes' if inclusive else 'no'}", path],
        capture_output=True, text=True, check=True,
    ).stdout
    costs, total = {}, 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        value = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = value
            continue
        name = re.sub(r"\s*\[[^\]]*\]$", "", m.group(2))
        name = re.sub(r"/root/\.cargo/registry/src/[^/]+/", "", name)
        costs[name] = costs.get(name, 0) + value
    return costs, total


def main():
    args = [a for a in sys.argv[1:] if a != "--inclusive"]
    inclusive = "--inclusive" in sys.argv
    (small, t_small), (big, t_big) = load(args[0], inclusive), load(args[1], inclusive)
    n = int(args[2])
    top = int(args[3]) if len(args) > 3 else 25
    print(f"{(t_big - t_small) / n:.0f} instructions per operation")
    skip = re.compile(r"tokio::runtime::(blocking|context|scheduler|task)|std::sys|clone\.S|pthread_create|call_once")
    rows = sorted((((big.get(k, 0) - small.get(k, 0)) / n, k) for k in set(small) | set(big)), reverse=True)
    for per, k in [r for r in rows if not skip.search(r[1])][:top]:
        print(f"{per:9.0f}  {k[:180]}")


main()
