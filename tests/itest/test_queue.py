#!/usr/bin/env python3
"""Many machines, one queue: imgfetchd daemons sharing a Redis stream, and
the Prometheus metrics.

Every test starts its own redis-server (Debian's) on a free port of
127.0.0.1 in its own directory, with the AOF on and fsynced at every
write, and real daemons, nginx and the test origin on loopback. Skipped
without redis-server.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402


class Redis:
    """redis-server on 127.0.0.1:port in dir, AOF on (appendfsync always)."""

    def __init__(self, port=None, dir=None):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            raise harness.Skip("redis-server is not installed")
        self.dir = dir or harness.fresh_dir("redis")
        self.port = port or harness.free_port()
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        harness._live.append(self)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def cmd(self, *args):
        """One command over RESP; the reply as Python values."""
        s = socket.create_connection(("127.0.0.1", self.port), 5)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read(f) for _ in range(n)]
        raise RuntimeError("redis: bad reply %r" % line)

    def results(self, stream="imgfetch:results"):
        """The results stream: a list of {"queue_id", "node", "job"}."""
        out = []
        for _id, fields in self.cmd("XRANGE", stream, "-", "+"):
            d = dict(zip(fields[::2], fields[1::2]))
            d["job"] = json.loads(d["job"])
            out.append(d)
        return out

    def pending(self, stream="imgfetch:jobs", group="imgfetchd"):
        return self.cmd("XPENDING", stream, group)[0]

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in harness._live:
            harness._live.remove(self)
        if not self.logf.closed:
            self.logf.close()


def node(tmp, name, redis, dl, **extra):
    """A daemon sharing the queue (and the download directory dl)."""
    conf = dict(queue=redis.url, node=name, download_dir=dl,
                queue_low_water=50, queue_batch=1, max_transfers=8)
    conf.update(extra)
    return harness.Daemon(os.path.join(tmp, name), **conf)


def shared(d, body):
    """POST a shared job; returns its stream entry id."""
    body = dict(body, shared=True)
    status, _h, data = d.api("POST", "/v1/jobs", body)
    eq(status, 202, "shared submit status (%r)" % (data,))
    check(re.fullmatch(r"\d+-\d+", data.get("queue_id", "")) is not None,
          "queue_id in %r" % (data,))
    return data["queue_id"]


def wait_results(redis, n, timeout, what):
    """Until the results stream holds n entries and nothing is pending."""
    harness.wait_for(
        lambda: redis.cmd("XLEN", "imgfetch:results") >= n and
        redis.pending() == 0, timeout, interval=0.2, what=what)
    return redis.results()


def entries_of(dl, sub):
    d = os.path.join(dl, sub)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def files_of(dl, sub):
    """Final names only: a .part may be renamed away between the listing
    and a later stat."""
    return [n for n in entries_of(dl, sub) if not n.endswith(".part")]


def setup():
    global www, corpus, ngx
    www = harness.fresh_dir("www")
    corpus = harness.make_corpus(www, small=3000)
    try:
        ngx = harness.Nginx(www)
    except harness.Skip:
        ngx = None


def teardown():
    if ngx is not None:
        ngx.stop()


@harness.timeout(300)
def test_three_nodes_share_thirty_jobs():
    """3 daemons, 30 jobs of 100 images: every image once, every entry
    acknowledged once, 30 results."""
    if ngx is None:
        raise harness.Skip("nginx is not installed")
    redis = Redis()
    tmp = harness.fresh_dir("three")
    dl = os.path.join(tmp, "dl")
    nodes = [node(tmp, "n%d" % i, redis, dl) for i in range(3)]
    ngx.clear_log()
    ids = []
    for j in range(30):
        urls = [ngx.url("/small/%d.png" % (j * 100 + i)) for i in range(100)]
        ids.append(shared(nodes[j % 3], {"urls": urls, "dir": "three",
                                         "name": "{name}"}))
    eq(len(set(ids)), 30, "distinct entry ids")
    results = wait_results(redis, 30, 240, "30 results, nothing pending")
    eq(len(results), 30, "results")
    eq(sorted(r["queue_id"] for r in results), sorted(ids),
       "one result per entry")
    for r in results:
        eq(r["job"]["state"], "done", "job state of %s" % r["queue_id"])
        eq(r["job"]["queue_id"], r["queue_id"], "queue_id in the job")
        eq(r["job"]["node"], r["node"], "node in the job")
    by_node = {}
    for r in results:
        by_node[r["node"]] = by_node.get(r["node"], 0) + 1
    eq(sorted(by_node), ["n0", "n1", "n2"], "nodes that ran jobs")
    # Every image on disk, each fetched once.
    names = entries_of(dl, "three")
    eq(len(names), 3000, "files")
    for k in range(3000):
        with open(os.path.join(dl, "three", "%d.png" % k), "rb") as f:
            check(f.read() == corpus["small/%d.png" % k],
                  "%d.png differs" % k)
    gets = {}
    for r in ngx.requests():
        gets[r["uri"]] = gets.get(r["uri"], 0) + 1
    eq(len(gets), 3000, "URIs requested")
    twice = [u for u, n in gets.items() if n != 1]
    eq(twice, [], "URIs requested more than once")
    # The queue as each node sees it.
    status, _h, q = nodes[0].api("GET", "/v1/queue")
    eq(status, 200, "GET /v1/queue")
    eq((q["length"], q["pending"], q["connected"]), (30, 0, True),
       "length, pending, connected")
    eq(sorted(c["name"] for c in q["consumers"]), ["n0", "n1", "n2"],
       "consumers")
    # Redis shows an entry acknowledged as soon as it ran the script; the
    # node counts it when the reply reaches its loop, a moment later.
    def acked_by_nodes():
        acked = 0
        for d in nodes:
            _s, _h, text = d.api("GET", "/v1/metrics")
            m = re.search(rb"^imgfetchd_queue_acked_total (\d+)$", text,
                          re.M)
            check(m is not None, "acked counter in the metrics")
            acked += int(m.group(1))
            check(b'imgfetchd_node_info{node="%s"'
                  % d.settings["node"].encode() in text,
                  "node name in the metrics")
        return acked
    try:
        harness.wait_for(lambda: acked_by_nodes() >= 30, 10, interval=0.1,
                         what="30 acknowledgements counted by the nodes")
    except AssertionError:
        pass  # the eq below says what was counted
    eq(acked_by_nodes(), 30, "acknowledgements counted by the nodes")
    for d in nodes:
        d.stop()
    redis.kill()


@harness.timeout(300)
def test_a_killed_node_s_entries_are_claimed():
    """kill -9 of a node in the middle of its job: another node claims the
    entry after claim_idle, runs it with existing files kept, and nothing
    is left pending."""
    redis = Redis()
    root = harness.fresh_dir("origin-kill")
    for k in range(80):
        harness.make_png(os.path.join(root, "k%d.png" % k), 8, 8, 5000 + k)
    origin = harness.Origin(root)
    tmp = harness.fresh_dir("kill")
    dl = os.path.join(tmp, "dl")
    a = node(tmp, "a", redis, dl, claim_idle=2, max_transfers=2,
             queue_low_water=5)
    ids = []
    for j in range(4):
        urls = [origin.url("/files/k%d.png?delay=150&key=k%d"
                           % (j * 20 + i, j * 20 + i)) for i in range(20)]
        ids.append(shared(a, {"urls": urls, "dir": "kill", "name": "{name}"}))
    # Some of the first job's files, not all of them.
    harness.wait_for(lambda: len(files_of(dl, "kill")) >= 4, 30,
                     what="a to have fetched some files")
    before = {n: os.stat(os.path.join(dl, "kill", n)).st_ino
              for n in files_of(dl, "kill")}
    check(len(before) < 20, "a finished its job before the kill")
    os.kill(a.pid, signal.SIGKILL)
    a.proc.wait()
    a._forget()
    t_kill = time.monotonic()
    b = node(tmp, "b", redis, dl, claim_idle=2, max_transfers=8,
             queue_low_water=5)
    results = wait_results(redis, 4, 120, "4 results, nothing pending")
    eq(sorted(r["queue_id"] for r in results), sorted(ids),
       "one result per entry")
    check(all(r["node"] == "b" and r["job"]["state"] == "done"
              for r in results), "b ended every job: %r" %
          [(r["node"], r["job"]["state"]) for r in results])
    check(time.monotonic() - t_kill >= 2, "claimed before claim_idle")
    check("claimed from a stopped node" in b.log(), "b says it claimed")
    names = files_of(dl, "kill")
    eq(len(names), 80, "files (no numbered copies)")
    eq([n for n in entries_of(dl, "kill") if n.endswith(".part")], [],
       "no .part left behind")
    for n, ino in before.items():
        eq(os.stat(os.path.join(dl, "kill", n)).st_ino, ino,
           "%s kept, not replaced" % n)
    status, _h, q = b.api("GET", "/v1/queue")
    eq((status, q["pending"]), (200, 0), "nothing pending")
    b.stop()
    origin.stop()
    redis.kill()


@harness.timeout(300)
def test_redis_killed_and_restarted():
    """kill -9 of redis-server (AOF on): local jobs go on, the nodes say so
    once, reconnect when it is back and finish; no entry is lost."""
    redis = Redis()
    root = harness.fresh_dir("origin-redis")
    for k in range(200):
        harness.make_png(os.path.join(root, "r%d.png" % k), 8, 8, 7000 + k)
    origin = harness.Origin(root)
    tmp = harness.fresh_dir("rkill")
    dl = os.path.join(tmp, "dl")
    nodes = [node(tmp, "r%d" % i, redis, dl, queue_low_water=10,
                  max_transfers=4) for i in range(2)]
    ids = []
    for j in range(10):
        urls = [origin.url("/files/r%d.png?delay=40" % (j * 20 + i))
                for i in range(20)]
        ids.append(shared(nodes[j % 2], {"urls": urls, "dir": "rkill",
                                         "name": "{name}"}))
    harness.wait_for(lambda: redis.cmd("XLEN", "imgfetch:results") >= 1,
                     60, interval=0.05, what="a first result")
    redis.kill()
    # Local jobs go on without Redis; shared ones are refused for now.
    local = nodes[0].submit([origin.url("/files/r0.png")], dir="local")
    eq(nodes[0].wait_job(local["id"])["state"], "done", "local job")
    status, hdrs, data = nodes[1].api(
        "POST", "/v1/jobs", {"urls": [origin.url("/files/r1.png")],
                             "shared": True})
    eq(status, 503, "shared job while Redis is down (%r)" % (data,))
    check(hdrs.get("Retry-After") is not None, "Retry-After")
    time.sleep(1.5)
    redis.start()
    results = wait_results(redis, 10, 120, "10 results, nothing pending")
    eq(sorted(r["queue_id"] for r in results), sorted(ids),
       "one result per entry")
    eq(len(entries_of(dl, "rkill")), 200, "files")
    for d in nodes:
        log = d.log()
        eq(log.count("local jobs go on, reconnecting"), 1,
           "%s: the loss said once" % d.settings["node"])
        check("connected again to" in log, "reconnected")
        d.stop()
    origin.stop()
    redis.kill()


@harness.timeout(120)
def test_redis_stopped_is_timed_out():
    """A Redis that takes connections but never answers (SIGSTOP): the
    node drops the connection after queue_timeout and says so once, an
    API request waiting on it gets 503 instead of hanging, local jobs go
    on, and after SIGCONT the node is back and runs shared jobs."""
    if ngx is None:
        raise harness.Skip("nginx is not installed")
    redis = Redis()
    tmp = harness.fresh_dir("stopped")
    dl = os.path.join(tmp, "dl")
    d = node(tmp, "s", redis, dl, queue_timeout=1)
    harness.wait_for(lambda: "connected to" in d.log(), 10,
                     what="the node to connect")
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        status, _h, data = d.api("GET", "/v1/queue", timeout=30)
        waited = time.monotonic() - t0
        eq(status, 503, "GET /v1/queue while Redis is stopped (%r)"
           % (data,))
        check(waited < 15, "answered after %.1f s, not held" % waited)
        harness.wait_for(lambda: "no reply in 1 s" in d.log(), 10,
                         what="the watchdog's message")
        local = d.submit([ngx.url("/a.png"), ngx.url("/b.png")],
                         dir="local")
        eq(d.wait_job(local["id"])["state"], "done",
           "a local job while Redis is stopped")
        status, _h, data = d.api("GET", "/v1/metrics")
        check(sample(data, "imgfetchd_queue_timeouts_total") >= 1,
              "timeouts counted")
        eq(sample(data, "imgfetchd_queue_connected"), 0, "not connected")
        # Reconnects to a stopped server are made by its kernel, then
        # timed out in turn: still said once.
        time.sleep(2.5)
        eq(d.log().count("local jobs go on, reconnecting"), 1,
           "the loss said once")
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    harness.wait_for(lambda: "connected again to" in d.log(), 30,
                     what="the node to reconnect")
    qid = shared(d, {"urls": [ngx.url("/sub/c.png")], "dir": "back",
                     "name": "{name}"})
    harness.wait_for(
        lambda: any(r["queue_id"] == qid for r in redis.results()), 30,
        interval=0.2, what="the result of a job added after SIGCONT")
    eq(entries_of(dl, "back"), ["c.png"], "its file")
    d.stop()
    redis.kill()


@harness.timeout(120)
def test_shared_requests_checked():
    """"shared" is a boolean; the job is checked before it goes to the
    stream; a daemon without a queue says so."""
    tmp = harness.fresh_dir("plain")
    d = harness.Daemon(tmp)
    status, _h, data = d.api("POST", "/v1/jobs", {
        "urls": ["http://127.0.0.1:9/a.png"], "shared": True})
    eq(status, 400, "shared without a queue")
    check("no queue" in data["error"], data["error"])
    status, _h, data = d.api("GET", "/v1/queue")
    eq(status, 404, "GET /v1/queue without a queue")
    p = subprocess.run([harness.binary("IMGFETCH"), "--socket", d.sock,
                        "queue"], capture_output=True, text=True, timeout=30)
    eq(p.returncode, 2, "imgfetch queue without a queue")
    eq(p.stderr, "imgfetch: 404: no queue: set queue in the configuration\n",
       "its message")
    d.stop()
    redis = Redis()
    q = node(harness.fresh_dir("checked"), "c", redis,
             os.path.join(tmp, "dl2"))
    status, _h, data = q.api("POST", "/v1/jobs", {
        "urls": ["http://127.0.0.1:9/a.png"], "shared": "yes"})
    eq(status, 400, "shared as a string")
    eq(data["error"], "shared: must be true or false", "error")
    status, _h, data = q.api("POST", "/v1/jobs", {
        "urls": ["http://127.0.0.1:9/a.png", "ftp://x/y"], "shared": True})
    eq(status, 400, "a bad URL in a shared job")
    check("urls[1]" in data["error"], data["error"])
    eq(redis.cmd("XLEN", "imgfetch:jobs"), 0, "nothing on the stream")
    # An entry that is not a job ends at once with an error as its result.
    bad = redis.cmd("XADD", "imgfetch:jobs", "*", "job", "{\"urls\": 5}")
    results = wait_results(redis, 1, 30, "a result for the bad entry")
    eq(results[0]["queue_id"], bad, "result of the bad entry")
    eq(results[0]["job"]["state"], "failed", "its state")
    check("urls" in results[0]["job"]["error"], results[0]["job"]["error"])
    q.stop()
    redis.kill()


def test_client_shared():
    """imgfetch add --shared puts the job on the stream (printing its
    entry) and a node runs it; --wait is refused for such a job."""
    if ngx is None:
        raise harness.Skip("nginx is not installed")
    redis = Redis()
    tmp = harness.fresh_dir("client-shared")
    dl = os.path.join(tmp, "dl")
    q = node(tmp, "cs", redis, dl)
    names = sorted(corpus)[:3]
    argv = [harness.binary("IMGFETCH"), "--socket", q.sock, "add",
            "--shared", "--dir", "cs", "--name", "{name}"]
    p = subprocess.run(argv + [ngx.url("/" + n) for n in names],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "exit status (stderr %r)" % p.stderr)
    m = re.fullmatch(r"queued on imgfetch:jobs as (\d+-\d+)\n", p.stdout)
    check(m is not None, "output %r" % p.stdout)
    results = wait_results(redis, 1, 30, "the shared job's result")
    eq(results[0]["queue_id"], m.group(1), "the result's entry")
    eq(results[0]["job"]["state"], "done", "the job's state")
    eq(entries_of(dl, "cs"), sorted(os.path.basename(n) for n in names),
       "files")
    p = subprocess.run(argv + ["--wait", ngx.url("/" + names[0])],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 2, "--shared --wait")
    check("--wait" in p.stderr, "message %r" % p.stderr)
    eq(redis.cmd("XLEN", "imgfetch:jobs"), 1, "nothing more on the stream")
    # imgfetch queue: the stream as the node sees it, as text and JSON.
    base = [harness.binary("IMGFETCH"), "--socket", q.sock]
    p = subprocess.run(base + ["queue"], capture_output=True, text=True,
                       timeout=30)
    eq(p.returncode, 0, "queue exit status (stderr %r)" % p.stderr)
    lines = p.stdout.splitlines()
    eq(lines[:2], ["stream imgfetch:jobs, group imgfetchd: 1 entry, "
                   "0 pending", "this node: cs, running 0"],
       "queue output %r" % p.stdout)
    check(len(lines) == 3 and re.fullmatch(
        r"  cs +0 pending, idle \d+s", lines[2]) is not None,
        "the consumer line in %r" % p.stdout)
    p = subprocess.run(base + ["--json", "queue"], capture_output=True,
                       text=True, timeout=30)
    eq(p.returncode, 0, "queue --json exit status")
    data = json.loads(p.stdout)
    eq((data["length"], data["pending"], data["node"]), (1, 0, "cs"),
       "queue --json")
    eq([c["name"] for c in data["consumers"]], ["cs"], "consumers")
    q.stop()
    redis.kill()


def promtool_check(text):
    """promtool check metrics on an exposition (skipped without it)."""
    exe = shutil.which("promtool")
    if exe is None:
        return
    p = subprocess.run([exe, "check", "metrics"], input=text,
                       capture_output=True, timeout=30)
    eq(p.returncode, 0, "promtool check metrics: %s%s"
       % (p.stdout.decode(), p.stderr.decode()))


def sample(text, name):
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", text, re.M)
    check(m is not None, "%s in the metrics" % name)
    return float(m.group(1))


@harness.timeout(120)
def test_metrics():
    """GET /v1/metrics: the Prometheus text format (promtool), values that
    follow the work, and the metrics_listen listener serving only it."""
    origin, _files, _root = harness.corpus_origin(small=5)
    port = harness.free_port()
    d = harness.Daemon(harness.fresh_dir("metrics"), node="m1",
                       metrics_listen="127.0.0.1:%d" % port)
    status, hdrs, text = d.api("GET", "/v1/metrics")
    eq(status, 200, "GET /v1/metrics")
    check(hdrs["Content-Type"].startswith("text/plain; version=0.0.4"),
          hdrs["Content-Type"])
    promtool_check(text)
    eq(sample(text, 'imgfetchd_items{state="done"}'), 0, "done before")
    check(b'imgfetchd_node_info{node="m1",version=' in text, "node info")
    urls = [origin.url("/files/small/%d.png" % i) for i in range(5)]
    urls.append(origin.url("/status/404"))
    job = d.submit(urls)
    d.wait_job(job["id"])
    _s, _h, text = d.api("GET", "/v1/metrics")
    promtool_check(text)
    eq(sample(text, 'imgfetchd_items{state="done"}'), 5, "done after")
    eq(sample(text, 'imgfetchd_items{state="failed"}'), 1, "failed after")
    eq(sample(text, 'imgfetchd_http_responses_total{code="200"}'), 5,
       "200s")
    eq(sample(text, 'imgfetchd_http_responses_total{code="404"}'), 1,
       "404s")
    check(sample(text, "imgfetchd_bytes_total") > 0, "bytes")
    # The store thread batches what the loop hands it on its own time: a
    # busy one may have put the job and its items in one commit, with the
    # job's end still on its way when the API already says done.
    harness.wait_for(lambda: sample(d.api("GET", "/v1/metrics")[2],
                                    "imgfetchd_store_commit_seconds_count")
                     >= 2, 10, interval=0.1, what="store commits timed")
    # The lag probe fires every 250 ms.
    harness.wait_for(lambda: sample(d.api("GET", "/v1/metrics")[2],
                                    "imgfetchd_loop_lag_seconds_count") >= 2,
                     10, interval=0.1, what="the loop-lag probe")
    for family in (b"imgfetchd_transfers_active", b"imgfetchd_retries_total",
                   b"imgfetchd_writer_backlog_bytes"):
        check(b"# TYPE " + family in text, family.decode())
    check(b"imgfetchd_queue_" not in text, "no queue metrics without queue")
    # The TCP listener: the same exposition, and nothing else.
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/metrics" % port,
                                timeout=10) as r:
        eq(r.status, 200, "TCP /v1/metrics")
        tcp = r.read()
    promtool_check(tcp)
    eq(sample(tcp, 'imgfetchd_items{state="done"}'), 5, "done over TCP")
    for path in ("/v1/status", "/v1/jobs", "/"):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                   timeout=10)
            check(False, "%s answered over TCP" % path)
        except urllib.error.HTTPError as e:
            eq(e.code, 404, "TCP %s" % path)
    d.stop()
    origin.stop()


if __name__ == "__main__":
    harness.run(globals())
