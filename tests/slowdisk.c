/*
 * A slow disk for the benchmark, as an LD_PRELOAD shim:
 *
 *	LD_PRELOAD=tests/libslowdisk.so imgfetchd -c FILE
 *
 * Every write(), pwrite(), pwritev() and writev() to a regular file sleeps
 * SLOWDISK_MS milliseconds (default 100) before doing the real call, found
 * with dlsym(RTLD_NEXT). Sockets, pipes and terminals are left alone, so
 * only the file I/O of the process slows down. A thread that writes a file
 * sleeps by itself; the other threads go on.
 */
/* pwrite and pwrite64 are two symbols here: keep them apart. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOWDISK_DEFAULT_MS 100
#define SLOWDISK_MAX_MS 60000

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*pwritev64_fn)(int, const struct iovec *, int, off64_t);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static writev_fn real_writev;
static pwritev_fn real_pwritev;
static pwritev64_fn real_pwritev64;
static long slowdisk_ms = SLOWDISK_DEFAULT_MS;

/* Store the next definition of name in the function pointer at fnp. */
static void
slowdisk_sym(void *fnp, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	/* ISO C has no cast from void * to a function pointer; copy it. */
	memcpy(fnp, &p, sizeof p);
}

/* Find the real functions and read SLOWDISK_MS, before main runs. */
__attribute__((constructor)) static void
slowdisk_init(void)
{
	const char *env = getenv("SLOWDISK_MS");
	char *end;
	long v;

	slowdisk_sym(&real_write, "write");
	slowdisk_sym(&real_pwrite, "pwrite");
	slowdisk_sym(&real_pwrite64, "pwrite64");
	slowdisk_sym(&real_writev, "writev");
	slowdisk_sym(&real_pwritev, "pwritev");
	slowdisk_sym(&real_pwritev64, "pwritev64");
	if (env != NULL && *env != '\0') {
		v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 0 && v <= SLOWDISK_MAX_MS)
			slowdisk_ms = v;
	}
}

/* Sleep the whole delay if fd is a regular file; errno is kept. */
static void
slowdisk_delay(int fd)
{
	struct timespec ts, left;
	struct stat st;
	int saved = errno;

	if (slowdisk_ms > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		ts.tv_sec = slowdisk_ms / 1000;
		ts.tv_nsec = (slowdisk_ms % 1000) * 1000000L;
		while (nanosleep(&ts, &left) == -1 && errno == EINTR)
			ts = left;
	}
	errno = saved;
}

/* write(2), late for regular files. */
ssize_t
write(int fd, const void *buf, size_t len)
{
	if (real_write == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_write(fd, buf, len);
}

/* pwrite(2), late for regular files. */
ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (real_pwrite == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_pwrite(fd, buf, len, off);
}

/* pwrite64, the name pwrite takes with 64-bit file offsets. */
ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	if (real_pwrite64 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_pwrite64(fd, buf, len, off);
}

/* writev(2), late for regular files. */
ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (real_writev == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_writev(fd, iov, iovcnt);
}

/* pwritev(2), late for regular files. */
ssize_t
pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	if (real_pwritev == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_pwritev(fd, iov, iovcnt, off);
}

/* pwritev64, the name pwritev takes with 64-bit file offsets. */
ssize_t
pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t off)
{
	if (real_pwritev64 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	slowdisk_delay(fd);
	return real_pwritev64(fd, iov, iovcnt, off);
}
