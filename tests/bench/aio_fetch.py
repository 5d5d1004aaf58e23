"""Download a list of URLs the common asyncio way: one aiohttp ClientSession
with a TCPConnector(limit=C), aiofiles writing each body, every URL a task
under asyncio.gather and an asyncio.Semaphore(C).

    python3 aio_fetch.py -c C -d DIR LIST

LIST has one URL a line. Each body is saved as DIR/NAME, NAME being the
last segment of the URL's path. Exit status 0 when every URL was saved,
1 when some failed (each failure is printed on stderr), 2 on bad usage.

The benchmark in bench.py runs this as one of its contenders, with Debian's
python3-aiohttp and python3-aiofiles.
"""

import argparse
import asyncio
import os
import sys
import urllib.parse

import aiofiles
import aiohttp

CHUNK = 64 * 1024


def name_for(url):
    """File name for a URL: its last path segment, percent-decoded."""
    path = urllib.parse.urlsplit(url).path
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
    if name in ("", ".", "..") or "/" in name:
        raise ValueError("no file name in %s" % url)
    return name


async def fetch(session, sem, url, path):
    """GET url into path; True on success, False (reported) on failure."""
    async with sem:
        try:
            async with session.get(url) as resp:
                resp.raise_for_status()
                async with aiofiles.open(path, "wb") as f:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        await f.write(chunk)
            return True
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            print("aio_fetch: %s: %s" % (url, e), file=sys.stderr)
            return False


async def fetch_all(urls, outdir, concurrency):
    """Fetch every URL at most concurrency at a time; count the failures."""
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout) as session:
        results = await asyncio.gather(*(
            fetch(session, sem, url, os.path.join(outdir, name_for(url)))
            for url in urls))
    return results.count(False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("-d", "--dir", required=True)
    p.add_argument("list")
    args = p.parse_args()
    if args.concurrency < 1:
        p.error("concurrency must be at least 1")
    with open(args.list) as f:
        urls = [line.strip() for line in f
                if line.strip() and not line.startswith("#")]
    os.makedirs(args.dir, exist_ok=True)
    failed = asyncio.run(fetch_all(urls, args.dir, args.concurrency))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
