"""Scraping, conditional fetching and dedup: the real daemon against a real
nginx on 127.0.0.1 and real files.

- Pages: the corpus in tests/data/pages (every construct the extractor
  knows) served by nginx; each test names the exact image URLs it expects.
- if_changed: a second run against nginx's own ETag and Last-Modified
  transfers no image body (every image request answered 304 in nginx's
  access log) and adds no file; touching one image adds exactly one.
- dedup: the same bytes under two URLs give one file and a duplicate_of;
  a {sha256} name matches the file's SHA-256; the cache outlives kill -9.
"""

import hashlib
import os
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, Nginx, check, eq  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PAGES = os.path.join(HERE, "..", "data", "pages")


def www_with_images(n=5, seed=0):
    """A fresh web root with img/0.png .. img/N-1.png (distinct PNGs)."""
    www = harness.fresh_dir("www")
    os.makedirs(os.path.join(www, "img"))
    for i in range(n):
        harness.make_png(os.path.join(www, "img", "%d.png" % i), 16, 16,
                         seed=seed * 1000 + i)
    return www


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)


def gallery(www, name, srcs, extra=""):
    """A page at /NAME listing <img src> for each of srcs."""
    body = "<!doctype html><html><head><title>g</title>%s</head><body>\n" % (
        extra)
    body += "".join('<img src="%s" alt="">\n' % s for s in srcs)
    body += "</body></html>\n"
    write(os.path.join(www, name), body)


def image_items(job):
    return [it for it in job["items"] if it.get("kind") != "page"]


def page_items(job):
    return [it for it in job["items"] if it.get("kind") == "page"]


def files(root):
    return sorted(p for p in harness.files_under(root)
                  if not p.endswith(".part"))


def image_requests(ng, status=None):
    return [r for r in ng.requests() if r["uri"].startswith("/img/")
            and (status is None or r["status"] == status)]


def test_page_images_become_items():
    www = www_with_images(3)
    gallery(www, "g.html", ["img/0.png", "/img/1.png",
                            "http://127.0.0.1:%d/img/2.png"])
    ng = Nginx(www)
    # the absolute URL must name nginx's port: rewrite the page now
    gallery(www, "g.html", ["img/0.png", "/img/1.png",
                            ng.url("/img/2.png")])
    d = Daemon(harness.fresh_dir("d"))
    job = d.submit([], pages=[ng.url("/g.html")])
    job = d.wait_job(job["id"])
    eq(job["state"], "done", "job state")
    pages = page_items(job)
    eq(len(pages), 1, "page items")
    eq(pages[0]["state"], "done", "page state")
    eq(pages[0]["images"], 3, "images the page yielded")
    imgs = image_items(job)
    eq(sorted(it["url"] for it in imgs),
       sorted(ng.url("/img/%d.png" % i) for i in range(3)), "image URLs")
    for it in imgs:
        eq(it["page"], ng.url("/g.html"), "item's page")
        eq(it["state"], "done", "image state")
        with open(d.path(it["path"]), "rb") as f:
            data = f.read()
        eq(it["sha256"], hashlib.sha256(data).hexdigest(), "sha256")
    # every image was asked for with the page as its Referer
    refs = {r["uri"]: r["referer"] for r in image_requests(ng)}
    eq(sorted(refs.values()), [ng.url("/g.html")] * 3, "Referer headers")
    d.stop()
    ng.stop()


def test_page_corpus_exact_sets():
    """Every page of tests/data/pages yields exactly its expected images
    (tests/data/pages/README: "image URL" lines, ORIGIN for the server);
    with same_host, so that no other host is ever looked up."""
    if not os.path.isdir(PAGES):
        raise harness.Skip("no page corpus")
    www = harness.fresh_dir("www")
    shutil.copytree(PAGES, os.path.join(www, "pages"))
    ng = Nginx(www)
    origin = ng.url("")
    d = Daemon(harness.fresh_dir("d"), max_transfers=4)
    checked = 0
    for name in sorted(os.listdir(PAGES)):
        exp = os.path.join(PAGES, name + ".expected")
        if not name.endswith(".html") or not os.path.exists(exp):
            continue
        want = []
        with open(exp) as f:
            for line in f:
                kind, _, rest = line.strip().partition(" ")
                if kind == "image" and rest.startswith("ORIGIN/"):
                    want.append(rest.replace("ORIGIN", origin, 1))
        job = d.submit([], pages=[origin + "/pages/" + name],
                       same_host=True)
        job = d.wait_job(job["id"], timeout=60)
        pages = page_items(job)
        eq(pages[0]["state"], "done", "%s: page state (%s)"
           % (name, pages[0].get("error")))
        eq(pages[0]["images"], len(want), "%s: images" % name)
        got = sorted(it["url"] for it in image_items(job))
        eq(got, sorted(set(want)), "%s: image URLs" % name)
        check(all(it["page"] == origin + "/pages/" + name
                  for it in image_items(job)), "%s: items' page" % name)
        checked += 1
    check(checked >= 10, "only %d corpus pages have expectations" % checked)
    d.stop()
    ng.stop()


def test_page_over_max_page_size():
    www = harness.fresh_dir("www")
    write(os.path.join(www, "big.html"),
          "<html><body>" + "x" * 300000 + "</body></html>")
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    job = d.submit([], pages=[ng.url("/big.html")], max_page_size=100000)
    job = d.wait_job(job["id"])
    eq(job["state"], "failed", "job state")
    err = page_items(job)[0].get("error", "")
    check("max_page_size" in err and "100000" in err,
          "error names max_page_size: %r" % err)
    # the daemon-wide default (8 MiB) lets it through
    job = d.wait_job(d.submit([], pages=[ng.url("/big.html")])["id"])
    eq(job["state"], "done", "job state with the default max_page_size")
    eq(page_items(job)[0]["images"], 0, "images of an empty page")
    d.stop()
    ng.stop()


def test_page_that_is_an_image_and_a_redirected_page():
    www = www_with_images(2)
    gallery(www, "sub/g.html", ["../img/1.png"])
    ng = Nginx(www, extra="        location = /old.html { return 301 "
                          "/sub/g.html; }\n")
    d = Daemon(harness.fresh_dir("d"))
    job = d.submit([], pages=[ng.url("/img/0.png"), ng.url("/old.html")])
    job = d.wait_job(job["id"])
    eq(job["state"], "done", "job state")
    imgs = sorted((it["url"], it["page"]) for it in image_items(job))
    # the relative reference resolves against the page's final URL
    eq(imgs, sorted([(ng.url("/img/0.png"), ng.url("/img/0.png")),
                     (ng.url("/img/1.png"), ng.url("/old.html"))]),
       "images (url, page)")
    eq(len(files(d.download_dir)), 2, "files")
    d.stop()
    ng.stop()


def test_not_html_fails_clearly():
    www = harness.fresh_dir("www")
    write(os.path.join(www, "data.bin"), b"\x00\x01" * 100)
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    job = d.wait_job(d.submit([], pages=[ng.url("/data.bin"),
                                         ng.url("/missing.html")])["id"])
    eq(job["state"], "failed", "job state")
    errs = sorted(it.get("error", "") for it in page_items(job))
    check(any("not an HTML page" in e and "application/octet-stream" in e
              for e in errs), "errors: %r" % errs)
    check(any("404" in e for e in errs), "errors: %r" % errs)
    d.stop()
    ng.stop()


def test_if_changed_second_run_transfers_no_image():
    www = www_with_images(5)
    gallery(www, "g.html", ["img/%d.png" % i for i in range(5)])
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    opts = {"pages": [ng.url("/g.html")], "if_changed": True,
            "name": "{name}"}
    first = d.wait_job(d.submit([], **opts)["id"])
    eq(first["state"], "done", "first run")
    eq(len(files(d.download_dir)), 5, "files after the first run")
    eq(len(image_requests(ng, 200)), 5, "image bodies sent")

    ng.clear_log()
    second = d.wait_job(d.submit([], **opts)["id"])
    eq(second["state"], "done", "second run")
    reqs = ng.requests()
    eq(sorted(r["status"] for r in reqs), [304] * 6,
       "every request of the second run answered 304 (page and 5 images)")
    eq(sum(r["bytes"] for r in reqs), 0, "body bytes sent")
    eq(len(files(d.download_dir)), 5, "files after the second run")
    for it in image_items(second):
        check(it.get("unchanged") is True, "item unchanged: %r" % it)
        check(os.path.exists(d.path(it["path"])),
              "unchanged item's path points to the earlier file")
    eq(page_items(second)[0].get("unchanged"), True, "page unchanged")

    # a new picture behind one URL: exactly one new file
    time.sleep(1.1)  # Last-Modified has one-second resolution
    harness.make_png(os.path.join(www, "img", "3.png"), 16, 16, seed=999)
    ng.clear_log()
    third = d.wait_job(d.submit([], **opts)["id"])
    eq(third["state"], "done", "third run")
    eq(len(image_requests(ng, 200)), 1, "image bodies sent")
    eq(len(files(d.download_dir)), 6, "files after touching one image")
    changed = [it for it in image_items(third) if not it.get("unchanged")]
    eq([it["url"] for it in changed], [ng.url("/img/3.png")], "changed")
    d.stop()
    ng.stop()


def test_plain_jobs_fetch_again():
    """Without if_changed nothing conditional is sent."""
    www = www_with_images(1)
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    url = ng.url("/img/0.png")
    d.wait_job(d.submit([url], if_changed=True)["id"])
    job = d.wait_job(d.submit([url])["id"])
    eq(job["items"][0].get("unchanged"), None, "unchanged of a plain job")
    eq([r["status"] for r in image_requests(ng)], [200, 200], "statuses")
    eq(len(files(d.download_dir)), 2, "files")
    d.stop()
    ng.stop()


def test_dedup_same_bytes_two_urls():
    www = www_with_images(2)
    shutil.copy(os.path.join(www, "img", "0.png"),
                os.path.join(www, "img", "copy.png"))
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"), workers=4)
    urls = [ng.url("/img/0.png"), ng.url("/img/copy.png"),
            ng.url("/img/1.png")]
    job = d.wait_job(d.submit(urls, dedup=True)["id"])
    eq(job["state"], "done", "job state")
    dups = [it for it in job["items"] if it.get("duplicate_of")]
    eq(len(dups), 1, "duplicates")
    kept = [it for it in job["items"] if not it.get("duplicate_of")]
    eq(len(files(d.download_dir)), 2, "files kept")
    check(dups[0]["duplicate_of"] in [it["path"] for it in kept],
          "duplicate_of names a kept file")
    eq(dups[0]["path"], dups[0]["duplicate_of"], "the duplicate's path")
    # a later job with the same bytes under yet another name
    shutil.copy(os.path.join(www, "img", "1.png"),
                os.path.join(www, "img", "again.png"))
    job = d.wait_job(d.submit([ng.url("/img/again.png")], dedup=True)["id"])
    eq(job["items"][0].get("duplicate_of"), kept[1]["path"]
       if kept[1]["url"].endswith("1.png") else kept[0]["path"],
       "duplicate across jobs")
    eq(len(files(d.download_dir)), 2, "files kept after the second job")
    # once the kept file is gone, the next copy is kept again
    os.unlink(d.path(job["items"][0]["duplicate_of"]))
    job = d.wait_job(d.submit([ng.url("/img/again.png")], dedup=True)["id"])
    eq(job["items"][0].get("duplicate_of"), None, "kept after removal")
    check(os.path.exists(d.path(job["items"][0]["path"])), "file kept")
    d.stop()
    ng.stop()


def test_dedup_many_identical_at_once():
    """Forty identical bodies finishing together leave exactly one file."""
    www = harness.fresh_dir("www")
    harness.make_png(os.path.join(www, "a.png"), 64, 64, seed=5)
    for i in range(40):
        shutil.copy(os.path.join(www, "a.png"),
                    os.path.join(www, "c%d.png" % i))
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"), workers=4, max_transfers=16)
    job = d.wait_job(d.submit([ng.url("/c%d.png" % i) for i in range(40)],
                              dedup=True)["id"])
    eq(job["state"], "done", "job state")
    eq(len(files(d.download_dir)), 1, "files")
    eq(sum(1 for it in job["items"] if it.get("duplicate_of")), 39,
       "duplicates")
    d.stop()
    ng.stop()


def test_sha256_names():
    www = www_with_images(3)
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    urls = [ng.url("/img/%d.png" % i) for i in range(3)]
    job = d.wait_job(d.submit(urls, dir="cas",
                              name="{sha256:2}/{sha256}.{ext}")["id"])
    eq(job["state"], "done", "job state")
    for it in job["items"]:
        with open(d.path(it["path"]), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        eq(it["path"], "cas/%s/%s.png" % (digest[:2], digest), "path")
        eq(it["sha256"], digest, "sha256")
    eq(len(files(d.download_dir)), 3, "files (no staging file left)")
    d.stop()
    ng.stop()


def test_cache_survives_kill9():
    www = www_with_images(3)
    gallery(www, "g.html", ["img/%d.png" % i for i in range(3)])
    ng = Nginx(www)
    tmp = harness.fresh_dir("d")
    d = Daemon(tmp)
    opts = {"pages": [ng.url("/g.html")], "if_changed": True}
    eq(d.wait_job(d.submit([], **opts)["id"])["state"], "done", "first run")
    d.kill()
    d = Daemon(tmp)
    ng.clear_log()
    job = d.wait_job(d.submit([], **opts)["id"])
    eq(job["state"], "done", "run after kill -9")
    eq(sorted(r["status"] for r in ng.requests()), [304] * 4,
       "page and images answered 304 after the restart")
    eq(len(files(d.download_dir)), 3, "files")
    d.stop()
    ng.stop()


def test_follow_next_and_same_host():
    www = www_with_images(4)
    gallery(www, "p1.html", ["img/0.png", "http://cdn.invalid/x.png"],
            '<link rel="next" href="p2.html">')
    gallery(www, "p2.html", ["img/1.png"], '<link rel="next" href="p3.html">')
    gallery(www, "p3.html", ["img/2.png"], '<link rel="next" href="p1.html">')
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"))
    job = d.wait_job(d.submit([], pages=[ng.url("/p1.html")], follow_next=1,
                              same_host=True)["id"])
    eq(sorted(it["url"] for it in page_items(job)),
       [ng.url("/p1.html"), ng.url("/p2.html")], "pages with follow_next 1")
    eq(sorted(it["url"] for it in image_items(job)),
       [ng.url("/img/0.png"), ng.url("/img/1.png")], "images")
    job = d.wait_job(d.submit([], pages=[ng.url("/p1.html")], follow_next=5,
                              same_host=True)["id"])
    # the loop back to p1 is not followed twice
    eq(sorted(it["url"] for it in page_items(job)),
       [ng.url("/p%d.html" % i) for i in (1, 2, 3)], "pages, loop cut")
    eq(job["state"], "done", "job state")
    d.stop()
    ng.stop()


def test_big_page_in_batches():
    """A page naming more images than one loop turn adds (PAGE_ADD_BATCH,
    512): every one becomes an item once, in order, the next page comes
    after them, and the unchanged rerun adds them from the cache alike."""
    n = 1300
    www = harness.fresh_dir("www")
    os.makedirs(os.path.join(www, "img"))
    for i in range(n):
        write(os.path.join(www, "img", "%d.png" % i),
              b"\x89PNG\r\n\x1a\n" + b"%08d" % i)
    srcs = ["img/%d.png" % i for i in range(n)]
    gallery(www, "big.html", srcs + srcs[:10],
            '<link rel="next" href="more.html">')
    gallery(www, "more.html", ["img/0.png", "img/%d.png" % (n - 1)])
    ng = Nginx(www)
    d = Daemon(harness.fresh_dir("d"), max_transfers=32)
    want = [ng.url("/" + u) for u in srcs]
    for run in ("first", "unchanged"):
        job = d.wait_job(d.submit([], pages=[ng.url("/big.html")],
                                  follow_next=1, if_changed=True)["id"],
                         timeout=120)
        eq(job["state"], "done", "%s run" % run)
        eq([it["url"] for it in image_items(job)], want,
           "%s run: the images, once each, in page order" % run)
        eq([it["url"] for it in page_items(job)],
           [ng.url("/big.html"), ng.url("/more.html")],
           "%s run: the pages, the next one after the images" % run)
        eq(page_items(job)[0]["images"], n, "distinct images the page names")
        eq(page_items(job)[1]["images"], 2, "images the next page names")
        eq(bool(page_items(job)[0].get("unchanged")), run == "unchanged",
           "%s run: the page unchanged" % run)
    eq(len(files(d.download_dir)), n, "files")
    d.stop()
    ng.stop()


def store_urls(d, job_id):
    """The URLs of a job's items in the store, read-only while it runs."""
    path = os.path.join(d.settings["state_dir"], "imgfetchd.db")
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return {r[0] for r in db.execute(
            "SELECT url FROM items WHERE job = ?", (job_id,))}
    finally:
        db.close()


def test_follow_next_budget_survives_kill9():
    """The pages a job has followed count against follow_next across a
    kill -9: the restarted job follows no more than it was given."""
    www = www_with_images(5)
    for i in range(1, 6):
        # p2 is slow (nginx's limit_rate), so the kill finds it in flight.
        gallery(www, "p%d.html" % i, ["img/%d.png" % (i - 1)],
                '<link rel="next" href="p%d.html">' % (i + 1) +
                ("<!-- %s -->" % ("x" * 160) if i == 2 else ""))
    ng = Nginx(www, extra="location = /p2.html { limit_rate 50; }")
    tmp = harness.fresh_dir("d")
    d = Daemon(tmp)
    job = d.submit([], pages=[ng.url("/p1.html")], follow_next=2)
    harness.wait_for(lambda: ng.url("/p2.html") in store_urls(d, job["id"]),
                     10, interval=0.05, what="p2 in the store")
    eq(d.job(job["id"])["state"], "running", "the job at the kill")
    d.kill()
    d = Daemon(tmp)
    job = d.wait_job(job["id"], timeout=60)
    eq(job["state"], "done", "the restarted job")
    eq(sorted(it["url"] for it in page_items(job)),
       [ng.url("/p%d.html" % i) for i in (1, 2, 3)],
       "pages: p1 and the two it may follow")
    eq(sorted(it["url"] for it in image_items(job)),
       [ng.url("/img/%d.png" % i) for i in (0, 1, 2)], "images")
    d.stop()
    ng.stop()


def test_bad_requests_name_the_field():
    d = Daemon(harness.fresh_dir("d"))
    cases = [
        ({}, "urls: missing"),
        ({"urls": []}, "urls: empty"),
        ({"pages": ["ftp://127.0.0.1/x.html"]}, "pages[0]"),
        ({"pages": ["http://127.0.0.1/"], "follow_next": 101},
         "follow_next"),
        ({"pages": ["http://127.0.0.1/"], "follow_next": -1}, "follow_next"),
        ({"pages": ["http://127.0.0.1/"], "max_page_size": 0},
         "max_page_size"),
        ({"urls": ["http://127.0.0.1/a.png"], "follow_next": 1},
         "follow_next: only for a job with \"pages\""),
        ({"urls": ["http://127.0.0.1/a.png"], "if_changed": "yes"},
         "if_changed: must be true or false"),
        ({"urls": ["http://127.0.0.1/a.png"], "dedup": 1},
         "dedup: must be true or false"),
        ({"urls": ["http://127.0.0.1/a.png"], "name": "{sha256:99}"},
         "unknown field"),
    ]
    for body, want in cases:
        status, _h, data = d.api("POST", "/v1/jobs", body)
        eq(status, 400, "status for %r" % (body,))
        check(want in data.get("error", ""),
              "error for %r: %r, want %r" % (body, data, want))
    check(d.alive(), "daemon still up")
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
