"""The daemon under a service manager, without one running: the notify
protocol on a private NOTIFY_SOCKET, the watchdog, socket activation by
systemd-socket-activate, "<N>" priorities when stderr is the journal, and
the command line of imgfetch-scrape@.service run the way systemd runs it.

Tests that need libsystemd in the daemon skip when it was built without
(HAVE_LIBSYSTEMD=0); socket activation skips without
systemd-socket-activate (Debian: the systemd package)."""

import datetime
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

import harness
from harness import Skip, check, eq

O = None        # the origin
FILES = {}      # relative path -> bytes served under /files/
SRCDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def setup():
    global O, FILES
    O, FILES, _root = harness.corpus_origin()


def teardown():
    if O is not None:
        O.stop()


def need_libsystemd():
    if os.environ.get("HAVE_LIBSYSTEMD") != "1":
        raise Skip("imgfetchd was built without libsystemd "
                   "(-Dlibsystemd=disabled or libsystemd-dev missing)")


class ExecDaemon(harness.Daemon):
    """A daemon whose prefix command execs it: same pid, no child."""

    @property
    def pid(self):
        return self.proc.pid


class Environ:
    """Set (value) or unset (None) environment variables for a block."""

    def __init__(self, **values):
        self.values = values
        self.saved = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Notify:
    """A NOTIFY_SOCKET: an AF_UNIX datagram socket that learns the sender
    of every message (SO_PASSCRED)."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []   # (pid, {field: value}) in order of arrival

    def recv(self, timeout):
        """The next message as (pid, fields), or None after timeout s."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            return None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:struct.calcsize("3i")])[0]
        fields = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if line:
                k, _, v = line.partition("=")
                fields[k] = v
        self.got.append((pid, fields))
        return pid, fields

    def wait(self, pred, timeout, what):
        """Receive until pred(fields) holds; return (pid, fields)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                raise AssertionError("timed out after %gs waiting for %s; "
                                     "got %r" % (timeout, what, self.got))
            if pred(m[1]):
                return m

    def drain(self, seconds):
        """Everything that arrives within seconds."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                return out
            out.append(m)

    def close(self):
        self.sock.close()


def states(msgs):
    """The state changes (READY, RELOADING, STOPPING) of messages, in
    order, leaving out STATUS and WATCHDOG."""
    out = []
    for _pid, f in msgs:
        for k in ("READY", "RELOADING", "STOPPING"):
            if f.get(k) == "1":
                out.append(k)
    return out


STATUS_RE = re.compile(r"^(\d+) jobs; items: (\d+) queued, (\d+) active, "
                       r"(\d+) done, (\d+) failed; (\d+) bytes$")


# ------------------------------------------------------------ notify

def test_notify_sequence():
    """READY=1 once the socket accepts, STATUS= with the counters every
    five seconds, RELOADING=1 then READY=1 on SIGHUP (also when the new
    file is invalid), STOPPING=1 on SIGTERM; all from the main pid and no
    WATCHDOG=1 without WATCHDOG_USEC."""
    need_libsystemd()
    tmp = harness.fresh_dir("notify")
    n = Notify(tmp)
    try:
        with Environ(NOTIFY_SOCKET=n.path, WATCHDOG_USEC=None,
                     WATCHDOG_PID=None, LISTEN_FDS=None, LISTEN_PID=None):
            d = harness.Daemon(tmp, wait=False)
        pid, first = n.wait(lambda f: True, 10, "the first notification")
        eq(pid, d.pid, "sender of the first notification")
        eq(first.get("READY"), "1", "first notification %r" % first)
        # READY=1 means the socket accepts: connect at once, no retry.
        check(harness.unix_accepting(d.sock), "READY=1 sent before %s accepts" % d.sock)
        check(STATUS_RE.match(first.get("STATUS", "")),
              "READY=1 without a STATUS line: %r" % first)

        job = d.submit([O.url("/files/a.png"), O.url("/files/sub/c.png")])
        job = d.wait_job(job["id"])
        eq(job["state"], "done", "job state")
        size = len(FILES["a.png"]) + len(FILES["sub/c.png"])

        def counted(f):
            m = STATUS_RE.match(f.get("STATUS", ""))
            return m is not None and "READY" not in f and \
                int(m.group(4)) == 2 and int(m.group(6)) == size

        pid, _ = n.wait(counted, 12, "a periodic STATUS= with 2 done, "
                        "%d bytes" % size)
        eq(pid, d.pid, "sender of STATUS=")

        mark = len(n.got)
        os.kill(d.pid, signal.SIGHUP)
        n.wait(lambda f: f.get("READY") == "1", 10, "READY=1 after SIGHUP")
        eq(states(n.got[mark:]), ["RELOADING", "READY"],
           "notifications around a reload")

        mark = len(n.got)
        with open(d.confpath, "a") as f:
            f.write("no_such_setting = 1;\n")
        os.kill(d.pid, signal.SIGHUP)
        n.wait(lambda f: f.get("READY") == "1", 10,
               "READY=1 after a refused reload")
        eq(states(n.got[mark:]), ["RELOADING", "READY"],
           "notifications around a refused reload")
        check(d.alive(), "the daemon died on an invalid configuration")
        check("no_such_setting" in d.log(), "the refused reload is not "
              "logged")

        d.stop()
        n.drain(0.3)
        all_states = states(n.got)
        eq(all_states, ["READY", "RELOADING", "READY", "RELOADING", "READY",
                        "STOPPING"], "notifications in order")
        for pid, f in n.got:
            eq(pid, d.pid, "sender of %r" % f)
            check("WATCHDOG" not in f, "WATCHDOG=1 without WATCHDOG_USEC")
    finally:
        n.close()


def test_watchdog():
    """With WATCHDOG_USEC (and WATCHDOG_PID naming the daemon, as systemd
    sets it) WATCHDOG=1 comes at half the interval; with WATCHDOG_PID
    naming another process it does not come at all."""
    need_libsystemd()
    tmp = harness.fresh_dir("watchdog")
    n = Notify(tmp)
    # The shell's pid becomes the daemon's when it execs.
    setpid = ["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; '
              'exec "$0" "$@"']
    try:
        with Environ(NOTIFY_SOCKET=n.path, WATCHDOG_USEC="400000",
                     WATCHDOG_PID=None):
            d = ExecDaemon(tmp, prefix=setpid)
        n.wait(lambda f: f.get("READY") == "1", 10, "READY=1")
        t0 = time.monotonic()
        n.drain(2.0)
        pings = [p for p, f in n.got if f.get("WATCHDOG") == "1"]
        elapsed = time.monotonic() - t0
        # Every 200 ms: about 10 in 2 s; allow a slow machine half.
        check(len(pings) >= 5, "%d WATCHDOG=1 in %.1fs, expected about 10"
              % (len(pings), elapsed))
        check(all(p == d.pid for p in pings), "WATCHDOG=1 from pids %r, "
              "expected %d" % (sorted(set(pings)), d.pid))
        check("pinging every 200 ms" in d.log(),
              "no watchdog line in the log")
        d.stop()
    finally:
        n.close()

    tmp = harness.fresh_dir("watchdog-other")
    n = Notify(tmp)
    try:
        with Environ(NOTIFY_SOCKET=n.path, WATCHDOG_USEC="400000",
                     WATCHDOG_PID="1"):
            d = harness.Daemon(tmp)
        n.wait(lambda f: f.get("READY") == "1", 10, "READY=1")
        n.drain(1.0)
        check(not any(f.get("WATCHDOG") for _p, f in n.got),
              "WATCHDOG=1 although WATCHDOG_PID names another process")
        d.stop()
    finally:
        n.close()


# ------------------------------------------------------------ activation

def test_socket_activation():
    """systemd-socket-activate makes the socket and passes it: the daemon
    serves jobs on it, never touches the socket file (same inode and mode
    before, during and after) and never creates its configured one."""
    need_libsystemd()
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        raise Skip("systemd-socket-activate not found (Debian: apt-get "
                   "install systemd)")
    tmp = harness.fresh_dir("activate")
    sock = os.path.join(tmp, "activated.sock")
    unused = os.path.join(tmp, "configured.sock")
    with Environ(LISTEN_FDS=None, LISTEN_PID=None, NOTIFY_SOCKET=None):
        d = ExecDaemon(tmp, prefix=[activate, "-l", sock], wait=False,
                       socket_path=unused)
    d.sock = sock
    harness.wait_for(lambda: os.path.exists(sock), 10,
                     what="systemd-socket-activate's socket")
    before = os.lstat(sock)
    # The first connection starts the daemon in the same process (the
    # connection itself succeeds at once, into the socket's backlog).
    d.wait_ready()
    want = os.path.realpath(harness.binary("IMGFETCHD"))
    harness.wait_for(lambda: os.path.realpath("/proc/%d/exe" % d.pid)
                     == want, 10, what="systemd-socket-activate to exec "
                     "imgfetchd")
    harness.wait_for(lambda: "passed by systemd" in d.log(), 10,
                     what="the daemon to say it uses the passed socket")

    job = d.submit([O.url("/files/a.png"), O.url("/files/big.png")],
                   dir="act", name="{name}")
    job = d.wait_job(job["id"])
    eq(job["state"], "done", "job state")
    for item in job["items"]:
        rel = item["url"].split("/files/", 1)[1]
        got = harness.read_file(d.path(item["path"]))
        check(got == FILES[rel], "%s differs from the origin's" % item["path"])
    # And through the client.
    p = subprocess.run([harness.binary("IMGFETCH"), "--socket", sock, "add",
                        O.url("/files/b.png"), "--dir", "client", "--wait"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    eq(p.returncode, 0, "imgfetch add --wait exit status (%r)" % p.stdout)
    check(harness.read_file(d.path("client/127.0.0.1/b.png"))
          == FILES["b.png"], "client/127.0.0.1/b.png differs")

    during = os.lstat(sock)
    d.stop()
    check(os.path.exists(sock), "the daemon removed the passed socket")
    after = os.lstat(sock)
    for st, when in ((during, "while serving"), (after, "after SIGTERM")):
        eq((st.st_dev, st.st_ino), (before.st_dev, before.st_ino),
           "socket inode %s" % when)
        eq(st.st_mode, before.st_mode, "socket mode %s" % when)
    check(not os.path.exists(unused), "the daemon created its configured "
          "socket_path although it was passed one")


# ------------------------------------------------------------ journal

def test_journal_stream():
    """JOURNAL_STREAM naming stderr: every line starts with the syslog
    priority of its level (<3> error, <4> warn, <6> info, <7> debug);
    naming another file: plain "imgfetchd: LEVEL:" lines."""
    prio = {"error": "3", "warn": "4", "info": "6", "debug": "7"}
    tmp = harness.fresh_dir("journal")
    log = os.path.join(tmp, "daemon.log")
    open(log, "wb").close()
    st = os.stat(log)
    with Environ(JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino),
                 NOTIFY_SOCKET=None):
        d = harness.Daemon(tmp)
    # A warning (a setting that needs a restart) and an error (a refused
    # reload) besides the info and debug lines of a job.
    job = d.submit([O.url("/files/a.png")])
    d.wait_job(job["id"])
    harness.write_config(d.confpath, dict(d.settings, workers=3))
    os.kill(d.pid, signal.SIGHUP)
    harness.wait_for(lambda: "workers changes only on restart" in d.log(),
                     10, what="the reload warning")
    with open(d.confpath, "a") as f:
        f.write("workers = \"many\";\n")
    os.kill(d.pid, signal.SIGHUP)
    harness.wait_for(lambda: "keeping the running configuration" in d.log(),
                     10, what="the refused reload")
    d.stop()
    lines = [x for x in d.log().splitlines() if x]
    seen = set()
    for line in lines:
        m = re.match(r"^<(\d)>(error|warn|info|debug): ", line)
        check(m is not None, "journal line without a priority: %r" % line)
        eq(m.group(1), prio[m.group(2)], "priority of %r" % line)
        seen.add(m.group(2))
    eq(seen, set(prio), "levels seen")

    tmp = harness.fresh_dir("journal-other")
    log = os.path.join(tmp, "daemon.log")
    open(log, "wb").close()
    st = os.stat(log)
    with Environ(JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino + 1),
                 NOTIFY_SOCKET=None):
        d = harness.Daemon(tmp)
    d.stop()
    lines = [x for x in d.log().splitlines() if x]
    check(lines, "no log lines")
    for line in lines:
        check(re.match(r"^imgfetchd: (error|warn|info|debug): ", line),
              "not a plain log line: %r" % line)


# ------------------------------------------------------------ scrape unit

def systemd_words(command, env):
    """Split an ExecStart= line the way systemd does: ${VAR} is one word,
    $VAR is split at whitespace (and is no word when empty)."""
    out = []
    for word in shlex.split(command):
        m = re.fullmatch(r"\$\{(\w+)\}", word)
        if m:
            out.append(env.get(m.group(1), ""))
            continue
        m = re.fullmatch(r"\$(\w+)", word)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        word = re.sub(r"\$\{(\w+)\}", lambda x: env.get(x.group(1), ""),
                      word)
        out.append(word.replace("$$", "$"))
    return out


class UnitRun:
    """What running a unit's ExecStart= lines in turn gave: the exit
    status of the last one run, all output, and the argv of each run."""

    def __init__(self):
        self.returncode = 0
        self.stdout = b""
        self.argvs = []
        self.skipped = False


def scrape_run(d, etc, instance):
    """Run imgfetch-scrape@INSTANCE.service against d the way systemd
    does: skipped unless one of its "|" conditions holds, then each
    ExecStart= in turn until one fails."""
    text = open(os.path.join(SRCDIR, "systemd",
                             "imgfetch-scrape@.service.in")).read()
    text = text.replace("%i", instance).replace("@sysconfdir@", etc)
    text = text.replace("@bindir@/imgfetch", harness.binary("IMGFETCH"))
    text = text.replace("/run/imgfetchd/imgfetchd.sock", d.sock)
    env, commands, conds = {}, [], []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            for assignment in shlex.split(value):
                k, _, v = assignment.partition("=")
                env[k] = v
        elif key == "EnvironmentFile":
            path = value.lstrip("-")
            if os.path.exists(path):
                for x in open(path).read().splitlines():
                    x = x.strip()
                    if x and not x.startswith("#"):
                        k, _, v = x.partition("=")
                        env[k.strip()] = v.strip()
            else:
                check(value.startswith("-"), "EnvironmentFile %s is "
                      "required but missing" % path)
        elif key == "ExecStart":
            commands.append(value)
        elif key == "ConditionPathExists":
            check(value.startswith("|"), "ConditionPathExists=%s is not a "
                  "triggering (|) condition" % value)
            conds.append(value[1:])
    check(commands, "no ExecStart in imgfetch-scrape@.service")
    r = UnitRun()
    if conds and not any(os.path.exists(c) for c in conds):
        r.skipped = True
        return r, []
    for command in commands:
        argv = systemd_words(command, env)
        r.argvs.append(argv)
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        r.returncode = p.returncode
        r.stdout += p.stdout
        if p.returncode != 0:
            break
    return r, r.argvs


def test_scrape_unit_command():
    """imgfetch-scrape@.service's command, with its defaults and with an
    .env file (the README's webcam example), queues the list's URLs into
    the right directory and names."""
    tmp = harness.fresh_dir("scrape")
    etc = os.path.join(tmp, "etc")
    scrape = os.path.join(etc, "imgfetchd", "scrape")
    os.makedirs(scrape)
    with open(os.path.join(scrape, "webcams.list"), "w") as f:
        f.write("# two cameras\n%s\n\n%s\n" % (O.url("/files/a.png"),
                                              O.url("/files/sub/c.png")))
    with open(os.path.join(scrape, "webcams.env"), "w") as f:
        f.write("# the README's example\nIMGFETCH_DIR=cams\n"
                "IMGFETCH_NAME={date}/{name}\nIMGFETCH_ARGS=--wait\n")
    # Other images: the same ones would end as duplicates of the files in
    # cams/ (dedup is on by default).
    with open(os.path.join(scrape, "plain.list"), "w") as f:
        f.write("%s\n%s\n" % (O.url("/files/b.png"), O.url("/files/big.png")))
    d = harness.Daemon(tmp)

    days = {datetime.date.today().isoformat()}
    p, argv = scrape_run(d, etc, "webcams")
    days.add(datetime.date.today().isoformat())
    eq(p.returncode, 0, "scrape webcams exit status (%r, %r)"
       % (argv, p.stdout))
    got = harness.files_under(d.download_dir)
    want = [{"cams/%s/a.png" % day, "cams/%s/c.png" % day} for day in days]
    check(set(got) in want, "webcams files %r, expected %r" % (got, want))
    for rel in got:
        data = FILES["a.png" if rel.endswith("a.png") else "sub/c.png"]
        check(harness.read_file(d.path(rel)) == data, "%s differs" % rel)

    # No .env file: the directory is the instance name, no --wait.
    p, argv = scrape_run(d, etc, "plain")
    eq(p.returncode, 0, "scrape plain exit status (%r, %r)"
       % (argv, p.stdout))
    jid = int(re.search(rb"job (\d+)", p.stdout).group(1))
    job = d.wait_job(jid)
    eq(job["state"], "done", "plain job state")
    eq(job.get("dir"), "plain", "plain job dir")
    paths = sorted(i["path"] for i in job["items"])
    check(all(re.fullmatch(r"plain/\d{4}-\d\d-\d\d/(b|big)\.png", x)
              for x in paths) and len(paths) == 2,
          "plain job paths %r" % paths)

    # The same list again: dedup (on by default) keeps no second copy.
    p, argv = scrape_run(d, etc, "webcams")
    eq(p.returncode, 0, "second webcams run (%r, %r)" % (argv, p.stdout))
    check(re.search(rb"^job \d+ done: 2/2 done, 0 failed, .*2 (unchanged|"
                    rb"duplicates), ", p.stdout, re.M),
          "second run kept new copies: %r" % p.stdout)
    check(set(harness.files_under(d.download_dir)) - set(got) ==
          {x for x in harness.files_under(d.download_dir)
           if x.startswith("plain/")},
          "second run added files: %r" % harness.files_under(d.download_dir))
    d.stop()


def jobs_of(d):
    """The daemon's jobs, oldest first."""
    status, _hdrs, reply = d.api("GET", "/v1/jobs")
    eq(status, 200, "GET /v1/jobs")
    return sorted(reply["jobs"], key=lambda j: j["id"])


def test_scrape_unit_pages():
    """imgfetch-scrape@.service with NAME.pages and/or NAME.list: each file
    present is submitted (the list with add --if-changed --dedup, the pages
    with scrape), a missing one is no error, neither skips the unit,
    IMGFETCH_ARGS can turn the cache options off, and a refused list fails
    the unit before the pages are sent."""
    tmp = harness.fresh_dir("scrape-pages")
    etc = os.path.join(tmp, "etc")
    scrape = os.path.join(etc, "imgfetchd", "scrape")
    os.makedirs(scrape)
    page = O.url("/html")
    image = O.url("/files/a.png")
    for name in ("both", "pagesonly", "bad", "off"):
        with open(os.path.join(scrape, name + ".pages"), "w") as f:
            f.write("# a page\n%s\n" % page)
    for name in ("both", "listonly", "off"):
        with open(os.path.join(scrape, name + ".list"), "w") as f:
            f.write("%s\n" % image)
    with open(os.path.join(scrape, "bad.list"), "w") as f:
        f.write("ftp://127.0.0.1/x.png\n")
    with open(os.path.join(scrape, "off.env"), "w") as f:
        f.write("IMGFETCH_ARGS=--no-if-changed --no-dedup\n"
                "IMGFETCH_SCRAPE_ARGS=--same-host --follow-next 2\n")
    d = harness.Daemon(tmp)
    try:
        r, _ = scrape_run(d, etc, "none")
        check(r.skipped, "an instance with neither file was not skipped")

        def run_new(instance):
            before = {j["id"] for j in jobs_of(d)}
            r, argvs = scrape_run(d, etc, instance)
            new = [j for j in jobs_of(d) if j["id"] not in before]
            return r, argvs, new

        for instance, kinds in (("both", ["add", "scrape"]),
                                ("pagesonly", ["scrape"]),
                                ("listonly", ["add"])):
            r, argvs, new = run_new(instance)
            eq(r.returncode, 0, "%s exit status (%r, %r)"
               % (instance, argvs, r.stdout))
            eq(len(argvs), 2, "%s: commands run" % instance)
            eq(len(new), len(kinds), "%s: jobs submitted (%r)"
               % (instance, r.stdout))
            for job, kind in zip(new, kinds):
                eq(job.get("dir"), instance, "%s %s job dir"
                   % (instance, kind))
            for argv in argvs:
                check(argv[:2] == ["/bin/sh", "-c"], "not sh -c: %r" % argv)
                cmd = argv[argv.index("--socket") + 2]
                want = {"add": ["--if-changed", "--dedup"],
                        "scrape": []}[cmd]
                check(all(w in argv for w in want), "%s %s: %r lacks %r"
                      % (instance, cmd, argv, want))
            jobs = [d.wait_job(j["id"]) for j in new]
            if "add" in kinds:
                job = jobs[0]
                eq(job["state"], "done", "%s list job" % instance)
                eq([i["url"] for i in job["items"]], [image],
                   "%s list job items" % instance)
            if "scrape" in kinds:
                job = jobs[-1]
                pages = [i for i in job.get("items", [])
                         if i.get("kind") == "page"]
                eq([i["url"] for i in pages], [page],
                   "%s scrape job's pages" % instance)

        # The env's options come after the unit's: the last one wins.
        r, argvs, new = run_new("off")
        eq(r.returncode, 0, "off exit status (%r)" % r.stdout)
        add_argv, scrape_argv = argvs
        check(add_argv.index("--no-if-changed") >
              add_argv.index("--if-changed") and
              add_argv.index("--no-dedup") > add_argv.index("--dedup"),
              "IMGFETCH_ARGS do not follow the defaults: %r" % add_argv)
        check(scrape_argv[-5:] == ["--no-if-changed", "--no-dedup",
                                   "--same-host", "--follow-next", "2"],
              "scrape options: %r" % scrape_argv)
        eq(len(new), 2, "off: jobs submitted")

        # A refused list fails the unit; the pages are not sent.
        r, argvs, new = run_new("bad")
        eq(r.returncode, 2, "bad exit status (%r)" % r.stdout)
        check(b"400" in r.stdout, "no 400 message: %r" % r.stdout)
        eq(len(argvs), 1, "commands run after a failed one")
        eq(new, [], "jobs submitted by a failing unit")
    finally:
        d.stop()


harness.run(globals())
