#!/usr/bin/env python3
"""Allocations per operation from two valgrind DHAT profiles of the same program.

usage: dhdiff.py SMALL.json BIG.json N [TOP]

SMALL and BIG are `valgrind --tool=dhat --num-callers=50` outputs of runs that
did the same start-up and then a different number of operations, BIG doing N
more. Start-up cancels out: the difference divided by N is the cost of one
operation. Allocation sites are grouped by their first frame in project code
(the inlined helper just above it is shown too).
"""
import json
import re
import sys

PROJECT = re.compile(
    r"(micro_transport|micro_broker|micro_registry|micro_selector|micro_etcd|micro|examples|compare)::"
)


def frames(d, pp):
    out = []
    for i in pp["fs"]:
        m = re.match(r"0x[0-9A-Fa-f]+: (.*) \((.*)\)$", d["ftbl"][i])
        out.append((m.group(1), m.group(2)) if m else (d["ftbl"][i], ""))
    return out


def site(fs):
    for i, (name, loc) in enumerate(fs):
        if PROJECT.search(name):
            here = f"{name[:70]} ({loc})"
            if i > 0 and not fs[i - 1][1].startswith("library/"):
                callee, at = fs[i - 1]
                here = f"{callee[:40]} ({at}) in {here}"
            return here
    return "(outside project code) " + " <- ".join(n[:40] for n, _ in fs[-3:])


def load(path):
    d = json.load(open(path))
    agg = {}
    for pp in d["pps"]:
        k = site(frames(d, pp))
        nbytes, blocks = agg.get(k, (0, 0))
        agg[k] = (nbytes + pp["tb"], blocks + pp["tbk"])
    return agg


def main():
    small, big, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    rows = []
    for k in set(small) | set(big):
        b, s = big.get(k, (0, 0)), small.get(k, (0, 0))
        rows.append(((b[1] - s[1]) / n, (b[0] - s[0]) / n, k))
    rows.sort(reverse=True)
    print(f"{sum(r[0] for r in rows):.1f} allocations, {sum(r[1] for r in rows):.0f} bytes per operation")
    for blocks, nbytes, k in rows[:top]:
        if blocks < 0.5:
            break
        print(f"{blocks:5.1f} allocs {nbytes:7.0f} B  {k}")


main()
