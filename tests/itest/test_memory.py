"""Big bodies stream to disk: the daemon's memory stays small."""

import os
import threading
import time

import harness
from harness import check, eq

O = None
LIMIT_KIB = 64 * 1024


def setup():
    global O
    O = harness.Origin(harness.fresh_dir("origin"))


def teardown():
    if O is not None:
        O.stop()


class Sampler:
    """Polls a pid's VmRSS in the background; .peak in KiB."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            v = harness.proc_kib(self.pid, "VmRSS")
            if v is not None:
                self.peak = max(self.peak, v)
            time.sleep(0.05)

    def stop(self):
        self.stopping = True
        self.thread.join()
        return self.peak


def check_download(d, item, size):
    eq(item["state"], "done", "item %d state (%r)"
       % (item["n"], item.get("error")))
    path = d.path(item["path"])
    eq(os.path.getsize(path), size, "size of %s" % item["path"])
    eq(item["bytes"], size, "item %d bytes" % item["n"])
    eq(harness.file_sha256(path), harness.stream_sha256(size, "png"),
       "sha256 of %s" % item["path"])
    os.unlink(path)


@harness.timeout(300)
def test_512_mib_body():
    size = 512 * 1024 * 1024
    d = harness.Daemon(harness.fresh_dir("one"), max_item_size=0,
                       timeout=0, log_level="info")
    sampler = Sampler(d.pid)
    job = d.submit([O.url("/stream/%d?magic=png" % size)], name="big.png")
    job = d.wait_job(job["id"], timeout=240, interval=0.2)
    rss_peak = sampler.stop()
    hwm = harness.proc_kib(d.pid, "VmHWM")
    check(hwm is not None, "no VmHWM for pid %d" % d.pid)
    print("  # 512 MiB: VmHWM %d KiB, sampled VmRSS peak %d KiB"
          % (hwm, rss_peak))
    check(max(hwm, rss_peak) < LIMIT_KIB, "VmHWM %d KiB after a 512 MiB "
          "download (sampled VmRSS peak %d KiB)" % (hwm, rss_peak))
    check_download(d, job["items"][0], size)
    d.stop()


@harness.timeout(300)
def test_eight_parallel_bodies():
    size = 96 * 1024 * 1024
    d = harness.Daemon(harness.fresh_dir("many"), max_item_size=0,
                       timeout=0, max_transfers=8, log_level="info")
    sampler = Sampler(d.pid)
    urls = [O.url("/stream/%d?magic=png&i=%d" % (size, i)) for i in range(8)]
    job = d.submit(urls, name="{n}.png")
    job = d.wait_job(job["id"], timeout=240, interval=0.2)
    rss_peak = sampler.stop()
    hwm = harness.proc_kib(d.pid, "VmHWM")
    check(hwm is not None, "no VmHWM for pid %d" % d.pid)
    print("  # 8 x 96 MiB: VmHWM %d KiB, sampled VmRSS peak %d KiB"
          % (hwm, rss_peak))
    check(max(hwm, rss_peak) < LIMIT_KIB, "VmHWM %d KiB after 8 parallel "
          "96 MiB downloads (sampled VmRSS peak %d KiB)" % (hwm, rss_peak))
    eq(job["state"], "done", "job state")
    for item in job["items"]:
        check_download(d, item, size)
    d.stop()


if __name__ == "__main__":
    harness.run(globals())
