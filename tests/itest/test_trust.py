"""Trust: who may do what, where the daemon may connect, politeness.

Job owners and cancel rights with two real uids (a user made with useradd
for the test, requests made from a child process running as that user);
private_jobs; deny_networks and allow_networks checked on the address
actually connected to, redirects included; host_rate per host.
"""

import http.server
import json
import os
import pwd
import shutil
import socketserver
import sqlite3
import subprocess
import threading
import time

import harness
from harness import Skip, check, eq

O = None
FILES = {}
USER = "ifdtrust%d" % (os.getpid() % 100000)
UID = GID = None
# The requests as the test user run in the system's Python, which any
# user may run (a Python under root's home may not be reachable).
PYTHON = "/usr/bin/python3"


class TinyServer:
    """A real HTTP server on another loopback address (127.0.0.2, ...),
    serving one PNG at every path and counting the requests."""

    def __init__(self, host, body):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = Server((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def setup():
    global O, FILES
    O, FILES, _root = harness.corpus_origin(small=40)


def teardown():
    if O is not None:
        O.stop()
    if UID is not None:
        subprocess.run(["userdel", USER], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


# ------------------------------------------------------------ who may do what

# Run in a child as the test user: one request on the daemon's socket.
CLIENT = r"""
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
c = C("localhost", timeout=10)
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
h = {"Content-Type": "application/json"} if body else {}
c.request(sys.argv[2], sys.argv[3], body=body, headers=h)
r = c.getresponse()
raw = r.read()
print(json.dumps({"status": r.status, "body": raw.decode()}))
"""


def make_user():
    """The test user (made once): its uid, gid. Skips when impossible."""
    global UID, GID
    if UID is not None:
        return UID, GID
    if os.geteuid() != 0:
        raise Skip("needs root to add a user and switch to it")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        raise Skip("useradd/userdel missing")
    subprocess.run(["userdel", USER], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    p = subprocess.run(["useradd", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER],
                       capture_output=True, text=True)
    check(p.returncode == 0, "useradd failed: %s" % p.stderr)
    pw = pwd.getpwnam(USER)
    UID, GID = pw.pw_uid, pw.pw_gid
    if not os.path.exists(PYTHON):
        raise Skip("%s missing: the client for %s" % (PYTHON, USER))
    return UID, GID


def as_user(d, method, path, body=None):
    """One request as the test user: (status, parsed body)."""
    uid, gid = UID, GID

    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    args = [PYTHON, "-c", CLIENT, d.sock, method, path]
    if body is not None:
        args.append(json.dumps(body))
    p = subprocess.run(args, capture_output=True, text=True, timeout=20,
                       preexec_fn=drop)
    check(p.returncode == 0, "client as %s failed: %s" % (USER, p.stderr))
    out = json.loads(p.stdout)
    try:
        data = json.loads(out["body"])
    except ValueError:
        data = out["body"]
    return out["status"], data


def open_path(path):
    """Let other users reach a socket below path's directories."""
    p = os.path.dirname(path)
    while p not in ("/", ""):
        os.chmod(p, os.stat(p).st_mode | 0o011)
        p = os.path.dirname(p)


def slow_urls(n, key):
    """URLs that take a while, so their job is still running."""
    return [O.url("/files/small/%d.png?delay=3000&key=%s" % (i, key))
            for i in range(n)]


def test_owner_and_cancel():
    make_user()
    tmp = harness.fresh_dir("owners")
    open_path(os.path.join(tmp, "sock"))
    d = harness.Daemon(tmp, socket_mode="0666", max_transfers=2)
    root_job = d.submit(slow_urls(4, "r"), dir="r", name="{n}.png")
    eq(root_job["owner"], {"uid": 0, "user": "root"}, "root's job owner")

    st, mine = as_user(d, "POST", "/v1/jobs",
                       {"urls": slow_urls(4, "u"), "dir": "u",
                        "name": "{n}.png"})
    eq(st, 202, "submit as %s: %r" % (USER, mine))
    eq(mine["owner"], {"uid": UID, "user": USER}, "user's job owner")
    eq(d.job(mine["id"])["owner"], {"uid": UID, "user": USER},
       "owner as root sees it")

    # Without private_jobs every job is listed for everyone.
    st, lst = as_user(d, "GET", "/v1/jobs")
    eq(st, 200, "list as user")
    eq(sorted(j["id"] for j in lst["jobs"]),
       sorted([root_job["id"], mine["id"]]), "jobs the user lists")

    # Not the user's job: 403, naming the owner; the job goes on.
    st, err = as_user(d, "DELETE", "/v1/jobs/%d" % root_job["id"])
    eq(st, 403, "user cancels root's job: %r" % (err,))
    eq(err, {"error": "job %d belongs to uid 0 (root)" % root_job["id"]},
       "403 body")
    check(d.job(root_job["id"])["state"] in ("queued", "running"),
          "root's job was touched")

    # The user's own job: cancelled.
    st, got = as_user(d, "DELETE", "/v1/jobs/%d" % mine["id"])
    eq(st, 200, "user cancels own job: %r" % (got,))
    eq(got["state"], "cancelled", "user's job state")

    # Root may cancel anyone's job.
    st, other = as_user(d, "POST", "/v1/jobs",
                        {"urls": slow_urls(2, "v"), "dir": "v"})
    eq(st, 202, "second submit as user")
    status, _h, got = d.api("DELETE", "/v1/jobs/%d" % other["id"])
    eq(status, 200, "root cancels the user's job")
    eq(got["state"], "cancelled", "state after root's cancel")
    eq(got["owner"]["uid"], UID, "owner kept")
    d.stop()

    # Owners survive a restart (the store keeps them); private_jobs now.
    harness.write_config(d.confpath, dict(d.settings, private_jobs=True))
    d.start()
    eq(d.job(mine["id"])["owner"], {"uid": UID, "user": USER},
       "owner after restart")
    eq(d.job(root_job["id"])["owner"], {"uid": 0, "user": "root"},
       "root's owner after restart")

    st, lst = as_user(d, "GET", "/v1/jobs")
    eq(st, 200, "private list")
    eq(sorted(j["id"] for j in lst["jobs"]),
       sorted([mine["id"], other["id"]]), "only the user's jobs listed")
    status, _h, all_jobs = d.api("GET", "/v1/jobs")
    eq(len(all_jobs["jobs"]), 3, "root lists every job")

    rid = root_job["id"]
    for method, path in (("GET", "/v1/jobs/%d" % rid),
                         ("GET", "/v1/jobs/%d/events" % rid),
                         ("DELETE", "/v1/jobs/%d" % rid)):
        st, err = as_user(d, method, path)
        eq(st, 404, "%s %s as user" % (method, path))
        eq(err, {"error": "no such job: %d" % rid}, "as if absent")
    st, got = as_user(d, "GET", "/v1/jobs/%d" % mine["id"])
    eq(st, 200, "user sees own job")

    st, stat = as_user(d, "GET", "/v1/status")
    eq(st, 200, "status as user")
    eq(stat["scope"], "own", "user's status scope")
    eq(stat["jobs"], 2, "user's status job count")
    eq(stat["items"]["cancelled"], 6, "user's cancelled items")
    status, _h, stat = d.api("GET", "/v1/status")
    eq(stat["scope"], "all", "root's status scope")
    eq(stat["jobs"], 3, "root's status job count")
    d.stop()

    # A job stored before owners were kept has none: only root cancels it.
    db = sqlite3.connect(os.path.join(tmp, "state", "imgfetchd.db"))
    db.execute("UPDATE jobs SET owner_uid = NULL, owner_user = NULL"
               " WHERE id = ?", (rid,))
    db.commit()
    db.close()
    harness.write_config(d.confpath, dict(d.settings, private_jobs=False))
    d.start()
    eq(d.job(rid)["owner"], None, "unowned job's owner")
    st, err = as_user(d, "DELETE", "/v1/jobs/%d" % rid)
    eq(st, 403, "user cancels an unowned job")
    check("has no owner" in err["error"], "403 says why: %r" % err)
    status, _h, got = d.api("DELETE", "/v1/jobs/%d" % rid)
    eq(status, 200, "root cancels an unowned job")
    eq(got["state"], "cancelled", "unowned job cancelled")
    d.stop()


# --------------------------------------------------- where it may connect

def key_times(key):
    """Arrival times (ms) of the origin's requests made with key=KEY."""
    status, body = O._get("GET", "/keys/" + key)
    eq(status, 200, "origin /keys status")
    return [e["t"] for e in json.loads(body)["log"]]


def item_of(job):
    eq(len(job["items"]), 1, "items")
    return job["items"][0]


def test_name_resolving_to_denied_address():
    d = harness.Daemon(harness.fresh_dir("deny-name"),
                       deny_networks=["127.0.0.0/8", "::1/128"],
                       retries=3, retry_delay=10)
    O.reset_stats()
    url = "http://localhost:%d/files/a.png" % O.port
    job = d.wait_job(d.submit([url], dir="n")["id"])
    it = item_of(job)
    eq(it["state"], "failed", "item state")
    check(it["error"] in ("address 127.0.0.1 is denied by deny_networks",
                          "address ::1 is denied by deny_networks"),
          "error %r" % it["error"])
    eq(it["attempts"], 1, "a denied address is not retried")
    eq(O.stats()["requests"], 0, "requests that reached the origin")
    eq(harness.files_under(d.download_dir), [], "files written")

    # The same URL by address: 127.0.0.1 is as denied as its name.
    job = d.wait_job(d.submit([O.url("/files/a.png")], dir="a")["id"])
    eq(item_of(job)["error"], "address 127.0.0.1 is denied by "
       "deny_networks", "by address")
    d.stop()

    # Control: without the list the same URL is fetched.
    d = harness.Daemon(harness.fresh_dir("deny-none"))
    job = d.wait_job(d.submit([url], dir="n", name="a.png")["id"])
    eq(item_of(job)["state"], "done", "without deny_networks")
    check(harness.read_file(d.path("n/a.png")) == FILES["a.png"],
          "file differs")
    d.stop()


def test_ipv4_mapped_is_checked_as_ipv4():
    url = "http://[::ffff:127.0.0.1]:%d/files/a.png" % O.port
    d = harness.Daemon(harness.fresh_dir("mapped-ok"))
    job = d.wait_job(d.submit([url], dir="m", name="a.png")["id"])
    d.stop()
    if item_of(job)["state"] != "done":
        raise Skip("no IPv6 to reach ::ffff:127.0.0.1 here: %s"
                   % item_of(job).get("error"))
    d = harness.Daemon(harness.fresh_dir("mapped-deny"),
                       deny_networks=["127.0.0.0/8"])
    job = d.wait_job(d.submit([url], dir="m")["id"])
    eq(item_of(job)["error"], "address ::ffff:127.0.0.1 is denied by "
       "deny_networks", "mapped address")
    d.stop()


def test_redirect_to_denied_address():
    body = FILES["a.png"]
    try:
        denied = TinyServer("127.0.0.2", body)
        allowed = TinyServer("127.0.0.3", body)
    except OSError as e:
        raise Skip("cannot bind 127.0.0.2/3: %s" % e)
    try:
        d = harness.Daemon(harness.fresh_dir("deny-redirect"),
                           allow_networks=["127.0.0.1/32", "127.0.0.2/32",
                                           "127.0.0.3/32"],
                           deny_networks=["127.0.0.2/32"],
                           retries=2, retry_delay=10)
        to_denied = O.url("/redirect-abs?to=" + denied.url("/x.png"))
        to_allowed = O.url("/redirect-abs?to=" + allowed.url("/y.png"))
        job = d.wait_job(d.submit([to_denied], dir="d")["id"])
        it = item_of(job)
        eq(it["state"], "failed", "redirect to a denied address")
        eq(it["error"], "address 127.0.0.2 is denied by deny_networks",
           "error")
        eq(it["attempts"], 1, "not retried")
        eq(denied.requests, 0, "requests that reached 127.0.0.2")

        # The same redirect to an allowed address is followed.
        job = d.wait_job(d.submit([to_allowed], dir="a",
                                  name="y.png")["id"])
        eq(item_of(job)["state"], "done", "redirect to an allowed address")
        eq(allowed.requests, 1, "requests that reached 127.0.0.3")
        check(harness.read_file(d.path("a/y.png")) == body, "file differs")

        # Not in allow_networks: 127.0.0.4 is outside the list.
        job = d.wait_job(d.submit(
            [O.url("/redirect-abs?to=http://127.0.0.4:%d/z.png"
                   % allowed.port)], dir="z")["id"])
        eq(item_of(job)["error"], "address 127.0.0.4 is not in "
           "allow_networks", "outside allow_networks")
        d.stop()

        # Control: without the lists the redirect reaches 127.0.0.2.
        d = harness.Daemon(harness.fresh_dir("deny-redirect-none"))
        job = d.wait_job(d.submit([to_denied], dir="d")["id"])
        eq(item_of(job)["state"], "done", "control redirect")
        eq(denied.requests, 1, "control reached 127.0.0.2")
        d.stop()
    finally:
        denied.stop()
        allowed.stop()


def test_reload_changes_networks():
    tmp = harness.fresh_dir("deny-reload")
    d = harness.Daemon(tmp)
    job = d.wait_job(d.submit([O.url("/files/a.png")], dir="1")["id"])
    eq(item_of(job)["state"], "done", "before the reload")
    harness.write_config(d.confpath,
                         dict(d.settings, deny_networks=["127.0.0.1"]))
    os.kill(d.pid, 1)
    harness.wait_for(lambda: "configuration reloaded" in d.log(), 10,
                     what="reload")
    # A new connection is needed: a kept one was allowed when opened.
    job = d.wait_job(d.submit(
        ["http://127.0.0.1:%d/files/b.png" % O.port,
         "http://localhost:%d/files/a.png" % O.port], dir="2")["id"])
    errors = [i.get("error") for i in job["items"]]
    check(any(e == "address 127.0.0.1 is denied by deny_networks"
              for e in errors), "errors after the reload: %r" % errors)
    d.stop()


# ----------------------------------------------------------------- politeness

@harness.timeout(120)
def test_host_rate():
    d = harness.Daemon(harness.fresh_dir("rate"), host_rate=10.0,
                       max_transfers=8)
    # Same origin, two host keys: "localhost:PORT" and "127.0.0.1:PORT".
    slow_host = ["http://localhost:%d/files/small/%d.png?key=slow"
                 % (O.port, i) for i in range(20)]
    other_host = [O.url("/files/small/%d.png?key=other" % i)
                  for i in range(3)]
    t0 = time.monotonic()
    slow = d.submit(slow_host, dir="slow", name="{n}.png")
    other = d.submit(other_host, dir="other", name="{n}.png")
    other = d.wait_job(other["id"], interval=0.01)
    t_other = time.monotonic() - t0
    behind = d.job(slow["id"])
    slow = d.wait_job(slow["id"], interval=0.01)
    t_slow = time.monotonic() - t0
    print("  # 20 items at host_rate 10: %.2fs; 3 items on another host, "
          "submitted after them: %.2fs" % (t_slow, t_other))
    eq(slow["done"], 20, "rate-limited job done")
    eq(other["done"], 3, "other host's job done")
    check(t_slow >= 1.85, "rate-limited job took only %.2fs" % t_slow)
    # The other host's three starts take 0.2 s at its own rate: they do
    # not wait behind the 20 items parked for the first host, which would
    # take 2 s. The rest of the bound is for a slow (sanitized) daemon on
    # a busy machine.
    check(t_other < 1.5, "other host's job took %.2fs (the limited one "
          "%.2fs)" % (t_other, t_slow))
    check(behind["done"] < 15, "limited job had %d of 20 done when the "
          "other one ended" % behind["done"])
    # The origin saw each host's requests spaced 1/10 s apart (as they
    # arrive: a new connection or a slow moment may shift one a little).
    for key, n in (("slow", 20), ("other", 3)):
        times = key_times(key)
        eq(len(times), n, "requests of %s" % key)
        gaps = [b - a for a, b in zip(times, times[1:])]
        check(times[-1] - times[0] >= 100 * (n - 1) - 60,
              "%d requests to %s over %d ms" % (n, key,
                                                times[-1] - times[0]))
        check(min(gaps) >= 40, "requests to %s %d ms apart"
              % (key, min(gaps)))
    for i in range(20):
        check(harness.read_file(d.path("slow/%d.png" % i))
              == FILES["small/%d.png" % i], "slow/%d.png differs" % i)

    # Without host_rate the same 20 items take a fraction of that.
    d.stop()
    d = harness.Daemon(harness.fresh_dir("rate-none"), max_transfers=8)
    t0 = time.monotonic()
    job = d.wait_job(d.submit(slow_host, dir="slow",
                              name="{n}.png")["id"], interval=0.01)
    took = time.monotonic() - t0
    print("  # the same 20 items without host_rate: %.2fs" % took)
    eq(job["done"], 20, "unlimited job done")
    check(took < t_slow / 2, "unlimited job took %.2fs" % took)
    d.stop()


def test_host_rate_counts_retries():
    d = harness.Daemon(harness.fresh_dir("rate-retry"), host_rate=5.0,
                       retries=3, retry_delay=1, retry_delay_max=1)
    t0 = time.monotonic()
    job = d.wait_job(d.submit([O.url("/status/503?key=retry")])["id"])
    took = time.monotonic() - t0
    it = item_of(job)
    eq(it["state"], "failed", "item state")
    eq(it["attempts"], 4, "attempts")
    times = key_times("retry")
    eq(len(times), 4, "requests")
    gaps = [b - a for a, b in zip(times, times[1:])]
    print("  # 4 attempts at host_rate 5: %.2fs, gaps %r ms" % (took, gaps))
    check(times[-1] - times[0] >= 540, "4 attempts over %d ms at host_rate "
          "5" % (times[-1] - times[0]))
    check(min(gaps) >= 100, "attempts %d ms apart at host_rate 5"
          % min(gaps))
    d.stop()


def test_host_rate_cancel_and_reload():
    d = harness.Daemon(harness.fresh_dir("rate-cancel"), host_rate=0.5)
    urls = [O.url("/files/small/%d.png?key=parked" % i) for i in range(5)]
    # Parked items of a cancelled job are dropped; nothing else starts.
    job = d.submit(urls, dir="c")
    harness.wait_for(lambda: d.job(job["id"])["done"] == 1, 10,
                     what="first item")
    status, _h, got = d.api("DELETE", "/v1/jobs/%d" % job["id"])
    eq(status, 200, "cancel")
    eq((got["done"], got["cancelled"]), (1, 4), "done and cancelled")
    time.sleep(2.5)
    eq(len(key_times("parked")), 1, "requests after the cancel")

    # A reload to host_rate = 0 lets parked items go at once.
    urls = [O.url("/files/small/%d.png?key=reload" % i) for i in range(5)]
    job = d.submit(urls, dir="r")
    harness.wait_for(lambda: d.job(job["id"])["done"] == 1, 10,
                     what="first item")
    harness.write_config(d.confpath, dict(d.settings, host_rate=0))
    os.kill(d.pid, 1)
    t0 = time.monotonic()
    got = d.wait_job(job["id"], timeout=10, interval=0.01)
    took = time.monotonic() - t0
    eq(got["done"], 5, "done after the reload")
    # At host_rate 0.5 the four parked items would take 6 s or more; the
    # margin below that is for a slow (sanitized) daemon on a busy machine.
    check(took < 3.5, "parked items took %.2fs after the reload" % took)
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
