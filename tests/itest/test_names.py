"""Free names under on_exists = "suffix": many items that all expand to the
same name each get their own "-N" file at a bounded CPU cost (the next
suffix is remembered per name, not searched for from "-1" every time), the
suffix never runs out, and files already on disk are never replaced.

NAMES_ITEMS (default 20000) and NAMES_CPU_MAX (default 60 CPU seconds)
change the size of the big test and its bound.
"""

import os

import harness
from harness import check, eq

O = None
ITEMS = int(os.environ.get("NAMES_ITEMS", "20000"))
CPU_MAX = float(os.environ.get("NAMES_CPU_MAX", "60"))


def setup():
    global O
    O = harness.Origin(harness.fresh_dir("www"))


def teardown():
    if O is not None:
        O.stop()


def suffixed(i):
    """The i-th name of "same.png": same.png, same-1.png, same-2.png..."""
    return "same.png" if i == 0 else "same-%d.png" % i


def check_files(d, sub, sizes):
    """sub holds one file per size in sizes, each with the right bytes, and
    nothing else (no .part)."""
    root = d.path(sub)
    names = os.listdir(root)
    parts = [n for n in names if n.endswith(".part")]
    eq(parts, [], ".part files left in " + sub)
    eq(len(names), len(sizes), "files in " + sub)
    got = {}
    for n in names:
        with open(os.path.join(root, n), "rb") as f:
            data = f.read()
        check(len(data) not in got, "two files of %d bytes: %s and %s"
              % (len(data), got.get(len(data)), n))
        got[len(data)] = n
        want = harness.pattern_bytes(0, len(data), "png")
        check(data == want, "%s/%s: wrong contents" % (sub, n))
    eq(sorted(got), sorted(sizes), "sizes of the files in " + sub)
    return names


@harness.timeout(900)
def test_same_name_many_items():
    """ITEMS URLs named "same.png": ITEMS distinct files, bounded CPU."""
    d = harness.Daemon(harness.fresh_dir("big"), max_transfers=32,
                       log_level="info")
    sizes = [64 + i for i in range(ITEMS)]
    urls = [O.url("/stream/%d?magic=png" % n) for n in sizes]
    before = harness.cpu_seconds(d.pid)
    jid = d.submit(urls, dir="big", name="same.png")["id"]
    job = d.wait_job(jid, timeout=840, interval=0.5)
    cpu = harness.cpu_seconds(d.pid) - before
    print("  %d items named alike: %.2f CPU seconds" % (ITEMS, cpu),
          flush=True)
    eq(job["state"], "done", "job state")
    eq(job["failed"], 0, "failed items")
    eq(job["done"], ITEMS, "items done")
    names = check_files(d, "big", sizes)
    want = set(suffixed(i) for i in range(ITEMS))
    eq(sorted(set(names) - want), [], "names outside same.png..same-%d.png"
       % (ITEMS - 1))
    check(cpu < CPU_MAX, "%d items took %.1f CPU seconds (bound %g)"
          % (ITEMS, cpu, CPU_MAX))
    d.stop()


def test_suffix_past_9999():
    """Names numbered past 9999 are taken; the next one follows them."""
    d = harness.Daemon(harness.fresh_dir("far"))
    root = d.path("far")
    os.makedirs(root)
    # Files from before the daemon ran: same.png .. same-10005.png.
    for i in range(10006):
        with open(os.path.join(root, suffixed(i)), "wb") as f:
            f.write(b"old")
    sizes = [70 + i for i in range(5)]
    urls = [O.url("/stream/%d?magic=png" % n) for n in sizes]
    job = d.wait_job(d.submit(urls, dir="far", name="same.png")["id"],
                     timeout=120)
    eq(job["state"], "done", "job state")
    eq(job["failed"], 0, "failed items")
    new = sorted(os.listdir(root))
    made = [n for n in new if open(os.path.join(root, n), "rb").read()
            != b"old"]
    eq(sorted(made), sorted(suffixed(10006 + i) for i in range(5)),
       "names of the new files")
    eq(len(new), 10006 + 5, "files in far")
    d.stop()


def test_holes_and_other_writers():
    """Files that appear on disk behind the daemon's back are never
    replaced: the remembered suffix is only where the search starts."""
    d = harness.Daemon(harness.fresh_dir("holes"))
    root = d.path("holes")
    os.makedirs(root)
    # A scattered set from before: 0, 1, 2, 5, 6.
    for i in (0, 1, 2, 5, 6):
        with open(os.path.join(root, suffixed(i)), "wb") as f:
            f.write(b"old")
    first = [O.url("/stream/%d?magic=png" % n) for n in (80, 81)]
    job = d.wait_job(d.submit(first, dir="holes", name="same.png")["id"])
    eq(job["failed"], 0, "failed items, first job")
    # Another process takes the names the daemon would try next.
    taken = set(os.listdir(root))
    top = max(int(n[5:-4]) for n in taken if n != "same.png")
    for i in range(top + 1, top + 4):
        with open(os.path.join(root, suffixed(i)), "wb") as f:
            f.write(b"old")
    second = [O.url("/stream/%d?magic=png" % n) for n in (90, 91, 92)]
    job = d.wait_job(d.submit(second, dir="holes", name="same.png")["id"])
    eq(job["failed"], 0, "failed items, second job")
    olds = made = 0
    for n in os.listdir(root):
        data = open(os.path.join(root, n), "rb").read()
        if data == b"old":
            olds += 1
        else:
            made += 1
            check(data == harness.pattern_bytes(0, len(data), "png"),
                  n + ": wrong contents")
    eq(olds, 5 + 3, "files from before, all kept")
    eq(made, 5, "files the daemon made")
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
