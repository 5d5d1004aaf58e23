#!/usr/bin/env python3
"""Many machines, one queue: 3 imgfetchd nodes against 1 on the same work.

    python3 tests/bench/queue_bench.py [--jobs 30] [--images 100]
        [--delay 20] [--transfers 8] [--rounds 2]

Run by hand (not by the test suite). Each run starts a fresh redis-server
on 127.0.0.1 (its own directory, AOF on) and NODES daemons sharing one
download directory, each with max_transfers = --transfers; then adds
--jobs jobs of --images distinct 8x8 PNGs each to the stream and times
until the results stream holds every job and nothing is pending. The test
origin (tests/origin.c) answers every image after --delay ms, so that a
node's transfer slots, not the CPU, bound one node: the question is
whether a second and third daemon add their slots. Runs alternate 1, 3,
1, 3, ...; the medians and their ratio are printed with the CPU count and
the load average before and after (other work on the machine skews it).

Environment: IMGFETCHD, ORIGIN name the built files (the test harness's
variables; default build/ under the project root).
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "itest"))
for var, rel in (("IMGFETCHD", "build/imgfetchd"),
                 ("ORIGIN", "build/tests/origin")):
    os.environ.setdefault(var, os.path.join(ROOT, rel))

import harness  # noqa: E402
from test_queue import Redis  # noqa: E402


def one_run(nodes, args, origin, n_run):
    """Seconds for NODES daemons to end every job."""
    redis = Redis()
    tmp = harness.fresh_dir("bench-%d-%d" % (nodes, n_run))
    dl = os.path.join(tmp, "dl")
    daemons = [harness.Daemon(
        os.path.join(tmp, "n%d" % i), queue=redis.url, node="n%d" % i,
        download_dir=dl, max_transfers=args.transfers,
        queue_low_water=args.transfers * 4, log_level="warn")
        for i in range(nodes)]
    harness.wait_for(
        lambda: len(redis.cmd("XINFO", "CONSUMERS", "imgfetch:jobs",
                              "imgfetchd") or []) == nodes
        if redis.cmd("EXISTS", "imgfetch:jobs") else False,
        20, interval=0.05, what="every node to join the group")
    t0 = time.monotonic()
    for j in range(args.jobs):
        urls = [origin.url("/files/%d.png?delay=%d"
                           % (j * args.images + i, args.delay))
                for i in range(args.images)]
        redis.cmd("XADD", "imgfetch:jobs", "*", "job",
                  json.dumps({"urls": urls, "dir": "b", "name": "{name}"}))
    harness.wait_for(
        lambda: redis.cmd("XLEN", "imgfetch:results") >= args.jobs and
        redis.pending() == 0, 600, interval=0.02, what="every result")
    spent = time.monotonic() - t0
    results = redis.results()
    by_node = {}
    for r in results:
        if r["job"]["state"] != "done":
            raise RuntimeError("job %s: %s" % (r["queue_id"],
                                               r["job"]["state"]))
        by_node[r["node"]] = by_node.get(r["node"], 0) + 1
    got = len(os.listdir(os.path.join(dl, "b")))
    if got != args.jobs * args.images:
        raise RuntimeError("%d files, want %d" % (got,
                                                  args.jobs * args.images))
    for d in daemons:
        d.stop()
    redis.kill()
    harness.shutil.rmtree(tmp, ignore_errors=True)
    return spent, by_node


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=30)
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--delay", type=int, default=20,
                   help="origin delay per image, ms")
    p.add_argument("--transfers", type=int, default=8,
                   help="max_transfers per node")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    www = harness.fresh_dir("bench-www")
    for k in range(args.jobs * args.images):
        harness.make_png(os.path.join(www, "%d.png" % k), 8, 8, k)
    origin = harness.Origin(www)
    load0 = os.getloadavg()
    times = {1: [], 3: []}
    try:
        for rnd in range(args.rounds):
            for nodes in (1, 3):
                spent, by_node = one_run(nodes, args, origin, rnd)
                times[nodes].append(spent)
                print("round %d, %d node%s: %.2f s (jobs per node %s)"
                      % (rnd + 1, nodes, "" if nodes == 1 else "s", spent,
                         dict(sorted(by_node.items()))), flush=True)
    finally:
        origin.stop()
        harness._cleanup_live()
        harness.shutil.rmtree(harness.tmpdir(), ignore_errors=True)
    load1 = os.getloadavg()
    one, three = statistics.median(times[1]), statistics.median(times[3])
    print("work: %d jobs x %d images, origin delay %d ms, max_transfers %d "
          "per node" % (args.jobs, args.images, args.delay, args.transfers))
    print("1 node: %.2f s, 3 nodes: %.2f s (medians of %d); 3 nodes are "
          "%.2fx as fast" % (one, three, args.rounds, one / three))
    print("CPUs: %d; load average %.2f before, %.2f after"
          % (os.cpu_count(), load0[0], load1[0]))


if __name__ == "__main__":
    main()
