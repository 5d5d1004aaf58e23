"""Download file I/O happens on the writer threads, never on the loop
thread: the daemon runs under strace and the trace is checked."""

import os
import re
import shutil

import harness
from harness import check, eq

O = None
FILES = {}

SYSCALLS = ("openat,open,creat,write,pwrite64,writev,rename,renameat,"
            "renameat2,unlinkat,unlink,mkdirat,mkdir,fsync,fdatasync")

LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$", re.S)
FD = re.compile(r"^(AT_FDCWD|-?\d+)(?:<(.*)>)?$", re.S)


def setup():
    global O, FILES
    O, FILES, _root = harness.corpus_origin()


def teardown():
    if O is not None:
        O.stop()


def split_args(s):
    """Top-level comma-separated arguments of a strace call."""
    args, cur, depth, quoted, esc = [], [], 0, False, False
    for ch in s:
        if quoted:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if cur:
        args.append("".join(cur).strip())
    return args


def unquote(arg):
    """A strace string argument without quotes and escapes."""
    m = re.match(r'^"((?:[^"\\]|\\.)*)"', arg, re.S)
    if not m:
        return None
    return re.sub(r"\\(.)", r"\1", m.group(1))


class Trace:
    """The calls of one strace -f -y log, with every path made absolute."""

    def __init__(self, path, cwd):
        self.cwd = cwd
        self.fds = {}      # fd -> path, from open* results
        self.calls = []    # (tid, name, [absolute paths], text)
        pending = {}
        with open(path, errors="replace") as f:
            for raw in f:
                m = LINE.match(raw.rstrip("\n"))
                if not m:
                    continue
                tid, rest = int(m.group(1)), m.group(3)
                if rest.startswith("+++") or rest.startswith("---"):
                    continue
                if rest.endswith("<unfinished ...>"):
                    pending[tid] = rest[:-len("<unfinished ...>")]
                    continue
                r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest, re.S)
                if r:
                    rest = pending.pop(tid, "") + r.group(1)
                self.add(tid, rest)

    def fd_path(self, arg):
        """The path behind an fd argument (its -y annotation or our table)."""
        m = FD.match(arg.strip())
        if not m:
            return None
        if m.group(2) is not None:
            return m.group(2).replace(" (deleted)", "")
        if m.group(1) == "AT_FDCWD":
            return self.cwd
        return self.fds.get(int(m.group(1)))

    def at(self, dirarg, patharg):
        p = unquote(patharg)
        if p is None:
            return None
        if p.startswith("/"):
            return os.path.normpath(p)
        base = self.fd_path(dirarg) if dirarg is not None else self.cwd
        if base is None:
            return None
        return os.path.normpath(os.path.join(base, p))

    def add(self, tid, text):
        m = CALL.match(text)
        if not m:
            return
        name, args, ret = m.group(1), split_args(m.group(2)), m.group(3)
        paths = []
        if name in ("open", "creat", "mkdir", "unlink") and args:
            paths = [self.at(None, args[0])]
        elif name in ("openat", "mkdirat", "unlinkat") and len(args) >= 2:
            paths = [self.at(args[0], args[1])]
        elif name == "rename" and len(args) >= 2:
            paths = [self.at(None, args[0]), self.at(None, args[1])]
        elif name in ("renameat", "renameat2") and len(args) >= 4:
            paths = [self.at(args[0], args[1]), self.at(args[2], args[3])]
        elif name in ("write", "pwrite64", "writev", "fsync",
                      "fdatasync") and args:
            paths = [self.fd_path(args[0])]
        if name in ("open", "openat", "creat"):
            r = FD.match(ret.split()[0]) if ret.split() else None
            if r and not r.group(1).startswith("-") and paths:
                self.fds[int(r.group(1))] = r.group(2) or paths[0]
        self.calls.append((tid, name, [p for p in paths if p], text))


def kind(name):
    if name in ("open", "openat", "creat"):
        return "open"
    if name in ("write", "pwrite64", "writev"):
        return "write"
    if name in ("rename", "renameat", "renameat2"):
        return "rename"
    if name in ("mkdir", "mkdirat"):
        return "mkdir"
    if name in ("unlink", "unlinkat"):
        return "unlink"
    return "fsync"


def test_no_download_io_on_the_loop_thread():
    strace = shutil.which("strace")
    if strace is None:
        raise harness.Skip("strace is not installed")
    tmp = harness.fresh_dir("loop")
    trace = os.path.join(tmp, "strace.log")
    d = harness.Daemon(
        tmp, fsync=True, workers=2, max_transfers=8,
        prefix=[strace, "-f", "-tt", "-y", "-s", "16", "-e",
                "trace=" + SYSCALLS, "-o", trace])
    pid = d.pid
    dl = os.path.normpath(d.download_dir)
    names = ["a.png", "b.png", "big.png", "sub/c.png"]
    urls = [O.url("/files/%s?i=%d" % (names[i % 4], i)) for i in range(20)]
    job = d.wait_job(d.submit(urls[:10], dir="io/deep/er",
                              name="{n}-{name}")["id"], timeout=60)
    eq(job["state"], "done", "job state")
    job2 = d.wait_job(d.submit(urls[10:], dir="io",
                               name="{n}.{ext}")["id"], timeout=60)
    eq(job2["state"], "done", "second job state")
    files = harness.files_under(os.path.join(dl, "io"))
    eq(len(files), 20, "files downloaded (%r)" % files)
    d.stop(timeout=20)

    t = Trace(trace, os.getcwd())
    tids = {c[0] for c in t.calls}
    check(pid in tids, "no call by the main thread (tid %d) in the trace"
          % pid)
    conf = [c[0] for c in t.calls
            if c[1] in ("open", "openat") and d.confpath in c[2]]
    check(conf, "the config file %s was not opened in the trace"
          % d.confpath)
    eq(conf[0], pid, "tid that read the config file (the main thread)")
    check(len(tids) > 1, "only one thread in the trace")

    def under(p):
        return p.startswith(dl + "/")

    on_loop, by_workers = [], {}
    for tid, name, paths, text in t.calls:
        if not any(under(p) for p in paths):
            continue
        if tid == pid:
            on_loop.append(text.strip()[:160])
        else:
            k = kind(name)
            by_workers[k] = by_workers.get(k, 0) + 1
    check(not on_loop, "the loop thread did %d download file calls, e.g.:"
          "\n    %s" % (len(on_loop), "\n    ".join(on_loop[:8])))
    want = {"open": 20, "write": 20, "rename": 20, "fsync": 20, "mkdir": 1}
    for k, n in want.items():
        check(by_workers.get(k, 0) >= n,
              "writer threads made %d %s calls under the download dir, "
              "expected at least %d (all: %r)"
              % (by_workers.get(k, 0), k, n, by_workers))


if __name__ == "__main__":
    harness.run(globals())
