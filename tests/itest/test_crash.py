"""Crash safety: kill -9 at any moment loses no accepted work and leaves no
partial file under a final name; nothing already done is fetched again.

The daemon is killed with SIGKILL at many moments of one 2,000-item job and
restarted each time on the same state_dir and download_dir. To tell which
run of the daemon asked for which URL, every run has its own User-Agent and
the origin of this file (a small threaded HTTP server, below) records every
request with that header. The job store is read directly (sqlite3,
read-only) right before each kill: an item the store calls done at that
moment must never be asked for by a later run.

Besides: a job acknowledged with 202 survives a kill -9 right after the
reply; a cancel answered with 200 survives one too; a .part kept with a
validator is resumed with Range after a kill -9; and no .part of an item
that was in flight at the kill is left behind once the job has finished.

The origin here also speaks ETag, Range and If-Range and can cut a body in
the middle, which the C origin of the other tests does not.
"""

import http.server
import os
import random
import re
import signal
import socket
import sqlite3
import threading
import time
import urllib.parse

import harness
from harness import check, eq

# Item states as the store keeps them (src/store.h).
QUEUED, ACTIVE, DONE, FAILED, CANCELLED, COMMITTING = range(6)

N_ITEMS = 2000
KILLS = 12


# ---------------------------------------------------------------- origin

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A killed daemon leaves broken connections behind: not news.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        origin = self.server.origin
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        m = re.fullmatch(r"/img/(\d+)\.png", u.path)
        body = origin.bodies.get(int(m.group(1))) if m else None
        first = origin.record(u.path, self.headers)
        if body is None:
            self.send_error(404)
            return
        delay = int(q.get("delay", "0"))
        if delay:
            time.sleep(delay / 1000)
        etag = '"v%s"' % m.group(1)
        start = 0
        rng = self.headers.get("Range")
        if (rng and q.get("etag") == "1"
                and self.headers.get("If-Range") == etag):
            rm = re.fullmatch(r"bytes=(\d+)-", rng)
            if rm and int(rm.group(1)) < len(body):
                start = int(rm.group(1))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d"
                             % (start, len(body) - 1, len(body)))
        if q.get("etag") == "1":
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        data = body[start:]
        if q.get("cut") == "1" and first:
            # Half the body, then the connection goes away.
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        gap = int(q.get("gap", "0"))
        if gap:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            time.sleep(gap / 1000)
            data = data[len(data) // 2:]
        self.wfile.write(data)


class CountingOrigin:
    """HTTP/1.1 origin on 127.0.0.1 serving /img/I.png (bodies[I]) and
    recording (path, User-Agent, Range, If-Range) of every request.
    Options: delay=MS before answering, gap=MS between the two halves of
    the body, etag=1 to send an ETag and honour Range with If-Range,
    cut=1 to send half the body and close on the first request for it."""

    def __init__(self, bodies):
        self.bodies = bodies
        self.lock = threading.Lock()
        self.requests = []
        self.times = []  # when each of requests arrived (monotonic)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.origin = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def record(self, path, headers):
        """Note a request; True if it is the first for path."""
        entry = (path, headers.get("User-Agent"), headers.get("Range"),
                 headers.get("If-Range"))
        with self.lock:
            first = all(r[0] != path for r in self.requests)
            self.requests.append(entry)
            self.times.append(time.monotonic())
        return first

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- helpers

def db_items(state_dir, job_id):
    """{n: (state, path, part, validator)} of a job, read from the store
    read-only (the daemon may be running)."""
    path = os.path.join(state_dir, "imgfetchd.db")
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        rows = db.execute("SELECT n, state, path, part, validator FROM items"
                          " WHERE job = ?", (job_id,)).fetchall()
    finally:
        db.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def db_job_ids(state_dir):
    path = os.path.join(state_dir, "imgfetchd.db")
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY id")]
    finally:
        db.close()


def kill9(d):
    """SIGKILL the daemon and reap it."""
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait()
    d._forget()
    eq(d.proc.returncode, -signal.SIGKILL, "exit status after SIGKILL")


def restart(d, user_agent):
    """Start the daemon again on the same directories, with a new
    User-Agent so that the origin can tell its requests apart."""
    d.settings["user_agent"] = user_agent
    harness.write_config(d.confpath, d.settings)
    d.start()


def check_disk(root, want, where):
    """Every file under root with a final name is one of want (relative
    path -> bytes) and equal to it; returns the set of .part files."""
    parts = set()
    for rel in harness.files_under(root):
        if rel.endswith(".part"):
            parts.add(rel)
            continue
        check(rel in want, "%s: unexpected file %s under the download "
              "directory" % (where, rel))
        data = harness.read_file(os.path.join(root, rel))
        check(data == want[rel], "%s: %s has %d bytes, differing from the "
              "origin's %d" % (where, rel, len(data), len(want[rel])))
    return parts


def wait_progress(d, state_dir, job_id, target, timeout):
    """Poll the store until at least target items are done (or the
    daemon died); returns the count."""
    deadline = time.monotonic() + timeout
    while True:
        check(d.alive(), "imgfetchd died:\n%s" % d.log_tail())
        n = sum(1 for v in db_items(state_dir, job_id).values()
                if v[0] == DONE)
        if n >= target or time.monotonic() > deadline:
            return n
        time.sleep(0.005)


# ---------------------------------------------------------------- tests

@harness.timeout(420)
def test_kill9_during_2000_item_job():
    rnd = random.Random(20240611)
    bodies = {}
    want = {}
    for i in range(N_ITEMS):
        bodies[i] = harness.png_bytes(rnd.randint(8, 40), rnd.randint(8, 40),
                                      50000 + i)
        want["crash/%d.png" % i] = bodies[i]
    origin = CountingOrigin(bodies)
    try:
        _kill9_during_job(rnd, origin, bodies, want)
    finally:
        origin.stop()


def _kill9_during_job(rnd, origin, bodies, want):
    tmp = harness.fresh_dir("kill")
    d = harness.Daemon(tmp, max_transfers=32, workers=2, log_level="info",
                       user_agent="run-0", retries=0)
    state_dir = d.settings["state_dir"]
    dl = d.download_dir
    urls = []
    for i in range(N_ITEMS):
        q = "delay=%d" % (20 + i % 31)
        if i % 3 == 0:
            q += "&gap=15"
        urls.append(origin.url("/img/%d.png?%s" % (i, q)))
    job = d.submit(urls, dir="crash", name="{name}")
    jid = job["id"]

    # Kill moments: mostly at growing progress, some right at a restart
    # (while the store is being restored) and some at random delays.
    fractions = sorted(rnd.uniform(0.01, 0.97) for _ in range(KILLS - 3))
    plan = [("progress", f) for f in fractions]
    for k in (2, 6, 9):
        plan.insert(k, ("restart", rnd.uniform(0.0, 0.03)))
    done_at_kill = []      # the store's done set right before kill k
    moments = []
    run = 0
    for kind, arg in plan:
        if kind == "progress":
            got = wait_progress(d, state_dir, jid, int(arg * N_ITEMS), 60)
            time.sleep(rnd.uniform(0.0, 0.04))
        else:
            time.sleep(arg)
        check(d.alive(), "imgfetchd died before kill %d:\n%s"
              % (run, d.log_tail()))
        items = db_items(state_dir, jid)
        done = {n for n, v in items.items() if v[0] == DONE}
        kill9(d)
        done_at_kill.append(done)
        moments.append(len(done))
        eq(len(items), N_ITEMS, "items stored for job %d" % jid)

        # The state the crash left: final names hold whole files only.
        after = db_items(state_dir, jid)
        parts = check_disk(dl, want, "after kill %d" % run)
        for n in done:
            rel = after[n][1]
            eq(after[n][0], DONE, "item %d state after kill %d" % (n, run))
            check(rel in want and os.path.exists(os.path.join(dl, rel)),
                  "item %d is done but its file %r is missing" % (n, rel))
        committing = sum(1 for v in after.values() if v[0] == COMMITTING)
        print("  # kill %2d (%s): %4d done in the store, %d committing, "
              "%d .part files" % (run, kind, len(done), committing,
                                  len(parts)), flush=True)
        run += 1
        restart(d, "run-%d" % run)

    job = d.wait_job(jid, timeout=120, interval=0.1)
    reqs = origin.snapshot()
    d.stop()

    eq(len(moments), KILLS, "kills")
    check(len(set(moments)) >= KILLS // 2, "kill moments too alike: %r"
          % moments)
    eq(job["state"], "done", "job state after %d kills" % KILLS)
    eq(job["done"], N_ITEMS, "items done")
    eq(job["failed"], 0, "items failed")
    eq(job["bytes"], sum(len(b) for b in bodies.values()), "job bytes")
    bad = [it for it in job["items"] if it["state"] != "done"
           or it["path"] != "crash/%d.png" % it["n"]]
    check(not bad, "items not done under their own name: %r" % bad[:3])

    # Exactly the 2,000 files: no .part left, no -1 duplicate.
    files = harness.files_under(dl)
    eq(check_disk(dl, want, "at the end"), set(), ".part files at the end")
    eq(sorted(files), sorted(want), "files under the download directory")

    # The store's done sets only grow.
    for k in range(1, len(done_at_kill)):
        lost = done_at_kill[k - 1] - done_at_kill[k]
        check(not lost, "items done before kill %d are no longer done "
              "before kill %d: %r" % (k - 1, k, sorted(lost)[:10]))

    # Nothing done before a kill is asked for by a later run.
    done_since = {}
    for k, done in enumerate(done_at_kill):
        for n in done:
            done_since.setdefault(n, k)
    refetched = []
    asked = set()
    for path, ua, _rng, _ifr in reqs:
        n = int(re.fullmatch(r"/img/(\d+)\.png", path).group(1))
        asked.add(n)
        r = int(ua.split("-")[1])
        if n in done_since and r > done_since[n]:
            refetched.append((n, "done before kill %d" % done_since[n],
                              "asked for by run %d" % r))
    check(not refetched, "%d done items fetched again, e.g. %r"
          % (len(refetched), refetched[:5]))
    eq(len(asked), N_ITEMS, "distinct URLs asked for")
    print("  # %d requests for %d items over %d runs; done in the store at "
          "the kills: %r" % (len(reqs), N_ITEMS, run + 1, moments))


@harness.timeout(120)
def test_kill9_right_after_202():
    bodies = {i: harness.png_bytes(16, 16, 70000 + i) for i in range(300)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("ack")
        d = harness.Daemon(tmp, max_transfers=8, log_level="info")
        state_dir = d.settings["state_dir"]
        want = {}
        jobs = []
        for k in range(5):
            ns = range(k * 60, (k + 1) * 60)
            urls = [origin.url("/img/%d.png?delay=%d" % (n, 200 + n))
                    for n in ns]
            job = d.submit(urls, dir="ack%d" % k, name="{name}")
            kill9(d)
            jobs.append(job["id"])
            eq(job["total"], 60, "total of the acknowledged job")
            # Durable before the 202: the store holds the job and items.
            check(job["id"] in db_job_ids(state_dir),
                  "job %d acknowledged with 202 is not in the store after "
                  "kill -9 (store has %r)" % (job["id"],
                                              db_job_ids(state_dir)))
            eq(sorted(db_items(state_dir, job["id"])), list(range(60)),
               "stored items of job %d" % job["id"])
            for i, n in enumerate(ns):
                want["ack%d/%d.png" % (k, n)] = bodies[n]
            restart(d, "ack-%d" % (k + 1))
        for jid in jobs:
            job = d.wait_job(jid, timeout=60, interval=0.1)
            eq(job["state"], "done", "job %d state" % jid)
            eq(job["done"], 60, "job %d items done" % jid)
        d.stop()
        eq(check_disk(d.download_dir, want, "at the end"), set(),
           ".part files at the end")
        eq(sorted(harness.files_under(d.download_dir)), sorted(want),
           "files under the download directory")
    finally:
        origin.stop()


# Each file write of the daemon under the slow-disk shim takes this long:
# the store's commit of a new job, and so the 202, comes at least this late.
SLOW_MS = 400


def slow_disk_env(ms):
    """The environment that makes every file write of the daemon take ms
    longer; skips the test without the shim."""
    if not os.path.exists(os.environ.get("SLOWDISK", "")):
        raise harness.Skip("no SLOWDISK shim")
    return {"LD_PRELOAD": os.environ["SLOWDISK"], "SLOWDISK_MS": str(ms),
            # An ASan build of the daemon would refuse a preload first.
            "ASAN_OPTIONS": ":".join(filter(None, [
                os.environ.get("ASAN_OPTIONS"),
                "verify_asan_link_order=0"]))}


@harness.timeout(120)
def test_files_wait_for_the_store():
    """A new job's transfers start before the store has the job, but none
    of its files reaches the disk until then: with a slow disk the 202
    waits for the store, the downloads do not, and a kill -9 before the
    202 leaves nothing behind."""
    bodies = {i: harness.png_bytes(16, 16, 90000 + i) for i in range(40)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("hold")
        d = harness.Daemon(tmp, env=slow_disk_env(SLOW_MS), max_transfers=8,
                           log_level="info")
        for k in range(2):
            ns = range(k * 20, (k + 1) * 20)
            urls = [origin.url("/img/%d.png" % n) for n in ns]
            got = {}

            def post():
                try:
                    got["job"] = d.submit(urls, dir="hold", name="{name}")
                    got["at"] = time.monotonic()
                except Exception as e:
                    got["error"] = e
            th = threading.Thread(target=post)
            th.start()
            harness.wait_for(lambda: len(origin.snapshot()) > 20 * k,
                             10, what="a request at the origin")
            eq(harness.files_under(d.download_dir), [],
               "files on the disk before the store has job %d" % k)
            if k == 0:
                kill9(d)
                th.join()
                check("job" not in got, "a 202 from a killed daemon")
                eq(harness.files_under(d.download_dir), [],
                   "files on the disk after kill -9 before the 202")
                d.start()
                continue
            th.join()
            check("job" in got, "no 202: %r" % got.get("error"))
            # The commit, and so the 202, took a slow write at least.
            ahead = got["at"] - origin.times[20 * k]
            check(ahead > SLOW_MS / 2000, "the first request came only "
                  "%.3f s before the 202" % ahead)
            job = d.wait_job(got["job"]["id"], timeout=60)
            eq(job["state"], "done", "job state")
            want = {"hold/%d.png" % n: bodies[n] for n in ns}
            eq(check_disk(d.download_dir, want, "at the end"), set(),
               ".part files at the end")
            eq(harness.files_under(d.download_dir), sorted(want),
               "files under the download directory")
        d.stop()
    finally:
        origin.stop()


@harness.timeout(120)
def test_kill9_while_named_files_are_written():
    """Without fsync, a file's final name is chosen and recorded in the
    store while its last writes still run. A kill -9 then leaves a
    "committing" record with a .part that is short of the body: the next
    start must see the size is wrong and fetch the file again, never
    rename the cut .part into place."""
    bodies = {i: harness.png_bytes(16, 16, 70000 + i) for i in range(4)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("named")
        env = slow_disk_env(4000)
        env["SLOWDISK_SUFFIX"] = ".part"  # the store stays fast
        # A writer for each file, so that all four writes sleep at once.
        d = harness.Daemon(tmp, env=env, log_level="info", workers=8,
                           user_agent="named-0")
        dl = d.download_dir
        want = {"n/%d.png" % i: bodies[i] for i in bodies}
        job = d.submit([origin.url("/img/%d.png" % i) for i in bodies],
                       dir="n", name="{name}")
        harness.wait_for(lambda: len([p for p in harness.files_under(dl)
                                      if p.endswith(".part")]) == 4,
                         10, what="four .part files")
        # The bodies are in, their writes sleep: the names get recorded.
        # Wait for the store to hold all four as committing (the writes
        # sleep 4 s, so the .part files are still empty then).
        harness.wait_for(
            lambda: [v[0] for v in db_items(d.settings["state_dir"],
                                            job["id"]).values()]
            == [COMMITTING] * 4, 3, interval=0.05,
            what="the four names recorded in the store")
        eq(check_disk(dl, want, "at the kill"),
           {p + ".part" for p in want}, ".part files at the kill")
        for p in want:
            eq(os.path.getsize(os.path.join(dl, p + ".part")), 0,
               "size of %s.part at the kill" % p)
        kill9(d)
        d.extra_env = {}
        restart(d, "named-1")
        job = d.wait_job(job["id"], timeout=30)
        eq(job["state"], "done", "job state after the restart")
        log = d.log()
        d.stop()
        eq(check_disk(dl, want, "after the restart"), set(),
           ".part files after the restart")
        eq(harness.files_under(dl), sorted(want), "files at the end")
        check("holds 0 of its" in log,
              "no line on a cut .part in the log:\n" + log[-2000:])
        refetched = [r for r in origin.snapshot() if r[1] == "named-1"]
        eq(len(refetched), 4, "requests after the restart")
    finally:
        origin.stop()


@harness.timeout(120)
def test_kill9_resumes_kept_part_with_range():
    bodies = {0: harness.png_bytes(500, 400, 1),
              1: harness.png_bytes(500, 400, 2)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("range")
        # The retry waits 4-12 s (8 s with jitter): time to look and to
        # kill; its time is kept in the store, so the restarted daemon
        # waits out the rest before it resumes.
        d = harness.Daemon(tmp, retries=3, retry_delay=8000,
                           retry_delay_max=8000, log_level="debug",
                           user_agent="range-0")
        state_dir = d.settings["state_dir"]
        # Item 0 has an ETag: its .part is kept and resumed. Item 1 has no
        # validator: its .part cannot be trusted and it is fetched anew.
        job = d.submit([origin.url("/img/0.png?etag=1&cut=1"),
                        origin.url("/img/1.png?cut=1")], dir="r",
                       name="{name}")
        jid = job["id"]

        def waiting():
            items = db_items(state_dir, jid)
            asked = {r[0] for r in origin.snapshot()}
            return (len(items) == 2 and items[0][0] == QUEUED
                    and "/img/1.png" in asked
                    and items[0][2] is not None and items[0][3] is not None
                    and items[1][0] == QUEUED)
        harness.wait_for(waiting, 20, what="item 0 kept for a resume in "
                         "the store")
        items = db_items(state_dir, jid)
        part = os.path.join(d.download_dir, items[0][2])
        half = len(bodies[0]) // 2
        eq(os.path.getsize(part), half, "size of the kept %s" % items[0][2])
        eq(items[0][3], '"v0"', "stored validator")
        kill9(d)

        d.settings["retry_delay"] = 100
        d.settings["retry_delay_max"] = 200
        restart(d, "range-1")
        job = d.wait_job(jid, timeout=30)
        d.stop()
        eq(job["state"], "done", "job state (%r)"
           % [it.get("error") for it in job["items"]])
        later = [r for r in origin.snapshot() if r[1] == "range-1"]
        r0 = [r for r in later if r[0] == "/img/0.png"]
        r1 = [r for r in later if r[0] == "/img/1.png"]
        eq(len(r0), 1, "requests for item 0 after the restart")
        eq((r0[0][2], r0[0][3]), ("bytes=%d-" % half, '"v0"'),
           "Range and If-Range of item 0 after the restart")
        check(len(r1) == 1 and r1[0][2] is None, "item 1 after the "
              "restart: expected one request without Range, got %r" % r1)
        want = {"r/0.png": bodies[0], "r/1.png": bodies[1]}
        eq(check_disk(d.download_dir, want, "at the end"), set(),
           ".part files at the end")
        eq(harness.files_under(d.download_dir), sorted(want), "files")
    finally:
        origin.stop()


@harness.timeout(120)
def test_kill9_right_after_cancel():
    bodies = {i: harness.png_bytes(16, 16, 90000 + i) for i in range(200)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("cancel")
        d = harness.Daemon(tmp, max_transfers=4, log_level="info",
                           user_agent="cancel-0")
        lost = []
        for k in range(10):
            urls = [origin.url("/img/%d.png?delay=1000" % n)
                    for n in range(k * 20, (k + 1) * 20)]
            jid = d.submit(urls, dir="c%d" % k, name="{name}")["id"]
            harness.wait_for(lambda: d.job(jid)["active"] > 0, 10,
                             what="job %d running" % jid)
            status, _h, job = d.api("DELETE", "/v1/jobs/%d" % jid)
            eq(status, 200, "DELETE /v1/jobs/%d" % jid)
            eq(job["state"], "cancelled", "job %d state in the reply" % jid)
            kill9(d)
            restart(d, "cancel-%d" % (k + 1))
            job = d.job(jid)
            if job["state"] != "cancelled":
                lost.append((jid, job["state"]))
        # Job k is fetched by run k only, until its cancel.
        asked = [r for r in origin.snapshot()
                 if int(r[0][5:-4]) // 20 != int(r[1].split("-")[1])]
        d.stop()
        check(not lost, "cancelled jobs (200 to DELETE) running again after "
              "kill -9 and a restart: %r" % lost)
        eq(asked, [], "requests after the cancels and restarts")
    finally:
        origin.stop()


def _wait_file(root, rel, timeout=10):
    harness.wait_for(lambda: os.path.exists(os.path.join(root, rel)),
                     timeout, what=rel)


@harness.timeout(120)
def test_kill9_leaves_no_stray_part():
    bodies = {i: harness.png_bytes(600, 400, 80000 + i) for i in range(3)}
    origin = CountingOrigin(bodies)
    try:
        tmp = harness.fresh_dir("stray")
        d = harness.Daemon(tmp, log_level="debug", user_agent="stray-0")
        dl = d.download_dir
        # A name made from the time: the next run picks another one.
        j1 = d.submit([origin.url("/img/0.png?gap=2000")], dir="t",
                      name="{time}-{name}")
        # Two items of one name at once: the second writes "same-1.png.part";
        # after the restart it is alone and may write "same.png.part".
        j2 = d.submit([origin.url("/img/1.png?gap=1000"),
                       origin.url("/img/2.png?delay=300&gap=6000")],
                      dir="s", name="same.png")
        _wait_file(dl, "s/same.png")
        check(any(p.endswith(".part") for p in harness.files_under(dl)),
              "no .part on disk before the kill: %r"
              % harness.files_under(dl))
        before = harness.files_under(dl)
        kill9(d)
        # A new second for {time}.
        t = int(time.time())
        while int(time.time()) == t:
            time.sleep(0.05)
        restart(d, "stray-1")
        for j in (j1, j2):
            job = d.wait_job(j["id"], timeout=30)
            eq(job["state"], "done", "job %d state" % j["id"])
        d.stop()
        after = harness.files_under(dl)
        print("  # on disk at the kill: %r; at the end: %r" % (before, after))
        parts = [p for p in after if p.endswith(".part")]
        eq(parts, [], ".part files left behind after the kill -9 and a "
           "finished restart")
        eq(len(after), 3, "files at the end")
    finally:
        origin.stop()


if __name__ == "__main__":
    harness.run(globals())
