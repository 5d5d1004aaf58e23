"""Integration-test harness for imgfetchd: Python 3 standard library only.

Environment:
    IMGFETCHD, IMGFETCH, ORIGIN   paths to the built binaries (meson sets them)
    KEEP=1                        keep the temporary directory of the run
    IFD_SANITIZED=1               IMGFETCHD is an ASan/UBSan build: a test
                                  fails if a daemon it started logged a
                                  sanitizer report (tests/meson.build's
                                  asan suite sets this)

What it offers:
    tmpdir()                 the run's temporary directory (created once)
    fresh_dir(name)          a new empty directory inside it
    make_png(path, w, h, seed) / png_bytes(w, h, seed)
                             real PNG files (noise rows, so they stay big)
    make_corpus(root)        the standard set of origin files (see below)
    stream_sha256(n, magic)  sha256 hex of /stream/n (?magic=png|gif|jpeg)
    pattern_bytes(off, n, magic)  those bytes themselves (small n only)
    Origin(root)             the test origin: .url(path), .stats(),
                             .reset_stats(), .last_headers(), .port, .stop()
    Nginx(www, tls, http2, extra)  Debian's nginx on 127.0.0.1 (Skip when
                             missing): .url(path), .requests() (access log),
                             .clear_log(), .port, .stop()
    Daemon(tmp, **config)    imgfetchd on a private socket: .api(), .submit(),
                             .job(), .wait_job(), .events(), .stop(), .pid,
                             .log(), .sock, .download_dir, .path(rel)
    UnixHTTPConnection(path) http.client over AF_UNIX
    run(globals())           the test runner (see run())
    Skip, check(), eq()      for tests

Every test file makes its own Origin and Daemon; the runner stops whatever is
still running at the end and removes the temporary directory.
"""

import hashlib
import http.client
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

STREAM_BLOCK = 64 * 1024


# ---------------------------------------------------------------- basics

class Skip(Exception):
    """Raised by a test that cannot run here; counted as skipped."""


def check(cond, message):
    """Fail the current test with message unless cond holds."""
    if not cond:
        raise AssertionError(message)


def eq(got, want, what):
    """Fail unless got == want, naming what was compared."""
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def binary(name):
    """Path of a binary named by an environment variable."""
    path = os.environ.get(name)
    if not path:
        raise SystemExit("%s is not set (run the tests through meson test)"
                         % name)
    return path


_tmp = None


def tmpdir():
    """The temporary directory of this run, created on first use."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="ifd-it-", dir="/tmp")
    return _tmp


def fresh_dir(name):
    """A new, empty directory under the run's temporary directory."""
    base = os.path.join(tmpdir(), name)
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = "%s-%d" % (base, i)
    os.makedirs(path)
    return path


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; raise after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def files_under(root):
    """Every regular file under root, as sorted relative paths."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def read_file(path):
    """The whole contents of a file, as bytes."""
    with open(path, "rb") as f:
        return f.read()


def proc_status(pid):
    """/proc/PID/status as a dict of name -> text; {} if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def cpu_seconds(pid):
    """User + system CPU time of pid so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kib(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) as an int, or None."""
    v = proc_status(pid).get(field)
    if not v:
        return None
    return int(v.split()[0])


# ---------------------------------------------------------------- images

def png_bytes(w, h, seed=0):
    """A valid 8-bit RGB PNG of w x h pixels of noise."""
    rnd = random.Random(seed)
    raw = bytearray()
    for _ in range(h):
        raw.append(0)  # filter type None
        raw += rnd.randbytes(w * 3)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6))
            + chunk(b"IEND", b""))


def make_png(path, w, h, seed=0):
    """Write a PNG of noise to path (directories created); return bytes."""
    data = png_bytes(w, h, seed)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return data


def is_png(data):
    """Does data look like a complete PNG (signature ... IEND)?"""
    return (data[:8] == b"\x89PNG\r\n\x1a\n"
            and data[-12:-8] == b"\x00\x00\x00\x00"
            and data[-8:-4] == b"IEND")


def make_corpus(root, small=0):
    """The standard origin files, returned as {relative path: bytes}:
    a.png (64x48), b.png (200x150), big.png (1024x768, about 2.3 MB),
    noext (a PNG without extension), sub/c.png (32x32), and when small > 0
    small/0.png .. small/{small-1}.png (8x8 each)."""
    files = {
        "a.png": (64, 48, 1),
        "b.png": (200, 150, 2),
        "big.png": (1024, 768, 3),
        "noext": (40, 30, 4),
        "sub/c.png": (32, 32, 5),
    }
    out = {}
    for rel, (w, h, seed) in files.items():
        out[rel] = make_png(os.path.join(root, rel), w, h, seed)
    for i in range(small):
        rel = "small/%d.png" % i
        out[rel] = make_png(os.path.join(root, rel), 8, 8, 1000 + i)
    return out


# ---------------------------------------------------------------- pattern

_BASE_BLOCK = bytes((j * 131) & 0xff for j in range(STREAM_BLOCK))
_SHIFT = [bytes((b + k) & 0xff for b in range(256)) for k in range(256)]


def _pattern_block(k):
    """Block k (64 KiB) of the stream pattern: byte i of the body is
    (i * 131 + (i >> 16)) & 0xff; inside block k, i >> 16 == k and
    i * 131 mod 256 depends only on i mod 65536."""
    return _BASE_BLOCK.translate(_SHIFT[k & 0xff])


STREAM_MAGIC = {
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
    "jpeg": b"\xff\xd8\xff\xe0",
}


def stream_sha256(n, magic=None):
    """sha256 hex digest of the first n bytes of the origin's pattern, or
    of /stream/n?magic=MAGIC (the signature over the first bytes)."""
    h = hashlib.sha256()
    full, rest = divmod(n, STREAM_BLOCK)
    blocks = [None] * 256
    sig = STREAM_MAGIC[magic] if magic else b""
    for k in range(full):
        b = blocks[k & 0xff]
        if b is None:
            b = blocks[k & 0xff] = _pattern_block(k)
        if k == 0 and sig:
            b = sig + b[len(sig):]
        h.update(b)
    if rest:
        b = _pattern_block(full)[:rest]
        if full == 0 and sig:
            b = (sig + b[len(sig):])[:rest]
        h.update(b)
    return h.hexdigest()


def pattern_bytes(offset, n, magic=None):
    """Bytes offset .. offset+n of the pattern (meant for small n), with
    the signature of magic over the start as /stream?magic= sends it."""
    data = bytearray(((i * 131) + (i >> 16)) & 0xff
                     for i in range(offset, offset + n))
    sig = STREAM_MAGIC[magic] if magic else b""
    for i in range(offset, min(offset + n, len(sig))):
        data[i - offset] = sig[i]
    return bytes(data)


def file_sha256(path):
    """sha256 hex digest of a file, read in pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- processes

_live = []       # Origin and Daemon objects not yet stopped
_started = []    # every Daemon ever started, in order


def _tail(path, n=25):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class _Server:
    """A server process a test started: killed at the end of the run."""

    proc = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in _live:
            _live.remove(self)

    def _signal_stop(self, sig, timeout=10):
        """Send sig and wait; False if it had to be killed instead."""
        if self in _live:
            _live.remove(self)
        if self.proc.poll() is not None:
            return True
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False


class Origin(_Server):
    """The test origin server ($ORIGIN) on 127.0.0.1, serving root."""

    def __init__(self, root, port=0):
        self.root = root
        self.logpath = os.path.join(tmpdir(), "origin-%d.log" % id(self))
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [binary("ORIGIN"), "--port", str(port), "--root", root],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.logf)
        _live.append(self)
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [],
                                              left)[0]:
                self.kill()
                raise RuntimeError("origin did not report its port: "
                                   + _tail(self.logpath))
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self.kill()
                raise RuntimeError("origin exited: " + _tail(self.logpath))
            line += b
        word, _, num = line.decode().strip().partition(" ")
        if word != "port":
            self.kill()
            raise RuntimeError("origin said %r" % line)
        self.port = int(num)

    def url(self, path):
        """Absolute URL of a path on this origin."""
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _get(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stats(self):
        """{"requests", "active", "max_active"} from /stats."""
        status, body = self._get("GET", "/stats")
        eq(status, 200, "origin /stats status")
        return json.loads(body)

    def last_headers(self):
        """Headers of the latest request to the origin (names lower-case)."""
        status, body = self._get("GET", "/last-headers")
        eq(status, 200, "origin /last-headers status")
        return json.loads(body)

    def reset_stats(self):
        status, body = self._get("POST", "/stats/reset")
        eq(status, 200, "origin /stats/reset status")
        return json.loads(body)

    def stop(self):
        """SIGTERM; the origin must exit 0."""
        if not self._signal_stop(signal.SIGTERM):
            raise AssertionError("origin ignored SIGTERM")
        self.proc.stdout.close()
        self.logf.close()
        eq(self.proc.returncode, 0, "origin exit status")


def find_nginx():
    """Debian's nginx binary, or None."""
    path = shutil.which("nginx")
    if path is None and os.access("/usr/sbin/nginx", os.X_OK):
        path = "/usr/sbin/nginx"
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


_NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    log_format itest '$request_method $uri $status $body_bytes_sent '
                     '$connection $server_protocol $http_referer';
    access_log {dir}/access.log itest;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{
        text/html html htm;
        image/png png;
        image/jpeg jpg jpeg;
        image/gif gif;
        image/webp webp;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port}{listen_extra};
        root {www};
{tls}{extra}    }}
}}
"""


class Nginx(_Server):
    """Debian's nginx on 127.0.0.1 serving www, with a config of its own.

    Nginx(www, tls=None, http2=False, extra="") raises Skip when nginx is not
    installed. tls is a dict with "cert" and "key" (PEM paths) and optionally
    "client_ca" (then a client certificate is required). extra is more
    server-block configuration (locations, return, add_header). Every
    request is logged as "METHOD URI STATUS BODY_BYTES CONNECTION PROTOCOL
    REFERER"; .requests() parses that log.
    """

    def __init__(self, www, tls=None, http2=False, extra=""):
        binary_path = find_nginx()
        if binary_path is None:
            raise Skip("nginx is not installed")
        self.www = www
        self.dir = fresh_dir("nginx")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.logpath = os.path.join(self.dir, "stderr.log")
        self.scheme = "https" if tls else "http"
        listen_extra = ""
        tls_conf = ""
        if tls:
            listen_extra += " ssl"
            tls_conf = ("        ssl_certificate %s;\n"
                        "        ssl_certificate_key %s;\n"
                        % (tls["cert"], tls["key"]))
            if tls.get("client_ca"):
                tls_conf += ("        ssl_client_certificate %s;\n"
                             "        ssl_verify_client on;\n"
                             % tls["client_ca"])
        if http2:
            listen_extra += " http2"
        self.proc = None
        why = "?"
        for _attempt in range(5):
            self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(_NGINX_CONF.format(
                    # As root, workers would run as nobody and could not
                    # read the test's private temporary directory.
                    user="user root;" if os.geteuid() == 0 else "",
                    dir=self.dir, port=self.port, www=www,
                    listen_extra=listen_extra, tls=tls_conf,
                    extra=extra))
            logf = open(self.logpath, "ab")
            self.proc = subprocess.Popen(
                [binary_path, "-p", self.dir + "/", "-c", self.conf,
                 "-e", os.path.join(self.dir, "error.log")],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            logf.close()
            _live.append(self)
            try:
                self._wait_port()
                return
            except RuntimeError as e:
                why = str(e)
                self.kill()
        raise RuntimeError("nginx did not start (%s):\n%s\n%s" % (
            why, _tail(self.logpath),
            _tail(os.path.join(self.dir, "error.log"))))

    def _wait_port(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("exited with status %d"
                                   % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("port %d not accepting" % self.port)
            time.sleep(0.02)

    def url(self, path, host="127.0.0.1"):
        """Absolute URL of a path on this server (host may be a name that
        resolves to 127.0.0.1, such as localhost)."""
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    def requests(self):
        """The access log so far: a list of dicts with method, uri, status,
        bytes (body bytes sent), connection (nginx's connection serial
        number), protocol and referer (None without one)."""
        out = []
        path = os.path.join(self.dir, "access.log")
        if not os.path.exists(path):
            return out
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) != 7:
                    continue
                out.append({"method": p[0], "uri": p[1], "status": int(p[2]),
                            "bytes": int(p[3]), "connection": int(p[4]),
                            "protocol": p[5],
                            "referer": None if p[6] == "-" else p[6]})
        return out

    def clear_log(self):
        """Empty the access log (nginx keeps appending to the same file)."""
        path = os.path.join(self.dir, "access.log")
        if os.path.exists(path):
            with open(path, "r+") as f:
                f.truncate(0)

    def stop(self):
        """SIGQUIT, nginx's graceful stop."""
        self._signal_stop(signal.SIGQUIT)


def corpus_origin(small=0):
    """A fresh corpus of real images and an Origin serving it:
    (origin, files as make_corpus returns them, the corpus root)."""
    root = fresh_dir("origin")
    files = make_corpus(root, small=small)
    return Origin(root), files, root


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def unix_accepting(path):
    """Whether something accepts connections on the Unix socket path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _conf_value(v):
    """A Python value as libconfig text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return str(v)
        return "%dL" % v
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        s = v.replace("\\", "\\\\").replace('"', '\\"')
        return '"%s"' % s
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_conf_value(x) for x in v) + "]"
    raise TypeError("no libconfig form for %r" % (v,))


def write_config(path, settings):
    """Write a libconfig file with settings (a dict; None values left out)."""
    with open(path, "w") as f:
        for k, v in settings.items():
            if v is not None:
                f.write("%s = %s;\n" % (k, _conf_value(v)))


class Daemon:
    """imgfetchd on a private socket inside tmp.

    Daemon(tmp, prefix=None, wait=True, **config): config keys override the
    defaults below (a value of None leaves the key out of the file); the
    socket, download_dir (tmp/dl) and state_dir (tmp/state) live in tmp.
    Retries and the shutdown grace are off unless a test turns them on. prefix
    is a command put in front (e.g. ["strace", ...]). With wait=False the
    process is started but not waited for (see .proc).
    """

    defaults = {
        "socket_mode": "0600",
        "retries": 0,
        "shutdown_grace": 0,
        "workers": 2,
        "max_transfers": 8,
        "max_host_connections": 0,
        "connect_timeout": 5,
        "timeout": 120,
        "max_redirects": 5,
        "user_agent": "imgfetchd-itest",
        "fsync": False,
        "queue_limit": 100000,
        "log_level": "debug",
        "on_exists": "suffix",
    }

    def __init__(self, tmp, prefix=None, wait=True, env=None, exe=None,
                 preexec=None, **config):
        self.dir = tmp
        self.extra_env = dict(env or {})  # added to the daemon's environment
        self.exe = exe  # another binary than $IMGFETCHD
        self.preexec = preexec  # run in the child before the exec
        os.makedirs(tmp, exist_ok=True)
        settings = dict(self.defaults)
        settings["socket_path"] = os.path.join(tmp, "sock")
        settings["download_dir"] = os.path.join(tmp, "dl")
        settings["state_dir"] = os.path.join(tmp, "state")
        settings.update(config)
        self.settings = settings
        self.sock = settings.get("socket_path")
        self.download_dir = settings.get("download_dir")
        self.confpath = os.path.join(tmp, "imgfetchd.conf")
        write_config(self.confpath, settings)
        self.logpath = os.path.join(tmp, "daemon.log")
        self.prefix = list(prefix or [])
        self.proc = None
        self.start(wait)

    def start(self, wait=True):
        """Start the process; with wait, until the socket accepts."""
        env = dict(os.environ)
        env.update(self.extra_env)
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            self.prefix + [self.exe or binary("IMGFETCHD"), "-c",
                           self.confpath],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
            env=env, preexec_fn=self.preexec)
        _live.append(self)
        _started.append(self)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._forget()
                raise RuntimeError(
                    "imgfetchd exited with status %d while starting:\n%s"
                    % (self.proc.returncode, _tail(self.logpath)))
            if unix_accepting(self.sock):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    "imgfetchd socket %s not accepting after %gs:\n%s"
                    % (self.sock, timeout, _tail(self.logpath)))
            time.sleep(0.02)

    @property
    def pid(self):
        """The daemon's pid (the child of the prefix command, if any)."""
        if not self.prefix:
            return self.proc.pid
        if getattr(self, "_pid", None) is None:
            path = "/proc/%d/task/%d/children" % (self.proc.pid,
                                                  self.proc.pid)
            with open(path) as f:
                kids = f.read().split()
            if len(kids) != 1:
                raise RuntimeError("%s has children %r, expected one"
                                   % (self.prefix[0], kids))
            self._pid = int(kids[0])
        return self._pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """The daemon's stderr so far."""
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=25):
        return _tail(self.logpath, n)

    def path(self, rel):
        """Absolute path of a file under the download directory."""
        return os.path.join(self.download_dir, rel)

    def connection(self, timeout=10):
        return UnixHTTPConnection(self.sock, timeout)

    def api(self, method, path, body=None, ctype=None, headers=None,
            timeout=10):
        """One request; returns (status, headers, JSON or raw bytes)."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            if ctype is None:
                ctype = "application/json"
        if isinstance(body, str):
            body = body.encode()
        if ctype is not None:
            h["Content-Type"] = ctype
        c = self.connection(timeout)
        try:
            try:
                c.request(method, path, body=body, headers=h)
            except (BrokenPipeError, ConnectionResetError):
                # The daemon may answer (413) and close before reading a
                # big body; its answer is still there to read.
                pass
            r = c.getresponse()
            raw = r.read()
            hdrs = r.headers
            status = r.status
        finally:
            c.close()
        data = raw
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw
        return status, hdrs, data

    def submit(self, urls, **opts):
        """POST /v1/jobs as JSON; returns the job (status must be 202)."""
        body = {"urls": list(urls)}
        body.update(opts)
        status, hdrs, data = self.api("POST", "/v1/jobs", body)
        if status != 202:
            raise AssertionError("submit: expected 202, got %d %r"
                                 % (status, data))
        return data

    def job(self, jid):
        status, _h, data = self.api("GET", "/v1/jobs/%d" % jid)
        eq(status, 200, "GET /v1/jobs/%d status" % jid)
        return data

    def wait_job(self, jid, timeout=30, interval=0.05):
        """Poll the job until done/failed/cancelled; return it."""
        deadline = time.monotonic() + timeout
        job = None
        while True:
            job = self.job(jid)
            if job.get("state") in ("done", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                brief = {k: job.get(k) for k in
                         ("state", "total", "done", "failed", "bytes")}
                raise AssertionError("job %d not finished after %gs: %r"
                                     % (jid, timeout, brief))
            time.sleep(interval)

    def events(self, jid, timeout=30, query=""):
        """Open /v1/jobs/ID/events (query, e.g. "?items=failed", appended);
        returns (connection, response). Read events with
        read_event(response)."""
        c = self.connection(timeout)
        c.request("GET", "/v1/jobs/%d/events%s" % (jid, query))
        return c, c.getresponse()

    def _forget(self):
        if self in _live:
            _live.remove(self)
        if not self.logf.closed:
            self.logf.close()

    def kill(self):
        """SIGKILL, for cleanup."""
        if self.proc.poll() is None:
            if self.prefix:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except (OSError, RuntimeError):
                    pass
            self.proc.kill()
            self.proc.wait()
        self._forget()

    def stop(self, timeout=10):
        """SIGTERM; must exit 0 within timeout seconds. Returns seconds."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    "imgfetchd still running %gs after SIGTERM:\n%s"
                    % (timeout, _tail(self.logpath)))
        self._forget()
        rc = self.proc.returncode
        if rc != 0:
            raise AssertionError("imgfetchd exited with status %d after "
                                 "SIGTERM:\n%s" % (rc, _tail(self.logpath)))
        return time.monotonic() - t0


def read_event(resp):
    """The next NDJSON event of an events response, or None at its end."""
    while True:
        line = resp.readline()
        if not line:
            return None
        line = line.strip()
        if line:
            return json.loads(line)


# ---------------------------------------------------------------- runner

class _TestTimeout(Exception):
    pass


def timeout(seconds):
    """Decorator: give a test this many seconds instead of the default."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


def _on_alarm(signum, frame):
    raise _TestTimeout()


def _where(exc):
    """file:line in the test module where exc was raised from."""
    tb = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(tb):
        if os.path.basename(fr.filename) != "harness.py":
            return "%s:%d" % (os.path.basename(fr.filename), fr.lineno)
    if tb:
        return "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno)
    return "?"


def _cleanup_live():
    for obj in list(_live):
        try:
            obj.kill()
        except Exception:
            pass


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: AddressSanitizer")


def sanitizer_report(daemons):
    """The first sanitizer report in the logs of these daemons, or None
    (only when IFD_SANITIZED=1)."""
    if os.environ.get("IFD_SANITIZED") != "1":
        return None
    for d in daemons:
        try:
            log = d.log()
        except OSError:
            continue
        for needle in SANITIZER_REPORTS:
            at = log.find(needle)
            if at != -1:
                return "%s in the log of imgfetchd pid %d:\n%s" % (
                    needle, d.proc.pid, log[max(0, at - 200):at + 3000])
    return None


def run(module_globals, default_timeout=120):
    """Run the module's test_* functions in definition order (only those
    named on the command line, if any).

    setup() and teardown() are called first and last when the module has
    them. Each test prints "ok NAME", "skip NAME: why" or "FAIL NAME: why"
    (with the tail of the daemon logs); one failure does not stop the
    others. Exits 1 if any test failed.
    """
    tests = [(n, f) for n, f in module_globals.items()
             if n.startswith("test_") and callable(f)]
    unknown = set(sys.argv[1:]) - {n for n, _f in tests}
    if unknown:
        sys.exit("no such test: %s" % ", ".join(sorted(unknown)))
    if sys.argv[1:]:
        tests = [(n, f) for n, f in tests if n in sys.argv[1:]]
    passed = failed = skipped = 0
    signal.signal(signal.SIGALRM, _on_alarm)
    setup_error = None
    try:
        if "setup" in module_globals:
            try:
                module_globals["setup"]()
            except Exception as e:
                setup_error = "setup failed at %s: %s" % (_where(e), e)
        for name, fn in tests:
            if setup_error:
                print("FAIL %s: %s" % (name, setup_error), flush=True)
                failed += 1
                continue
            mark = len(_started)
            limit = getattr(fn, "timeout", default_timeout)
            signal.alarm(limit)
            try:
                fn()
                signal.alarm(0)
                report = sanitizer_report(_started[mark:])
                if report is not None:
                    raise AssertionError(report)
                print("ok %s" % name, flush=True)
                passed += 1
            except Skip as e:
                signal.alarm(0)
                print("skip %s: %s" % (name, e), flush=True)
                skipped += 1
            except BaseException as e:
                signal.alarm(0)
                if isinstance(e, KeyboardInterrupt):
                    raise
                if isinstance(e, _TestTimeout):
                    why = "test took longer than %ds" % limit
                elif isinstance(e, AssertionError):
                    why = str(e)
                else:
                    why = "%s: %s" % (type(e).__name__, e)
                print("FAIL %s: %s (%s)" % (name, why, _where(e)),
                      flush=True)
                if os.environ.get("VERBOSE"):
                    traceback.print_exc()
                shown = set()
                for d in _started[mark:] + [x for x in _live
                                            if isinstance(x, Daemon)]:
                    if id(d) in shown:
                        continue
                    shown.add(id(d))
                    print("  --- log of imgfetchd pid %d (%s):"
                          % (d.proc.pid, d.dir))
                    for line in d.log_tail().splitlines():
                        print("  | " + line)
                failed += 1
        if "teardown" in module_globals:
            try:
                module_globals["teardown"]()
            except Exception as e:
                print("FAIL teardown: %s (%s)" % (e, _where(e)), flush=True)
                failed += 1
    finally:
        signal.alarm(0)
        _cleanup_live()
        # Daemons of setup() and the shared ones, which no test started.
        report = sanitizer_report(_started)
        if report is not None:
            print("FAIL sanitizer: %s" % report, flush=True)
            failed += 1
        if _tmp is not None:
            if os.environ.get("KEEP") == "1":
                print("kept %s" % _tmp)
            else:
                shutil.rmtree(_tmp, ignore_errors=True)
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary, flush=True)
    sys.exit(1 if failed else 0)
