"""The network as users have it: HTTPS against nginx with a CA this test
makes with openssl (ca_file, ca_path, mutual TLS, an untrusted certificate,
HTTP/2 multiplexing counted at nginx), proxies (tinyproxy over http and
behind a TLS relay as an https:// proxy, microsocks over socks5h, no_proxy,
the environment ignored), credentials from netrc_file against nginx's
auth_basic, and per-job timeout, retries, proxy and user_agent within the
config's caps, kept across a restart.

Every server listens on 127.0.0.1; every wait is bounded."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import harness
from harness import Skip, check, eq

PKI = None       # paths of the certificates and keys made by setup()
WWW = None       # nginx's document root
FILES = {}       # relative path -> bytes under WWW
O = None         # the project's origin (for headers and request counts)
ORIGIN_FILES = {}
TINY = None      # tinyproxy
NETRC_PASSWORD = "n3trc-Secret-7781"
SMALL = 500      # images of the HTTP/2 test


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=30)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it,
    a client certificate signed by it, a self-signed ("untrusted") server
    certificate, and a hashed CA directory for ca_path."""
    if shutil.which("openssl") is None:
        raise Skip("openssl is not installed")
    p = {k: os.path.join(d, k) for k in (
        "ca.pem", "ca.key", "srv.pem", "srv.key", "srv.csr", "cli.pem",
        "cli.key", "cli.csr", "bad.pem", "bad.key", "srv.ext", "cli.ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", p["ca.key"], "-out", p["ca.pem"],
            "-days", "2", "-subj", "/CN=imgfetchd itest CA")
    with open(p["srv.ext"], "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    with open(p["cli.ext"], "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "extendedKeyUsage=clientAuth\n")
    for who, cn in (("srv", "127.0.0.1"), ("cli", "imgfetchd itest client")):
        openssl("req", *ec, "-keyout", p[who + ".key"], "-out",
                p[who + ".csr"], "-subj", "/CN=" + cn)
        openssl("x509", "-req", "-in", p[who + ".csr"], "-CA", p["ca.pem"],
                "-CAkey", p["ca.key"], "-CAcreateserial", "-days", "2",
                "-out", p[who + ".pem"], "-extfile", p[who + ".ext"])
    openssl("req", "-x509", *ec, "-keyout", p["bad.key"], "-out",
            p["bad.pem"], "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    p["ca_dir"] = os.path.join(d, "ca.d")
    os.makedirs(p["ca_dir"])
    shutil.copy(p["ca.pem"], os.path.join(p["ca_dir"], "itest-ca.pem"))
    openssl("rehash", p["ca_dir"])
    for k in ("srv.key", "cli.key", "bad.key", "ca.key"):
        os.chmod(p[k], 0o600)
    return p


def setup():
    global PKI, WWW, FILES, O, ORIGIN_FILES, TINY
    PKI = make_pki(harness.fresh_dir("pki"))
    WWW = harness.fresh_dir("www")
    FILES = harness.make_corpus(WWW, small=SMALL)
    O, ORIGIN_FILES, _root = harness.corpus_origin()
    TINY = Tinyproxy()


def teardown():
    if TINY is not None:
        TINY.stop()
    if O is not None:
        O.stop()


# ---------------------------------------------------------------- servers

class Tinyproxy:
    """Debian's tinyproxy in the foreground on a free 127.0.0.1 port."""

    def __init__(self):
        exe = shutil.which("tinyproxy")
        if exe is None:
            raise Skip("tinyproxy is not installed")
        self.dir = harness.fresh_dir("tinyproxy")
        self.logpath = os.path.join(self.dir, "tinyproxy.log")
        self.port = harness.free_port()
        conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\n"
                    "LogLevel Info\nLogFile \"%s\"\nTimeout 30\n"
                    "MaxClients 64\n" % (self.port, self.logpath))
        self.out = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([exe, "-d", "-c", conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.out)
        wait_port(self.port, self.proc)

    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def requests(self):
        """The "GET http://..." request lines tinyproxy logged so far."""
        try:
            with open(self.logpath) as f:
                text = f.read()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            _, sep, req = line.partition("]: Request (file descriptor ")
            if sep:
                out.append(req.split(": ", 1)[1])
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


class Microsocks:
    """microsocks (SOCKS5) on a free 127.0.0.1 port, maybe with a login."""

    def __init__(self, user=None, password=None):
        exe = shutil.which("microsocks")
        if exe is None:
            raise Skip("microsocks is not installed")
        self.port = harness.free_port()
        args = [exe, "-i", "127.0.0.1", "-p", str(self.port)]
        if user:
            args += ["-u", user, "-P", password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class TLSRelay:
    """A TLS listener on 127.0.0.1 that relays each connection, decrypted,
    to a TCP port: in front of tinyproxy it makes an https:// proxy."""

    def __init__(self, cert, key, to_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.to_port = to_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                raw, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(raw,),
                             daemon=True).start()

    def _relay(self, raw):
        raw.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        self.accepted += 1
        up = socket.create_connection(("127.0.0.1", self.to_port), 10)

        def pump(src, dst):
            try:
                while True:
                    b = src.recv(65536)
                    if not b:
                        break
                    dst.sendall(b)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, tls), daemon=True)
        t.start()
        pump(tls, up)
        t.join(30)
        tls.close()
        up.close()

    def stop(self):
        self.running = False
        self.lsock.close()
        self.thread.join(5)


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError("server on port %d exited (%d)"
                                 % (port, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("nothing listens on port %d" % port)
            time.sleep(0.02)


def tcp_peers(pid):
    """Remote (address, port) of the established TCP sockets pid holds."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peers = []
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            p = line.split()
            if p[9] in inodes and p[3] == "01":  # ESTABLISHED
                addr, port = p[2].split(":")
                peers.append((socket.inet_ntoa(bytes.fromhex(addr)[::-1]),
                              int(port, 16)))
    return peers


# ---------------------------------------------------------------- helpers

def https_nginx(cert="srv", client_ca=False, http2=True, extra=""):
    tls = {"cert": PKI[cert + ".pem"], "key": PKI[cert + ".key"]}
    if client_ca:
        tls["client_ca"] = PKI["ca.pem"]
    return harness.Nginx(WWW, tls=tls, http2=http2, extra=extra)


def fetch_one(d, url, **opts):
    """Submit one URL, wait, return the job with its items."""
    job = d.submit([url], **opts)
    return d.wait_job(job["id"], timeout=60)


def item_ok(d, job, rel):
    eq(job["state"], "done", "job state (%r)" % job["items"][0])
    path = d.path(job["items"][0]["path"])
    eq(harness.read_file(path), FILES[rel], "bytes of " + rel)


# ---------------------------------------------------------------- HTTPS

def test_https_ca_file():
    ng = https_nginx()
    try:
        d = harness.Daemon(harness.fresh_dir("ca-file"),
                           ca_file=PKI["ca.pem"])
        for host in ("127.0.0.1", "localhost"):
            job = fetch_one(d, ng.url("/b.png", host=host))
            item_ok(d, job, "b.png")
        protos = {r["protocol"] for r in ng.requests()}
        eq(protos, {"HTTP/2.0"}, "protocols at nginx")
        d.stop()
    finally:
        ng.stop()


def test_https_ca_path():
    ng = https_nginx()
    try:
        d = harness.Daemon(harness.fresh_dir("ca-path"),
                           ca_path=PKI["ca_dir"])
        item_ok(d, fetch_one(d, ng.url("/a.png")), "a.png")
        d.stop()
    finally:
        ng.stop()


def test_untrusted_certificate():
    ng = https_nginx(cert="bad")
    try:
        d = harness.Daemon(harness.fresh_dir("untrusted"),
                           ca_file=PKI["ca.pem"], retries=2,
                           retry_delay=50)
        for host in ("127.0.0.1", "localhost"):
            job = fetch_one(d, ng.url("/a.png", host=host))
            eq(job["state"], "failed", "job state")
            it = job["items"][0]
            check("is not trusted" in it["error"] and host in it["error"],
                  "error should say the certificate of %s is not trusted: "
                  "%r" % (host, it["error"]))
            # Retrying cannot make a certificate trusted.
            eq(it["attempts"], 1, "attempts")
        eq(harness.files_under(d.download_dir), [], "files written")
        eq(ng.requests(), [], "requests nginx served")
        d.stop()
    finally:
        ng.stop()


def test_mutual_tls():
    ng = https_nginx(client_ca=True)
    try:
        d = harness.Daemon(harness.fresh_dir("mtls-none"),
                           ca_file=PKI["ca.pem"])
        job = fetch_one(d, ng.url("/a.png"))
        eq(job["state"], "failed", "job state without a client certificate")
        check("400" in job["items"][0]["error"],
              "nginx refuses a request without a client certificate: %r"
              % job["items"][0]["error"])
        d.stop()
        d = harness.Daemon(harness.fresh_dir("mtls"), ca_file=PKI["ca.pem"],
                           client_cert=PKI["cli.pem"],
                           client_key=PKI["cli.key"])
        item_ok(d, fetch_one(d, ng.url("/a.png")), "a.png")
        d.stop()
    finally:
        ng.stop()


@harness.timeout(300)
def test_http2_multiplexing():
    ng = https_nginx()
    try:
        d = harness.Daemon(harness.fresh_dir("h2"), ca_file=PKI["ca.pem"],
                           max_transfers=64, log_level="info")
        urls = [ng.url("/small/%d.png" % i) for i in range(SMALL)]
        job = d.submit(urls)
        job = d.wait_job(job["id"], timeout=240)
        eq(job["state"], "done", "job state")
        eq(job["done"], SMALL, "items done")
        for i, it in enumerate(job["items"]):
            rel = "small/%d.png" % i
            eq(harness.read_file(d.path(it["path"])), FILES[rel], rel)
        reqs = [r for r in ng.requests() if r["uri"].startswith("/small/")]
        eq(len(reqs), SMALL, "requests at nginx")
        eq({r["protocol"] for r in reqs}, {"HTTP/2.0"}, "protocols")
        conns = {}
        for r in reqs:
            conns[r["connection"]] = conns.get(r["connection"], 0) + 1
        print("http2: %d requests over %d connections %r"
              % (len(reqs), len(conns), sorted(conns.values())), flush=True)
        check(len(conns) <= 4, "%d connections for %d requests"
              % (len(conns), SMALL))
        d.stop()
    finally:
        ng.stop()


# ---------------------------------------------------------------- proxies

def test_http_proxy_and_no_proxy():
    d = harness.Daemon(harness.fresh_dir("proxy"), proxy=TINY.url(),
                       no_proxy="localhost")
    before = len(TINY.requests())
    job = fetch_one(d, O.url("/files/a.png?via=proxy"))
    eq(job["state"], "done", "job state through tinyproxy")
    check("via" in O.last_headers(), "the origin saw no Via header: %r"
          % O.last_headers())
    logged = TINY.requests()[before:]
    check(any("/files/a.png?via=proxy" in r for r in logged),
          "tinyproxy did not log the request: %r" % logged)
    # localhost is in no_proxy: straight to the origin.
    before = len(TINY.requests())
    url = O.url("/files/a.png?via=direct").replace("127.0.0.1", "localhost")
    job = fetch_one(d, url)
    eq(job["state"], "done", "job state past the proxy")
    check("via" not in O.last_headers(), "no_proxy went through the proxy")
    eq(TINY.requests()[before:], [], "tinyproxy requests for no_proxy")
    d.stop()


def test_environment_proxy_ignored():
    env = {k: TINY.url() for k in ("http_proxy", "HTTP_PROXY", "https_proxy",
                                    "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    d = harness.Daemon(harness.fresh_dir("env"), env=env)
    before = len(TINY.requests())
    job = fetch_one(d, O.url("/files/a.png?env=1"))
    eq(job["state"], "done", "job state")
    check("via" not in O.last_headers(), "http_proxy applied to the daemon")
    eq(TINY.requests()[before:], [], "tinyproxy requests")
    d.stop()
    # And the environment's no_proxy does not bypass a configured proxy.
    d = harness.Daemon(harness.fresh_dir("env2"), proxy=TINY.url(),
                       env={"no_proxy": "*", "NO_PROXY": "*"})
    job = fetch_one(d, O.url("/files/a.png?env=2"))
    eq(job["state"], "done", "job state")
    check("via" in O.last_headers(), "no_proxy from the environment applied")
    d.stop()


def test_https_proxy():
    relay = TLSRelay(PKI["srv.pem"], PKI["srv.key"], TINY.port)
    try:
        d = harness.Daemon(harness.fresh_dir("https-proxy"),
                           proxy="https://127.0.0.1:%d" % relay.port,
                           ca_file=PKI["ca.pem"])
        before = len(TINY.requests())
        job = fetch_one(d, O.url("/files/b.png?via=https-proxy"))
        eq(job["state"], "done", "job state (%r)" % job["items"][0])
        check(relay.accepted >= 1, "no TLS connection reached the relay")
        check(any("via=https-proxy" in r for r in TINY.requests()[before:]),
              "tinyproxy did not log the request")
        check("via" in O.last_headers(), "the origin saw no Via header")
        d.stop()
        # The proxy's certificate is checked too.
        d = harness.Daemon(harness.fresh_dir("https-proxy-bad"),
                           proxy="https://127.0.0.1:%d" % relay.port)
        job = fetch_one(d, O.url("/files/b.png?via=untrusted-proxy"))
        eq(job["state"], "failed", "job state with an untrusted proxy")
        d.stop()
    finally:
        relay.stop()


def test_socks5h_proxy():
    ms = Microsocks(user="sockuser", password="sockpass")
    try:
        proxy = "socks5h://sockuser:sockpass@127.0.0.1:%d" % ms.port
        d = harness.Daemon(harness.fresh_dir("socks"), proxy=proxy)
        # A slow answer, to catch microsocks holding the origin connection.
        url = O.url("/files/a.png?delay=1500").replace("127.0.0.1",
                                                       "localhost")
        job = d.submit([url])
        seen = harness.wait_for(
            lambda: ("127.0.0.1", O.port) in tcp_peers(ms.proc.pid),
            10, what="microsocks connected to the origin")
        check(seen, "microsocks never connected to the origin")
        check(("127.0.0.1", O.port) not in tcp_peers(d.pid),
              "the daemon connected to the origin itself")
        job = d.wait_job(job["id"])
        eq(job["state"], "done", "job state through microsocks")
        d.stop()
        # A wrong password: microsocks refuses, the item fails.
        d = harness.Daemon(harness.fresh_dir("socks-bad"),
                           proxy=proxy.replace("sockpass", "wrong"))
        job = fetch_one(d, O.url("/files/a.png"))
        eq(job["state"], "failed", "job state with a wrong SOCKS password")
        d.stop()
    finally:
        ms.stop()


def test_proxy_reload():
    d = harness.Daemon(harness.fresh_dir("reload"))
    job = fetch_one(d, O.url("/files/a.png?reload=0"))
    eq(job["state"], "done", "job state")
    check("via" not in O.last_headers(), "proxied before the reload")
    with open(d.confpath, "a") as f:
        f.write('proxy = "%s";\n' % TINY.url())
    os.kill(d.pid, signal.SIGHUP)
    harness.wait_for(lambda: "configuration reloaded" in d.log(), 10,
                     what="the reload")
    job = fetch_one(d, O.url("/files/a.png?reload=1"))
    eq(job["state"], "done", "job state")
    check("via" in O.last_headers(), "not proxied after the reload")
    d.stop()


# ---------------------------------------------------------------- netrc

def test_netrc():
    d0 = harness.fresh_dir("htpasswd")
    hashed = subprocess.run(["openssl", "passwd", "-apr1", NETRC_PASSWORD],
                            check=True, capture_output=True, text=True,
                            timeout=30).stdout.strip()
    htpasswd = os.path.join(d0, "htpasswd")
    with open(htpasswd, "w") as f:
        f.write("alice:%s\n" % hashed)
    os.makedirs(os.path.join(WWW, "private"), exist_ok=True)
    shutil.copy(os.path.join(WWW, "a.png"),
                os.path.join(WWW, "private", "a.png"))
    ng = harness.Nginx(WWW, extra=(
        "        location /private/ {\n"
        "            auth_basic \"itest\";\n"
        "            auth_basic_user_file %s;\n"
        "        }\n" % htpasswd))
    try:
        d = harness.Daemon(harness.fresh_dir("no-netrc"))
        job = fetch_one(d, ng.url("/private/a.png"))
        eq(job["state"], "failed", "job state without credentials")
        check("401" in job["items"][0]["error"], "error: %r"
              % job["items"][0]["error"])
        d.stop()
        netrc = os.path.join(d0, "netrc")
        with open(netrc, "w") as f:
            f.write("machine 127.0.0.1 login alice password %s\n"
                    % NETRC_PASSWORD)
        os.chmod(netrc, 0o600)
        d = harness.Daemon(harness.fresh_dir("netrc"), netrc_file=netrc,
                           log_level="debug")
        job = fetch_one(d, ng.url("/private/a.png"))
        item_ok(d, job, "a.png")
        # A host the netrc does not name still works without credentials.
        item_ok(d, fetch_one(d, ng.url("/a.png", host="localhost")), "a.png")
        eq([r["status"] for r in ng.requests()
            if r["uri"] == "/private/a.png"], [401, 200],
           "statuses of /private/a.png at nginx")
        _status, _h, listing = d.api("GET", "/v1/jobs")
        for text in (d.log(), str(listing), str(d.job(job["id"]))):
            check(NETRC_PASSWORD not in text, "the password leaked")
        d.stop()
        check(NETRC_PASSWORD not in d.log(), "the password is in the log")
    finally:
        ng.stop()


# ---------------------------------------------------------------- per job

def test_job_options_checked():
    d = harness.Daemon(harness.fresh_dir("caps"), max_job_timeout=30,
                       max_job_retries=3)
    url = O.url("/files/a.png")
    cases = [
        ({"timeout": 31}, "max_job_timeout"),
        ({"retries": 4}, "max_job_retries"),
        ({"proxy": TINY.url()}, "allow_job_proxy"),
        ({"no_proxy": "*"}, "allow_job_proxy"),
        ({"timeout": "5"}, "timeout:"),
        ({"timeout": 0}, "timeout:"),
        ({"retries": -1}, "retries:"),
        ({"retries": 1.5}, "retries:"),
        ({"user_agent": 7}, "user_agent:"),
        ({"user_agent": "a\r\nX-Evil: 1"}, "user_agent:"),
        ({"proxy": 1}, "proxy:"),
    ]
    for opts, want in cases:
        body = {"urls": [url]}
        body.update(opts)
        status, _h, data = d.api("POST", "/v1/jobs", body)
        eq(status, 400, "status for %r" % opts)
        check(want in data.get("error", ""), "%r: error %r should name %s"
              % (opts, data, want))
    d.stop()
    d = harness.Daemon(harness.fresh_dir("caps-proxy"), allow_job_proxy=True)
    for bad in ("ftp://127.0.0.1:1", "127.0.0.1:3128",
                "http://127.0.0.1:1/path"):
        status, _h, data = d.api("POST", "/v1/jobs",
                                 {"urls": [url], "proxy": bad})
        eq(status, 400, "status for proxy %r" % bad)
        check(data["error"].startswith("proxy:"), "error %r" % data)
    d.stop()


def test_job_user_agent_timeout_retries():
    d = harness.Daemon(harness.fresh_dir("jobopts"), retries=0, timeout=120,
                       retry_delay=50, retry_delay_max=50)
    job = fetch_one(d, O.url("/files/a.png?ua=1"), user_agent="job-agent/1")
    eq(job["state"], "done", "job state")
    eq(O.last_headers().get("user-agent"), "job-agent/1", "User-Agent")
    eq(job["user_agent"], "job-agent/1", "user_agent in the job")
    job = fetch_one(d, O.url("/files/a.png?ua=2"))
    eq(O.last_headers().get("user-agent"), "imgfetchd-itest",
       "User-Agent of a job without one")
    # The job's timeout, not the config's two minutes.
    t0 = time.monotonic()
    job = fetch_one(d, O.url("/files/a.png?delay=5000"), timeout=1)
    took = time.monotonic() - t0
    eq(job["state"], "failed", "job state past its timeout")
    check(took < 4.5, "a 1 s timeout took %.1f s" % took)
    check("imed out" in job["items"][0]["error"], "error %r"
          % job["items"][0]["error"])
    # The job's retries: the config's are 0.
    k = "retries-%d" % os.getpid()
    job = fetch_one(d, O.url("/files/a.png?key=%s&status=503&fail=2" % k),
                    retries=2)
    eq(job["state"], "done", "job state after its retries")
    eq(job["items"][0]["attempts"], 3, "attempts")
    d.stop()


def test_job_proxy():
    d = harness.Daemon(harness.fresh_dir("jobproxy"), allow_job_proxy=True)
    before = len(TINY.requests())
    proxy = TINY.url().replace("http://", "http://user:pr0xy-pw@")
    job = fetch_one(d, O.url("/files/a.png?jobproxy=1"), proxy=proxy)
    eq(job["state"], "done", "job state")
    check(any("jobproxy=1" in r for r in TINY.requests()[before:]),
          "the job's proxy was not used")
    check("pr0xy-pw" not in str(job), "the proxy password is in the job")
    eq(job["proxy"], TINY.url() + "/", "proxy shown in the job")
    # "" connects directly even when the config has a proxy.
    d.stop()
    d = harness.Daemon(harness.fresh_dir("jobproxy2"), allow_job_proxy=True,
                       proxy=TINY.url())
    before = len(TINY.requests())
    job = fetch_one(d, O.url("/files/a.png?jobproxy=2"), proxy="")
    eq(job["state"], "done", "job state")
    eq(TINY.requests()[before:], [], "tinyproxy requests of a direct job")
    d.stop()


def test_job_options_survive_restart():
    tmp = harness.fresh_dir("restart")
    d = harness.Daemon(tmp, retries=0, retry_delay=2500,
                       retry_delay_max=2500)
    k = "restart-%d" % os.getpid()
    url = O.url("/files/a.png?key=%s&status=503&fail=2" % k)
    job = d.submit([url], retries=3, timeout=40, user_agent="kept-agent/2")
    jid = job["id"]

    def keyed():
        """Requests the origin got with key=k."""
        _status, body = O._get("GET", "/keys/" + k)
        return json.loads(body)["requests"]
    harness.wait_for(lambda: keyed() >= 1, 10, what="the first attempt")
    harness.wait_for(lambda: d.job(jid)["items"][0].get("retry_at"), 10,
                     what="the retry to be scheduled")
    d.stop()
    d.start()
    job = d.job(jid)
    eq((job.get("retries"), job.get("timeout"), job.get("user_agent")),
       (3, 40, "kept-agent/2"), "options after the restart")
    job = d.wait_job(jid, timeout=30)
    eq(job["state"], "done", "job state")
    eq(keyed(), 3, "requests (two failures, then success)")
    eq(O.last_headers().get("user-agent"), "kept-agent/2",
       "User-Agent after the restart")
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
