"""Scraping and the URL cache: what discovery costs, what the cache saves.

    python3 tests/bench/scrape_bench.py [--smoke] [--runs N] [--save FILE]

On a local nginx (Debian's, on 127.0.0.1, a config of its own), with W1 =
PAGES pages of IMAGES real PNGs each (5,000 images by default):

  (d) discovery: imgfetchd scraping the W1 pages, against imgfetchd
      fetching the same images from a plain URL list, and wget2 -p (page
      requisites: its own page scraping) on the same pages;
  (e) the cache: a second, unchanged run of the W1 scrape with if_changed
      against a first one on an empty cache (every image request of the
      second answered 304);
  (f) the loop while parsing: GET /v1/status latency during the scrape of
      one page that names 5,000 images (parsed on a writer thread).

Rounds are interleaved (A B C A B C ...), one warm-up round and --runs
counted; each run goes into a fresh directory that is checked (every
image, right size) and removed. Exit status 0 when every run was valid,
1 otherwise, 77 in --smoke mode without nginx (meson: skipped).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
from bench import (Daemon, Nginx, StatusPoller, find_nginx,  # noqa: E402
                   make_pngs, median, percentile, run_measured,
                   UnixHTTPConnection)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_site(www, pages, images):
    """W1: pages/pNN.html, each naming its own IMAGES PNGs (relative
    URLs, as a gallery does), and one big page naming all of them.
    Returns {file name: size} of every image."""
    expected = {}
    for p in range(pages):
        d = os.path.join(www, "img", "p%02d" % p)
        made = make_pngs(d, images, seed=1000 + p)
        # Names unique across pages, as a site's are: the run measures
        # discovery, not the numbering of clashing names.
        sizes = {}
        for name, size in made.items():
            os.rename(os.path.join(d, name),
                      os.path.join(d, "p%02d-%s" % (p, name)))
            sizes["p%02d-%s" % (p, name)] = size
        body = ["<!doctype html><html><head><title>page %d</title>"
                "</head><body><h1>Gallery %d</h1>\n" % (p, p)]
        for name in sorted(sizes):
            body.append('<figure><a href="../img/p%02d/%s"><img '
                        'src="../img/p%02d/%s" alt="%s" loading="lazy">'
                        '</a><figcaption>%s</figcaption></figure>\n'
                        % (p, name, p, name, name, name))
            expected[name] = sizes[name]
        body.append("</body></html>\n")
        os.makedirs(os.path.join(www, "pages"), exist_ok=True)
        with open(os.path.join(www, "pages", "p%02d.html" % p), "w") as f:
            f.write("".join(body))
    return expected


def make_big_page(www, count):
    """pages/all.html naming count images of the site (the (f) page)."""
    names = []
    for d in sorted(os.listdir(os.path.join(www, "img"))):
        for n in sorted(os.listdir(os.path.join(www, "img", d))):
            names.append("../img/%s/%s" % (d, n))
    names = names[:count]
    with open(os.path.join(www, "pages", "all.html"), "w") as f:
        f.write("<!doctype html><html><body>\n")
        for n in names:
            f.write('<div class="card"><img src="%s" srcset="%s 1x, %s 2x" '
                    'data-id="x"></div>\n' % (n, n, n))
        f.write("</body></html>\n")
    return len(names)


def api(sock, method, path, body=None, timeout=30):
    c = UnixHTTPConnection(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json",
                "Prefer": "return=minimal"} if data else {}
        c.request(method, path, data, hdrs)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def run_job(daemon, body, timeout):
    """Submit a job, follow its events to the end; (wall, cpu, job)."""
    cpu0 = daemon.cpu()
    t0 = time.perf_counter()
    status, job = api(daemon.sock, "POST", "/v1/jobs", body)
    if status != 202:
        raise RuntimeError("submit: %d %r" % (status, job))
    c = UnixHTTPConnection(daemon.sock, timeout)
    c.request("GET", "/v1/jobs/%d/events?items=failed" % job["id"])
    r = c.getresponse()
    end = None
    for line in r:
        ev = json.loads(line)
        if ev.get("event") == "job":
            end = ev["job"]
            break
    wall = time.perf_counter() - t0
    c.close()
    return wall, daemon.cpu() - cpu0, end


class Runner:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="ifd-scrape-")
        os.chmod(self.tmp, 0o755)
        self.www = os.path.join(self.tmp, "www")
        # The downloads go to a tmpfs where there is one, as in bench.py:
        # the disk's own costs are not what is measured.
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            self.out = tempfile.mkdtemp(prefix="ifd-scrape-out-",
                                        dir="/dev/shm")
        else:
            self.out = os.path.join(self.tmp, "out")
            os.makedirs(self.out)
        self.imgfetchd = bench.built("IMGFETCHD", "imgfetchd")
        log("scrape_bench: making %d pages of %d images"
            % (a.pages, a.images))
        self.expected = make_site(self.www, a.pages, a.images)
        self.nbig = make_big_page(self.www, a.big_page)
        self.nginx = Nginx(find_nginx(), self.tmp, self.www, None, 0)
        self.pages = [self.nginx.url("/pages/p%02d.html" % p)
                      for p in range(a.pages)]
        self.urls = []
        for p in range(a.pages):
            for n in sorted(os.listdir(os.path.join(self.www, "img",
                                                    "p%02d" % p))):
                self.urls.append(self.nginx.url("/img/p%02d/%s" % (p, n)))
        self.results = {}

    def daemon(self, label):
        return Daemon(self.imgfetchd, self.tmp, self.out, label,
                      self.a.concurrency, None)

    def record(self, key, wall, cpu, ok, why):
        self.results.setdefault(key, []).append((wall, cpu, ok, why))
        if not ok:
            log("scrape_bench: %s: INVALID: %s" % (key, why))

    def imgfetchd_run(self, d, key, tag, body):
        rel = "%s-%s" % (key, tag)
        body = dict(body, dir=rel, name="{name}")
        wall, cpu, job = run_job(d, body, self.a.run_timeout)
        outdir = os.path.join(d.download_dir, rel)
        # the {name} layout is flat: name pNN-NAME from the URL instead
        ok = job is not None and job["state"] == "done" and \
            job["done"] == len(self.expected) + (
                len(self.pages) if "pages" in body else 0)
        why = "" if ok else "job %r" % ({k: job.get(k) for k in (
            "state", "done", "failed", "total")} if job else None)
        files = sum(len(n) for _d, _s, n in os.walk(outdir))
        if ok and files != len(self.expected):
            ok, why = False, "%d files, want %d" % (files,
                                                    len(self.expected))
        shutil.rmtree(outdir, ignore_errors=True)
        return wall, cpu, ok, why

    def wget2_run(self, tag):
        outdir = os.path.join(self.out, "wget2-%s" % tag)
        lst = os.path.join(self.tmp, "pages.txt")
        with open(lst, "w") as f:
            f.write("".join(u + "\n" for u in self.pages))
        rc, wall, cpu, _rss = run_measured(
            ["wget2", "--no-config", "--max-threads=%d" % self.a.concurrency,
             "--no-robots", "--tries=1", "--quiet", "--no-hsts",
             "--no-hpkp", "--page-requisites", "-i", lst, "-P", outdir],
            self.a.run_timeout)
        got = {}
        imgroot = None
        for dirpath, _d, names in os.walk(outdir):
            if os.path.basename(os.path.dirname(dirpath)) == "img":
                imgroot = True
                for n in names:
                    got[n] = os.lstat(os.path.join(dirpath, n)).st_size
        ok = rc == 0 and imgroot and got == self.expected
        why = "" if ok else "exit %d, %d of %d images" % (
            rc, len(set(got) & set(self.expected)), len(self.expected))
        shutil.rmtree(outdir, ignore_errors=True)
        return wall, cpu, ok, why

    def discovery(self):
        """(d): scrape vs list vs wget2 -p, interleaved."""
        d = self.daemon("d")
        have_wget2 = shutil.which("wget2") is not None
        try:
            for rnd in range(self.a.warmup + self.a.runs):
                tag = "r%d" % rnd
                counted = rnd >= self.a.warmup
                r = self.imgfetchd_run(d, "scrape", tag,
                                       {"pages": self.pages})
                if counted:
                    self.record("d-scrape", *r)
                r = self.imgfetchd_run(d, "list", tag, {"urls": self.urls})
                if counted:
                    self.record("d-list", *r)
                if have_wget2:
                    r = self.wget2_run(tag)
                    if counted:
                        self.record("d-wget2", *r)
        finally:
            d.stop()

    def cache(self):
        """(e): a first if_changed run on an empty cache, then an
        unchanged second run; a fresh daemon (and store) each round."""
        for rnd in range(self.a.warmup + self.a.runs):
            d = self.daemon("e%d" % rnd)
            try:
                body = {"pages": self.pages, "if_changed": True}
                first = self.imgfetchd_run(d, "first", "r%d" % rnd, body)
                second = self.second_run(d, body, "r%d" % rnd)
            finally:
                d.stop()
                shutil.rmtree(d.dir, ignore_errors=True)
            if rnd >= self.a.warmup:
                self.record("e-first", *first)
                self.record("e-second", *second)

    def second_run(self, d, body, tag):
        rel = "second-%s" % tag
        wall, cpu, job = run_job(d, dict(body, dir=rel, name="{name}"),
                                 self.a.run_timeout)
        # every image ends done and unchanged; nothing new on disk
        ok = job is not None and job["state"] == "done"
        files = sum(len(n) for _d, _s, n in
                    os.walk(os.path.join(d.download_dir, rel)))
        if ok and files != 0:
            ok = False
        why = "" if ok else "state %s, %d new files" % (
            job and job.get("state"), files)
        return wall, cpu, ok, why

    def latency(self):
        """(f): status latency while one 5,000-image page is parsed."""
        d = self.daemon("f")
        try:
            poller = StatusPoller(d.sock, self.a.poll_ms / 1000.0)
            wall, cpu, job = run_job(
                d, {"pages": [self.nginx.url("/pages/all.html")],
                    "dir": "f", "name": "{n}.png"}, self.a.run_timeout)
            lat = poller.stop()
            ok = job is not None and job["state"] == "done"
            self.results["f"] = (wall, lat, ok, job and job.get("total"))
        finally:
            d.stop()

    def report(self):
        lines = []
        cpus = os.cpu_count()
        lines.append("# Scraping benchmark: %d pages x %d images, "
                     "concurrency %d, %d CPUs, median of %d runs"
                     % (self.a.pages, self.a.images, self.a.concurrency,
                        cpus, self.a.runs))
        lines.append("")
        lines.append("| run | time | CPU-s | ratio |")
        lines.append("| --- | --- | --- | --- |")

        def med(key):
            rs = self.results.get(key, [])
            if not rs:
                return None, None
            return median([r[0] for r in rs]), median([r[1] for r in rs])

        base, _ = med("d-list")
        for key, title in (("d-list", "(d) imgfetchd, the URL list"),
                           ("d-scrape", "(d) imgfetchd, scraping the pages"),
                           ("d-wget2", "(d) wget2 -p on the pages")):
            w, c = med(key)
            if w is None:
                continue
            lines.append("| %s | %.3f s | %.2f | %.2fx of the list |"
                         % (title, w, c, w / base))
        first, fc = med("e-first")
        second, sc = med("e-second")
        if first is not None:
            lines.append("| (e) first run, if_changed, empty cache | "
                         "%.3f s | %.2f | |" % (first, fc))
            lines.append("| (e) second run, unchanged | %.3f s | %.2f | "
                         "%.2fx of the first |" % (second, sc,
                                                  second / first))
        if "f" in self.results:
            wall, lat, ok, total = self.results["f"]
            if lat:
                lines.append("")
                lines.append("(f) one page naming %d images: scraped and "
                             "fetched in %.3f s; GET /v1/status during it: "
                             "%d polls, p50 %.2f ms, p99 %.2f ms, max "
                             "%.2f ms" % (self.nbig, wall, len(lat),
                                          percentile(lat, 50) * 1e3,
                                          percentile(lat, 99) * 1e3,
                                          max(lat) * 1e3))
        return "\n".join(lines)

    def valid(self):
        for key, rs in self.results.items():
            if key == "f":
                if not rs[2]:
                    return False
                continue
            if not all(r[2] for r in rs):
                return False
        return True

    def close(self):
        self.nginx.stop()
        shutil.rmtree(self.out, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, one round: for the test suite")
    p.add_argument("--pages", type=int, default=20)
    p.add_argument("--images", type=int, default=250)
    p.add_argument("--big-page", type=int, default=5000)
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--poll-ms", type=int, default=10)
    p.add_argument("--run-timeout", type=float, default=300)
    p.add_argument("--save", metavar="FILE", help="also write the report")
    a = p.parse_args(argv)
    if a.smoke:
        a.pages, a.images, a.big_page, a.runs, a.warmup = 2, 10, 20, 1, 0
    if find_nginx() is None:
        log("scrape_bench: nginx is not installed")
        return bench.EXIT_SKIP if a.smoke else 1
    r = Runner(a)
    try:
        r.discovery()
        r.cache()
        r.latency()
        out = r.report()
    finally:
        r.close()
    print(out)
    if a.save:
        with open(a.save, "w") as f:
            f.write(out + "\n")
    return 0 if r.valid() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
