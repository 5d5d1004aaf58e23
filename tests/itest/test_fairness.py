"""A small job is not stuck behind a big one."""

import time

import harness
from harness import check, eq

O = None
FILES = {}
BIG = 2000


def setup():
    global O, FILES
    O, FILES, _root = harness.corpus_origin(small=BIG)


def teardown():
    if O is not None:
        O.stop()


def test_small_job_overtakes_big_one():
    d = harness.Daemon(harness.fresh_dir("fair"), max_transfers=16,
                       max_request_body=4 * 1024 * 1024, log_level="info")
    big_urls = [O.url("/files/small/%d.png?delay=20" % i)
                for i in range(BIG)]
    big = d.submit(big_urls, dir="big", name="{n}.png")
    small = d.submit([O.url("/files/a.png?delay=20")], dir="small",
                     name="a.png")
    t0 = time.monotonic()
    while True:
        s = d.job(small["id"])
        if s["state"] in ("done", "failed", "cancelled"):
            break
        check(time.monotonic() - t0 < 30, "small job not done after 30s")
        time.sleep(0.01)
    took = time.monotonic() - t0
    b = d.job(big["id"])
    print("  # small job done after %.2fs, big job had %d of %d done"
          % (took, b["done"], BIG))
    eq(s["state"], "done", "small job state")
    check(took < 2, "small job took %.2fs behind a %d-item job"
          % (took, BIG))
    check(b["done"] < BIG // 2, "big job already had %d of %d done when "
          "the small one finished" % (b["done"], BIG))
    check(b["state"] in ("queued", "running"),
          "big job state %r" % b["state"])
    check(harness.read_file(d.path("small/a.png")) == FILES["a.png"],
          "small/a.png differs from the origin's")

    b = d.wait_job(big["id"], timeout=180, interval=0.2)
    eq(b["state"], "done", "big job state")
    eq(b["done"], BIG, "big job done")
    bad = [i["n"] for i in b["items"]
           if harness.read_file(d.path(i["path"]))
           != FILES["small/%d.png" % i["n"]]]
    eq(bad, [], "big job items whose file differs")
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
