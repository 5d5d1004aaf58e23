"""Resource faults and limits: a full disk, a read-only directory, running
out of file descriptors, the API's connection cap, idle timeout and slow
clients, descriptor leaks, and (with an ASan build) memory errors and leaks.

The full disk is a 2 MiB tmpfs mounted on the download directory; where
mounting is not allowed (or with IFD_FULLDISK=shim) the LD_PRELOAD shim
tests/failwrite.c ($FAILWRITE) makes writes fail with ENOSPC instead. The
read-only directory needs an unprivileged daemon: as root, the daemon is run
as nobody.

test_asan_no_leaks runs a representative scenario on an ASan+UBSan build of
the daemon and is skipped unless IMGFETCHD_ASAN names one:

    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
    meson compile -C build-asan
    IMGFETCHD_ASAN=$PWD/build-asan/imgfetchd \\
        meson test -C build itest-resources --print-errorlogs

(The whole integration suite can run on that binary too: meson test -C
build-asan --suite integration, with ASAN_OPTIONS=detect_leaks=1.)
"""

import collections
import errno
import os
import pwd
import resource
import socket
import subprocess
import time

import harness
from harness import check, eq

O = None
CORPUS = None


def setup():
    global O, CORPUS
    O, CORPUS, _root = harness.corpus_origin(small=100)


def teardown():
    if O is not None:
        O.stop()


def connect(d, timeout=5):
    """A raw connection to the daemon's socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(d.sock)
    return s


STATUS_REQ = b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n"


def answer(s, timeout):
    """The first bytes the daemon sends on s within timeout s: b"" when it
    closed, None when nothing came."""
    s.settimeout(timeout)
    try:
        return s.recv(65536)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""


def fds(pid):
    """What each descriptor of pid points to, as a Counter."""
    out = collections.Counter()
    base = "/proc/%d/fd" % pid
    for fd in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        if target.startswith("socket:"):
            target = "socket"
        elif target.startswith("pipe:"):
            target = "pipe"
        out[target] += 1
    return out


def corpus_urls(rels, query=""):
    return [O.url("/files/%s%s" % (rel, query)) for rel in rels]


def check_files(d, job, rels):
    """Every item of job is done and its file equals the origin's."""
    eq(job["state"], "done", "job %d state (%r)" % (
        job["id"], [it.get("error") for it in job["items"]]))
    for it, rel in zip(job["items"], rels):
        data = harness.read_file(d.path(it["path"]))
        check(data == CORPUS[rel], "%s differs from the origin's %s"
              % (it["path"], rel))


def no_parts(root):
    parts = [p for p in harness.files_under(root) if p.endswith(".part")]
    eq(parts, [], ".part files under %s" % root)


# ---------------------------------------------------------------- disk

@harness.timeout(120)
def test_full_disk_fails_items_and_recovers():
    tmp = harness.fresh_dir("enospc")
    dl = os.path.realpath(os.path.join(tmp, "dl"))
    os.makedirs(dl)
    mounted = False
    env = {}
    why = ""
    if os.environ.get("IFD_FULLDISK") != "shim":
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m",
                            "tmpfs", dl], capture_output=True, text=True)
        mounted = r.returncode == 0
        why = r.stderr.strip()
    flag = os.path.join(tmp, "disk-is-full")
    if not mounted:
        shim = os.environ.get("FAILWRITE")
        if not shim or not os.path.exists(shim):
            raise harness.Skip("cannot mount a tmpfs (%s) and no FAILWRITE "
                               "shim" % why)
        env = {"LD_PRELOAD": shim, "FAILWRITE_DIR": dl,
               "FAILWRITE_FLAG": flag}
    print("  # full disk by %s" % ("a 2 MiB tmpfs" if mounted
                                   else "the failwrite shim"))
    d = None
    try:
        d = harness.Daemon(tmp, env=env, download_dir=dl, max_transfers=4)
        small = ["a.png", "b.png", "sub/c.png"]
        if mounted:
            # Bigger than the whole file system.
            job = d.submit(corpus_urls(["big.png"]), dir="big")
            job = d.wait_job(job["id"])
            it = job["items"][0]
            eq((job["state"], it["state"]), ("failed", "failed"),
               "job and item state of big.png on a 2 MiB disk")
            check("No space left on device" in (it.get("error") or ""),
                  "error of big.png: %r" % it.get("error"))
            no_parts(dl)
            check(os.statvfs(dl).f_bfree * os.statvfs(dl).f_bsize
                  > 1900 * 1024, "the failed item's space was not freed")

        # Fill the disk: every item fails, the daemon carries on.
        if mounted:
            with open(os.path.join(dl, "filler"), "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError as e:
                    eq(e.errno, errno.ENOSPC, "filling the disk")
        else:
            open(flag, "w").close()
        job = d.submit(corpus_urls(small), dir="full")
        job = d.wait_job(job["id"])
        eq(job["state"], "failed", "job state on a full disk")
        for it in job["items"]:
            eq(it["state"], "failed", "item %d state on a full disk" % it["n"])
            check("No space left on device" in (it.get("error") or ""),
                  "item %d error on a full disk: %r"
                  % (it["n"], it.get("error")))
        no_parts(dl)
        check(d.alive(), "imgfetchd died on a full disk")
        status, _h, _b = d.api("GET", "/v1/status")
        eq(status, 200, "GET /v1/status on a full disk")

        # Space is back: the next items succeed.
        if mounted:
            os.unlink(os.path.join(dl, "filler"))
        else:
            os.unlink(flag)
        job = d.submit(corpus_urls(small), dir="later")
        check_files(d, d.wait_job(job["id"]), small)
        no_parts(dl)
        check("No space left on device" in d.log(),
              "the failures are not in the log")
        d.stop()
    finally:
        if d is not None and d.alive():
            d.kill()
        if mounted:
            subprocess.run(["umount", dl], check=False)


@harness.timeout(120)
def test_store_failure_refuses_the_job_and_keeps_nothing():
    """When the store cannot write a new job, the submission gets a 500
    naming the problem; the transfers it had already started are dropped
    with their bodies, none of which reached the disk; the daemon stays up
    and takes the next job once the store can write again."""
    for var in ("FAILWRITE", "SLOWDISK"):
        if not os.path.exists(os.environ.get(var, "")):
            raise harness.Skip("no %s shim" % var)
    tmp = harness.fresh_dir("storefail")
    flag = os.path.join(tmp, "store-is-full")
    # Every write takes 150 ms, and a store write then fails while flag
    # exists: the bodies arrive long before the store gives up.
    env = {"LD_PRELOAD": "%s:%s" % (os.environ["SLOWDISK"],
                                    os.environ["FAILWRITE"]),
           "SLOWDISK_MS": "150",
           "FAILWRITE_DIR": os.path.join(tmp, "state"),
           "FAILWRITE_FLAG": flag}
    d = harness.Daemon(tmp, env=env, max_transfers=8)
    try:
        rels = ["small/%d.png" % i for i in range(30, 40)]
        O.reset_stats()
        open(flag, "w").close()
        status, _h, data = d.api("POST", "/v1/jobs", {
            "urls": corpus_urls(rels), "dir": "refused", "name": "{name}"})
        eq(status, 500, "submission while the store cannot write (%r)"
           % data)
        check(isinstance(data, dict) and "could not be stored"
              in data.get("error", ""), "error %r" % data)
        check(O.stats()["requests"] > 0, "no transfer started before the "
              "store failed: the test shows nothing")
        eq(harness.files_under(d.download_dir), [],
           "files of the refused job")
        os.unlink(flag)
        check(d.alive(), "the daemon died")
        job = d.wait_job(d.submit(corpus_urls(rels), dir="kept",
                                  name="{name}")["id"], timeout=60)
        check_files(d, job, rels)
        eq(harness.files_under(d.download_dir),
           sorted("kept/" + os.path.basename(r) for r in rels),
           "files after the store recovered")
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
        d.stop()
    # The refused job's files were all finished with, none left behind.
    check("still open" not in d.log(), "files left open at the stop:\n%s"
          % d.log_tail())


def unprivileged():
    """(uid, gid, preexec) for an unprivileged daemon: nobody when root,
    the current user otherwise."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid(), None
    pw = pwd.getpwnam("nobody")

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return pw.pw_uid, pw.pw_gid, drop


@harness.timeout(120)
def test_read_only_directory_fails_only_its_items():
    uid, gid, drop = unprivileged()
    os.chmod(harness.tmpdir(), 0o711)
    tmp = harness.fresh_dir("eacces")
    dl = os.path.join(tmp, "dl")
    ro = os.path.join(dl, "ro")
    os.makedirs(ro)
    for p in (tmp, dl, ro):
        os.chown(p, uid, gid)
    os.chmod(ro, 0o555)
    d = None
    try:
        d = harness.Daemon(tmp, preexec=drop, max_transfers=4)
        eq(harness.proc_status(d.pid).get("Uid", "").split()[:1], [str(uid)],
           "uid of the daemon")
        # Straight into the read-only directory (the .part cannot be
        # made), and into a new directory below it (mkdir fails).
        j_ro = d.submit(corpus_urls(["a.png", "b.png"]), dir="ro",
                        name="{name}")
        j_sub = d.submit(corpus_urls(["a.png"]), dir="ro/sub")
        rw = ["a.png", "b.png", "sub/c.png"]
        j_rw = d.submit(corpus_urls(rw), dir="rw")
        check_files(d, d.wait_job(j_rw["id"]), rw)
        for j in (j_ro, j_sub):
            job = d.wait_job(j["id"])
            eq(job["state"], "failed", "job into %s" % job["dir"])
            for it in job["items"]:
                eq(it["state"], "failed", "item %d into %s"
                   % (it["n"], job["dir"]))
                check("Permission denied" in (it.get("error") or ""),
                      "item %d into %s: error %r" % (it["n"], job["dir"],
                                                     it.get("error")))
        eq(os.listdir(ro), [], "files in the read-only directory")
        no_parts(dl)
        check(d.alive(), "imgfetchd died")
        d.stop()
    finally:
        if d is not None and d.alive():
            d.kill()
        os.chmod(ro, 0o755)


@harness.timeout(60)
def test_mkdir_error_names_the_directory():
    uid, gid, drop = unprivileged()
    os.chmod(harness.tmpdir(), 0o711)
    tmp = harness.fresh_dir("eacces-name")
    dl = os.path.join(tmp, "dl")
    ro = os.path.join(dl, "ro")
    os.makedirs(ro)
    for p in (tmp, dl, ro):
        os.chown(p, uid, gid)
    os.chmod(ro, 0o555)
    d = None
    try:
        d = harness.Daemon(tmp, preexec=drop)
        job = d.submit(corpus_urls(["a.png"]), dir="ro/sub/deeper",
                       name="{name}")
        it = d.wait_job(job["id"])["items"][0]
        eq(it["state"], "failed", "item state")
        # The directory that could not be made is ro/sub.
        check("mkdir ro/sub: Permission denied" in (it.get("error") or ""),
              "error %r does not name the directory ro/sub" % it.get("error"))
        d.stop()
    finally:
        if d is not None and d.alive():
            d.kill()
        os.chmod(ro, 0o755)


# ---------------------------------------------------------------- descriptors

@harness.timeout(120)
def test_out_of_descriptors_pauses_accepting():
    limit = 64

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    d = harness.Daemon(harness.fresh_dir("emfile"), preexec=low,
               max_api_connections=1000, api_idle_timeout=60,
               log_level="info")
    base = sum(fds(d.pid).values())
    socks = []
    try:
        for _ in range(limit + 40):
            socks.append(connect(d))
        harness.wait_for(lambda: "pausing" in d.log(), 10,
                         what='"pausing" in the log')
        check(d.alive(), "imgfetchd died out of descriptors")
        used = sum(fds(d.pid).values())
        # Paused, not spinning on the listener: about a line a second.
        cpu0, lines0 = harness.cpu_seconds(d.pid), d.log().count("pausing")
        time.sleep(3)
        cpu = harness.cpu_seconds(d.pid) - cpu0
        lines = d.log().count("pausing") - lines0
        print("  # %d descriptors at start, %d when out; in 3 s: %d "
              "\"pausing\" lines, %.2f CPU s" % (base, used, lines, cpu))
        check(d.alive(), "imgfetchd died out of descriptors")
        check(lines <= 5, "%d \"pausing\" lines in 3 s" % lines)
        check(cpu < 0.5, "%.2f CPU s in 3 s while out of descriptors" % cpu)
        line = [ln for ln in d.log().splitlines() if "pausing" in ln][0]
        check("Too many open files" in line, "log line: %r" % line)
    finally:
        for s in socks:
            s.close()
    # Serving again, files included.
    t0 = time.monotonic()
    status, _h, _b = d.api("GET", "/v1/status", timeout=10)
    eq(status, 200, "GET /v1/status after the descriptors came back")
    took = time.monotonic() - t0
    check(took < 3, "first request after the pause took %.1f s" % took)
    job = d.submit(corpus_urls(["a.png", "b.png"]), dir="after")
    check_files(d, d.wait_job(job["id"]), ["a.png", "b.png"])
    d.stop()


@harness.timeout(300)
def test_descriptors_stable_over_5000_items():
    d = harness.Daemon(harness.fresh_dir("fds"), max_transfers=16, workers=2,
               log_level="info")
    at_start = fds(d.pid)
    # 100 slow items use every transfer slot, so that libcurl's connection
    # cache is as full now as it can get later.
    urls = [O.url("/files/small/%d.png?delay=50" % i) for i in range(100)]
    job = d.wait_job(d.submit(urls, dir="first", name="{n}.png")["id"],
                     timeout=60)
    eq(job["state"], "done", "first job")
    time.sleep(0.5)
    after_100 = fds(d.pid)
    urls = [O.url("/files/small/%d.png?i=%d" % (i % 100, i))
            for i in range(5000)]
    job = d.wait_job(d.submit(urls, dir="many", name="{n}.png")["id"],
                     timeout=120, interval=0.2)
    eq((job["state"], job["done"]), ("done", 5000), "5,000-item job")
    time.sleep(0.5)
    after_5000 = fds(d.pid)
    print("  # descriptors: %d at start, %d after 100 items, %d after "
          "5,100 (sockets %d, %d, %d)" % (
              sum(at_start.values()), sum(after_100.values()),
              sum(after_5000.values()), at_start["socket"],
              after_100["socket"], after_5000["socket"]))

    def others(c):
        return {k: v for k, v in c.items() if k != "socket"}
    eq(others(after_5000), others(after_100),
       "descriptors other than sockets after 5,100 items vs. after 100")
    eq(others(after_5000), others(at_start),
       "descriptors other than sockets after 5,100 items vs. at start")
    check(after_5000["socket"] <= after_100["socket"] + 2,
          "sockets: %d after 100 items, %d after 5,100"
          % (after_100["socket"], after_5000["socket"]))
    dl = os.path.realpath(d.download_dir)
    held = [k for k in after_5000 if k.startswith(dl + "/")]
    eq(held, [], "files under the download directory still open")
    d.stop()


def test_threads_are_named():
    # top -H, ps -L and gdb tell the loop, the store and the writers apart.
    d = harness.Daemon(harness.fresh_dir("threads"), workers=3)
    names = sorted(harness.read_file("/proc/%d/task/%s/comm" % (d.pid, t))
                   .decode().strip()
                   for t in os.listdir("/proc/%d/task" % d.pid))
    # The loop keeps the process's name (imgfetchd-asan under ASan).
    loop = os.path.basename(harness.binary("IMGFETCHD"))[:15]
    eq(names, sorted([loop, "store", "writer-0", "writer-1", "writer-2"]),
       "thread names")
    d.stop()


# ---------------------------------------------------------------- API limits

@harness.timeout(60)
def test_connections_over_the_cap_wait():
    d = harness.Daemon(harness.fresh_dir("cap"), max_api_connections=2,
               api_idle_timeout=60)
    a, b = connect(d), connect(d)
    for s in (a, b):
        s.sendall(STATUS_REQ)
        got = answer(s, 5)
        check(got and got.startswith(b"HTTP/1.1 200"), "answer %r" % got)
    c = connect(d)
    c.sendall(STATUS_REQ)
    eq(answer(c, 1.0), None, "answer to a third connection over a cap of 2")
    a.close()
    got = answer(c, 3)
    check(got and got.startswith(b"HTTP/1.1 200"), "answer to the third "
          "connection once one closed: %r" % got)
    b.close()
    c.close()
    d.stop()


@harness.timeout(60)
def test_idle_connections_count_against_the_cap():
    d = harness.Daemon(harness.fresh_dir("capidle"), max_api_connections=2,
               api_idle_timeout=60)
    base = fds(d.pid)["socket"]
    idle = [connect(d) for _ in range(10)]
    time.sleep(0.3)
    held = fds(d.pid)["socket"] - base
    for s in idle:
        s.close()
    check(held <= 2, "imgfetchd holds %d connections that sent nothing "
          "with max_api_connections = 2" % held)
    a, b = connect(d), connect(d)
    time.sleep(0.3)
    c = connect(d)
    c.sendall(STATUS_REQ)
    got = answer(c, 1.0)
    eq(got, None, "answer to a third connection while two connections "
       "(that sent nothing yet) fill a cap of 2")
    a.close()
    got = answer(c, 3)
    check(got and got.startswith(b"HTTP/1.1 200"), "answer once one "
          "closed: %r" % got)
    b.close()
    c.close()
    d.stop()


@harness.timeout(60)
def test_idle_connection_is_closed():
    d = harness.Daemon(harness.fresh_dir("idle"), api_idle_timeout=2)
    # Never a request.
    s = connect(d)
    t0 = time.monotonic()
    eq(answer(s, 10), b"", "idle connection closed")
    took = time.monotonic() - t0
    check(1.5 <= took <= 4.5, "idle connection closed after %.1f s with "
          "api_idle_timeout = 2" % took)
    s.close()
    # Idle after a request.
    s = connect(d)
    s.sendall(STATUS_REQ)
    got = answer(s, 5)
    check(got and got.startswith(b"HTTP/1.1 200"), "answer %r" % got)
    t0 = time.monotonic()
    while got:
        got = answer(s, 10)
        check(got is not None, "kept-alive connection still open after "
              "10 s")
    took = time.monotonic() - t0
    check(1.5 <= took <= 4.5, "kept-alive connection closed after %.1f s"
          % took)
    s.close()
    d.stop()


@harness.timeout(60)
def test_slow_clients_do_not_block_others():
    d = harness.Daemon(harness.fresh_dir("slow"), api_idle_timeout=5)
    half_head = connect(d)
    half_head.sendall(b"GET /v1/sta")
    half_body = connect(d)
    half_body.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{\"urls\": [")
    time.sleep(0.2)
    worst = 0
    for _ in range(10):
        t0 = time.monotonic()
        status, _h, _b = d.api("GET", "/v1/status", timeout=5)
        worst = max(worst, time.monotonic() - t0)
        eq(status, 200, "GET /v1/status beside stalled clients")
        time.sleep(0.1)
    # A loop stuck on a stalled client would hold these requests until
    # api_idle_timeout (5 s); the rest of the bound is for a busy machine.
    check(worst < 1.5, "GET /v1/status took %.2f s beside stalled clients"
          % worst)
    # The stalled ones are dropped after api_idle_timeout.
    t0 = time.monotonic()
    for s in (half_head, half_body):
        got = answer(s, 15)
        while got:
            got = answer(s, 15)
        check(got is not None, "a stalled client still connected after "
              "%.0f s" % (time.monotonic() - t0))
    took = time.monotonic() - t0
    check(took <= 9, "stalled clients closed after %.1f s with "
          "api_idle_timeout = 5" % took)
    check(d.alive(), "imgfetchd died")
    d.stop()


# ---------------------------------------------------------------- sanitizers

@harness.timeout(300)
def test_asan_no_leaks():
    exe = os.environ.get("IMGFETCHD_ASAN")
    if not exe:
        raise harness.Skip("set IMGFETCHD_ASAN to an imgfetchd built with "
                           "-Db_sanitize=address,undefined")
    check(os.access(exe, os.X_OK), "IMGFETCHD_ASAN=%s is not executable"
          % exe)
    env = {"ASAN_OPTIONS": "detect_leaks=1:exitcode=23:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1"}
    tmp = harness.fresh_dir("asan")
    d = harness.Daemon(tmp, exe=exe, env=env, max_transfers=8, retries=1,
               retry_delay=100, log_level="debug")
    rels = ["small/%d.png" % i for i in range(40)] + ["a.png", "noext"]
    ok = d.submit(corpus_urls(rels[:-1])
                  + [O.url("/files/noext?type=image/png")], dir="ok")
    bad = d.submit([O.url("/files/missing.png"),
                    O.url("/files/a.png?type=text/plain"),
                    O.url("/status/503"),
                    O.url("/stream/100000?magic=png&gap=50"),
                    O.url("/files/a.png?delay=50")], dir="bad")
    conn, resp = d.events(bad["id"])
    while harness.read_event(resp) is not None:
        pass
    conn.close()
    check_files(d, d.wait_job(ok["id"], timeout=120), rels)
    eq(d.wait_job(bad["id"], timeout=120)["state"], "failed", "bad job")
    slow = d.submit([O.url("/files/small/%d.png?delay=3000" % i)
                     for i in range(20)], dir="cancel")
    status, _h, _b = d.api("DELETE", "/v1/jobs/%d" % slow["id"])
    eq(status, 200, "DELETE")
    for method, path, body in (("POST", "/v1/jobs", "{bad json"),
                               ("GET", "/v1/nothing", None),
                               ("PUT", "/v1/jobs", None),
                               ("GET", "/v1/jobs/999", None)):
        status, _h, _b = d.api(method, path, body,
                               ctype="application/json")
        check(400 <= status < 500, "%s %s: %d" % (method, path, status))
    # Stopped with items in flight, restored and finished by a second run.
    left = d.submit([O.url("/stream/1000000?magic=png&gap=200&i=%d" % i)
                     for i in range(6)], dir="left")
    harness.wait_for(lambda: d.job(left["id"])["bytes"] > 0 or
                     d.job(left["id"])["active"] > 0, 20,
                     what="items of the last job in flight")
    time.sleep(0.3)
    eq(d.job(left["id"])["state"], "running", "last job before the stop")
    d.stop(timeout=30)
    d.start()
    job = d.wait_job(left["id"], timeout=120)
    eq(job["state"], "done", "job restored after a restart")
    stop_error = None
    try:
        d.stop(timeout=30)
    except AssertionError as e:
        stop_error = e
    log = d.log()
    for needle in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer",
                   "runtime error:"):
        at = log.find(needle)
        check(at == -1, "%r in the daemon's log:\n%s"
              % (needle, log[max(0, at - 200):at + 4000]))
    if stop_error is not None:
        raise stop_error


if __name__ == "__main__":
    harness.run(globals())
