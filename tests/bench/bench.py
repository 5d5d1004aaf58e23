"""imgfetchd against curl --parallel, wget2 and aiohttp, on a local nginx.

    python3 tests/bench/bench.py [--smoke] [options]     (see --help)

tests/bench/run installs what this needs on Debian 12, builds the project and
runs this script; README.md beside it says what is measured and how.

Steps: make a corpus of real PNG files (and a few big files) in a temporary
directory; start Debian's nginx on 127.0.0.1 with a config file of its own
as the origin; for each workload run every contender in turn (A B C D A B C
D ...), one warm-up round and then the counted rounds, each run into a
fresh empty directory that is checked (every file, right size) and removed
at once; then the slow-disk run (workload b on a daemon with the slowdisk
LD_PRELOAD shim, polling GET /v1/status meanwhile); print the tables and a
PASS/MISS line per target; stop everything it started and remove the
temporary directory.

Environment: IMGFETCHD, IMGFETCH, ORIGIN, SLOWDISK name the built files
(default: build-bench/ under the project root). Python standard library
only; the aiohttp contender runs tests/bench/aio_fetch.py with Debian's
/usr/bin/python3 (python3-aiohttp, python3-aiofiles).

Exit status: 0 when every run of every contender that could run was valid
(a MISS is a result, not an error), 1 otherwise, 77 in --smoke mode when
nginx is not installed (meson counts that as skipped).
"""

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The integration tests' HTTP-over-AF_UNIX client and config writer.
sys.path.insert(0, os.path.join(ROOT, "tests", "itest"))
from harness import (UnixHTTPConnection, unix_accepting,  # noqa: E402
                     _conf_value as conf_value, find_nginx, free_port)
EXIT_SKIP = 77
MIB = 1024 * 1024

CONTENDERS = ("imgfetchd", "curl", "wget2", "aiohttp")
ECHO_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")
DEBIAN_PYTHON = "/usr/bin/python3"


# ---------------------------------------------------------------- helpers

def log(msg):
    """Progress on stderr, so stdout carries only the report."""
    print(msg, file=sys.stderr, flush=True)


def built(var, rel):
    """Path of a built file: $var, else build-bench/rel under the root."""
    path = os.environ.get(var) or os.path.join(ROOT, "build-bench", rel)
    return os.path.abspath(path)


def wait_port(port, proc, timeout=10):
    """Wait until 127.0.0.1:port accepts; fail if proc exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("exited with status %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("port %d not accepting after %gs"
                               % (port, timeout))
        time.sleep(0.02)


def tail(path, n=15):
    """The last lines of a log file."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def stop_process(proc, sig=signal.SIGTERM, timeout=20):
    """Signal a child and reap it; SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


GNU_TIME = "/usr/bin/time"


def run_measured(argv, timeout, env=None, stdout=None, stderr=None):
    """Run argv to its end: (exit code, wall s, CPU s, peak RSS KiB).

    Wall time runs from just before the fork to the reaping; CPU time is
    the child's rusage from wait4. Peak RSS comes from GNU time wrapped
    around argv: the ru_maxrss that wait4 reports for a child of this
    process counts this (large) Python process too, as Linux carries the
    high-water mark of the forked image over the exec. Without GNU time
    the peak RSS is None. A run over timeout seconds is killed (exit
    code -9)."""
    rssfile = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rssfile = tempfile.mkstemp(prefix="ifd-bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", rssfile] + list(argv)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=stdout or subprocess.DEVNULL,
                            stderr=stderr or subprocess.DEVNULL, env=env)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _pid, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = None
    if rssfile is not None:
        try:
            with open(rssfile) as f:
                rss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            rss = None
        os.unlink(rssfile)
    return (proc.returncode, wall, ru.ru_utime + ru.ru_stime, rss)


def fs_type(path):
    """The type of the file system path is on, from /proc/mounts."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                        and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, math.ceil(p / 100.0 * len(s)) - 1)
    return s[k]


# ---------------------------------------------------------------- corpus

def png_bytes(rnd, w, h):
    """A valid 8-bit RGB PNG of w x h pixels of noise (so it stays big)."""
    raw = bytearray()
    row = w * 3
    noise = rnd.randbytes(row * h)
    for y in range(h):
        raw.append(0)  # filter type None
        raw += noise[y * row:(y + 1) * row]

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6))
            + chunk(b"IEND", b""))


def make_pngs(directory, count, seed):
    """count noise PNGs of about 12 KiB as directory/NNNNN.png; returns
    {name: size}."""
    os.makedirs(directory, exist_ok=True)
    rnd = random.Random(seed)
    out = {}
    for i in range(count):
        # 56..72 pixels square, 3 bytes each: 9 to 15 KiB, 12 on average.
        side = rnd.randrange(56, 73)
        data = png_bytes(rnd, side, side)
        name = "%05d.png" % i
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        out[name] = len(data)
    return out


def png_chunk(kind, data):
    """One PNG chunk: length, type, data, CRC."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def make_big(directory, count, size):
    """count noise PNGs of about size bytes each, as directory/N.png: RGB,
    4096 pixels wide, stored (level 0) deflate blocks in one IDAT chunk
    per 8 MiB of rows, the rows of one random 8 MiB block repeated, so
    they are quick to make and real images all the same."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    width = 4096
    row = 1 + 3 * width
    rows_per_block = max(1, (8 * MIB) // row)
    height = max(1, size // row)
    for i in range(count):
        block = b"".join(b"\0" + os.urandom(row - 1)
                         for _ in range(min(rows_per_block, height)))
        name = "%d.png" % i
        path = os.path.join(directory, name)
        comp = zlib.compressobj(0)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(
                b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0,
                                     0)))
            left = height
            while left > 0:
                n = min(left, rows_per_block)
                data = comp.compress(block[:n * row])
                if data:
                    f.write(png_chunk(b"IDAT", data))
                left -= n
            f.write(png_chunk(b"IDAT", comp.flush()))
            f.write(png_chunk(b"IEND", b""))
        out[name] = os.path.getsize(path)
    return out


# ---------------------------------------------------------------- origins

NGINX_CONF = """\
# Written by tests/bench/bench.py for one benchmark run.
{load_echo}
worker_processes 2;
worker_rlimit_nofile 16384;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{
        text/html html;
        image/png png;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {www};
{slow}    }}
}}
"""

NGINX_SLOW = """\
        # Workload (b): every answer after a fixed delay (echo module).
        location /slow/ {{
            echo_sleep {delay};
            echo_exec @file;
        }}
        location @file {{
        }}
"""


def find_echo_module():
    """Debian's libnginx-mod-http-echo module file, or None."""
    for d in ECHO_MODULE_DIRS:
        path = os.path.join(d, "ngx_http_echo_module.so")
        if os.path.exists(path):
            return path
    return None


class Nginx:
    """Debian's nginx on 127.0.0.1 with a config file of its own."""

    def __init__(self, binary, tmp, www, echo_module, delay_ms):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.logpath = os.path.join(self.dir, "stderr.log")
        self.proc = None
        slow = ""
        load = ""
        if echo_module is not None:
            load = "load_module %s;" % echo_module
            slow = NGINX_SLOW.format(delay="%.3f" % (delay_ms / 1000.0))
        for _attempt in range(5):
            self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(NGINX_CONF.format(load_echo=load, dir=self.dir,
                                          port=self.port, www=www,
                                          slow=slow))
            logf = open(self.logpath, "ab")
            self.proc = subprocess.Popen(
                [binary, "-p", self.dir + "/", "-c", self.conf,
                 "-e", os.path.join(self.dir, "error.log")],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            logf.close()
            try:
                wait_port(self.port, self.proc)
                return
            except RuntimeError as e:
                stop_process(self.proc)
                why = str(e)
        raise RuntimeError("nginx did not start (%s):\n%s\n%s" % (
            why, tail(self.logpath),
            tail(os.path.join(self.dir, "error.log"))))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        """SIGQUIT: nginx's graceful stop (SIGTERM is its fast one)."""
        stop_process(self.proc, signal.SIGQUIT)


class TestOrigin:
    """The project's test origin (tests/origin.c), used for workload (b)
    when nginx has no echo module to add a fixed delay."""

    def __init__(self, binary, tmp, www):
        self.logpath = os.path.join(tmp, "origin.log")
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--root", www], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=logf)
        logf.close()
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "port":
            stop_process(self.proc)
            raise RuntimeError("origin did not start:\n" + tail(self.logpath))
        self.port = int(line[1])

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        stop_process(self.proc)
        self.proc.stdout.close()


# ---------------------------------------------------------------- workloads

class Workload:
    """A list of URLs and the {name: size} every run must produce."""

    def __init__(self, key, title, tmp, urls, expected, unit, ideal=None):
        self.key = key
        self.title = title
        self.urls = urls
        self.expected = expected
        self.count = len(expected)
        self.bytes = sum(expected.values())
        self.unit = unit  # "files/s" or "MB/s"
        self.ideal = ideal
        self.list = os.path.join(tmp, "lists", key + ".txt")
        os.makedirs(os.path.dirname(self.list), exist_ok=True)
        with open(self.list, "w") as f:
            f.write("".join(u + "\n" for u in urls))

    def rate(self, wall):
        if self.unit == "MB/s":
            return self.bytes / 1e6 / wall
        return self.count / wall


def verify(directory, expected, strip_query=False):
    """(True, "") when directory holds exactly the expected files, each of
    its size; else (False, what is wrong). With strip_query a "?..." at
    the end of a file name is not part of it."""
    found = {}
    for dirpath, _dirs, names in os.walk(directory):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, directory)
            if strip_query:
                rel = rel.split("?", 1)[0]
            found[rel] = os.lstat(p).st_size
    missing = [n for n in expected if n not in found]
    extra = [n for n in found if n not in expected]
    wrong = [n for n in expected if n in found and found[n] != expected[n]]
    if not (missing or extra or wrong):
        return True, ""
    parts = ["%d/%d files" % (len(expected) - len(missing), len(expected))]
    if wrong:
        parts.append("%d of the wrong size (%s)" % (len(wrong), wrong[0]))
    if extra:
        parts.append("%d unexpected (%s)" % (len(extra), sorted(extra)[0]))
    return False, ", ".join(parts)


# ---------------------------------------------------------------- results

class Result:
    """One run of one contender."""

    def __init__(self, wall, cpu, rss_kib, ok, why="", client_rss_kib=None):
        self.wall = wall
        self.cpu = cpu
        self.rss_kib = rss_kib
        self.ok = ok
        self.why = why
        self.client_rss_kib = client_rss_kib


class Tally:
    """The counted runs of one contender on one workload."""

    def __init__(self, name):
        self.name = name
        self.runs = []
        self.skipped = None  # why, when the contender could not run

    def valid(self):
        return [r for r in self.runs if r.ok]

    def wall(self):
        return median([r.wall for r in self.valid()])

    def cpu(self):
        return median([r.cpu for r in self.valid()])

    def peak_rss(self):
        xs = [r.rss_kib for r in self.valid() if r.rss_kib is not None]
        return max(xs) if xs else None


# ---------------------------------------------------------------- imgfetchd

class Daemon:
    """imgfetchd on a private socket; its log is read through a pipe so
    that an LD_PRELOAD shim slowing file writes never touches it."""

    def __init__(self, binary, tmp, outroot, label, concurrency, workers,
                 preload=None):
        self.dir = os.path.join(tmp, "daemon-" + label)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "sock")
        self.download_dir = os.path.join(outroot, "daemon-" + label)
        os.makedirs(self.download_dir, exist_ok=True)
        self.settings = {
            "socket_path": self.sock,
            "socket_mode": "0600",
            "download_dir": self.download_dir,
            "max_transfers": concurrency,
            "max_host_connections": 0,
            "log_level": "warn",
            "timeout": 0,
            "queue_limit": 1000000,
        }
        if workers is not None:
            self.settings["workers"] = workers
        self.conf = os.path.join(self.dir, "imgfetchd.conf")
        # A private job store, where the daemon has one (older builds
        # refuse the unknown setting: then it is left out).
        self.settings["state_dir"] = os.path.join(self.dir, "state")
        self._write_conf()
        if subprocess.run([binary, "-n", "-c", self.conf],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            del self.settings["state_dir"]
            self._write_conf()
        self.logpath = os.path.join(self.dir, "daemon.log")
        env = dict(os.environ)
        if preload:
            env["LD_PRELOAD"] = preload
        self.proc = subprocess.Popen([binary, "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        self._wait_ready()

    def _write_conf(self):
        with open(self.conf, "w") as f:
            for k, v in self.settings.items():
                f.write("%s = %s;\n" % (k, conf_value(v)))

    def _drain(self):
        with open(self.logpath, "ab") as f:
            while True:
                b = self.proc.stdout.read1(65536)
                if not b:
                    return
                f.write(b)
                f.flush()

    def _wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.drain.join(2)
                raise RuntimeError("imgfetchd exited with status %d:\n%s"
                                   % (self.proc.returncode,
                                      tail(self.logpath)))
            if unix_accepting(self.sock):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("imgfetchd not accepting after %gs:\n%s"
                                   % (timeout, tail(self.logpath)))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        """CPU seconds of every thread so far: from schedstat, to the
        nanosecond, where the kernel has it; else user + system ticks."""
        total = 0
        try:
            for tid in os.listdir("/proc/%d/task" % self.pid):
                try:
                    with open("/proc/%d/task/%s/schedstat"
                              % (self.pid, tid)) as f:
                        total += int(f.read().split()[0])
                except FileNotFoundError:
                    pass  # the thread has just ended
            return total / 1e9
        except (OSError, ValueError, IndexError):
            pass
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 (utime, stime) are 12 and 13 after the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_kib(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def reset_peak(self):
        """Reset VmHWM to the current RSS (clear_refs 5, Linux >= 4.0)."""
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def status(self, timeout=5):
        """GET /v1/status as JSON."""
        c = UnixHTTPConnection(self.sock, timeout)
        try:
            c.request("GET", "/v1/status")
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("GET /v1/status: %d" % r.status)
            return json.loads(body)
        finally:
            c.close()

    def stop(self):
        stop_process(self.proc)
        self.drain.join(5)
        self.proc.stdout.close()


class StatusPoller:
    """GET /v1/status every interval seconds on a fresh connection, in a
    thread, recording each answer's latency."""

    def __init__(self, sock, interval):
        self.sock = sock
        self.interval = interval
        self.latencies = []
        self.errors = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            t0 = time.perf_counter()
            try:
                c = UnixHTTPConnection(self.sock, 5)
                c.request("GET", "/v1/status")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    self.latencies.append(time.perf_counter() - t0)
                else:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        return self.latencies


# ---------------------------------------------------------------- contenders

class Contender:
    """A downloader run once per round on a workload."""

    name = "?"
    strip_query = False

    def __init__(self, bench):
        self.bench = bench

    def missing(self):
        """Why this contender cannot run here, or None."""
        return None

    def begin(self, wl):
        pass

    def end(self, wl):
        pass

    def command(self, wl, outdir):
        raise NotImplementedError

    def run(self, wl, tag):
        """One run into a fresh directory, verified, then removed."""
        outdir = os.path.join(self.bench.outroot, "%s-%s" % (self.name, tag))
        os.makedirs(outdir)
        errpath = os.path.join(self.bench.tmp, "%s-%s.stderr" % (self.name,
                                                                 tag))
        with open(errpath, "wb") as err:
            rc, wall, cpu, rss = run_measured(self.command(wl, outdir),
                                              self.bench.run_timeout,
                                              stderr=err)
        ok, why = verify(outdir, wl.expected, self.strip_query)
        if rc != 0:
            ok = False
            why = ("exit status %d; " % rc) + (why or "") + \
                " " + tail(errpath, 3).replace("\n", " | ")
        shutil.rmtree(outdir)
        os.unlink(errpath)
        return Result(wall, cpu, rss, ok, why)


class Imgfetchd(Contender):
    """The daemon, started once per workload, driven by its client."""

    name = "imgfetchd"

    def __init__(self, bench):
        super().__init__(bench)
        self.daemon = None

    def begin(self, wl):
        b = self.bench
        self.daemon = Daemon(b.imgfetchd, b.tmp, b.outroot, wl.key,
                             b.concurrency, b.workers)
        if b.default_workers is None:
            try:
                b.default_workers = self.daemon.status()["limits"]["workers"]
            except (RuntimeError, OSError, KeyError, TypeError, ValueError):
                pass

    def end(self, wl):
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def run(self, wl, tag):
        return run_imgfetchd(self.bench, self.daemon, wl, tag)


def run_imgfetchd(bench, daemon, wl, tag):
    """One job through the client: from `imgfetch add --wait` to its exit.
    CPU is the daemon's delta plus the client's; peak RSS is the
    daemon's VmHWM since just before the run."""
    rel = "run-%s" % tag
    outdir = os.path.join(daemon.download_dir, rel)
    errpath = os.path.join(daemon.dir, rel + ".stderr")
    reset = daemon.reset_peak()
    cpu0 = daemon.cpu()
    with open(errpath, "wb") as err:
        rc, wall, ccpu, crss = run_measured(
            [bench.imgfetch, "--socket", daemon.sock, "add", "-f", wl.list,
             "--dir", rel, "--name", "{name}", "--wait", "--quiet"],
            bench.run_timeout, stderr=err)
    cpu = daemon.cpu() - cpu0 + ccpu
    rss = daemon.status_kib("VmHWM") if reset else None
    ok, why = verify(outdir, wl.expected)
    if rc != 0:
        ok = False
        why = ("imgfetch exit status %d; " % rc) + why + " " + \
            tail(errpath, 3).replace("\n", " | ")
    if daemon.proc.poll() is not None:
        ok = False
        why += " daemon died: " + tail(daemon.logpath, 5)
    shutil.rmtree(outdir, ignore_errors=True)
    os.unlink(errpath)
    return Result(wall, cpu, rss, ok, why, client_rss_kib=crss)


class Curl(Contender):
    """curl --parallel with url/output pairs in a -K config file."""

    name = "curl"

    def missing(self):
        return None if shutil.which("curl") else "curl not installed"

    def begin(self, wl):
        self.config = os.path.join(self.bench.tmp, "lists",
                                   wl.key + ".curlrc")
        with open(self.config, "w") as f:
            for url, name in zip(wl.urls, wl.names):
                f.write('url = "%s"\noutput = "%s"\n' % (url, name))

    def command(self, wl, outdir):
        return ["curl", "--parallel", "--parallel-max",
                str(self.bench.concurrency), "--silent", "--show-error",
                "--fail", "--create-dirs", "--output-dir", outdir,
                "-K", self.config]


class Wget2(Contender):
    """wget2 with C threads reading the URL list."""

    name = "wget2"
    # wget2 1.99 keeps the URL's directories once --cut-file-get-vars is
    # given, so it is not; with tests/origin as the delaying origin its
    # files are named "N.png?delay=MS".
    strip_query = True

    def missing(self):
        return None if shutil.which("wget2") else "wget2 not installed"

    def command(self, wl, outdir):
        return ["wget2", "--no-config", "--max-threads=%d"
                % self.bench.concurrency, "--no-robots", "--tries=1",
                "--quiet", "--no-hsts", "--no-hpkp", "--no-directories",
                "-i", wl.list, "-P", outdir]


class Aiohttp(Contender):
    """tests/bench/aio_fetch.py: aiohttp + aiofiles + asyncio.gather."""

    name = "aiohttp"

    def missing(self):
        py = self.bench.aio_python
        try:
            subprocess.run([py, "-c", "import aiohttp, aiofiles"],
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return "%s lacks aiohttp or aiofiles" % py
        return None

    def command(self, wl, outdir):
        return [self.bench.aio_python, os.path.join(HERE, "aio_fetch.py"),
                "-c", str(self.bench.concurrency), "-d", outdir, wl.list]


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.concurrency = args.concurrency
        self.workers = args.workers
        self.default_workers = None  # read from a daemon's /v1/status
        self.run_timeout = args.run_timeout
        self.imgfetchd = built("IMGFETCHD", "imgfetchd")
        self.imgfetch = built("IMGFETCH", "imgfetch")
        self.origin_bin = built("ORIGIN", "tests/origin")
        self.slowdisk = built("SLOWDISK", "tests/libslowdisk.so")
        self.aio_python = args.aio_python
        self.tmp = None
        self.outroot = None
        self.out_where = None
        self.nginx = None
        self.origin = None
        self.delay_origin = None
        self.workloads = []
        self.tallies = {}
        self.slow = []
        self.ab = {}  # workload key -> [(Result A, Result B)], with --ab
        self.failures = 0
        self.notes = []

    # -- setup

    def setup(self):
        a = self.args
        for path in (self.imgfetchd, self.imgfetch):
            if not os.access(path, os.X_OK):
                raise SystemExit("bench: %s is not built (see tests/bench/"
                                 "README.md)" % path)
        self.tmp = tempfile.mkdtemp(prefix="ifd-bench-", dir=a.tmpdir)
        os.chmod(self.tmp, 0o755)  # nginx workers may run as nobody
        self.choose_outroot()
        www = os.path.join(self.tmp, "www")
        log("bench: corpus in %s" % www)
        t0 = time.monotonic()
        small = make_pngs(os.path.join(www, "small"), a.small, 1)
        slow = make_pngs(os.path.join(www, "slow"), a.delayed, 2)
        big = make_big(os.path.join(www, "big"), a.big, a.big_mib * MIB) \
            if "c" in a.workloads else {}
        for dirpath, dirs, _names in os.walk(www):
            os.chmod(dirpath, 0o755)
        log("bench: corpus made in %.1fs" % (time.monotonic() - t0))

        echo = find_echo_module() if a.delay_origin != "origin" else None
        if a.delay_origin == "nginx" and echo is None:
            raise SystemExit("bench: --delay-origin nginx needs Debian's "
                             "libnginx-mod-http-echo")
        self.nginx = Nginx(find_nginx(), self.tmp, www, echo, a.delay_ms)
        if echo is not None:
            self.delay_origin = "nginx + echo module (echo_sleep %.3f)" % (
                a.delay_ms / 1000.0)
            slow_url = lambda n: self.nginx.url("/slow/" + n)
        else:
            if not os.access(self.origin_bin, os.X_OK):
                raise SystemExit("bench: no echo module for nginx and %s "
                                 "is not built" % self.origin_bin)
            self.origin = TestOrigin(self.origin_bin, self.tmp, www)
            self.delay_origin = "tests/origin (?delay=%d)" % a.delay_ms
            slow_url = lambda n: self.origin.url(
                "/files/slow/%s?delay=%d" % (n, a.delay_ms))

        c = self.concurrency
        all_wl = {
            "a": lambda: Workload(
                "a", "(a) %d small PNGs, no added latency" % len(small),
                self.tmp, [self.nginx.url("/small/" + n) for n in small],
                small, "files/s"),
            "b": lambda: Workload(
                "b", "(b) %d PNGs, each answered after %d ms" % (
                    len(slow), a.delay_ms),
                self.tmp, [slow_url(n) for n in slow], slow, "files/s",
                ideal=math.ceil(len(slow) / c) * a.delay_ms / 1000.0),
            "c": lambda: Workload(
                "c", "(c) %d files of %d MiB" % (len(big), a.big_mib),
                self.tmp, [self.nginx.url("/big/" + n) for n in big], big,
                "MB/s"),
        }
        self.wl_b = all_wl["b"]()
        self.wl_b.names = list(slow)
        # The slow-disk run also polls the status during (a), which keeps
        # the daemon's loop thread busiest.
        self.wl_busy = all_wl["a"]()
        self.wl_busy.names = list(small)
        for key in a.workloads:
            wl = {"a": self.wl_busy, "b": self.wl_b}.get(key) or all_wl[key]()
            wl.names = list(wl.expected)
            self.workloads.append(wl)

        self.contenders = []
        for cls in (Imgfetchd, Curl, Wget2, Aiohttp):
            if cls.name in a.contenders:
                self.contenders.append(cls(self))

    def choose_outroot(self):
        """Where the runs write: a tmpfs unless --out-fs disk, or none big
        enough is there. On ext4, creating thousands of files within 30 s
        of deleting thousands (as every run here does) sends each new
        inode through a scan for recently deleted ones (recently_deleted()
        in the kernel's ext4 inode allocator): seconds of system time per
        run that have nothing to do with the downloaders."""
        a = self.args
        need = 2 * a.big * a.big_mib * MIB + 512 * MIB
        if a.out_fs == "tmpfs":
            for d in (a.tmpfs_dir,):
                try:
                    st = os.statvfs(d)
                    fstype = fs_type(d)
                except OSError:
                    continue
                if fstype == "tmpfs" and st.f_bavail * st.f_frsize >= need:
                    self.outroot = tempfile.mkdtemp(prefix="ifd-bench-out-",
                                                    dir=d)
                    self.out_where = "tmpfs (%s)" % d
                    return
            self.notes.append("No tmpfs with %d MiB free at %s: the runs "
                              "wrote to disk." % (need // MIB, a.tmpfs_dir))
        self.outroot = os.path.join(self.tmp, "runs")
        os.makedirs(self.outroot)
        self.out_where = "%s (%s)" % (self.outroot, fs_type(self.outroot))

    def teardown(self):
        for obj in (self.nginx, self.origin):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # keep cleaning up
                    log("bench: stopping: %s" % e)
        if self.tmp is not None:
            if self.args.keep:
                log("bench: kept %s" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
                if self.outroot is not None:
                    shutil.rmtree(self.outroot, ignore_errors=True)

    # -- runs

    def run_workload(self, wl):
        a = self.args
        tallies = {}
        live = []
        for ct in self.contenders:
            t = tallies[ct.name] = Tally(ct.name)
            why = ct.missing()
            if why is not None:
                t.skipped = why
                continue
            ct.begin(wl)
            live.append(ct)
        self.tallies[wl.key] = tallies
        try:
            for rnd in range(a.warmup + a.runs):
                counted = rnd >= a.warmup
                for ct in live:
                    tag = "%s%d" % (wl.key, rnd)
                    r = ct.run(wl, tag)
                    log("bench: %s %-9s %s %7.3fs cpu %6.2fs%s" % (
                        wl.key, ct.name,
                        "run %d" % (rnd - a.warmup + 1) if counted
                        else "warm-up", r.wall, r.cpu,
                        "" if r.ok else "  INVALID: " + r.why))
                    if not r.ok:
                        self.failures += 1
                    if counted:
                        tallies[ct.name].runs.append(r)
        finally:
            for ct in live:
                ct.end(wl)

    def run_ab(self, wl):
        """This build (A) and another (B) on two daemons started side by
        side and used in turn, A B then B A: whatever the machine's speed
        does over the minutes falls on both alike, and the ratio of each
        pair shows differences far smaller than the drift between runs."""
        a = self.args
        builds = (("A", self.imgfetchd), ("B", a.ab))
        daemons = []
        pairs = self.ab[wl.key] = []
        try:
            for label, binary in builds:
                daemons.append(Daemon(binary, self.tmp, self.outroot,
                                      "%s-%s" % (wl.key, label),
                                      self.concurrency, self.workers))
            for rnd in range(a.warmup + a.runs):
                res = [None, None]
                for k in ((0, 1) if rnd % 2 == 0 else (1, 0)):
                    res[k] = run_imgfetchd(self, daemons[k], wl, "%s%d%s" % (
                        wl.key, rnd, builds[k][0]))
                    if not res[k].ok:
                        self.failures += 1
                        log("bench: %s %s INVALID: %s" % (
                            wl.key, builds[k][0], res[k].why))
                counted = rnd >= a.warmup
                log("bench: %s %s  A %.3fs cpu %.3fs  B %.3fs cpu %.3fs" % (
                    wl.key, "pair %d" % (rnd - a.warmup + 1) if counted
                    else "warm-up", res[0].wall, res[0].cpu, res[1].wall,
                    res[1].cpu))
                if counted and res[0].ok and res[1].ok:
                    pairs.append((res[0], res[1]))
        finally:
            for d in daemons:
                d.stop()

    def run_slowdisk(self, workers):
        """Workload (b) on a plain daemon and on one with the shim, in
        turn, polling /v1/status during every run."""
        a = self.args
        wl = self.wl_b
        res = {"workers": workers, "plain": Tally("plain"),
               "shim": Tally("shim"), "busy": Tally("busy"),
               "lat": {"plain": [], "shim": [], "busy": []},
               "errors": {"plain": 0, "shim": 0, "busy": 0}}
        self.slow.append(res)
        if not os.path.exists(self.slowdisk):
            res["skipped"] = "%s not built" % self.slowdisk
            return
        daemons = {}
        try:
            daemons["plain"] = Daemon(self.imgfetchd, self.tmp, self.outroot,
                                      "plain-w%d" % workers,
                                      self.concurrency, workers)
            daemons["shim"] = Daemon(self.imgfetchd, self.tmp, self.outroot,
                                     "shim-w%d" % workers, self.concurrency,
                                     workers, preload=self.slowdisk)
            for rnd in range(a.warmup + a.runs):
                counted = rnd >= a.warmup
                for kind in ("plain", "shim", "busy"):
                    d = daemons["plain" if kind == "busy" else kind]
                    poller = StatusPoller(d.sock, a.poll_ms / 1000.0)
                    r = run_imgfetchd(
                        self, d, self.wl_busy if kind == "busy" else wl,
                        "s%d-%d%s" % (workers, rnd, kind[0]))
                    lat = poller.stop()
                    p99 = percentile(lat, 99)
                    log("bench: slow-disk w=%d %-5s %s %7.3fs, %d polls, "
                        "p99 %.2f ms%s" % (
                            workers, kind, "run %d" % (rnd - a.warmup + 1)
                            if counted else "warm-up", r.wall, len(lat),
                            (p99 or 0) * 1000,
                            "" if r.ok else "  INVALID: " + r.why))
                    if not r.ok:
                        self.failures += 1
                    if counted:
                        res[kind].runs.append(r)
                        res["lat"][kind].extend(lat)
                        res["errors"][kind] += poller.errors
        finally:
            for d in daemons.values():
                d.stop()

    def run_all(self):
        if self.args.ab:
            for wl in self.workloads:
                log("bench: A/B, workload %s" % wl.title)
                self.run_ab(wl)
            return
        for wl in self.workloads:
            log("bench: workload %s" % wl.title)
            self.run_workload(wl)
        if not self.args.no_slowdisk:
            for w in self.args.slowdisk_workers:
                log("bench: slow disk, workers = %d" % w)
                self.run_slowdisk(w)

    # -- report

    def machine(self):
        """Lines describing the machine and the software versions."""
        model = "?"
        mem = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        mem = "%.1f GiB" % (int(line.split()[1]) / MIB)
                        break
        except OSError:
            pass
        pkgs = ["libcurl4", "libevent-2.1-7", "libjansson4", "libconfig9",
                "nginx", "libnginx-mod-http-echo", "curl", "wget2",
                "python3", "python3-aiohttp", "python3-aiofiles"]
        vers = []
        for p in pkgs:
            try:
                v = subprocess.run(
                    ["dpkg-query", "-W", "-f", "${Version}", p],
                    capture_output=True, text=True, timeout=30)
                vers.append("%s %s" % (p, v.stdout.strip()
                                       if v.returncode == 0 else "-"))
            except (OSError, subprocess.SubprocessError):
                vers.append("%s ?" % p)
        build = "?"
        info = os.path.join(os.path.dirname(self.imgfetchd), "meson-info",
                            "intro-buildoptions.json")
        try:
            with open(info) as f:
                for opt in json.load(f):
                    if opt.get("name") == "buildtype":
                        build = opt.get("value")
        except (OSError, ValueError):
            pass
        return [
            "- command: `%s`" % " ".join(
                ["tests/bench/bench.py"] + sys.argv[1:]),
            "- imgfetchd: %s (meson buildtype %s)" % (self.imgfetchd,
                                                      build),
            "- machine: %d CPUs (nproc), %s, %s memory, Linux %s (%s)" % (
                os.cpu_count() or 0, model, mem, platform.release(),
                platform.machine()),
            "- packages: " + ", ".join(vers),
        ]

    def report(self):
        if self.args.ab:
            return self.ab_report()
        a = self.args
        c = self.concurrency
        out = []
        out.append("# imgfetchd benchmark%s" % (" (smoke)" if a.smoke
                                                  else ""))
        out.append("")
        out.extend(self.machine())
        out.append("- concurrency C = %d; imgfetchd workers = %s; %d "
                   "counted run(s) after %d warm-up round(s), contenders "
                   "interleaved" % (c, "%d" % self.workers
                                    if self.workers is not None else
                                    "the daemon's default (%s)"
                                    % (self.default_workers or "?"),
                                    a.runs, a.warmup))
        out.append("- origin: nginx (worker_processes 2, sendfile, "
                   "access_log off); workload (b) from %s"
                   % self.delay_origin)
        out.append("- run outputs: %s, each run's deleted once checked"
                   % self.out_where)
        out.append("- time: wall from start to exit of the contender "
                   "(imgfetchd: `imgfetch add -f LIST --wait --quiet`, daemon "
                   "already running); CPU: user+sys of its processes "
                   "(imgfetchd: daemon delta + client); peak RSS: imgfetchd "
                   "daemon's VmHWM (reset before each run), else the "
                   "child's maxrss from GNU time; 'vs imgfetchd' = contender median "
                   "time / imgfetchd median time")
        out.append("")
        for wl in self.workloads:
            out.extend(self.table(wl))
            out.append("")
        if self.slow:
            out.extend(self.slow_table())
            out.append("")
        out.append("## Targets")
        out.append("")
        out.extend("    " + line for line in self.targets())
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out) + "\n"

    def ab_report(self):
        a = self.args
        out = ["# imgfetchd A/B%s" % (" (smoke)" if a.smoke else ""), ""]
        out.extend(self.machine())
        out.append("- A: %s; B: %s" % (self.imgfetchd, a.ab))
        out.append("- concurrency C = %d; workers = %s; %d counted pair(s) "
                   "after %d warm-up pair(s), on two daemons side by side, "
                   "A B then B A" % (
                       self.concurrency, "%d" % self.workers
                       if self.workers is not None else "each daemon's "
                       "default", a.runs, a.warmup))
        out.append("- time: wall of `imgfetch add -f LIST --wait --quiet`; "
                   "CPU: the daemon's (schedstat) plus the client's; B/A: "
                   "the median of the pairs' ratios, and their quartiles")
        out.append("")
        out.append("| workload | pairs | A s | B s | B/A time (q1-q3) | A CPU s "
                   "| B CPU s | B/A CPU (q1-q3) |")
        out.append("|---|---|---|---|---|---|---|---|")
        for wl in self.workloads:
            pairs = self.ab.get(wl.key, [])
            if not pairs:
                out.append("| %s | 0 | - | - | - | - | - | - |" % wl.key)
                continue
            walls = [b.wall / x.wall for x, b in pairs]
            cpus = [b.cpu / x.cpu for x, b in pairs if x.cpu > 0]

            def ratio(xs):
                if not xs:
                    return "-"
                return "%.3f (%.3f-%.3f)" % (median(xs), percentile(xs, 25),
                                             percentile(xs, 75))
            out.append("| %s | %d | %.3f | %.3f | %s | %.3f | %.3f | %s |" % (
                wl.key, len(pairs), median([x.wall for x, _ in pairs]),
                median([b.wall for _, b in pairs]), ratio(walls),
                median([x.cpu for x, _ in pairs]),
                median([b.cpu for _, b in pairs]), ratio(cpus)))
        return "\n".join(out) + "\n"

    def table(self, wl):
        tallies = self.tallies.get(wl.key, {})
        base = tallies.get("imgfetchd")
        base_wall = base.wall() if base is not None else None
        lines = ["## %s" % wl.title, ""]
        if wl.ideal is not None:
            lines.append("Ideal time ceil(%d / %d) x %d ms = %.3f s."
                         % (wl.count, self.concurrency, self.args.delay_ms,
                            wl.ideal))
            lines.append("")
        lines.append("| contender | valid | median s | min-max s | %s | "
                     "CPU s | peak RSS MiB | vs imgfetchd |" % wl.unit)
        lines.append("|---|---|---|---|---|---|---|---|")
        for name in CONTENDERS:
            t = tallies.get(name)
            if t is None:
                continue
            if t.skipped:
                lines.append("| %s | skipped: %s | | | | | | |"
                             % (name, t.skipped))
                continue
            v = t.valid()
            if not v:
                lines.append("| %s | 0/%d | | | | | | |"
                             % (name, len(t.runs)))
                continue
            walls = [r.wall for r in v]
            rss = t.peak_rss()
            ratio = "%.2f" % (t.wall() / base_wall) if base_wall else "-"
            lines.append("| %s | %d/%d | %.3f | %.3f-%.3f | %.1f | %.2f | "
                         "%s | %s |" % (
                             name, len(v), len(t.runs), t.wall(),
                             min(walls), max(walls), wl.rate(t.wall()),
                             t.cpu(),
                             "%.1f" % (rss / 1024.0) if rss else "-",
                             ratio))
        if base is not None and base.valid():
            crss = [r.client_rss_kib for r in base.valid()]
            lines.append("")
            crss = [x for x in crss if x is not None]
            if crss:
                lines.append("imgfetch client: peak RSS %.1f MiB." % (
                    max(crss) / 1024.0))
        return lines

    def slow_table(self):
        lines = ["## Slow disk: workload (b), every file write() +%d ms "
                 "(LD_PRELOAD slowdisk in the daemon)" % self.args.slowdisk_ms,
                 "",
                 "GET /v1/status polled every %d ms on a fresh connection "
                 "during each run; the last row of each count of workers is "
                 "workload (a) instead, where the daemon's loop thread is "
                 "busiest." % self.args.poll_ms, "",
                 "| workers | daemon | valid | median s | min-max s | "
                 "status polls | p50 ms | p99 ms | max ms |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for res in self.slow:
            if res.get("skipped"):
                lines.append("| %d | skipped: %s | | | | | | | |"
                             % (res["workers"], res["skipped"]))
                continue
            for kind in ("plain", "shim", "busy"):
                t = res[kind]
                v = t.valid()
                lat = res["lat"][kind]
                walls = [r.wall for r in v]
                lines.append("| %d | %s | %d/%d | %s | %s | %d%s | %s | %s "
                             "| %s |" % (
                                 res["workers"],
                                 {"plain": "plain", "shim": "with shim",
                                  "busy": "plain, during (a)"}[kind],
                                 len(v), len(t.runs),
                                 "%.3f" % t.wall() if v else "-",
                                 "%.3f-%.3f" % (min(walls), max(walls))
                                 if v else "-",
                                 len(lat),
                                 " (%d failed)" % res["errors"][kind]
                                 if res["errors"][kind] else "",
                                 fmt_ms(percentile(lat, 50)),
                                 fmt_ms(percentile(lat, 99)),
                                 fmt_ms(max(lat) if lat else None)))
        return lines

    def targets(self):
        out = []
        tal = self.tallies

        def mark(ok):
            return "PASS" if ok else "MISS"

        def wall(key, name):
            t = tal.get(key, {}).get(name)
            return t.wall() if t is not None and not t.skipped else None

        if "a" in tal:
            ifd, curl = wall("a", "imgfetchd"), wall("a", "curl")
            if ifd and curl:
                out.append("%s (a) imgfetchd %.2fx faster than curl "
                           "--parallel (target >= 1.30x)"
                           % (mark(curl / ifd >= 1.3), curl / ifd))
            else:
                out.append("SKIP (a) imgfetchd vs curl: no valid runs")
        if "b" in tal:
            ifd = wall("b", "imgfetchd")
            ideal = self.wl_b.ideal
            if ifd:
                out.append("%s (b) imgfetchd %.3f s = %.1f%% over the ideal "
                           "%.3f s (target <= 10%%)" % (
                               mark(ifd <= ideal * 1.10), ifd,
                               (ifd / ideal - 1) * 100, ideal))
            else:
                out.append("SKIP (b) imgfetchd: no valid runs")
        if "c" in tal:
            ifd = wall("c", "imgfetchd")
            others = {n: wall("c", n) for n in CONTENDERS[1:]}
            others = {n: w for n, w in others.items() if w}
            t = tal["c"].get("imgfetchd")
            rss = t.peak_rss() if t is not None else None
            if ifd and others:
                best = min(others, key=others.get)
                out.append("%s (c) imgfetchd %.1f MB/s vs fastest other "
                           "(%s) %.1f MB/s (target: at least as fast)" % (
                               mark(ifd <= others[best]),
                               self.wl_c_rate(ifd), best,
                               self.wl_c_rate(others[best])))
            else:
                out.append("SKIP (c) throughput: no valid runs")
            if rss:
                out.append("%s (c) imgfetchd daemon peak RSS %.1f MiB "
                           "(target <= 32 MiB)"
                           % (mark(rss <= 32 * 1024), rss / 1024.0))
            else:
                out.append("SKIP (c) peak RSS: not measured")
        for res in self.slow:
            w = res["workers"]
            if res.get("skipped"):
                out.append("SKIP slow disk (workers %d): %s"
                           % (w, res["skipped"]))
                continue
            p99 = percentile(res["lat"]["shim"], 99)
            if p99 is not None:
                out.append("%s slow disk (workers %d): /v1/status p99 "
                           "%.2f ms (target <= 5 ms)"
                           % (mark(p99 <= 0.005), w, p99 * 1000))
            else:
                out.append("SKIP slow disk (workers %d): no status polls"
                           % w)
            plain, shim = res["plain"].wall(), res["shim"].wall()
            if plain and shim:
                out.append("%s slow disk (workers %d): workload (b) %.3f s "
                           "with the shim vs %.3f s without, %+.1f%% "
                           "(target <= +10%%)" % (
                               mark(shim <= plain * 1.10), w, shim, plain,
                               (shim / plain - 1) * 100))
            else:
                out.append("SKIP slow disk (workers %d): no valid runs" % w)
        return out

    def wl_c_rate(self, wall):
        for wl in self.workloads:
            if wl.key == "c":
                return wl.rate(wall)
        return 0.0


def fmt_ms(x):
    return "-" if x is None else "%.2f" % (x * 1000)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark imgfetchd against curl --parallel, wget2 "
        "and aiohttp on a local nginx (see tests/bench/README.md).")
    p.add_argument("--smoke", action="store_true",
                   help="tiny workloads and one run: does it all work?")
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("--runs", type=int, help="counted runs (default 5; "
                   "smoke 1)")
    p.add_argument("--warmup", type=int, help="warm-up rounds (default 1; "
                   "smoke 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="imgfetchd writer threads (default: the daemon's "
                   "own, one per CPU from 2 to 8)")
    p.add_argument("--workloads", default="abc",
                   help="which of a, b, c to run (default abc)")
    p.add_argument("--contenders", default=",".join(CONTENDERS),
                   help="comma-separated subset of %s" % ",".join(CONTENDERS))
    p.add_argument("--small", type=int, help="files in (a): 5000")
    p.add_argument("--delayed", type=int, help="files in (b): 1000")
    p.add_argument("--delay-ms", type=int, default=50)
    p.add_argument("--big", type=int, help="files in (c): 4")
    p.add_argument("--big-mib", type=int, help="MiB per file in (c): 256")
    p.add_argument("--delay-origin", choices=("auto", "nginx", "origin"),
                   default="auto", help="who delays (b): nginx's echo "
                   "module when installed (auto), or tests/origin")
    p.add_argument("--no-slowdisk", action="store_true")
    p.add_argument("--slowdisk-workers", default="4,64,256",
                   help="writer thread counts for the slow-disk run "
                   "(default 4,64,256)")
    p.add_argument("--slowdisk-ms", type=int, default=100,
                   help="delay per file write (default 100)")
    p.add_argument("--poll-ms", type=int, default=10)
    p.add_argument("--run-timeout", type=float,
                   help="seconds before a run is killed (default 600; "
                   "smoke 30)")
    p.add_argument("--aio-python", default=DEBIAN_PYTHON
                   if os.access(DEBIAN_PYTHON, os.X_OK) else sys.executable)
    p.add_argument("--tmpdir", help="where the temporary directory goes")
    p.add_argument("--out-fs", choices=("tmpfs", "disk"), default="tmpfs",
                   help="write the runs' files to a tmpfs (default; see "
                   "README.md) or next to the corpus")
    p.add_argument("--tmpfs-dir", default="/dev/shm",
                   help="the tmpfs for --out-fs tmpfs (default /dev/shm)")
    p.add_argument("--ab", metavar="IMGFETCHD",
                   help="instead of the contenders, compare this build "
                   "of imgfetchd (A) with another (B) in pairs of runs on "
                   "two daemons side by side; no slow-disk run (default "
                   "30 pairs after 2 warm-up pairs; smoke 2 and 0)")
    p.add_argument("--save", metavar="FILE",
                   help="also write the report to FILE")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory")
    a = p.parse_args(argv)
    smoke = a.smoke
    if a.ab:
        if not os.access(a.ab, os.X_OK):
            p.error("--ab: %s is not an executable" % a.ab)
        a.no_slowdisk = True
        a.contenders = "imgfetchd"
        if a.runs is None:
            a.runs = 2 if smoke else 30
        if a.warmup is None:
            a.warmup = 0 if smoke else 2
    for k, full, tiny in (("runs", 5, 1), ("warmup", 1, 0),
                          ("small", 5000, 20), ("delayed", 1000, 20),
                          ("big", 4, 1), ("big_mib", 256, 4),
                          ("run_timeout", 600.0, 30.0)):
        if getattr(a, k) is None:
            setattr(a, k, tiny if smoke else full)
    a.contenders = [x for x in a.contenders.split(",") if x]
    for x in a.contenders:
        if x not in CONTENDERS:
            p.error("unknown contender %r" % x)
    if "imgfetchd" not in a.contenders:
        p.error("imgfetchd is the reference: keep it among the contenders")
    a.workloads = [k for k in a.workloads if k in "abc"]
    a.slowdisk_workers = [int(x) for x in a.slowdisk_workers.split(",") if x]
    if a.runs < 1 or a.concurrency < 1:
        p.error("--runs and --concurrency must be at least 1")
    return a


def loadavg():
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def on_sigterm(signum, frame):
    raise SystemExit("bench: terminated")


def main(argv):
    args = parse_args(argv)
    if find_nginx() is None:
        msg = "bench: nginx is not installed (apt-get install nginx)"
        if args.smoke:
            print(msg + ": skipping", flush=True)
            return EXIT_SKIP
        print(msg, file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    bench = Bench(args)
    t0 = time.monotonic()
    load0 = loadavg()
    try:
        bench.setup()
        bench.run_all()
    finally:
        bench.teardown()
    text = bench.report()
    text += ("\nTotal benchmark time %.0f s; %d invalid run(s); load "
             "average at the start %s, at the end %s.\n" % (
                 time.monotonic() - t0, bench.failures, load0, loadavg()))
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.save:
        with open(args.save, "w") as f:
            f.write(text)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
