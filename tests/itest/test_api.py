"""The daemon's HTTP/JSON API end to end: real files from a real origin,
names, collisions, redirects, failures, the error matrix, cancel, events,
listing, status, shutdown and the socket's life cycle."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

import harness
from harness import check, eq

O = None        # the origin
D = None        # the daemon most tests share
ROOT = None     # the origin's files
FILES = {}      # relative path -> bytes served under /files/
MAX_BODY = 64 * 1024
MAX_ITEM = 3 * 1024 * 1024

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?"
                     r"(Z|[+-]\d{2}:\d{2})$")


def setup():
    global O, D, ROOT, FILES
    O, FILES, ROOT = harness.corpus_origin()
    D = harness.Daemon(harness.fresh_dir("main"), headers=["X-Conf: one"],
                       max_request_body=MAX_BODY, max_item_size=MAX_ITEM)


def teardown():
    if O is not None:
        O.stop()


def url(path):
    return O.url(path)


def part_files(root):
    return [f for f in harness.files_under(root) if f.endswith(".part")]


def check_item_file(d, item, data, path=None):
    """The item is done, its file is in place and equals data."""
    eq(item.get("state"), "done", "item %s state (error %r)"
       % (item.get("n"), item.get("error")))
    if path is not None:
        eq(item.get("path"), path, "item %s path" % item.get("n"))
    p = item.get("path")
    check(isinstance(p, str) and p, "item %s has no path" % item.get("n"))
    full = d.path(p)
    check(os.path.isfile(full), "file %s missing" % full)
    got = harness.read_file(full)
    check(got == data, "file %s differs from the origin's (%d vs %d bytes)"
          % (p, len(got), len(data)))
    eq(item.get("bytes"), len(data), "item %s bytes" % item.get("n"))
    eq(item.get("http_status"), 200, "item %s http_status" % item.get("n"))


def check_error(status, hdrs, data, want, what, mention=None):
    """An API error: the status, a JSON body with a non-empty "error"."""
    eq(status, want, "%s: status (body %r)" % (what, data))
    ctype = hdrs.get("Content-Type", "")
    check(ctype.startswith("application/json"),
          "%s: Content-Type %r is not JSON" % (what, ctype))
    check(isinstance(data, dict) and isinstance(data.get("error"), str)
          and data["error"], "%s: body is not {\"error\": ...}: %r"
          % (what, data))
    if mention is not None:
        check(re.search(mention, data["error"]) is not None,
              "%s: error %r does not mention %r"
              % (what, data["error"], mention))


def curl_unix(sock, method, path, data=None, ctype=None):
    """Use the system curl over the Unix socket: (status, headers, body)."""
    cmd = ["curl", "-s", "-S", "-i", "--unix-socket", sock, "-X", method,
           "--max-time", "10"]
    if ctype:
        cmd += ["-H", "Content-Type: " + ctype]
    if data is not None:
        cmd += ["--data-binary", data]
    cmd.append("http://localhost" + path)
    out = subprocess.run(cmd, capture_output=True, timeout=20)
    eq(out.returncode, 0, "curl exit status (%s)" % out.stderr.decode())
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


# ------------------------------------------------------------ downloads

def test_submit_json_with_curl():
    body = json.dumps({"urls": [url("/files/a.png"), url("/files/b.png")],
                       "dir": "curl"})
    status, hdrs, raw = curl_unix(D.sock, "POST", "/v1/jobs", body,
                                  "application/json")
    eq(status, 202, "POST /v1/jobs status (body %r)" % raw)
    job = json.loads(raw)
    check(isinstance(job.get("id"), int), "job id %r" % job.get("id"))
    eq(hdrs.get("location"), "/v1/jobs/%d" % job["id"], "Location header")
    eq(job.get("total"), 2, "total")
    eq(job.get("dir"), "curl", "dir")
    check(job.get("state") in ("queued", "running", "done"),
          "fresh job state %r" % job.get("state"))
    check(RFC3339.match(str(job.get("created"))),
          "created %r is not RFC 3339" % job.get("created"))
    job = D.wait_job(job["id"])
    eq(job["state"], "done", "job state")
    eq((job["done"], job["failed"]), (2, 0), "done, failed")
    eq(job["bytes"], len(FILES["a.png"]) + len(FILES["b.png"]), "job bytes")
    items = sorted(job["items"], key=lambda i: i["n"])
    eq([i["n"] for i in items], [0, 1], "item numbers")
    eq(items[0]["url"], url("/files/a.png"), "item 0 url")
    check_item_file(D, items[0], FILES["a.png"], "curl/127.0.0.1/a.png")
    check_item_file(D, items[1], FILES["b.png"], "curl/127.0.0.1/b.png")


def test_submit_prefer_minimal():
    urls = [url("/files/a.png"), url("/files/b.png"), url("/files/a.png")]
    for prefer in ("return=minimal", "respond-async, return=minimal; x=1",
                   "RETURN=MINIMAL"):
        status, hdrs, job = D.api("POST", "/v1/jobs",
                                  {"urls": urls, "dir": "minimal"},
                                  headers={"Prefer": prefer})
        eq(status, 202, "POST with Prefer: %s (%r)" % (prefer, job))
        eq(hdrs.get("preference-applied"), "return=minimal",
           "Preference-Applied for Prefer: %s" % prefer)
        check("items" not in job, "items listed for Prefer: %s" % prefer)
        eq(job.get("total"), 3, "total for Prefer: %s" % prefer)
        eq(D.wait_job(job["id"])["done"], 3, "items done")
    # Anything else gets the whole job.
    for prefer in (None, "return=representation", "return=minimalist"):
        status, hdrs, job = D.api(
            "POST", "/v1/jobs", {"urls": urls, "dir": "minimal"},
            headers={"Prefer": prefer} if prefer else None)
        eq(status, 202, "POST with Prefer: %s (%r)" % (prefer, job))
        check("preference-applied" not in hdrs,
              "Preference-Applied for Prefer: %s" % prefer)
        eq(len(job.get("items", [])), 3, "items for Prefer: %s" % prefer)
        D.wait_job(job["id"])


def test_submit_uri_list_with_curl():
    body = ("# pictures\n\n%s\r\n  \n# more\n%s\n"
            % (url("/files/sub/c.png"), url("/files/big.png")))
    status, hdrs, raw = curl_unix(
        D.sock, "POST", "/v1/jobs?dir=ulist&name=%7Bn%7D-%7Bname%7D", body,
        "text/uri-list")
    eq(status, 202, "uri-list POST status (body %r)" % raw)
    job = json.loads(raw)
    eq(job.get("total"), 2, "total (comments and blank lines skipped)")
    job = D.wait_job(job["id"])
    eq(job["state"], "done", "job state")
    items = sorted(job["items"], key=lambda i: i["n"])
    check_item_file(D, items[0], FILES["sub/c.png"], "ulist/0-c.png")
    check_item_file(D, items[1], FILES["big.png"], "ulist/1-big.png")


def test_uri_list_bad_line():
    body = "# first\n%s\nnot a url\n%s\n" % (url("/files/a.png"),
                                              url("/files/b.png"))
    status, hdrs, data = D.api("POST", "/v1/jobs", body,
                               ctype="text/uri-list")
    check_error(status, hdrs, data, 400, "uri-list with a bad line 3",
                r"\b3\b")
    body = "%s\nftp://127.0.0.1/x.png\n" % url("/files/a.png")
    status, hdrs, data = D.api("POST", "/v1/jobs", body,
                               ctype="text/uri-list")
    check_error(status, hdrs, data, 400, "uri-list with ftp on line 2",
                r"\b2\b")


def test_name_template_fields():
    job = D.submit([url("/files/a.png"), url("/files/sub/c.png"),
                    url("/files/big.png")],
                   dir="tpl/x", name="{job}-{n}-{stem}.{ext}")
    jid = job["id"]
    eq(job.get("name"), "{job}-{n}-{stem}.{ext}", "job name")
    job = D.wait_job(jid)
    eq(job["state"], "done", "job state")
    items = sorted(job["items"], key=lambda i: i["n"])
    check_item_file(D, items[0], FILES["a.png"], "tpl/x/%d-0-a.png" % jid)
    check_item_file(D, items[1], FILES["sub/c.png"], "tpl/x/%d-1-c.png" % jid)
    check_item_file(D, items[2], FILES["big.png"], "tpl/x/%d-2-big.png" % jid)

    job = D.wait_job(D.submit([url("/files/a.png")], dir="when",
                              name="{host}/{date}/{time}-{name}")["id"])
    item = job["items"][0]
    eq(item["state"], "done", "dated item state")
    check(re.match(r"^when/127\.0\.0\.1/\d{4}-\d{2}-\d{2}/\d{6}-a\.png$",
                   item.get("path", "")),
          "{host}/{date}/{time}-{name} expanded to %r" % item.get("path"))
    check_item_file(D, item, FILES["a.png"])


def test_ext_from_content_type():
    u_png = url("/files/noext?type=image/png")
    u_gif = url("/files/noext?type=image/gif")
    job = D.wait_job(D.submit([u_png, u_gif], dir="ct",
                              name="{n}/{stem}.{ext}")["id"])
    eq(job["state"], "done", "job state")
    items = sorted(job["items"], key=lambda i: i["n"])
    check_item_file(D, items[0], FILES["noext"], "ct/0/noext.png")
    check_item_file(D, items[1], FILES["noext"], "ct/1/noext.gif")
    # The default template adds the extension to a {name} without one.
    job = D.wait_job(D.submit([u_png], dir="ct2")["id"])
    check_item_file(D, job["items"][0], FILES["noext"],
                    "ct2/127.0.0.1/noext.png")


def test_collision_suffix():
    got = []
    for _ in range(3):
        job = D.wait_job(D.submit([url("/files/a.png")], dir="coll",
                                  name="a.png")["id"])
        eq(job["state"], "done", "job state")
        got.append(job["items"][0].get("path"))
        check_item_file(D, job["items"][0], FILES["a.png"])
    eq(got, ["coll/a.png", "coll/a-1.png", "coll/a-2.png"], "paths")
    eq(harness.files_under(D.path("coll")), ["a-1.png", "a-2.png", "a.png"],
       "files in coll/")


def test_collision_within_one_job():
    u = url("/files/b.png?delay=100")
    job = D.wait_job(D.submit([u, u, u, u], dir="coll2", name="b.png")["id"])
    eq(job["state"], "done", "job state")
    paths = sorted(i.get("path") for i in job["items"])
    eq(paths, ["coll2/b-1.png", "coll2/b-2.png", "coll2/b-3.png",
               "coll2/b.png"], "paths of four items with one name")
    for item in job["items"]:
        check_item_file(D, item, FILES["b.png"])


def test_dir_removed_mid_job():
    """A directory removed while a file is being written into it is made
    anew for the next file, though an open file still holds the old one."""
    slow = url("/stream/%d?magic=png&gap=40" % (2 * 1024 * 1024))
    j1 = D.submit([slow], dir="gone/sub", name="slow.png")["id"]
    harness.wait_for(lambda: os.path.exists(D.path("gone/sub/slow.png.part")),
                     10, what="slow.png.part to appear")
    shutil.rmtree(D.path("gone"))
    job = D.wait_job(D.submit([url("/files/a.png")], dir="gone/sub",
                              name="a.png")["id"])
    eq(job["state"], "done", "job state (%r)" % job["items"][0].get("error"))
    eq(job["items"][0].get("path"), "gone/sub/a.png", "path")
    check_item_file(D, job["items"][0], FILES["a.png"])
    # The slow file's directory went away under it: it ends, one way or
    # another, and nothing of it carries a final name.
    slow_job = D.wait_job(j1)
    check(slow_job["state"] in ("done", "failed"),
          "slow job state %r" % slow_job["state"])
    eq(harness.files_under(D.path("gone")), ["sub/a.png"]
       if slow_job["state"] == "failed" else ["sub/a.png", "sub/slow.png"],
       "files under gone/")


def test_redirects_followed():
    job = D.wait_job(D.submit(
        [url("/redirect/3?to=/files/b.png"), url("/redirect/0")],
        dir="redir", name="{n}.png")["id"])
    eq(job["state"], "done", "job state (items %r)" % job["items"])
    items = sorted(job["items"], key=lambda i: i["n"])
    check_item_file(D, items[0], FILES["b.png"], "redir/0.png")
    check_item_file(D, items[1], FILES["a.png"], "redir/1.png")


def test_too_many_redirects():
    job = D.wait_job(D.submit([url("/redirect/9?to=/files/a.png")],
                              dir="redir-many", name="x.png")["id"])
    eq(job["state"], "failed", "job state (max_redirects is 5)")
    item = job["items"][0]
    eq(item["state"], "failed", "item state")
    check(item.get("error"), "no error text")
    eq(harness.files_under(D.path("redir-many"))
       if os.path.isdir(D.path("redir-many")) else [], [], "files left")


def test_redirect_to_other_protocols():
    targets = ["ftp://127.0.0.1:%d/files/a.png" % O.port,
               "file:///etc/passwd",
               "gopher://127.0.0.1:%d/" % O.port]
    urls = [url("/redirect-abs?to=" + urllib.parse.quote(t, safe=""))
            for t in targets]
    job = D.wait_job(D.submit(urls + [url("/files/a.png")], dir="proto",
                              name="{n}.bin")["id"])
    eq(job["state"], "failed", "job state")
    items = sorted(job["items"], key=lambda i: i["n"])
    for i, t in enumerate(targets):
        eq(items[i]["state"], "failed", "item redirected to %s" % t)
        check(items[i].get("error"), "no error for redirect to %s" % t)
    check_item_file(D, items[3], FILES["a.png"], "proto/3.bin")
    eq(harness.files_under(D.path("proto")), ["3.bin"], "files in proto/")
    with open("/etc/passwd", "rb") as f:
        passwd = f.read()
    for dirpath, _d, names in os.walk(D.download_dir):
        for n in names:
            check(harness.read_file(os.path.join(dirpath, n)) != passwd,
                  "/etc/passwd was copied to %s" % n)


def test_http_errors_fail_items():
    urls = [url("/files/a.png"), url("/status/404"),
            url("/files/missing.png"), url("/status/500"),
            url("/files/b.png"), url("/files/a.png?status=403")]
    job = D.wait_job(D.submit(urls, dir="errs", name="{n}.png")["id"])
    eq(job["state"], "failed", "job state")
    eq((job["total"], job["done"], job["failed"]), (6, 2, 4),
       "total, done, failed")
    items = sorted(job["items"], key=lambda i: i["n"])
    check_item_file(D, items[0], FILES["a.png"], "errs/0.png")
    check_item_file(D, items[4], FILES["b.png"], "errs/4.png")
    for n, code in ((1, 404), (2, 404), (3, 500), (5, 403)):
        eq(items[n]["state"], "failed", "item %d state" % n)
        eq(items[n].get("http_status"), code, "item %d http_status" % n)
        check(isinstance(items[n].get("error"), str) and items[n]["error"],
              "item %d has no error text" % n)
    eq(harness.files_under(D.path("errs")), ["0.png", "4.png"],
       "files in errs/")


def test_dead_server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    job = D.wait_job(D.submit(["http://127.0.0.1:%d/x.png" % port],
                              dir="dead")["id"])
    eq(job["state"], "failed", "job state")
    item = job["items"][0]
    eq(item["state"], "failed", "item state")
    err = item.get("error") or ""
    check("127.0.0.1" in err or str(port) in err,
          "error %r does not name the server 127.0.0.1:%d" % (err, port))
    check(not item.get("http_status"), "http_status %r for no response"
          % item.get("http_status"))


def test_max_item_size():
    over = "/stream/%d?magic=png"
    urls = [url(over % (MAX_ITEM + 65536)),
            url(over % (MAX_ITEM * 2) + "&chunked=1"),
            url("/files/big.png"),
            url(over % MAX_ITEM + "&chunked=1"),
            url(over % MAX_ITEM)]
    job = D.wait_job(D.submit(urls, dir="cap", name="{n}.png")["id"])
    items = sorted(job["items"], key=lambda i: i["n"])
    eq(items[0]["state"], "failed", "item over max_item_size with "
       "Content-Length")
    check(items[0].get("error"), "no error text")
    eq(items[1]["state"], "failed", "chunked item over max_item_size")
    check(items[1].get("error"), "no error text")
    check_item_file(D, items[2], FILES["big.png"], "cap/2.png")
    for n, what in ((3, "chunked"), (4, "with Content-Length")):
        eq(items[n]["state"], "done", "item of exactly max_item_size, %s "
           "(%r)" % (what, items[n].get("error")))
        eq(harness.file_sha256(D.path("cap/%d.png" % n)),
           harness.stream_sha256(MAX_ITEM, "png"), "cap/%d.png" % n)
    eq(harness.files_under(D.path("cap")), ["2.png", "3.png", "4.png"],
       "files in cap/")


def test_hostile_url_names():
    tails = ["%2e%2e", "..%2f..%2f..%2fescape.png", "a%2fb%2fc.png", "%2e",
             "x%00y.png", "new%0aline.png", "caf%C3%A9.png", "",
             "..%5c..%5cwin.png", "%ff%fe.png", "." * 300 + ".png",
             "n" * 400 + ".png"]
    before = set(harness.files_under(D.dir))
    job = D.wait_job(D.submit([url("/name/" + t) for t in tails],
                              dir="hostile")["id"])
    items = sorted(job["items"], key=lambda i: i["n"])
    top = os.path.realpath(D.path("hostile"))
    bad = []
    for item in items:
        what = "/name/%s" % tails[item["n"]][:24]
        p = item.get("path") or ""
        parts = p.split("/")
        if item["state"] != "done":
            bad.append("%s: %s (%s)" % (what, item["state"],
                                        (item.get("error") or "")[-60:]))
            continue
        if p.startswith("/") or {"..", ".", ""} & set(parts):
            bad.append("%s: unsafe path %r" % (what, p))
        elif any(ord(c) < 32 or ord(c) == 127 for c in p):
            bad.append("%s: control character in %r" % (what, p))
        elif any(len(x.encode()) > 255 for x in parts):
            bad.append("%s: component over 255 bytes in %r" % (what, p))
        elif not os.path.realpath(D.path(p)).startswith(top + "/"):
            bad.append("%s: %r lands outside %s" % (what, p, top))
        elif harness.read_file(D.path(p)) != FILES["a.png"]:
            bad.append("%s: %r differs from the origin's" % (what, p))
    check(not bad, "%d of %d hostile names went wrong:\n    %s"
          % (len(bad), len(tails), "\n    ".join(bad)))
    done = [i for i in items if i["state"] == "done"]
    eq(len(harness.files_under(D.path("hostile"))), len(done),
       "files under hostile/")
    added = set(harness.files_under(D.dir)) - before
    outside = [f for f in added if not f.startswith("dl/hostile/")]
    eq(outside, [], "files made outside dl/hostile/")


def test_configured_and_job_headers():
    job = D.wait_job(D.submit([url("/files/a.png?hdr=1")], dir="hdr",
                              headers={"X-Job": "two"})["id"])
    eq(job["state"], "done", "job state")
    sent = O.last_headers()
    eq(sent.get("user-agent"), "imgfetchd-itest", "User-Agent sent")
    eq(sent.get("x-conf"), "one", "configured header sent")
    eq(sent.get("x-job"), "two", "job header sent")


def test_content_checks():
    urls = [url("/files/a.png?type=text/html"),
            url("/stream/5000?type=image/png"),
            url("/files/a.png?type=none"),
            url("/files/a.png")]
    job = D.wait_job(D.submit(urls, dir="types", name="{n}.png")["id"])
    items = sorted(job["items"], key=lambda i: i["n"])
    for n, why in ((0, "a text/html response"),
                   (1, "an image/png body without an image signature"),
                   (2, "a response without Content-Type")):
        eq(items[n]["state"], "failed", "item for %s" % why)
        check(items[n].get("error"), "no error text for %s" % why)
    check_item_file(D, items[3], FILES["a.png"], "types/3.png")
    eq(harness.files_under(D.path("types")), ["3.png"], "files in types/")


# ------------------------------------------------------------ errors

def test_error_matrix():
    good = url("/files/a.png")
    cases = [
        ("bad JSON", "POST", "/v1/jobs", '{"urls": [', "application/json",
         400, None),
        ("JSON not an object", "POST", "/v1/jobs", "[1, 2]",
         "application/json", 400, None),
        ("no urls", "POST", "/v1/jobs", "{}", "application/json", 400, None),
        ("unknown field", "POST", "/v1/jobs",
         {"urls": [good], "colour": "red"}, None, 400, "colour"),
        ("urls not a list", "POST", "/v1/jobs", {"urls": good}, None, 400,
         None),
        ("bad URL at index 2", "POST", "/v1/jobs",
         {"urls": [good, good, "http//nope"]}, None, 400, r"\b2\b"),
        ("ftp scheme", "POST", "/v1/jobs",
         {"urls": ["ftp://127.0.0.1/a.png"]}, None, 400, None),
        ("file scheme", "POST", "/v1/jobs",
         {"urls": [good, "file:///etc/passwd"]}, None, 400, r"\b1\b"),
        ("dir ../x", "POST", "/v1/jobs", {"urls": [good], "dir": "../x"},
         None, 400, None),
        ("dir a/../../x", "POST", "/v1/jobs",
         {"urls": [good], "dir": "a/../../x"}, None, 400, None),
        ("dir /abs", "POST", "/v1/jobs", {"urls": [good], "dir": "/abs"},
         None, 400, None),
        ("control char in name", "POST", "/v1/jobs",
         {"urls": [good], "name": "a\x01b.png"}, None, 400, None),
        ("newline in dir", "POST", "/v1/jobs",
         {"urls": [good], "dir": "a\nb"}, None, 400, None),
        ("name ../{name}", "POST", "/v1/jobs",
         {"urls": [good], "name": "../{name}"}, None, 400, None),
        ("unknown template field", "POST", "/v1/jobs",
         {"urls": [good], "name": "{colour}.png"}, None, 400, "colour"),
        ("uri-list dir ..", "POST", "/v1/jobs?dir=..", good + "\n",
         "text/uri-list", 400, None),
        ("unknown job", "GET", "/v1/jobs/987654", None, None, 404, None),
        ("unknown job events", "GET", "/v1/jobs/987654/events", None, None,
         404, None),
        ("cancel unknown job", "DELETE", "/v1/jobs/987654", None, None, 404,
         None),
        ("job id not a number", "GET", "/v1/jobs/abc", None, None, 404,
         None),
        ("unknown path", "GET", "/v1/nothing", None, None, 404, None),
        ("path outside /v1", "GET", "/", None, None, 404, None),
        ("PUT /v1/jobs", "PUT", "/v1/jobs", {"urls": [good]}, None, 405,
         None),
        ("DELETE /v1/jobs", "DELETE", "/v1/jobs", None, None, 405, None),
        ("POST /v1/status", "POST", "/v1/status", "{}", "application/json",
         405, None),
    ]
    bad = []
    for what, method, path, body, ctype, want, mention in cases:
        try:
            status, hdrs, data = D.api(method, path, body, ctype=ctype)
            check_error(status, hdrs, data, want, what, mention)
        except AssertionError as e:
            bad.append(str(e))
    check(not bad, "%d of %d cases wrong:\n    %s"
          % (len(bad), len(cases), "\n    ".join(bad)))
    # None of these made a job.
    status, _h, data = D.api("GET", "/v1/jobs")
    for j in data["jobs"]:
        check(j.get("dir") not in ("../x", "/abs", "a/../../x"),
              "a job was made with dir %r" % j.get("dir"))


def test_keep_alive_and_content_types():
    c = D.connection()
    try:
        for _ in range(5):
            c.request("GET", "/v1/status")
            r = c.getresponse()
            eq(r.status, 200, "status on a kept-alive connection")
            json.loads(r.read())
        body = json.dumps({"urls": [url("/files/a.png")], "dir": "ka"})
        c.request("POST", "/v1/jobs", body=body, headers={
            "Content-Type": "application/json; charset=utf-8"})
        r = c.getresponse()
        data = json.loads(r.read())
        eq(r.status, 202, "POST with charset parameter (%r)" % (data,))
    finally:
        c.close()
    eq(D.wait_job(data["id"])["state"], "done", "job state")
    status, hdrs, data = D.api("POST", "/v1/jobs", url("/files/a.png"),
                               ctype="text/plain")
    check(status in (400, 415), "text/plain body: status %d" % status)
    check_error(status, hdrs, data, status, "text/plain body")


def test_request_body_limit():
    # A body somewhat over the limit is read and refused in JSON.
    urls = [url("/files/a.png?pad=%d" % i) for i in range(1500)]
    body = json.dumps({"urls": urls})
    check(MAX_BODY < len(body) < MAX_BODY + 60000, "test body size %d"
          % len(body))
    status, hdrs, data = D.api("POST", "/v1/jobs", body,
                               ctype="application/json")
    check_error(status, hdrs, data, 413, "body over max_request_body")
    check("max_request_body" in data["error"], "error names the limit: %r"
          % data["error"])
    # A huge one is refused by evhttp itself before it is read (libevent
    # 2.1 lets no handler answer that one): still 413, nothing taken.
    huge = json.dumps({"urls": [url("/files/a.png?pad=%d" % i)
                                for i in range(3000)]})
    check(len(huge) > MAX_BODY + 65536, "huge body too small")
    status, hdrs, data = D.api("POST", "/v1/jobs", huge,
                               ctype="application/json")
    eq(status, 413, "huge body status")
    # The daemon still answers, and a body just under the limit is taken.
    small = json.dumps({"urls": [url("/files/a.png")], "dir": "under"})
    small += " " * (MAX_BODY - 100 - len(small))
    status, hdrs, data = D.api("POST", "/v1/jobs", small,
                               ctype="application/json")
    eq(status, 202, "body just under max_request_body (%r)" % (data,))
    eq(D.wait_job(data["id"])["state"], "done", "job state")


def test_job_limits():
    """max_job_items, max_url_length, max_job_headers and max_header_bytes:
    a submission past one is refused with 400 naming the field, index and
    limit, in JSON and text/uri-list; nothing of it is taken, the daemon
    goes on, and SIGHUP applies new limits."""
    d = harness.Daemon(harness.fresh_dir("limits"), max_job_items=3,
                       max_url_length=64, max_job_headers=2,
                       max_header_bytes=32)
    a = url("/files/a.png")
    cases = [
        ({"urls": [a, a, a, a]}, r"^urls\[3\]: more than max_job_items "
         r"\(3 URLs\)$"),
        ({"urls": [a, a], "pages": [a, a]}, r"^pages\[1\]: more than "
         r"max_job_items \(3 URLs of urls and pages together\)$"),
        ({"urls": [a, url("/files/a.png?" + "x" * 64)]},
         r"^urls\[1\]: longer than max_url_length \(64 bytes\)$"),
        ({"urls": [a], "headers": {"X-A": "1", "X-B": "2", "X-C": "3"}},
         r"^headers: 3 headers, more than max_job_headers \(2\)$"),
        ({"urls": [a], "headers": {"X-A": "v" * 28}},
         r'^headers: "X-A": longer than max_header_bytes \(32 bytes\)$'),
    ]
    for body, want in cases:
        status, hdrs, data = d.api("POST", "/v1/jobs", body)
        check_error(status, hdrs, data, 400, "JSON %s" % want, want)
    lines = "#c\n%s\n%s\n\n%s\n%s\n" % (a, a, a, a)
    status, hdrs, data = d.api("POST", "/v1/jobs", lines,
                               ctype="text/uri-list")
    check_error(status, hdrs, data, 400, "uri-list of 4", r"^line 6: more "
                r"than max_job_items \(3 URLs\)$")
    lines = "%s\n%s\n" % (a, url("/files/a.png?" + "x" * 64))
    status, hdrs, data = d.api("POST", "/v1/jobs", lines,
                               ctype="text/uri-list")
    check_error(status, hdrs, data, 400, "uri-list long URL", r"^line 2: "
                r"longer than max_url_length \(64 bytes\)$")
    status, _h, data = d.api("GET", "/v1/jobs")
    eq(status, 200, "GET /v1/jobs status")
    eq(len(data["jobs"]), 0, "jobs taken from refused submissions")
    # At the limits, a job is taken and done.
    job = d.submit([a, a, a], dir="at", headers={"X-A": "v" * 27})
    eq(d.wait_job(job["id"])["state"], "done", "job at the limits")
    # SIGHUP: one URL per job, and no headers.
    before = len(d.log())
    settings = dict(d.settings, max_job_items=1, max_job_headers=0)
    harness.write_config(d.confpath, settings)
    os.kill(d.pid, signal.SIGHUP)
    harness.wait_for(lambda: "configuration reloaded" in d.log()[before:],
                     5, what="the reload")
    status, hdrs, data = d.api("POST", "/v1/jobs", {"urls": [a, a]})
    check_error(status, hdrs, data, 400, "two URLs after SIGHUP",
                r"^urls\[1\]: more than max_job_items \(1 URLs\)$")
    status, hdrs, data = d.api("POST", "/v1/jobs",
                               {"urls": [a], "headers": {"X-A": "1"}})
    check_error(status, hdrs, data, 400, "a header after SIGHUP",
                r"max_job_headers \(0\)")
    job = d.submit([a], dir="after")
    eq(d.wait_job(job["id"])["state"], "done", "one URL after SIGHUP")
    d.stop()


def test_reload_include_not_a_file():
    """A config whose @include names a directory (libconfig would exit()
    reading it) is refused on SIGHUP with a clear message; the daemon
    keeps its configuration and goes on."""
    d = harness.Daemon(harness.fresh_dir("incl"))
    before = len(d.log())
    with open(d.confpath, "a") as f:
        f.write('@include ""\n')
    os.kill(d.pid, signal.SIGHUP)
    harness.wait_for(lambda: "keeping the running configuration"
                     in d.log()[before:], 5, what="the refused reload")
    check('@include "": not a regular file' in d.log()[before:],
          "the reason in the log:\n" + d.log_tail())
    check(d.alive(), "daemon gone after SIGHUP")
    job = d.submit([url("/files/a.png")], dir="incl")
    eq(d.wait_job(job["id"])["state"], "done", "job after the reload")
    d.stop()


def test_queue_limit_503():
    o_dir = harness.fresh_dir("qlimit")
    d = harness.Daemon(o_dir, queue_limit=4, max_transfers=1)
    slow = url("/files/a.png?delay=30000")
    accepted, refused = [], None
    for i in range(6):
        status, hdrs, data = d.api("POST", "/v1/jobs", {"urls": [slow]})
        if status == 202:
            accepted.append(data["id"])
            continue
        check_error(status, hdrs, data, 503, "submission %d" % (i + 1))
        ra = hdrs.get("Retry-After")
        check(ra is not None and ra.strip().isdigit() and int(ra) > 0,
              "Retry-After %r" % ra)
        refused = i + 1
        break
    check(refused is not None, "no 503 after 6 submissions, queue_limit 4")
    check(refused in (5, 6), "503 at submission %d, queue_limit 4"
          % refused)
    # Cancelling frees the queue.
    for jid in accepted:
        status, _h, data = d.api("DELETE", "/v1/jobs/%d" % jid)
        eq(status, 200, "DELETE status")
    job = d.submit([url("/files/a.png")], dir="after")
    eq(d.wait_job(job["id"])["state"], "done", "job after the queue freed")
    d.stop()


def test_cancel():
    # Two slow streams, then more delayed items than max_transfers (8)
    # lets run: some items are active, some still queued.
    urls = [url("/stream/3000000?gap=300&magic=png") for _ in range(2)]
    urls += [url("/files/a.png?delay=20000") for _ in range(10)]
    job = D.submit(urls, dir="cancel", name="{n}.png")
    jid = job["id"]

    def streaming():
        j = D.job(jid)
        parts = part_files(D.path("cancel")) \
            if os.path.isdir(D.path("cancel")) else []
        return len(parts) == 2 and all(i["bytes"] > 0 for i in j["items"]
                                       if i["n"] < 2)
    harness.wait_for(streaming, 15, what="both streams writing .part files")
    status, hdrs, data = D.api("DELETE", "/v1/jobs/%d" % jid)
    eq(status, 200, "DELETE status (body %r)" % data)
    eq(data.get("id"), jid, "DELETE returns the job")
    job = D.wait_job(jid, timeout=10)
    eq(job["state"], "cancelled", "job state")
    for item in job["items"]:
        eq(item["state"], "cancelled", "item %d state" % item["n"])

    def empty():
        return harness.files_under(D.path("cancel")) == []
    harness.wait_for(empty, 5, what="no files left in cancel/ (have %r)"
                     % harness.files_under(D.path("cancel")))
    # Every transfer was stopped: the origin has nothing in progress.
    harness.wait_for(lambda: O.stats()["active"] == 0, 5,
                     what="the origin's requests to end")


# ------------------------------------------------------------ events

def read_all_events(resp, limit=10000):
    events = []
    while len(events) < limit:
        ev = harness.read_event(resp)
        if ev is None:
            break
        events.append(ev)
    return events


def test_events_stream():
    urls = [url("/files/a.png?delay=300"), url("/files/b.png?delay=600"),
            url("/status/404?delay=200"),
            url("/stream/2000000?gap=60&magic=png")]
    job = D.submit(urls, dir="events", name="{n}.png")
    jid = job["id"]
    t0 = time.monotonic()
    conn, resp = D.events(jid)
    try:
        eq(resp.status, 200, "events status")
        events = read_all_events(resp)
    finally:
        conn.close()
    elapsed = time.monotonic() - t0
    check(events, "no events")
    eq(events[0].get("event"), "snapshot", "first event")
    eq(events[0].get("job", {}).get("id"), jid, "snapshot job id")
    eq(events[-1].get("event"), "job", "last event")
    last = events[-1]["job"]
    eq(last.get("id"), jid, "final job id")
    eq(last.get("state"), "failed", "final job state")
    eq((last.get("done"), last.get("failed")), (3, 1), "final done, failed")
    kinds = [e.get("event") for e in events]
    check(kinds.count("snapshot") == 1 and kinds.count("job") == 1,
          "snapshot and job events once each: %r" % kinds)
    for k in kinds:
        check(k in ("snapshot", "item", "progress", "job"),
              "unknown event %r" % k)
    final_state = {}
    for e in events:
        if e["event"] == "item":
            eq(e.get("job"), jid, "item event job")
            final_state[e["item"]["n"]] = e["item"]["state"]
    eq(final_state, {0: "done", 1: "done", 2: "failed", 3: "done"},
       "last item event per item")
    progress = [e for e in events if e["event"] == "progress"]
    check(progress, "no progress events during a %.1fs job" % elapsed)
    for p in progress:
        for k in ("bytes", "done", "failed", "total", "items"):
            check(k in p, "progress event without %r: %r" % (k, p))
        eq(p["total"], 4, "progress total")
    check(len(progress) <= elapsed * 4 + 2,
          "%d progress events in %.1fs (at most 4/s)"
          % (len(progress), elapsed))
    stream_rows = [r for p in progress for r in p["items"]
                   if isinstance(r, dict) and r.get("n") == 3]
    check(stream_rows, "no progress row for the streaming item 3")
    for r in stream_rows:
        check(isinstance(r.get("bytes"), int) and 0 <= r["bytes"] <= 2000000,
              "progress row %r" % r)
        if r["bytes"] > 0 or r.get("size") is not None:
            # Once body bytes flow, the Content-Length is known.
            eq(r.get("size"), 2000000, "progress size of item 3 in %r" % r)
    check(any(r["bytes"] > 0 for r in stream_rows),
          "no progress row shows bytes of item 3: %r" % stream_rows[:5])
    bytes_seen = [p["bytes"] for p in progress]
    eq(bytes_seen, sorted(bytes_seen), "progress bytes never go down")
    check_item_file(D, [i for i in last["items"] if i["n"] == 3][0],
                    harness.pattern_bytes(0, 2000000, "png"),
                    "events/3.png")


def test_events_of_ended_job():
    job = D.wait_job(D.submit([url("/files/a.png")], dir="events2")["id"])
    conn, resp = D.events(job["id"], timeout=10)
    try:
        eq(resp.status, 200, "events status")
        events = read_all_events(resp)
    finally:
        conn.close()
    check(events, "no events")
    eq(events[0].get("event"), "snapshot", "first event")
    eq(events[0]["job"].get("state"), "done", "snapshot state")


def test_events_client_disconnects():
    urls = [url("/files/a.png?delay=%d" % (100 * i)) for i in range(10)]
    urls.append(url("/stream/1000000?gap=30&magic=png"))
    job = D.submit(urls, dir="events3", name="{n}.png")
    jid = job["id"]
    for i in range(8):
        conn, resp = D.events(jid)
        eq(resp.status, 200, "events status")
        if i % 2:
            harness.read_event(resp)
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        time.sleep(0.05)
    conn, resp = D.events(jid)
    try:
        events = read_all_events(resp)
    finally:
        conn.close()
    eq(events[-1].get("event") if events else None, "job", "last event")
    job = D.wait_job(jid)
    eq(job["state"], "done", "job state")
    eq(job["done"], 11, "items done")
    eq(D.api("GET", "/v1/status")[0], 200, "status after disconnects")


def test_events_items_filter():
    # Done and failing items, all still running when the streams open.
    urls = [url("/files/a.png?delay=400"), url("/status/404?delay=500"),
            url("/files/b.png?delay=600"), url("/status/410?delay=700"),
            url("/files/a.png?delay=800")]
    jid = D.submit(urls, dir="events4", name="{n}.png")["id"]
    streams = {q: D.events(jid, query=q)
               for q in ("", "?items=all", "?items=failed", "?items=none")}
    got = {}
    try:
        for q, (conn, resp) in streams.items():
            eq(resp.status, 200, "events%s status" % q)
            got[q] = read_all_events(resp)
    finally:
        for conn, _resp in streams.values():
            conn.close()
    want = {0: "done", 1: "failed", 2: "done", 3: "failed", 4: "done"}
    # The job objects (snapshot, final) list the items the stream asked for.
    listed = {"": want, "?items=all": want,
              "?items=failed": {1: "failed", 3: "failed"},
              "?items=none": None}
    for q, events in got.items():
        check(events, "no events%s" % q)
        eq(events[0].get("event"), "snapshot", "events%s first" % q)
        eq(events[-1].get("event"), "job", "events%s last" % q)
        last = events[-1]["job"]
        eq((last.get("state"), last.get("done"), last.get("failed")),
           ("failed", 3, 2), "events%s final state, done, failed" % q)
        if listed[q] is None:
            check("items" not in last and "items" not in events[0]["job"],
                  "events%s: job objects list items" % q)
        else:
            eq({i["n"]: i["state"] for i in last["items"]}, listed[q],
               "events%s final items" % q)
            snap = events[0]["job"]["items"]
            if q == "?items=failed":
                check(all(i["state"] in ("failed", "cancelled")
                          for i in snap),
                      "events%s: snapshot lists %r" % (q, snap))
            else:
                eq(len(snap), len(urls), "events%s: snapshot items" % q)
        for e in events:
            check(e.get("event") in ("snapshot", "item", "progress", "job"),
                  "events%s: unknown event %r" % (q, e.get("event")))
    for q in ("", "?items=all"):
        final_state = {e["item"]["n"]: e["item"]["state"]
                       for e in got[q] if e["event"] == "item"}
        eq(final_state, want, "events%s: last item event per item" % q)
    failed = [e["item"] for e in got["?items=failed"]
              if e["event"] == "item"]
    eq(sorted((i["n"], i["state"]) for i in failed),
       [(1, "failed"), (3, "failed")],
       "items=failed: one item event for each failed item, none for done")
    eq([e for e in got["?items=none"] if e["event"] == "item"], [],
       "items=none: item events")

    # A cancelled item ends the way a failed one does.
    jid = D.submit([url("/files/a.png?delay=200"),
                    url("/files/b.png?delay=20000")], dir="events5")["id"]
    conn, resp = D.events(jid, query="?items=failed")
    try:
        eq(resp.status, 200, "events?items=failed status")
        harness.wait_for(lambda: D.job(jid)["done"] == 1, 10,
                         what="item 0 of job %d done" % jid)
        eq(D.api("DELETE", "/v1/jobs/%d" % jid)[0], 200, "DELETE status")
        events = read_all_events(resp)
    finally:
        conn.close()
    eq(events[-1].get("event"), "job", "last event")
    eq(events[-1]["job"].get("state"), "cancelled", "final job state")
    eq([(i["n"], i["state"]) for i in events[-1]["job"]["items"]],
       [(1, "cancelled")], "items=failed: items of the final job")
    eq([(e["item"]["n"], e["item"]["state"]) for e in events
        if e["event"] == "item"], [(1, "cancelled")],
       "items=failed: item events of a cancelled job")

    for query, mention in (("?items=bogus", "items"), ("?items=", "items"),
                           ("?items=ALL", "items"), ("?items=%ff", "items"),
                           ("?colour=red", "colour")):
        status, hdrs, data = D.api("GET", "/v1/jobs/%d/events%s"
                                   % (jid, query))
        check_error(status, hdrs, data, 400, "events" + query, mention)


def test_job_items_filter():
    """GET /v1/jobs/ID takes the same ?items= as its events: a poller of
    a large job need not have every item built for it."""
    urls = [url("/files/a.png"), url("/status/404"), url("/files/b.png")]
    jid = D.submit(urls, dir="jobitems", name="{n}.png")["id"]
    D.wait_job(jid)
    for query, want in (("", [(0, "done"), (1, "failed"), (2, "done")]),
                        ("?items=all",
                         [(0, "done"), (1, "failed"), (2, "done")]),
                        ("?items=failed", [(1, "failed")]),
                        ("?items=none", None)):
        status, _h, job = D.api("GET", "/v1/jobs/%d%s" % (jid, query))
        eq(status, 200, "GET job%s" % query)
        eq((job["state"], job["done"], job["failed"]), ("failed", 2, 1),
           "GET job%s: state and counts" % query)
        if want is None:
            check("items" not in job, "GET job%s lists items" % query)
        else:
            eq([(i["n"], i["state"]) for i in job["items"]], want,
               "GET job%s items" % query)
    for query, mention in (("?items=bogus", "items"), ("?colour=red",
                                                        "colour")):
        status, hdrs, data = D.api("GET", "/v1/jobs/%d%s" % (jid, query))
        check_error(status, hdrs, data, 400, "job" + query, mention)


# ------------------------------------------------------------ listing

def cancelled_job():
    """Submit a job that cannot finish soon, cancel it, return it."""
    job = D.submit([url("/files/a.png?delay=20000"),
                    url("/files/b.png?delay=20000")], dir="tocancel")
    status, _h, data = D.api("DELETE", "/v1/jobs/%d" % job["id"])
    eq(status, 200, "DELETE status (%r)" % (data,))
    job = D.wait_job(job["id"], timeout=10)
    eq(job["state"], "cancelled", "cancelled job state")
    return job


def test_list_jobs():
    cancelled_job()
    status, _h, data = D.api("GET", "/v1/jobs")
    eq(status, 200, "GET /v1/jobs status")
    jobs = data.get("jobs")
    check(isinstance(jobs, list) and len(jobs) >= 10,
          "jobs %r" % (type(jobs),))
    ids = [j["id"] for j in jobs]
    eq(ids, sorted(ids, reverse=True), "jobs newest first")
    check(len(set(ids)) == len(ids), "duplicate ids in the list")
    for j in jobs:
        check("items" not in j, "listed job %d has items" % j["id"])
        for k in ("id", "state", "created", "total", "done", "failed",
                  "bytes"):
            check(k in j, "listed job %d without %r" % (j["id"], k))
    for state in ("done", "failed", "cancelled"):
        status, _h, data = D.api("GET", "/v1/jobs?state=" + state)
        eq(status, 200, "?state=%s status" % state)
        got = [j["id"] for j in data["jobs"]]
        want = [j["id"] for j in jobs if j["state"] == state]
        check(want, "no %s job to list" % state)
        eq(got, want, "?state=%s" % state)
    status, hdrs, data = D.api("GET", "/v1/jobs?state=sleeping")
    check_error(status, hdrs, data, 400, "?state=sleeping")
    # The error quotes the value, which is not UTF-8 here.
    status, hdrs, data = D.api("GET", "/v1/jobs?state=%ff")
    check_error(status, hdrs, data, 400, "?state=%ff", "UTF-8")


def test_status_counters():
    status, _h, before = D.api("GET", "/v1/status")
    eq(status, 200, "status")
    for k in ("version", "uptime", "jobs", "items", "bytes", "limits"):
        check(k in before, "/v1/status without %r" % k)
    check(isinstance(before["version"], str) and before["version"],
          "version %r" % before["version"])
    check(isinstance(before["uptime"], (int, float))
          and before["uptime"] >= 0, "uptime %r" % before["uptime"])
    for k in ("queued", "active", "done", "failed", "cancelled"):
        check(isinstance(before["items"].get(k), int),
              "items.%s %r" % (k, before["items"].get(k)))
    check(isinstance(before["limits"], dict) and before["limits"],
          "limits %r" % before["limits"])
    job = D.wait_job(D.submit([url("/files/a.png"), url("/files/b.png"),
                               url("/status/410")], dir="st")["id"])
    eq(job["state"], "failed", "job state")
    cancelled_job()

    def idle():
        st = D.api("GET", "/v1/status")[2]
        return st if (st["items"]["queued"], st["items"]["active"]) \
            == (0, 0) else None
    after = harness.wait_for(idle, 5, what="no queued or active items")
    eq(after["jobs"] - before["jobs"], 2, "jobs counter")
    eq(after["items"]["done"] - before["items"]["done"], 2, "done counter")
    eq(after["items"]["failed"] - before["items"]["failed"], 1,
       "failed counter")
    eq(after["items"]["cancelled"] - before["items"]["cancelled"], 2,
       "cancelled counter")
    eq(after["bytes"] - before["bytes"],
       len(FILES["a.png"]) + len(FILES["b.png"]), "bytes counter")
    check(after["uptime"] >= before["uptime"], "uptime went back")


def test_main_daemon_alive():
    check(D.alive(), "daemon died")
    eq(D.api("GET", "/v1/status")[0], 200, "status")
    eq(part_files(D.download_dir), [], ".part files left")


# ------------------------------------------------------------ own daemons

def test_item_timeout():
    d = harness.Daemon(harness.fresh_dir("tmo"), timeout=1)
    t0 = time.monotonic()
    job = d.wait_job(d.submit([url("/files/a.png?delay=4000"),
                               url("/files/b.png")], name="{n}.png")["id"])
    took = time.monotonic() - t0
    items = sorted(job["items"], key=lambda i: i["n"])
    eq(items[0]["state"], "failed", "delayed item with timeout 1")
    check(items[0].get("error"), "no error text")
    check(took < 3.5, "timeout 1 took %.1fs" % took)
    check_item_file(d, items[1], FILES["b.png"], "1.png")
    d.stop()


def test_retries():
    d = harness.Daemon(harness.fresh_dir("retry"), retries=2, retry_delay=50,
                       retry_delay_max=200)
    for path, want_requests, code in (("/status/503", 3, 503),
                                      ("/status/404", 1, 404)):
        harness.wait_for(lambda: O.stats()["active"] == 0, 10,
                         what="the origin to be idle")
        O.reset_stats()
        job = d.wait_job(d.submit([url(path)], name="x.png")["id"])
        item = job["items"][0]
        eq(item["state"], "failed", "%s: item state" % path)
        eq(item.get("http_status"), code, "%s: http_status" % path)
        eq(O.stats()["requests"], want_requests,
           "%s: requests with retries 2" % path)
    d.stop()


def test_on_exists_overwrite_and_skip():
    for policy, want_same in (("overwrite", False), ("skip", True)):
        d = harness.Daemon(harness.fresh_dir("exists-" + policy),
                           on_exists=policy)
        os.makedirs(d.path("x"), exist_ok=True)
        with open(d.path("x/a.png"), "wb") as f:
            f.write(b"old contents")
        job = d.wait_job(d.submit([url("/files/a.png")], dir="x",
                                  name="a.png")["id"])
        item = job["items"][0]
        eq(item["state"], "done", "%s: item state" % policy)
        eq(item.get("path"), "x/a.png", "%s: path" % policy)
        got = harness.read_file(d.path("x/a.png"))
        if want_same:
            eq(got, b"old contents", "skip: existing file")
        else:
            check(got == FILES["a.png"], "overwrite: file not replaced")
        eq(harness.files_under(d.path("x")), ["a.png"],
           "%s: files in x/" % policy)
        d.stop()


def test_sigterm_with_transfer_in_flight():
    d = harness.Daemon(harness.fresh_dir("term"))
    job = d.submit([url("/stream/50000000?gap=100&magic=png")],
                   name="slow.png")

    def writing():
        return part_files(d.download_dir) and \
            d.job(job["id"])["items"][0]["bytes"] > 0
    harness.wait_for(writing, 10, what="a .part file being written")
    took = d.stop()
    check(took < 5, "SIGTERM took %.1fs" % took)
    eq(part_files(d.download_dir), [], ".part files after SIGTERM")
    check(not os.path.exists(d.path("slow.png")),
          "unfinished download renamed into place")
    check(not os.path.exists(d.sock), "socket %s left behind" % d.sock)


def test_shutdown_grace_then_resume():
    tmp = harness.fresh_dir("grace")
    d = harness.Daemon(tmp, shutdown_grace=3)
    quick = url("/stream/600000?gap=50&magic=png")     # about 0.5 s
    slow = url("/stream/6000000?gap=60&magic=png")     # about 5.5 s
    job = d.submit([quick, slow], name="{n}.png")

    def both_writing():
        items = d.job(job["id"])["items"]
        return all(i["bytes"] > 0 for i in items)
    harness.wait_for(both_writing, 10, what="both items receiving")
    took = d.stop(timeout=15)
    check(2.5 < took < 8, "SIGTERM with shutdown_grace 3 took %.1fs" % took)
    eq(harness.read_file(d.path("0.png")),
       harness.pattern_bytes(0, 600000, "png"),
       "the item that finished within the grace")
    eq(part_files(d.download_dir), [], ".part files after the grace")
    check(not os.path.exists(d.path("1.png")),
          "the item stopped by the grace was renamed into place")
    # The next start picks the stopped item up again.
    d2 = harness.Daemon(tmp, shutdown_grace=3)
    job = d2.wait_job(job["id"], timeout=30)
    eq(job["state"], "done", "job state after the restart")
    items = sorted(job["items"], key=lambda i: i["n"])
    eq(items[1]["path"], "1.png", "path of the resumed item")
    check(harness.file_sha256(d2.path("1.png"))
          == harness.stream_sha256(6000000, "png"),
          "the resumed item's file differs from the origin's")
    eq(harness.files_under(d2.download_dir), ["0.png", "1.png"],
       "files after the restart")
    d2.stop()


def test_stale_socket_replaced():
    tmp = harness.fresh_dir("stale")
    sock = os.path.join(tmp, "sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sock)
    s.close()
    check(os.path.exists(sock), "stale socket not made")
    d = harness.Daemon(tmp)
    eq(d.api("GET", "/v1/status")[0], 200, "status on the replaced socket")
    job = d.wait_job(d.submit([url("/files/a.png")])["id"])
    eq(job["state"], "done", "job state")
    d.stop()
    check(not os.path.exists(sock), "socket left behind after stop")


def test_second_daemon_refused():
    first = harness.Daemon(harness.fresh_dir("first"))
    second = harness.Daemon(harness.fresh_dir("second"), wait=False,
                            socket_path=first.sock)
    try:
        rc = second.proc.wait(10)
    except subprocess.TimeoutExpired:
        second.kill()
        raise AssertionError("a second daemon on %s kept running"
                             % first.sock)
    second._forget()
    check(rc != 0, "second daemon exited with status 0")
    log = second.log()
    check(first.sock in log or re.search(r"in use|already|running", log,
                                         re.I),
          "second daemon's message does not say why: %r" % log[-500:])
    check(os.path.exists(first.sock), "second daemon removed the socket")
    eq(first.api("GET", "/v1/status")[0], 200, "first daemon still answers")
    first.stop()


def test_main_daemon_stops():
    took = D.stop()
    check(took < 5, "SIGTERM took %.1fs" % took)
    check(not os.path.exists(D.sock), "socket left behind")
    eq(part_files(D.download_dir), [], ".part files left")


if __name__ == "__main__":
    harness.run(globals())
