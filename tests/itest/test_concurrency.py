"""Transfers run side by side up to max_transfers, and no further."""

import socket
import time

import harness
from harness import check, eq

O = None
FILES = {}
ROOT = None


def setup():
    global O, FILES, ROOT
    O, FILES, ROOT = harness.corpus_origin()


def teardown():
    if O is not None:
        O.stop()


def run_delayed(d, count, delay_ms, subdir):
    """Submit count items each answered after delay_ms; return (seconds,
    origin max_active, job)."""
    urls = [O.url("/files/a.png?delay=%d&i=%d" % (delay_ms, i))
            for i in range(count)]
    harness.wait_for(lambda: O.stats()["active"] == 0, 10,
                     what="the origin to be idle")
    O.reset_stats()
    t0 = time.monotonic()
    job = d.submit(urls, dir=subdir, name="{n}.png")
    job = d.wait_job(job["id"], timeout=60, interval=0.02)
    took = time.monotonic() - t0
    stats = O.stats()
    eq(job["state"], "done", "job state")
    eq(job["done"], count, "items done")
    eq(stats["requests"], count, "requests the origin saw")
    for item in job["items"]:
        eq(item["path"], "%s/%d.png" % (subdir, item["n"]), "path")
        check(harness.read_file(d.path(item["path"])) == FILES["a.png"],
              "%s differs from the origin's" % item["path"])
    return took, stats["max_active"], job


def test_fifty_at_once():
    d = harness.Daemon(harness.fresh_dir("wide"), max_transfers=50,
                       max_host_connections=0)
    took, peak, _job = run_delayed(d, 50, 300, "wide")
    check(took < 5, "50 items of 300 ms took %.2fs with max_transfers 50"
          % took)
    check(peak >= 40, "origin saw at most %d requests at once" % peak)
    d.stop()


def test_max_transfers_respected():
    d = harness.Daemon(harness.fresh_dir("narrow"), max_transfers=5)
    took, peak, _job = run_delayed(d, 30, 300, "narrow")
    check(peak <= 5, "origin saw %d requests at once, max_transfers 5"
          % peak)
    check(peak >= 4, "origin saw only %d requests at once" % peak)
    check(took >= 30 / 5 * 0.3 - 0.05,
          "30 items of 300 ms, 5 at a time, took only %.2fs" % took)
    d.stop()


def test_max_host_connections_respected():
    d = harness.Daemon(harness.fresh_dir("perhost"), max_transfers=50,
                       max_host_connections=3)
    took, peak, _job = run_delayed(d, 12, 300, "perhost")
    check(peak <= 3, "origin saw %d requests at once, "
          "max_host_connections 3" % peak)
    check(took >= 12 / 3 * 0.3 - 0.05,
          "12 items of 300 ms, 3 at a time, took only %.2fs" % took)
    d.stop()


def fetch_all(d, origin, count, subdir):
    """Fetch count copies of a.png from origin into subdir; check them."""
    urls = [origin.url("/files/a.png?i=%d" % i) for i in range(count)]
    job = d.submit(urls, dir=subdir, name="{n}.png")
    job = d.wait_job(job["id"], timeout=30)
    eq(job["state"], "done", "%s: job state" % subdir)
    eq(job["done"], count, "%s: items done" % subdir)
    for item in job["items"]:
        check(harness.read_file(d.path(item["path"])) == FILES["a.png"],
              "%s differs from the origin's" % item["path"])


def test_kept_connections_closed_by_the_origin():
    """Connections kept for reuse stay registered for reads while idle;
    when the origin closes them the daemon must neither spin on them nor
    fail the next job to the same address (whose sockets may get the same
    descriptors)."""
    d = harness.Daemon(harness.fresh_dir("kept"), max_transfers=4,
                       max_host_connections=0)
    first = harness.Origin(ROOT)
    fetch_all(d, first, 16, "one")
    eq(first.stats()["requests"], 16, "requests the first origin saw")
    port = first.port
    first.kill()  # the kernel closes the kept connections' far ends
    before = harness.cpu_seconds(d.pid)
    time.sleep(1.0)
    spent = harness.cpu_seconds(d.pid) - before
    check(spent < 0.3, "the daemon used %.2f CPU-s in the second after "
          "the origin closed its idle connections" % spent)
    check(d.alive(), "the daemon died")
    second = harness.Origin(ROOT, port=port)
    try:
        fetch_all(d, second, 16, "two")
        eq(second.stats()["requests"], 16, "requests the second origin saw")
    finally:
        second.stop()
    d.stop()


def loopback_name():
    """A host name other than "localhost" (which libcurl answers itself)
    that the system resolves to 127.0.0.1, or None: this machine's own
    name, or one that /etc/hosts gives 127.0.0.1."""
    names = [socket.gethostname()]
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if fields and fields[0] == "127.0.0.1":
                    names += fields[1:]
    except OSError:
        pass
    for name in names:
        try:
            if name != "localhost" and \
                    socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    return None


def test_names_through_the_resolver():
    """libcurl's threaded resolver has it watch a socketpair of its own,
    which it closes without the daemon's close callback: such a socket
    must lose its event at once, while connection sockets around it are
    parked and closed, and their descriptors are reused."""
    name = loopback_name()
    if name is None:
        raise harness.Skip("no host name resolves to 127.0.0.1 here")
    d = harness.Daemon(harness.fresh_dir("resolver"), max_transfers=3,
                       max_host_connections=0)
    origins = [harness.Origin(ROOT) for _ in range(3)]
    try:
        for rnd in range(2):
            urls = []
            for o in origins:
                # A new port for every round: a new lookup of the name.
                urls += ["http://%s:%d/files/a.png?r=%d&i=%d"
                         % (name, o.port, rnd, i) for i in range(5)]
                urls += [o.url("/files/a.png?r=%d&i=%d" % (rnd, i + 5))
                         for i in range(5)]
            job = d.submit(urls, dir="r%d" % rnd, name="{n}.png")
            job = d.wait_job(job["id"], timeout=30)
            eq(job["state"], "done", "round %d: job state" % rnd)
            eq(job["done"], len(urls), "round %d: items done" % rnd)
            for item in job["items"]:
                check(harness.read_file(d.path(item["path"])) ==
                      FILES["a.png"], "%s differs" % item["path"])
            # The next round's origins are new: the kept connections of
            # this one are closed by their origins going away.
            for o in origins:
                o.kill()
            origins = [harness.Origin(ROOT) for _ in range(3)]
        check(d.alive(), "the daemon died")
    finally:
        for o in origins:
            o.stop()
    d.stop()


def test_slow_response_does_not_hold_up_its_host():
    d = harness.Daemon(harness.fresh_dir("slowfirst"), max_transfers=8)
    job = d.submit([O.url("/files/a.png?delay=3000"),
                    O.url("/files/b.png"), O.url("/files/sub/c.png")],
                   name="{n}.png")
    t0 = time.monotonic()

    def others_ended():
        items = d.job(job["id"])["items"]
        return all(i["state"] in ("done", "failed") for i in items
                   if i["n"] > 0) and items
    items = harness.wait_for(others_ended, 10, interval=0.02,
                             what="items 1 and 2 to end")
    took = time.monotonic() - t0
    for i in items:
        if i["n"] > 0:
            eq(i["state"], "done", "item %d state (%r)"
               % (i["n"], i.get("error")))
    check(took < 1.5, "items 1 and 2 (no delay) took %.2fs while item 0 "
          "waited 3s for its response from the same host" % took)
    eq(d.wait_job(job["id"])["state"], "done", "job state")
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
