"""Faults end to end: the origin resets, stalls, lies, throttles, serves
HTML or too much, and the daemon retries, resumes or fails each item with
the right state, message and files; SIGHUP reloads and SIGTERM's grace.

Requests are counted at the origin per key= (GET /keys/KEY), so retries,
Retry-After waits and resumed byte ranges are measured there."""

import json
import os
import re
import signal
import socket
import time

import harness
from harness import check, eq

O = None        # the origin
D = None        # the daemon most tests share
ROOT = None     # the origin's files
FILES = {}      # relative path -> bytes served under /files/
RETRIES = 2     # D's retries
MAX_ITEM = 3 * 1024 * 1024
STALL_MS = 12000
GROWING = 40000000  # a chunked body far over MAX_ITEM (and socket buffers)


def setup():
    global O, D, ROOT, FILES
    O, FILES, ROOT = harness.corpus_origin()
    D = harness.Daemon(harness.fresh_dir("main"), retries=RETRIES,
                       retry_delay=50, retry_delay_max=200,
                       retry_after_max=5, max_redirects=5,
                       max_item_size=MAX_ITEM, timeout=60)


def teardown():
    if O is not None:
        O.stop()


def url(path):
    return O.url(path)


_keys = [0]


def key(what):
    """A key= value no other request of this run uses."""
    _keys[0] += 1
    return "%s-%d" % (what, _keys[0])


def origin_key(k):
    """What the origin logged for key k: {"requests", "bytes", "log"}."""
    status, body = O._get("GET", "/keys/" + k)
    eq(status, 200, "origin /keys/%s status" % k)
    return json.loads(body)


def wait_key_ended(k, n, timeout=10):
    """Wait until the origin has seen n requests for k, all of them over."""
    def ended():
        got = origin_key(k)
        if got["requests"] >= n and all(r["end"] != "active"
                                        for r in got["log"]):
            return got
        return None
    return harness.wait_for(ended, timeout,
                            what="%d ended requests for key %s" % (n, k))


def part_files(root):
    return [f for f in harness.files_under(root) if f.endswith(".part")]


def items_of(job):
    return sorted(job["items"], key=lambda i: i["n"])


def check_done(d, item, data, attempts, what):
    """The item is done after attempts attempts and its file equals data."""
    eq(item.get("state"), "done", "%s: state (error %r)"
       % (what, item.get("error")))
    eq(item.get("attempts"), attempts, "%s: attempts" % what)
    p = item.get("path")
    check(isinstance(p, str) and p, "%s: no path" % what)
    got = harness.read_file(d.path(p))
    check(got == data, "%s: file %s differs from the origin's (%d vs %d "
          "bytes)" % (what, p, len(got), len(data)))
    eq(item.get("bytes"), len(data), "%s: bytes" % what)


def check_failed(item, attempts, mention, what, http_status=None):
    """The item failed after attempts attempts with an error matching
    mention (a regular expression)."""
    eq(item.get("state"), "failed", "%s: state" % what)
    eq(item.get("attempts"), attempts, "%s: attempts (error %r)"
       % (what, item.get("error")))
    err = item.get("error")
    check(isinstance(err, str) and re.search(mention, err),
          "%s: error %r does not match %r" % (what, err, mention))
    if http_status is not None:
        eq(item.get("http_status"), http_status, "%s: http_status" % what)
    check("path" not in item, "%s: a failed item has a path %r"
          % (what, item.get("path")))


def check_no_files(d, sub, what):
    """Nothing at all (no file, no .part) under the job's directory."""
    eq(harness.files_under(d.path(sub)), [], "%s: files in %s/" % (what, sub))


# ------------------------------------------------------------ retries

def test_transient_statuses_then_success():
    cases = [(503, 2), (500, 1), (502, 1), (504, 1), (408, 1), (429, 1)]
    keys = [key("flaky%d" % code) for code, _ in cases]
    urls = [url("/files/a.png?key=%s&fail=%d&status=%d" % (k, fails, code))
            for k, (code, fails) in zip(keys, cases)]
    job = D.wait_job(D.submit(urls, dir="flaky", name="{n}.png")["id"])
    eq(job["state"], "done", "job state")
    for item, k, (code, fails) in zip(items_of(job), keys, cases):
        what = "%d for the first %d requests" % (code, fails)
        check_done(D, item, FILES["a.png"], fails + 1, what)
        eq(item.get("http_status"), 200, "%s: http_status" % what)
        got = origin_key(k)
        eq(got["requests"], fails + 1, "%s: requests at the origin" % what)
        eq([r["status"] for r in got["log"]], [code] * fails + [200],
           "%s: statuses sent" % what)


def test_permanent_statuses_fail_at_once():
    codes = [400, 403, 404, 410]
    keys = [key("perm%d" % c) for c in codes]
    urls = [url("/files/a.png?key=%s&status=%d" % (k, c))
            for k, c in zip(keys, codes)]
    urls.append(url("/files/missing.png?key=%s" % key("missing")))
    job = D.wait_job(D.submit(urls, dir="perm", name="{n}.png")["id"])
    eq(job["state"], "failed", "job state")
    items = items_of(job)
    for item, k, code in zip(items, keys, codes):
        check_failed(item, 1, str(code), "status %d" % code, code)
        eq(origin_key(k)["requests"], 1, "status %d: requests" % code)
    check_failed(items[4], 1, "404", "a missing file", 404)
    check_no_files(D, "perm", "permanent failures")


def test_retries_exhausted():
    k = key("always503")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dead = "http://127.0.0.1:%d/x.png" % port
    job = D.wait_job(D.submit([url("/status/503?key=" + k), dead],
                              dir="exhaust", name="{n}.png")["id"])
    eq(job["state"], "failed", "job state")
    items = items_of(job)
    check_failed(items[0], RETRIES + 1, "503", "always 503", 503)
    eq(origin_key(k)["requests"], RETRIES + 1, "always 503: requests")
    check_failed(items[1], RETRIES + 1, r"127\.0\.0\.1|%d" % port,
                 "connection refused")
    check(not items[1].get("http_status"), "connection refused: "
          "http_status %r" % items[1].get("http_status"))
    check_no_files(D, "exhaust", "exhausted retries")


def test_retry_after_honoured_and_capped():
    d = harness.Daemon(harness.fresh_dir("ra"), retries=1, retry_delay=50,
                       retry_delay_max=100, retry_after_max=2)
    cases = [  # (query, least ms, most ms between the two requests)
        ("status=429&retry_after=1", 950, 1900),
        ("status=503&retry_date=3", 1900, 3900),   # an HTTP date, 2-3 s
        ("status=503&retry_after=30", 1950, 2900),  # capped at 2 s
    ]
    keys = [key("ra") for _ in cases]
    t0 = time.monotonic()
    job = d.submit([url("/files/a.png?key=%s&fail=1&%s" % (k, q))
                    for k, (q, _lo, _hi) in zip(keys, cases)],
                   name="{n}.png")
    job = d.wait_job(job["id"], timeout=20)
    took = time.monotonic() - t0
    eq(job["state"], "done", "job state")
    check(took < 10, "the job with a Retry-After of 30 capped at 2 took "
          "%.1fs" % took)
    for item, k, (q, lo, hi) in zip(items_of(job), keys, cases):
        check_done(d, item, FILES["a.png"], 2, q)
        log = origin_key(k)["log"]
        eq(len(log), 2, "%s: requests" % q)
        gap = log[1]["t"] - log[0]["t"]
        check(lo <= gap <= hi, "%s: the retry came %d ms after the first "
              "request, expected %d..%d" % (q, gap, lo, hi))
    d.stop()


def test_waiting_retry_holds_no_slot():
    d = harness.Daemon(harness.fresh_dir("slot"), max_transfers=1,
                       retries=1, retry_delay=50, retry_delay_max=100,
                       retry_after_max=10)
    k = key("slot")
    first = d.submit([url("/files/a.png?key=%s&fail=1&status=503"
                          "&retry_after=3" % k)], dir="first")

    def waiting():
        item = d.job(first["id"])["items"][0]
        return item if item.get("retry_at") else None
    item = harness.wait_for(waiting, 5, what="the item to wait for a retry")
    eq(item["state"], "queued", "state of an item waiting for its retry")
    eq(item.get("attempts"), 1, "attempts of the waiting item")
    eq(item.get("http_status"), 503, "http_status of the waiting item")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", item["retry_at"]),
          "retry_at %r is not an RFC 3339 time" % item["retry_at"])
    second = d.wait_job(d.submit([url("/files/b.png")], dir="second")["id"],
                        timeout=5)
    eq(second["state"], "done", "job submitted while the other waits")
    eq(origin_key(k)["requests"], 1,
       "requests of the waiting item when the other job was done")
    eq(d.job(first["id"])["items"][0]["state"], "queued",
       "the waiting item once the other job was done")
    job = d.wait_job(first["id"], timeout=10)
    check_done(d, job["items"][0], FILES["a.png"], 2, "the waiting item")
    d.stop()


# ------------------------------------------------------------ timeouts

def test_stall_detected_and_retried():
    d = harness.Daemon(harness.fresh_dir("stall"), retries=1,
                       retry_delay=50, retry_delay_max=100,
                       stall_speed=1000, stall_time=1)
    # A stall right after the headers, and one after a burst of data
    # (which libcurl's speed average remembers for a few seconds).
    cases = [(100, 3000), (20000, 10000)]  # (stall_at, most ms to notice)
    keys = [key("stall") for _ in cases]
    job = d.wait_job(d.submit(
        [url("/files/big.png?key=%s&fail=1&stall=%d&stall_at=%d"
             % (k, STALL_MS, at)) for k, (at, _ms) in zip(keys, cases)],
        name="{n}.png")["id"], timeout=20)
    for item, k, (at, most) in zip(items_of(job), keys, cases):
        what = "stall after %d bytes" % at
        check_done(d, item, FILES["big.png"], 2, what)
        log = wait_key_ended(k, 2)["log"]
        eq(len(log), 2, "%s: requests" % what)
        eq((log[0]["bytes"], log[0]["end"]), (at, "client"),
           "%s: first request: bytes sent and how it ended" % what)
        gap = log[1]["t"] - log[0]["t"]
        check(gap < most, "%s: the retry came %d ms after the first "
              "request (stall_time 1, the stall lasts %d ms)"
              % (what, gap, STALL_MS))
        eq(log[1]["range"], None, "%s: Range of the retry without a "
           "validator" % what)
    check(re.search(r"attempt 1 failed \([^)]*(slow|speed|stall)",
                    d.log(), re.I),
          "no log line says attempt 1 stalled:\n" + d.log_tail())
    d.stop()


def test_item_timeout_retried():
    d = harness.Daemon(harness.fresh_dir("timeout"), timeout=1, retries=1,
                       retry_delay=50, retry_delay_max=100)
    k = key("timeout")
    job = d.wait_job(d.submit([url("/files/a.png?key=%s&fail=1&stall=5000"
                                   "&stall_at=100" % k)],
                              name="a.png")["id"], timeout=10)
    check_done(d, job["items"][0], FILES["a.png"], 2, "timed-out item")
    log = wait_key_ended(k, 2)["log"]
    check(log[1]["t"] - log[0]["t"] < 3000,
          "the retry came %d ms after the first request; timeout is 1 s"
          % (log[1]["t"] - log[0]["t"]))
    check(re.search(r"attempt 1 failed \([^)]*tim", d.log(), re.I),
          "no log line says attempt 1 timed out:\n" + d.log_tail())
    d.stop()


# ------------------------------------------------------------ resume

CUT = 1000000


def test_resume_after_reset():
    big = FILES["big.png"]
    kinds = ["etag", "lm", "both", "weak", "none"]
    keys = [key("reset-" + v) for v in kinds]
    urls = [url("/files/big.png?key=%s&fail=1&reset=%d&validator=%s"
                % (k, CUT, v)) for k, v in zip(keys, kinds)]
    job = D.wait_job(D.submit(urls, dir="reset", name="{n}.png")["id"])
    eq(job["state"], "done", "job state")
    for item, k, v in zip(items_of(job), keys, kinds):
        what = "reset after %d bytes, validator %s" % (CUT, v)
        check_done(D, item, big, 2, what)
        got = wait_key_ended(k, 2)
        log = got["log"]
        eq(len(log), 2, "%s: requests" % what)
        eq((log[0]["bytes"], log[0]["end"]), (CUT, "reset"),
           "%s: the first reply" % what)
        if v in ("weak", "none"):
            # Nothing to check the .part against: a clean restart.
            eq((log[1]["range"], log[1]["status"], log[1]["bytes"]),
               (None, 200, len(big)), "%s: Range, status, bytes of the "
               "retry" % what)
            continue
        eq((log[1]["range"], log[1]["status"]), (CUT, 206),
           "%s: Range and status of the retry" % what)
        check(log[1]["if_range"], "%s: no If-Range sent" % what)
        eq(log[1]["bytes"], len(big) - CUT, "%s: bytes of the retry" % what)
        eq(got["bytes"], len(big), "%s: bytes sent in all" % what)
    check(re.search(r"attempt 1 failed \([^)]*reset", D.log(), re.I),
          "no log line says the connection was reset")
    eq(part_files(D.path("reset")), [], ".part files left")


def test_if_range_values():
    k1, k2 = key("ifr-etag"), key("ifr-lm")
    job = D.wait_job(D.submit(
        [url("/files/b.png?key=%s&fail=1&reset=20000&validator=etag" % k1),
         url("/files/b.png?key=%s&fail=1&reset=20000&validator=lm" % k2)],
        dir="ifr", name="{n}.png")["id"])
    eq(job["state"], "done", "job state")
    st = os.stat(os.path.join(ROOT, "b.png"))
    etag = '"f%d-%d-raw"' % (st.st_size, int(st.st_mtime))
    lm = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                       time.gmtime(int(st.st_mtime)))
    eq(wait_key_ended(k1, 2)["log"][1]["if_range"], etag,
       "If-Range after an ETag")
    eq(wait_key_ended(k2, 2)["log"][1]["if_range"], lm,
       "If-Range after a Last-Modified")


def test_range_ignored_restarts_cleanly():
    big = FILES["big.png"]
    k = key("ignore")
    job = D.wait_job(D.submit(
        [url("/files/big.png?key=%s&fail=1&reset=%d&validator=etag"
             "&range=ignore" % (k, CUT))], dir="ignore", name="big.png")["id"])
    log = wait_key_ended(k, 2)["log"]
    eq((log[1]["range"], log[1]["status"], log[1]["bytes"]),
       (CUT, 200, len(big)), "Range asked, status and bytes of the retry")
    eq(harness.files_under(D.path("ignore")), ["big.png"], "files")
    check_done(D, job["items"][0], big, 2, "server ignoring Range")


def test_range_wrong_start_fails():
    k = key("badrange")
    job = D.wait_job(D.submit(
        [url("/files/big.png?key=%s&fail=1&reset=%d&validator=etag"
             "&range=bad" % (k, CUT))], dir="badrange", name="big.png")["id"])
    item = job["items"][0]
    check_failed(item, RETRIES + 1, r"Content-Range|partial",
                 "206 not starting at the .part's end")
    log = wait_key_ended(k, RETRIES + 1)["log"]
    eq([r["status"] for r in log], [200] + [206] * RETRIES,
       "statuses sent")
    eq([r["range"] for r in log[1:]], [CUT] * RETRIES,
       "Range of the retries")
    check_no_files(D, "badrange", "bad Content-Range")


# ------------------------------------------------------------ bodies

def test_short_and_lying_bodies_fail():
    k1, k2, k3 = key("short"), key("lying"), key("lying-png")
    job = D.wait_job(D.submit(
        [url("/files/big.png?key=%s&short=100000" % k1),
         url("/stream/300000?magic=png&key=%s&length=400000" % k2),
         url("/files/b.png?key=%s&length=%d" % (k3, len(FILES["b.png"]) + 1))],
        dir="short", name="{n}.png")["id"])
    eq(job["state"], "failed", "job state")
    items = items_of(job)
    check_failed(items[0], RETRIES + 1,
                 r"transfer closed with %d bytes remaining"
                 % (len(FILES["big.png"]) - 100000), "body cut short")
    check_failed(items[1], RETRIES + 1,
                 r"transfer closed with 100000 bytes remaining",
                 "Content-Length 100000 more than the body")
    check_failed(items[2], RETRIES + 1,
                 r"transfer closed with 1 bytes? remaining",
                 "Content-Length 1 more than the body")
    for k in (k1, k2, k3):
        eq(wait_key_ended(k, RETRIES + 1)["requests"], RETRIES + 1,
           "requests for %s" % k)
    check_no_files(D, "short", "short bodies")


def test_lying_length_with_validator():
    # The first reply leaves a .part holding the whole body; asking for
    # the rest then gets a 416. That is no reason to stop retrying: the
    # item should start over and end like the lying length without one.
    k = key("lying-etag")
    job = D.wait_job(D.submit(
        [url("/stream/300000?magic=png&key=%s&length=400000&validator=etag"
             % k)], dir="lying", name="x.png")["id"])
    log = wait_key_ended(k, 1)["log"]
    check_failed(job["items"][0], RETRIES + 1,
                 r"transfer closed with 100000 bytes remaining",
                 "Content-Length 100000 more than the body, with an ETag "
                 "(origin replies: %r)"
                 % [(r["range"], r["status"]) for r in log])
    check_no_files(D, "lying", "lying length with an ETag")


def test_not_images_fail():
    keys = [key("html"), key("html-as-png"), key("nosig"), key("empty")]
    job = D.wait_job(D.submit(
        [url("/html?key=" + keys[0]),
         url("/html?type=image/png&key=" + keys[1]),
         url("/stream/5000?key=" + keys[2]),
         url("/stream/0?key=" + keys[3])],
        dir="html", name="{n}.png")["id"])
    eq(job["state"], "failed", "job state")
    items = items_of(job)
    check_failed(items[0], 1, r"^not an image: Content-Type \"text/html"
                 r"[^\"]*\" is not in allowed_types$", "text/html page", 200)
    check_failed(items[1], 1, r"^not an image: the body is an HTML page$",
                 "HTML page served as image/png", 200)
    check_failed(items[2], 1, r"^not an image: the body starts with no "
                 r"known image signature$", "image/png without signature")
    check_failed(items[3], 1, r"^not an image: the body is empty$",
                 "empty image/png")
    for k in keys:
        eq(origin_key(k)["requests"], 1, "requests for %s" % k)
    check_no_files(D, "html", "not images")


def test_oversized_fail():
    k1, k2 = key("big-cl"), key("big-chunked")
    job = D.wait_job(D.submit(
        [url("/stream/%d?magic=png&key=%s" % (MAX_ITEM + 1, k1)),
         url("/stream/%d?magic=png&chunked=1&key=%s" % (GROWING, k2))],
        dir="over", name="{n}.png")["id"])
    items = items_of(job)
    check_failed(items[0], 1, r"max_item_size|[Mm]aximum file size",
                 "Content-Length over max_item_size")
    check_failed(items[1], 1, r"max_item_size|[Mm]aximum file size",
                 "chunked body growing over max_item_size")
    log = wait_key_ended(k2, 1)["log"]
    check(log[0]["end"] == "client" and log[0]["bytes"] < GROWING,
          "the growing body was not cut off: %r" % log[0])
    eq(origin_key(k1)["requests"], 1, "requests for the item with "
       "Content-Length")
    check_no_files(D, "over", "oversized items")


def test_redirect_loop_fails():
    job = D.wait_job(D.submit([url("/loop")], dir="loop",
                              name="x.png")["id"])
    check_failed(job["items"][0], 1, r"Maximum \(5\) redirects followed",
                 "redirect loop")
    check_no_files(D, "loop", "redirect loop")


# ------------------------------------------------------------ signals

def sighup(d, conf_text, want):
    """Write conf_text as d's config, SIGHUP it, wait for a log line
    matching want; returns the match."""
    before = len(d.log())
    with open(d.confpath, "w") as f:
        f.write(conf_text)
    os.kill(d.pid, signal.SIGHUP)
    return harness.wait_for(lambda: re.search(want, d.log()[before:],
                                              re.M),
                            5, what="a log line matching %r" % want)


def conf_with(d, **changes):
    settings = dict(d.settings)
    settings.update(changes)
    lines = []
    for k, v in settings.items():
        if v is not None:
            lines.append("%s = %s;\n" % (k, harness._conf_value(v)))
    return "".join(lines)


def idle_origin():
    harness.wait_for(lambda: O.stats()["active"] == 0, 10,
                     what="the origin to be idle")
    O.reset_stats()


def test_sighup_raises_max_transfers():
    d = harness.Daemon(harness.fresh_dir("hup"), max_transfers=1,
                       user_agent="imgfetchd-test/one")
    idle_origin()
    # A handle kept from this job must not carry the old options on.
    eq(d.wait_job(d.submit([url("/files/a.png?ua=1")], dir="ua",
                           name="one.png")["id"])["state"], "done",
       "job before SIGHUP")
    eq(O.last_headers().get("user-agent"), "imgfetchd-test/one",
       "User-Agent before SIGHUP")
    size = 4000000
    kl = key("hup-long")
    long_job = d.submit([url("/stream/%d?gap=60&magic=png&key=%s"
                             % (size, kl))], dir="long", name="long.png")
    harness.wait_for(lambda: d.job(long_job["id"])["items"][0]["bytes"] > 0,
                     5, what="the long item receiving")
    sighup(d, conf_with(d, max_transfers=3, headers=["X-Reload: two"],
                        user_agent="imgfetchd-test/two"),
           r"^imgfetchd: info: SIGHUP: configuration reloaded .*\(3 "
           r"transfers")
    eq(d.job(long_job["id"])["items"][0]["state"], "active",
       "the long item after SIGHUP")
    short = d.submit([url("/files/a.png?delay=1000&i=%d" % i)
                      for i in range(4)], dir="short", name="{n}.png")
    job = d.wait_job(short["id"], timeout=10)
    eq(job["state"], "done", "job submitted after SIGHUP")
    check(d.job(long_job["id"])["state"] in ("running", "done"),
          "the long job after SIGHUP")
    eq(O.stats()["max_active"], 3, "transfers at once after raising "
       "max_transfers from 1 to 3 (one is the long item)")
    eq(O.last_headers().get("x-reload"), "two", "header added by SIGHUP")
    eq(O.last_headers().get("user-agent"), "imgfetchd-test/two",
       "User-Agent set by SIGHUP")
    job = d.wait_job(long_job["id"], timeout=20)
    eq(job["state"], "done", "the long job")
    item = job["items"][0]
    eq(item.get("attempts"), 1, "attempts of the long item")
    eq(harness.file_sha256(d.path("long/long.png")),
       harness.stream_sha256(size, "png"), "the long item's file")
    eq(origin_key(kl)["requests"], 1, "requests of the long item")
    d.stop()


def test_sighup_invalid_config_kept():
    d = harness.Daemon(harness.fresh_dir("hupbad"), max_transfers=2)
    # Valid up to the last line, which sets an unknown option.
    bad = conf_with(d, max_transfers=4) + "no_such_option = 1;\n"
    line = bad.count("\n")
    m = sighup(d, bad, r"^imgfetchd: error: SIGHUP: (.*)$")
    msg = m.group(1)
    check(re.search(re.escape(d.confpath) + r":%d\b" % line, msg),
          "the error does not name %s:%d: %r" % (d.confpath, line, msg))
    check(d.alive(), "the daemon exited after a bad SIGHUP")
    idle_origin()
    job = d.wait_job(d.submit([url("/files/a.png?delay=800&i=%d" % i)
                               for i in range(6)], name="{n}.png")["id"],
                     timeout=15)
    eq(job["state"], "done", "job after a refused reload")
    eq(O.stats()["max_active"], 2, "transfers at once after a refused "
       "reload (max_transfers stays 2)")
    d.stop()


def test_sigterm_grace_then_resume():
    tmp = harness.fresh_dir("grace")
    d = harness.Daemon(tmp, shutdown_grace=3)
    quick_n, slow_n = 600000, 8000000
    kq, ks, kn = key("quick"), key("slow-etag"), key("slow-none")
    job = d.submit(
        [url("/stream/%d?gap=50&magic=png&validator=etag&key=%s"
             % (quick_n, kq)),
         url("/stream/%d?gap=50&magic=png&validator=etag&key=%s"
             % (slow_n, ks)),
         url("/stream/%d?gap=50&magic=png&key=%s" % (slow_n, kn))],
        name="{n}.png")
    harness.wait_for(lambda: all(i["bytes"] > 0 for i in
                                 d.job(job["id"])["items"]),
                     10, what="all items receiving")
    took = d.stop(timeout=15)
    check(2.5 < took < 8, "SIGTERM with shutdown_grace 3 took %.1fs" % took)
    eq(harness.file_sha256(d.path("0.png")),
       harness.stream_sha256(quick_n, "png"),
       "the item that finished within the grace")
    eq(part_files(d.download_dir), ["1.png.part"],
       ".part files after the grace (kept only with a validator)")
    kept = os.path.getsize(d.path("1.png.part"))
    check(0 < kept < slow_n, "the kept .part has %d bytes" % kept)
    eq(harness.files_under(d.download_dir), ["0.png", "1.png.part"],
       "files after the grace")

    d2 = harness.Daemon(tmp, shutdown_grace=3)
    job = d2.wait_job(job["id"], timeout=30)
    eq(job["state"], "done", "job state after the restart")
    items = items_of(job)
    for n, size in ((1, slow_n), (2, slow_n)):
        eq(items[n].get("path"), "%d.png" % n, "item %d path" % n)
        eq(harness.file_sha256(d2.path("%d.png" % n)),
           harness.stream_sha256(size, "png"), "item %d file" % n)
    eq(origin_key(kq)["requests"], 1, "requests of the quick item")
    log = wait_key_ended(ks, 2)["log"]
    eq(len(log), 2, "requests of the resumable item")
    eq((log[1]["range"], log[1]["status"], log[1]["bytes"]),
       (kept, 206, slow_n - kept),
       "Range, status and bytes of the resumed request")
    log = wait_key_ended(kn, 2)["log"]
    eq(len(log), 2, "requests of the item without a validator")
    eq((log[1]["range"], log[1]["status"], log[1]["bytes"]),
       (None, 200, slow_n), "the item without a validator starts over")
    eq(harness.files_under(d2.download_dir), ["0.png", "1.png", "2.png"],
       "files after the restart")
    d2.stop()


def test_main_daemon_stops():
    took = D.stop()
    check(took < 5, "SIGTERM took %.1fs" % took)
    eq(part_files(D.download_dir), [], ".part files left")


def test_waiting_retry_survives_restart():
    # A Retry-After of 6 s; the daemon stops and starts again in between:
    # the retry still waits for its time, then the item is done. (The stop
    # and start of a sanitized daemon on a busy machine take a few seconds
    # of it: the item must still be waiting when the new daemon answers.)
    tmp = harness.fresh_dir("retry-restart")
    d = harness.Daemon(tmp, retries=2, retry_delay=50, retry_delay_max=100,
                       retry_after_max=10)
    k = key("rr")
    job = d.submit([url("/files/a.png?key=%s&fail=1&status=503"
                        "&retry_after=6" % k)], name="{n}.png")

    def waiting():
        item = d.job(job["id"])["items"][0]
        return item if item.get("retry_at") else None
    harness.wait_for(waiting, 5, what="the item to wait for its retry")
    d.stop()
    d2 = harness.Daemon(tmp, retries=2, retry_delay=50, retry_delay_max=100,
                        retry_after_max=10)
    item = d2.job(job["id"])["items"][0]
    eq(item["state"], "queued", "state after the restart")
    check(item.get("retry_at"), "no retry_at after the restart: %r" % item)
    done = d2.wait_job(job["id"], timeout=20)
    eq(done["state"], "done", "job state")
    log = origin_key(k)["log"]
    eq(len(log), 2, "requests")
    gap = log[1]["t"] - log[0]["t"]
    check(5900 <= gap <= 9000, "the retry came %d ms after the 503, "
          "expected about 6000 even across a restart" % gap)
    check_done(d2, items_of(done)[0], FILES["a.png"], 2, "retried item")
    d2.stop()


if __name__ == "__main__":
    harness.run(globals(), default_timeout=60)

