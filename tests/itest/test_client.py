"""Integration tests of the imgfetch client: the real $IMGFETCH binary
against the real daemon on a private socket and the real origin.

Exit statuses checked: 0 every item done, 1 a job with failed or cancelled
items, 2 usage, connection and API errors.
"""

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Daemon, Nginx, binary, check, corpus_origin,  # noqa
                     eq, file_sha256, fresh_dir, make_png, read_file, run,
                     stream_sha256)

origin = None
daemon = None
corpus = None

SUMMARY = re.compile(r"^job (\d+) (\w+): (\d+)/(\d+) done, (\d+) failed, ",
                     re.M)
QUEUED = re.compile(r"^job (\d+): (\d+) (?:items?|pages?) queued$", re.M)
PROGRESS = re.compile(r"^job \d+: \d+/\d+ done, \d+ failed, [0-9.]+ \w*B, "
                      r"[0-9.]+ \w*B/s$", re.M)


def setup():
    global origin, daemon, corpus
    origin, corpus, _root = corpus_origin()
    daemon = Daemon(fresh_dir("daemon"))


def teardown():
    daemon.stop()
    origin.stop()


class Tap:
    """A Unix socket in front of the daemon's that passes every byte on and
    keeps what clients send, so a test can see the form of each request."""

    def __init__(self, target):
        self.sock = os.path.join(fresh_dir("tap"), "sock")
        self.target = target
        self.lock = threading.Lock()
        self.conns = []  # bytes sent on each connection, in accept order
        self.sockets = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.sock)
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.target)
            sent = bytearray()
            with self.lock:
                self.conns.append(sent)
                self.sockets += [down, up]
            threading.Thread(target=self._pipe, args=(down, up, sent),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, None),
                             daemon=True).start()

    def _pipe(self, src, dst, keep):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if keep is not None:
                    with self.lock:
                        keep += data
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def take(self):
        """The requests sent since the last take, oldest first, each as
        (method, target, headers with lower-case names, body)."""
        with self.lock:
            conns = [bytes(c) for c in self.conns]
            for c in self.conns:
                c.clear()
        reqs = []
        for data in conns:
            while True:
                head, sep, rest = data.partition(b"\r\n\r\n")
                if not sep:
                    break
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                n = int(hdrs.get("content-length", "0"))
                method, target, _version = lines[0].split(" ")
                reqs.append((method, target, hdrs, rest[:n]))
                data = rest[n:]
        return reqs

    def posts(self):
        """The POSTs of take(), as (Content-Type, target, headers, body)."""
        return [(h.get("content-type"), t, h, b)
                for m, t, h, b in self.take() if m == "POST"]

    def stop(self):
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()


def env_without_socket(**extra):
    """The environment minus anything that picks a socket, plus extra."""
    env = dict(os.environ)
    env.pop("IMGFETCH_SOCKET", None)
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(extra)
    return env


def cli(*args, sock=True, stdin=None, env=None, cwd=None, timeout=60):
    """Run the client (stdout and stderr pipes); (status, out, err)."""
    argv = [binary("IMGFETCH")]
    if sock:
        argv += ["--socket", daemon.sock]
    argv += list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                       env=env if env is not None else env_without_socket(),
                       cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def cli_ok(*args, **kw):
    rc, out, err = cli(*args, **kw)
    eq(rc, 0, "exit status of imgfetch %s (stderr %r)" % (" ".join(args),
                                                         err))
    return out


def job_id(out):
    m = QUEUED.search(out)
    check(m, "no 'job N: M items queued' line in %r" % out)
    return int(m.group(1))


def summary(out):
    m = SUMMARY.search(out)
    check(m, "no summary line in %r" % out)
    return m


def check_files(jid, want):
    """Every item of the job is done and its file equals want[url]."""
    job = daemon.job(jid)
    for item in job["items"]:
        eq(item["state"], "done", "state of item %d" % item["n"])
        got = read_file(daemon.path(item["path"]))
        check(got == want[item["url"]],
              "item %d (%s): file differs from the origin's"
              % (item["n"], item["path"]))


def test_add_wait_done():
    files = ["a.png", "b.png", "sub/c.png", "big.png"]
    urls = [origin.url("/files/" + f) for f in files]
    out = cli_ok("add", *urls, "--dir", "cli/ok", "--wait")
    jid = job_id(out)
    m = summary(out)
    eq(int(m.group(1)), jid, "job id in the summary")
    eq(m.group(2), "done", "final state in the summary")
    eq((m.group(3), m.group(4), m.group(5)), ("4", "4", "0"),
       "counts in the summary")
    check_files(jid, {u: corpus[f] for u, f in zip(urls, files)})
    # Output is not a terminal: one line per item that ended.
    for n in range(4):
        m = re.search(r"^done %d (\S+)$" % n, out, re.M)
        check(m, "no 'done %d PATH' line in %r" % (n, out))
        check(m.group(1).startswith("cli/ok/"),
              "path of item %d is %r" % (n, m.group(1)))


def test_add_wait_failure():
    good = origin.url("/files/a.png")
    bad = origin.url("/files/missing.png")
    rc, out, err = cli("add", good, bad, "--dir", "cli/fail", "--wait")
    eq(rc, 1, "exit status with a 404 item (stderr %r)" % err)
    check(re.search(r"^failed 1 %s: .+" % re.escape(bad), out, re.M),
          "no 'failed 1 URL: error' line in %r" % out)
    m = summary(out)
    eq(m.group(2), "failed", "final state")
    eq((m.group(3), m.group(5)), ("1", "1"), "done and failed counts")


def test_add_wait_quiet():
    good = [origin.url("/files/a.png"), origin.url("/files/b.png")]
    bad = origin.url("/files/missing.png")
    rc, out, err = cli("add", *good, bad, "--dir", "cli/quiet", "--wait",
                       "--quiet")
    eq(rc, 1, "exit status with a 404 item (stderr %r)" % err)
    check(re.search(r"^failed 2 %s: .+" % re.escape(bad), out, re.M),
          "no 'failed 2 URL: error' line in %r" % out)
    check(not re.search(r"^done ", out, re.M),
          "--quiet printed a line per done item: %r" % out)
    m = summary(out)
    eq(m.group(2), "failed", "final state")
    eq((m.group(3), m.group(5)), ("2", "1"), "done and failed counts")
    # Nothing but the job id, the failure and the summary.
    eq(len(out.strip().splitlines()), 3, "lines of %r" % out)
    job = daemon.job(job_id(out))
    for item, f in zip(job["items"][:2], ["a.png", "b.png"]):
        eq(item["state"], "done", "state of item %d" % item["n"])
        check(read_file(daemon.path(item["path"])) == corpus[f],
              "item %d: file differs from the origin's" % item["n"])


def test_urls_from_stdin_and_file():
    text = ("# images\n\n" + origin.url("/files/a.png") + "\n"
            "   " + origin.url("/files/b.png") + "  \r\n"
            "  # indented comment\n")
    arg = origin.url("/files/noext?type=image/png")
    out = cli_ok("add", "-f", "-", arg, "--dir", "cli/stdin", "--wait",
                 stdin=text)
    jid = job_id(out)
    job = daemon.job(jid)
    eq(sorted(i["url"] for i in job["items"]),
       sorted([origin.url("/files/a.png"), origin.url("/files/b.png"),
               arg]), "URLs of the job")
    check_files(jid, {origin.url("/files/a.png"): corpus["a.png"],
                      origin.url("/files/b.png"): corpus["b.png"],
                      arg: corpus["noext"]})

    listfile = os.path.join(fresh_dir("lists"), "urls.txt")
    with open(listfile, "w") as f:
        f.write(origin.url("/files/sub/c.png") + "\n# end\n")
    out = cli_ok("add", "--file", listfile, "--dir", "cli/file", "--wait")
    job = daemon.job(job_id(out))
    eq([i["url"] for i in job["items"]], [origin.url("/files/sub/c.png")],
       "URLs of the job from a file")

    rc, _out, err = cli("add", "-f", listfile + ".missing")
    eq(rc, 2, "exit status for a missing URL file")
    check("urls.txt.missing" in err, "no file name in %r" % err)
    rc, _out, err = cli("add", "-f", "-", stdin="# nothing\n\n")
    eq(rc, 2, "exit status for no URLs at all")


def test_name_and_header():
    url = origin.url("/files/a.png")
    out = cli_ok("add", url, "--dir", "cli/hdr", "--name", "h{n}.png",
                 "--header", "X-Imgfetch-Test: yes please", "-H",
                 "X-Other:2", "--wait")
    job = daemon.job(job_id(out))
    path = job["items"][0]["path"]
    eq(path, "cli/hdr/h0.png", "path from --dir and --name")
    sent = origin.last_headers()
    eq(sent.get("x-imgfetch-test"), "yes please", "header sent")
    eq(sent.get("x-other"), "2", "second header sent")


def test_json_output():
    url = origin.url("/files/a.png")
    job = json.loads(cli_ok("--json", "add", url, "--dir", "cli/json"))
    check(isinstance(job.get("id"), int), "no id in %r" % job)
    eq(job.get("total"), 1, "total of the job")
    eq(len(job.get("items", [])), 1, "items of the added job")
    final = json.loads(cli_ok("wait", str(job["id"]), "--json"))
    eq(final.get("state"), "done", "state from wait --json")
    eq(final.get("id"), job["id"], "id from wait --json")
    final = json.loads(cli_ok("--json", "add", url, "--dir", "cli/json",
                              "--wait"))
    eq(final.get("state"), "done", "state from add --wait --json")
    # The whole job, items and all, though the stream listed none.
    eq([i.get("state") for i in final.get("items", [])], ["done"],
       "items from add --wait --json")
    st = json.loads(cli_ok("--json", "status"))
    check("version" in st and "items" in st, "status: %r" % st)
    one = json.loads(cli_ok("--json", "status", str(job["id"])))
    eq(one.get("id"), job["id"], "status ID --json")
    check(isinstance(one.get("items"), list), "no items in %r" % one)
    jobs = json.loads(cli_ok("--json", "ls"))
    check(any(j.get("id") == job["id"] for j in jobs.get("jobs", [])),
          "job %d not in ls --json" % job["id"])


def test_urilist_form():
    """A job the uri-list form can carry goes as one: dir and name
    percent-encoded in the query, URLs one a line; the files land where
    the JSON form would have put them."""
    files = ["a.png", "b.png", "sub/c.png"]
    urls = [origin.url("/files/" + f) for f in files]
    d = "cli/list a&b#c%41+d=e?f;g {x} \u00e9\u6f22"
    name = "{n} q&r#s%2B+t=u?v {{lit}} \u00fc.{ext}"
    tap = Tap(daemon.sock)
    try:
        rc, out, err = cli("--socket", tap.sock, "add", *urls, "--dir", d,
                           "--name", name, "--wait", sock=False)
        posts = tap.posts()
    finally:
        tap.stop()
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(len(posts), 1, "POSTs sent")
    ctype, target, hdrs, body = posts[0]
    eq(ctype, "text/uri-list", "Content-Type of the job")
    eq(hdrs.get("prefer"), "return=minimal", "Prefer header")
    eq(body.decode(), "".join(u + "\r\n" for u in urls), "body")
    path, _, query = target.partition("?")
    eq(path, "/v1/jobs", "path of the POST")
    check(re.fullmatch(r"dir=[A-Za-z0-9%._~-]+&name=[A-Za-z0-9%._~-]+",
                       query), "query not fully encoded: %r" % query)
    eq([urllib.parse.unquote(p.partition("=")[2], errors="strict")
        for p in query.split("&")], [d, name], "decoded query")

    jid = job_id(out)
    job = daemon.job(jid)
    eq((job.get("dir"), job.get("name")), (d, name), "dir and name of job")
    want = {u: corpus[f] for u, f in zip(urls, files)}
    check_files(jid, want)
    for n, u in enumerate(urls):
        rel = "%s/%d q&r#s%%2B+t=u?v {lit} \u00fc.png" % (d, n)
        check(read_file(daemon.path(rel)) == want[u],
              "%r: not the file of %s" % (rel, u))
        check(re.search(r"^done %d %s$" % (n, re.escape(rel)), out, re.M),
              "no 'done %d %s' line in %r" % (n, rel, out))
    eq(summary(out).group(2), "done", "final state in the summary")


def test_json_fallback():
    """What the uri-list form cannot carry goes as JSON: headers, and URLs
    its parser would trim or skip; a refused list is asked again as JSON,
    so errors name urls[i] as they always have."""
    url = origin.url("/files/a.png")
    tap = Tap(daemon.sock)
    try:
        def add(*args):
            rc, out, err = cli("--socket", tap.sock, "add", *args,
                               sock=False)
            return rc, out, err, [(p[0], p[3]) for p in tap.posts()]

        rc, out, err, posts = add(url, "--dir", "cli/fb", "--name", "h.png",
                                  "-H", "X-Fallback: 1", "--wait")
        eq(rc, 0, "exit status with a header (stderr %r)" % err)
        eq([p[0] for p in posts], ["application/json"], "forms sent")
        body = json.loads(posts[0][1])
        eq(body, {"urls": [url], "dir": "cli/fb", "name": "h.png",
                  "headers": {"X-Fallback": "1"}}, "JSON body")
        eq(origin.last_headers().get("x-fallback"), "1", "header sent")
        eq(read_file(daemon.path("cli/fb/h.png")), corpus["a.png"],
           "file fetched with a header")

        # Lines the list would skip or trim: sent as JSON, refused there.
        for bad, why in (("#" + url, "urls[1]: not an absolute"),
                         (" " + url, "urls[1]: URL contains a space"),
                         ("", "urls[1]: empty URL")):
            rc, out, err, posts = add(url, bad)
            eq(rc, 2, "exit status for %r" % bad)
            check(err.startswith("imgfetch: 400: " + why),
                  "message for %r: %r" % (bad, err))
            eq([p[0] for p in posts], ["application/json"],
               "forms sent for %r" % bad)
            eq(out, "", "stdout for %r" % bad)

        # Refused as a list, then as JSON: the user sees the JSON answer.
        for args, why in (([url, "ftp://h/x.png"], "urls[1]: unsupported"),
                          ([url, "--dir", "../up"], "dir: \"..\"")):
            rc, out, err, posts = add(*args)
            eq(rc, 2, "exit status for %r" % args)
            check(err.startswith("imgfetch: 400: " + why),
                  "message for %r: %r" % (args, err))
            eq(err.count("\n"), 1, "lines of %r" % err)
            eq([p[0] for p in posts], ["text/uri-list", "application/json"],
               "forms sent for %r" % args)
    finally:
        tap.stop()
    check("line 2: unsupported scheme" in daemon.log(),
          "the daemon did not refuse line 2 of a list")


def test_ls_and_status():
    url = origin.url("/files/a.png")
    jid = job_id(cli_ok("add", url, "--dir", "cli/ls", "--wait"))
    out = cli_ok("ls")
    line = [l for l in out.splitlines() if l.split()[:1] == [str(jid)]]
    eq(len(line), 1, "lines for job %d in %r" % (jid, out))
    fields = line[0].split()
    eq(fields[1], "done", "state in ls")
    eq(fields[2], "1/0/1", "done/failed/total in ls")
    out = cli_ok("ls", "--state", "done")
    check(str(jid) in [l.split()[0] for l in out.splitlines() if l],
          "job %d missing from ls --state done" % jid)
    out = cli_ok("ls", "--state", "failed")
    check(str(jid) not in [l.split()[0] for l in out.splitlines() if l],
          "done job %d listed by ls --state failed" % jid)

    out = cli_ok("status")
    check(re.search(r"^imgfetchd \S+, up ", out, re.M), "status: %r" % out)
    check(re.search(r"^jobs: \d+$", out, re.M), "status: %r" % out)
    check(re.search(r"^items: \d+ queued, \d+ active, \d+ done", out, re.M),
          "status: %r" % out)
    out = cli_ok("status", str(jid))
    check(out.startswith("job %d: done, 1/1 done, 0 failed" % jid),
          "status ID: %r" % out)
    path = daemon.job(jid)["items"][0]["path"]
    check(re.search(r"^\s+0\s+done\s.*\s%s$" % re.escape(path), out, re.M),
          "no item line with %s in %r" % (path, out))


def test_cancel():
    urls = [origin.url("/files/a.png?delay=20000&n=%d" % i)
            for i in range(4)]
    jid = job_id(cli_ok("add", *urls, "--dir", "cli/cancel"))
    out = cli_ok("cancel", str(jid))
    check(re.match(r"^job %d: (cancelled|running|queued)$" % jid, out),
          "cancel output %r" % out)
    daemon.wait_job(jid, timeout=10)
    rc, out, err = cli("wait", str(jid))
    eq(rc, 1, "wait on a cancelled job (stderr %r)" % err)
    eq(summary(out).group(2), "cancelled", "state in the summary")
    rc, out, err = cli("cancel", "999999")
    eq(rc, 2, "cancel of an unknown job")
    check(err.startswith("imgfetch: 404: "), "message %r" % err)


def test_api_errors():
    rc, out, err = cli("add", "ftp://example.com/x.png")
    eq(rc, 2, "exit status for a refused URL")
    check(re.match(r"^imgfetch: 400: .*urls\[0\]", err),
          "message %r" % err)
    rc, out, err = cli("add", origin.url("/files/a.png"), "--dir", "../up")
    eq(rc, 2, "exit status for an unsafe dir")
    check(err.startswith("imgfetch: 400: "), "message %r" % err)
    for cmd in ("wait", "status"):
        rc, out, err = cli(cmd, "999999")
        eq(rc, 2, "%s of an unknown job" % cmd)
        check(err.startswith("imgfetch: 404: "), "message %r" % err)


def test_no_daemon():
    sock = os.path.join(fresh_dir("nodaemon"), "none.sock")
    for args in (["status"], ["ls"], ["wait", "1"],
                 ["add", origin.url("/files/a.png"), "--wait"]):
        rc, out, err = cli("--socket", sock, *args, sock=False)
        eq(rc, 2, "exit status of %s without a daemon" % args[0])
        check(err.startswith("imgfetch: cannot connect to %s: " % sock),
              "message %r" % err)
        eq(out, "", "stdout without a daemon")


def test_usage_errors():
    for args in ([], ["frob"], ["wait"], ["wait", "abc"], ["wait", "1", "2"],
                 ["cancel"], ["add"], ["ls", "--dir", "x"],
                 ["status", "--wait"], ["add", "--header", "novalue", "u"],
                 ["--no-such-option", "ls"], ["add", "-f"]):
        rc, out, err = cli(*args)
        eq(rc, 2, "exit status of %r" % args)
        check(err.startswith("imgfetch: "), "message for %r: %r"
              % (args, err))
    out = cli_ok("--help")
    check("usage: imgfetch" in out, "help: %r" % out)
    out = cli_ok("--version")
    check(re.match(r"^imgfetch \d+\.\d+", out), "version: %r" % out)


def test_socket_from_environment():
    good = env_without_socket(IMGFETCH_SOCKET=daemon.sock)
    cli_ok("status", sock=False, env=good)
    bogus = os.path.join(fresh_dir("envsock"), "bogus.sock")
    bad = env_without_socket(IMGFETCH_SOCKET=bogus)
    rc, _out, err = cli("status", sock=False, env=bad)
    eq(rc, 2, "exit status with IMGFETCH_SOCKET at nothing")
    check(bogus in err, "socket path missing from %r" % err)
    # --socket wins over the environment.
    cli_ok("--socket", daemon.sock, "status", sock=False, env=bad)


def test_default_socket():
    d = fresh_dir("xdg")
    other = Daemon(d, socket_path=os.path.join(d, "imgfetchd.sock"))
    try:
        cli_ok("status", sock=False, env=env_without_socket(
            XDG_RUNTIME_DIR=d))
        cli_ok("status", sock=False, env=env_without_socket(), cwd=d)
    finally:
        other.stop()


def test_plain_progress():
    size = 3 * 1024 * 1024
    url = origin.url("/stream/%d?gap=60&magic=png" % size)
    out = cli_ok("add", url, "--dir", "cli/slow", "--name", "s.bin",
                 "--wait", timeout=90)
    lines = PROGRESS.findall(out)
    check(len(lines) >= 2, "progress lines: %r" % out)
    check(re.search(r"^done 0 cli/slow/s\.bin$", out, re.M),
          "no done line in %r" % out)
    eq(file_sha256(daemon.path("cli/slow/s.bin")), stream_sha256(size, "png"),
       "sha256 of the streamed file")


def run_pty(args, timeout=60):
    """Run the client with stdout and stderr on a pty; (status, output)."""
    master, slave = pty.openpty()
    argv = [binary("IMGFETCH"), "--socket", daemon.sock] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, env=env_without_socket(),
                         close_fds=True)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _w, _x = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, data.decode("utf-8", "replace")


def test_terminal_bar():
    size = 3 * 1024 * 1024
    urls = [origin.url("/stream/%d?gap=60&magic=png" % size),
            origin.url("/files/missing-on-tty.png")]
    rc, out = run_pty(["add", "--dir", "cli/tty", *urls, "--wait"], 90)
    eq(rc, 1, "exit status under a pty (output %r)" % out[-2000:])
    bars = re.findall(r"\r\[[#-]{10,}\]\s+\d+%\s+\d+/2 done", out)
    check(len(bars) >= 2, "no redrawn progress bar in %r" % out[-2000:])
    check(re.search(r"failed 1 .*missing-on-tty\.png: ", out),
          "failure not shown: %r" % out[-2000:])
    check(SUMMARY.search(out.replace("\r\n", "\n")),
          "no summary in %r" % out[-2000:])
    # On a terminal, finished items are not listed one by one.
    check(not re.search(r"^done 0 ", out.replace("\r\n", "\n"), re.M),
          "done line on a terminal: %r" % out[-2000:])


def test_wait_ended_job():
    good = origin.url("/files/a.png")
    bad = origin.url("/status/500")
    job = daemon.submit([good, bad], dir="cli/ended")
    daemon.wait_job(job["id"])
    rc, out, err = cli("wait", str(job["id"]))
    eq(rc, 1, "wait on a finished job with a failure (stderr %r)" % err)
    check(re.search(r"^failed 1 %s: " % re.escape(bad), out, re.M),
          "failure not reported from the snapshot: %r" % out)
    check(re.search(r"^done 0 ", out, re.M), "no done line in %r" % out)
    job = daemon.submit([good], dir="cli/ended")
    daemon.wait_job(job["id"])
    rc, out, err = cli("wait", str(job["id"]))
    eq(rc, 0, "wait on a finished good job (stderr %r)" % err)


# ------------------------------------------------------------ scrape

def test_scrape_usage_errors():
    """Bad scrape options are usage errors found before any request: exit
    2, a message naming the option, nothing on stdout."""
    page = origin.url("/html")
    nosock = os.path.join(fresh_dir("scrape-usage"), "none.sock")
    cases = [
        (["scrape"], "scrape: no pages given"),
        (["scrape", "--follow-next", "101", page],
         '--follow-next: expected a number from 0 to 100, not "101"'),
        (["scrape", "--follow-next", "-1", page], "--follow-next: "),
        (["scrape", "--follow-next", "two", page], "--follow-next: "),
        (["scrape", "--follow-next", "", page], "--follow-next: "),
        (["scrape", "--max-page-size", "0", page],
         '--max-page-size: expected a size from 1 byte to 1G, not "0"'),
        (["scrape", "--max-page-size", "2G", page], "--max-page-size: "),
        (["scrape", "--max-page-size", "1025M", page], "--max-page-size: "),
        (["scrape", "--max-page-size", "10q", page], "--max-page-size: "),
        (["scrape", "--max-page-size", "k", page], "--max-page-size: "),
        (["scrape", "--follow-next"], "option --follow-next needs an "
         "argument"),
        (["add", "--same-host", page], "add: option not accepted"),
        (["add", "--follow-next", "1", page], "add: option not accepted"),
        (["add", "--max-page-size", "1k", page], "add: option not accepted"),
        (["ls", "--dedup"], "ls: option not accepted"),
        (["status", "--if-changed"], "status: option not accepted"),
        (["wait", "--no-dedup", "1"], "wait: option not accepted"),
    ]
    for args, msg in cases:
        rc, out, err = cli("--socket", nosock, *args, sock=False)
        eq(rc, 2, "exit status of %r" % args)
        check(err.startswith("imgfetch: " + msg),
              "message for %r: %r, expected %r" % (args, err, msg))
        check("usage: imgfetch" in err, "no usage for %r: %r" % (args, err))
        eq(out, "", "stdout of %r" % args)
    out = cli_ok("--help")
    for word in ("scrape PAGE...", "--same-host", "--follow-next N",
                 "--max-page-size BYTES", "--if-changed", "--dedup",
                 "--no-if-changed", "--no-dedup"):
        check(word in out, "%s not in the help: %r" % (word, out))


def test_cache_options_request_form():
    """What add and scrape send for the new options: add keeps the
    uri-list form without them and goes as JSON with them; --no-* after
    the option wins; scrape sends pages with if_changed and dedup on unless
    turned off, and its page options as given."""
    url = origin.url("/files/a.png")
    page = origin.url("/html")
    tap = Tap(daemon.sock)
    try:
        def send(*args):
            rc, out, err = cli("--socket", tap.sock, *args, sock=False)
            posts = tap.posts()
            eq(len(posts), 1, "POSTs of %r (stderr %r)" % (args, err))
            ctype, _target, _hdrs, body = posts[0]
            return rc, err, ctype, body

        rc, err, ctype, body = send("add", url, "--dir", "cli/form")
        eq(rc, 0, "add (stderr %r)" % err)
        eq(ctype, "text/uri-list", "add without the options")

        rc, err, ctype, body = send("add", url, "--dir", "cli/form",
                                    "--if-changed", "--dedup")
        eq(rc, 0, "add --if-changed --dedup (stderr %r)" % err)
        eq(ctype, "application/json", "add --if-changed --dedup")
        eq(json.loads(body), {"urls": [url], "dir": "cli/form",
                              "if_changed": True, "dedup": True},
           "add --if-changed --dedup body")

        rc, err, ctype, body = send("add", url, "--dir", "cli/form",
                                    "--if-changed", "--dedup",
                                    "--no-if-changed", "--no-dedup")
        eq(rc, 0, "add --no-if-changed --no-dedup (stderr %r)" % err)
        eq(json.loads(body), {"urls": [url], "dir": "cli/form",
                              "dedup": False},
           "add with --no-if-changed --no-dedup last")

        _rc, err, ctype, body = send("scrape", page, page + "?x=1",
                                     "--same-host", "--follow-next", "2",
                                     "--max-page-size", "64k", "--dir",
                                     "cli/form", "--name", "{n}.{ext}")
        eq(ctype, "application/json", "scrape")
        eq(json.loads(body), {"pages": [page, page + "?x=1"],
                              "dir": "cli/form", "name": "{n}.{ext}",
                              "same_host": True, "follow_next": 2,
                              "max_page_size": 65536, "if_changed": True,
                              "dedup": True}, "scrape body")

        _rc, err, ctype, body = send("scrape", page, "--no-if-changed",
                                     "--no-dedup", "--max-page-size", "3M",
                                     "--follow-next", "0")
        eq(json.loads(body), {"pages": [page], "dedup": False,
                              "follow_next": 0,
                              "max_page_size": 3 * 1024 * 1024},
           "scrape --no-if-changed --no-dedup body")
    finally:
        tap.stop()


def test_scrape_refused():
    """A page the daemon refuses: its 400 message, naming pages[i], and
    exit 2; the pages file is read like an add list."""
    rc, out, err = cli("scrape", origin.url("/html"), "ftp://127.0.0.1/x")
    eq(rc, 2, "exit status for a refused page (stderr %r)" % err)
    check(re.match(r"^imgfetch: 400: .*pages\[1\]", err), "message %r" % err)
    eq(out, "", "stdout of a refused scrape")
    path = os.path.join(fresh_dir("scrape-file"), "x.pages")
    with open(path, "w") as f:
        f.write("# pages\n\n%s\n  file:///etc/passwd  \n" % origin.url("/html"))
    rc, out, err = cli("scrape", "-f", path)
    eq(rc, 2, "exit status for a refused page from a file (stderr %r)" % err)
    check(re.match(r"^imgfetch: 400: .*pages\[1\]", err), "message %r" % err)


def site(n, seed):
    """A fresh web root with img/0.png .. img/N-1.png (distinct PNGs of
    this seed) served by nginx: (nginx, {relative path: bytes})."""
    www = fresh_dir("www")
    files = {}
    for i in range(n):
        rel = "img/%d.png" % i
        files[rel] = make_png(os.path.join(www, rel), 12, 12,
                              seed=seed * 100 + i)
    return Nginx(www), www, files


def write_page(www, name, srcs):
    with open(os.path.join(www, name), "w") as f:
        f.write("<!doctype html><html><head><title>t</title></head><body>\n"
                + "".join('<p><img src="%s" alt=""></p>\n' % s for s in srcs)
                + "</body></html>\n")


def image_items(job):
    return [it for it in job["items"] if it.get("kind") != "page"]


def test_scrape_wait_then_unchanged():
    """scrape --wait against nginx: the page shown as a page with its image
    count, each image done with its file equal to nginx's; status shows the
    same. A second scrape (if_changed on by default) ends every image
    unchanged and the summary counts them, also with --quiet (the counts
    then come from the job fetched at the end)."""
    ng, www, files = site(3, seed=71)
    try:
        write_page(www, "g.html", ["img/0.png", "/img/1.png",
                                   ng.url("/img/2.png")])
        page = ng.url("/g.html")
        rc, out, err = cli("scrape", page, "--dir", "cli/scrape", "--wait")
        eq(rc, 0, "scrape --wait (stdout %r, stderr %r)" % (out, err))
        m = QUEUED.search(out)
        check(m and m.group(0).endswith("1 page queued"),
              "no 'job N: 1 page queued' in %r" % out)
        jid = job_id(out)
        check(re.search(r"^page 0 %s: 3 images$" % re.escape(page), out,
                        re.M), "no 'page 0 URL: 3 images' line in %r" % out)
        job = daemon.job(jid)
        images = image_items(job)
        eq(len(images), 3, "image items of %r" % job)
        want = {ng.url("/img/%d.png" % i): files["img/%d.png" % i]
                for i in range(3)}
        for it in images:
            eq(it["state"], "done", "state of image %d" % it["n"])
            check(read_file(daemon.path(it["path"])) == want[it["url"]],
                  "%s: file differs from nginx's" % it["url"])
            check(re.search(r"^done %d %s$" % (it["n"],
                                               re.escape(it["path"])),
                            out, re.M),
                  "no 'done %d PATH' line in %r" % (it["n"], out))
        m = summary(out)
        eq((m.group(2), m.group(3), m.group(4)), ("done", "4", "4"),
           "summary of the first scrape")
        check("unchanged" not in out and "duplicate" not in out,
              "first scrape has unchanged or duplicates: %r" % out)

        st = cli_ok("status", str(jid))
        check(re.search(r"^\s+0\s+done\s+.*\bpage %s: 3 images$"
                        % re.escape(page), st, re.M),
              "status does not show the page: %r" % st)

        for quiet in ([], ["--quiet"]):
            rc, out, err = cli(*quiet, "scrape", page, "--dir", "cli/scrape",
                               "--wait")
            eq(rc, 0, "second scrape %r (stderr %r)" % (quiet, err))
            check(re.search(r"^job \d+ done: 4/4 done, 0 failed, "
                            r"3 unchanged, ", out, re.M),
                  "summary does not count 3 unchanged: %r" % out)
            job = daemon.job(job_id(out))
            eq([it.get("unchanged") for it in image_items(job)],
               [True] * 3, "images of the second scrape %r" % quiet)
            if not quiet:
                for it in image_items(job):
                    check(re.search(r"^done %d \S.*: unchanged$" % it["n"],
                                    out, re.M),
                          "no unchanged line for %d in %r" % (it["n"], out))
            st = cli_ok("status", str(job_id(out)))
            check(len(re.findall(r": unchanged$", st, re.M)) == 3,
                  "status does not show 3 unchanged: %r" % st)
    finally:
        ng.stop()


def test_add_if_changed_and_dedup():
    """add --if-changed --dedup: the same bytes under two URLs are kept
    once, the other item "duplicate of" the kept file; a second run ends
    them unchanged. Without the options nothing is skipped."""
    ng, www, files = site(2, seed=83)
    try:
        with open(os.path.join(www, "img", "copy.png"), "wb") as f:
            f.write(files["img/0.png"])
        urls = [ng.url("/img/0.png"), ng.url("/img/1.png"),
                ng.url("/img/copy.png")]
        rc, out, err = cli("add", *urls, "--dir", "cli/dedup",
                           "--if-changed", "--dedup", "--wait")
        eq(rc, 0, "add --if-changed --dedup (stderr %r)" % err)
        job = daemon.job(job_id(out))
        dups = [it for it in job["items"] if it.get("duplicate_of")]
        eq(len(dups), 1, "duplicates in %r" % job)
        dup = dups[0]
        check(read_file(daemon.path(dup["duplicate_of"]))
              == files["img/0.png"], "duplicate_of names another file")
        check(re.search(r"^done %d %s: duplicate of %s$"
                        % (dup["n"], re.escape(dup["url"]),
                           re.escape(dup["duplicate_of"])), out, re.M),
              "no 'done N URL: duplicate of PATH' line in %r" % out)
        check(re.search(r"^job \d+ done: 3/3 done, 0 failed, "
                        r"1 duplicate, ", out, re.M),
              "summary does not count the duplicate: %r" % out)
        st = cli_ok("status", str(job["id"]))
        check(re.search(r"%s: duplicate of %s$"
                        % (re.escape(dup["url"]),
                           re.escape(dup["duplicate_of"])), st, re.M),
              "status does not show the duplicate: %r" % st)

        rc, out, err = cli("add", *urls[:2], "--dir", "cli/dedup",
                           "--if-changed", "--dedup", "--wait")
        eq(rc, 0, "second add (stderr %r)" % err)
        check(re.search(r"^job \d+ done: 2/2 done, 0 failed, "
                        r"2 unchanged, ", out, re.M),
              "summary does not count 2 unchanged: %r" % out)

        rc, out, err = cli("add", *urls[:2], "--dir", "cli/dedup-off",
                           "--wait")
        eq(rc, 0, "add without the options (stderr %r)" % err)
        check("unchanged" not in out and "duplicate" not in out,
              "add without the options skipped something: %r" % out)
    finally:
        ng.stop()


def test_add_network_options():
    """--timeout, --retries and --user-agent reach the daemon as the job's
    own options (shown on the job); a bad
    number is a usage error naming the option."""
    ng, www, files = site(1, seed=91)
    try:
        rc, out, err = cli("add", ng.url("/img/0.png"), "--dir", "cli/net",
                           "--timeout", "30", "--retries", "2",
                           "--user-agent", "netflags/1", "--wait")
        eq(rc, 0, "add with network options (stderr %r)" % err)
        job = daemon.job(job_id(out))
        eq((job.get("timeout"), job.get("retries"), job.get("user_agent")),
           (30, 2, "netflags/1"), "the job's options")
        agents = [r for r in ng.requests() if r["uri"] == "/img/0.png"]
        eq(len(agents), 1, "requests")
        for args, want in ((["--timeout", "0"], "--timeout"),
                           (["--retries", "x"], "--retries"),
                           (["--retries", "101"], "--retries")):
            rc, out, err = cli("add", ng.url("/img/0.png"), *args)
            eq(rc, 2, "exit status for %r" % (args,))
            check(want in err, "message for %r: %r" % (args, err))
        # a proxy the daemon does not let jobs choose: its 400, exit 2
        rc, out, err = cli("add", ng.url("/img/0.png"), "--proxy",
                           "http://127.0.0.1:9")
        eq(rc, 2, "exit status of a refused --proxy")
        check("allow_job_proxy" in err, "the daemon's reason: %r" % err)
    finally:
        ng.stop()


if __name__ == "__main__":
    run(globals())
