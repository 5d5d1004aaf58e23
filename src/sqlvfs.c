/*
 * A SQLite VFS for the job store that gathers its writes.
 *
 * SQLite appends to a WAL one frame at a time, and each frame is two
 * writes: a 24-byte header, then the page. A transaction of 40 pages is 80
 * write(2)s, and on a disk where every write costs a round trip (a network
 * file system, a device that is busy) the store thread spends its time
 * there while renames wait for its "committing" records. This VFS wraps
 * the default one and keeps the writes to the database and to its WAL in a
 * buffer while they are contiguous, so that they reach the file in one
 * write:
 *
 * - WAL: the buffer is written out when the page of a commit frame (a
 *   header whose "database size after commit" field is not zero, see the
 *   WAL format in SQLite's file format document) has been added, so the
 *   write error of a commit comes back from that xWrite and SQLite rolls
 *   the transaction back as it would without the buffer. The WAL header
 *   (offset 0, written when the log restarts) is never held back.
 * - database: written only by checkpoints in WAL mode; the pages come in
 *   order and the buffer goes out at xSync, which every checkpoint calls.
 * - both: any read, size, truncate, lock, sync, file control or close
 *   writes the buffer first, so SQLite never sees a file without its own
 *   writes; a write that is neither contiguous nor inside the buffer
 *   writes it first too. A failed write drops the buffer: what it held
 *   belongs to the transaction that fails with it.
 *
 * A connection (and so its files) is used by one thread at a time; the
 * buffer belongs to the file and needs no lock.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "sqlvfs.h"

/* WAL format: 32-byte file header, then frames of a 24-byte header + page. */
#define WAL_HEADER_SIZE 32
#define WAL_FRAME_HEADER_SIZE 24

/*
 * Most bytes per write: the unix VFS writes at most 128 KiB per call (it
 * never expects more than a page and its header).
 */
#define SQLVFS_WRITE_MAX (124 * 1024)

/* Most bytes kept back before they are written anyway. */
#define SQLVFS_BUFFER_MAX (4 * 1024 * 1024)

struct sqlvfs_file {
	sqlite3_file base; /* pMethods: sqlvfs_io */
	sqlite3_file *real; /* the default VFS's file, right after this */
	int buffered; /* database or WAL */
	int wal;
	unsigned char *buf;
	size_t len;
	size_t size;
	sqlite3_int64 off; /* file offset of buf[0] */
	sqlite3_int64 commit_end; /* WAL: end of the commit frame, or -1 */
};

static sqlite3_vfs sqlvfs_vfs;
static const sqlite3_io_methods sqlvfs_io;

/* Write the buffer out and empty it. */
static int
sqlvfs_flush(struct sqlvfs_file *f)
{
	size_t done, n;
	int rc = SQLITE_OK;

	for (done = 0; done < f->len && rc == SQLITE_OK; done += n) {
		n = f->len - done;
		if (n > SQLVFS_WRITE_MAX)
			n = SQLVFS_WRITE_MAX;
		rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
		    f->off + (sqlite3_int64)done);
	}
	f->len = 0;
	return rc;
}

/* Whether [off, off + amt) meets the buffered bytes. */
static int
sqlvfs_overlaps(struct sqlvfs_file *f, sqlite3_int64 off, int amt)
{
	return f->len != 0 && off < f->off + (sqlite3_int64)f->len &&
	    off + amt > f->off;
}

/* Add a write to the buffer; 0 if it cannot go there. */
static int
sqlvfs_keep(struct sqlvfs_file *f, const void *p, int amt, sqlite3_int64 off)
{
	sqlite3_int64 end = f->off + (sqlite3_int64)f->len;
	size_t want;
	unsigned char *nbuf;

	if (f->len != 0 && off >= f->off && off + amt <= end) {
		/* A frame written again within the same transaction. */
		memcpy(f->buf + (off - f->off), p, (size_t)amt);
		return 1;
	}
	if (f->len != 0 && off != end)
		return 0;
	if (f->len + (size_t)amt > SQLVFS_BUFFER_MAX)
		return 0;
	want = f->len + (size_t)amt;
	if (want > f->size) {
		if (want < 64 * 1024)
			want = 64 * 1024;
		if (want < f->size * 2)
			want = f->size * 2;
		if (want > SQLVFS_BUFFER_MAX)
			want = SQLVFS_BUFFER_MAX;
		if ((nbuf = realloc(f->buf, want)) == NULL)
			return 0;
		f->buf = nbuf;
		f->size = want;
	}
	if (f->len == 0)
		f->off = off;
	memcpy(f->buf + f->len, p, (size_t)amt);
	f->len += (size_t)amt;
	return 1;
}

/* The WAL frame header at p is a commit frame's. */
static int
sqlvfs_is_commit(const unsigned char *p)
{
	return (p[4] | p[5] | p[6] | p[7]) != 0;
}

/* xWrite: keep contiguous writes back, as the top comment says. */
static int
sqlvfs_write(sqlite3_file *file, const void *p, int amt, sqlite3_int64 off)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if (!f->buffered || amt <= 0)
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	if (f->wal && off < WAL_HEADER_SIZE) {
		if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
			return rc;
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	}
	if (!sqlvfs_keep(f, p, amt, off)) {
		if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
			return rc;
		if (!sqlvfs_keep(f, p, amt, off)) {
			f->commit_end = -1;
			return f->real->pMethods->xWrite(f->real, p, amt, off);
		}
	}
	if (!f->wal)
		return SQLITE_OK;
	if (amt == WAL_FRAME_HEADER_SIZE) {
		/* A commit frame's page follows its header. */
		f->commit_end = sqlvfs_is_commit(p) ? off + amt : -1;
		return SQLITE_OK;
	}
	if (off == f->commit_end) {
		/* The commit frame is complete; bytes after it are stale. */
		f->commit_end = -1;
		f->len = (size_t)(off + amt - f->off);
		return sqlvfs_flush(f);
	}
	return SQLITE_OK;
}

/* xRead: the buffer goes out first if the read meets it. */
static int
sqlvfs_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if (sqlvfs_overlaps(f, off, amt) && (rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xRead(f->real, p, amt, off);
}

/* xClose: write what is left and close the real file. */
static int
sqlvfs_close(sqlite3_file *file)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc, rc2;

	rc = sqlvfs_flush(f);
	free(f->buf);
	f->buf = NULL;
	f->size = 0;
	rc2 = f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : rc2;
}

/* xTruncate */
static int
sqlvfs_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xTruncate(f->real, size);
}

/* xSync */
static int
sqlvfs_sync(sqlite3_file *file, int flags)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xSync(f->real, flags);
}

/* xFileSize */
static int
sqlvfs_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xFileSize(f->real, size);
}

/* xLock */
static int
sqlvfs_lock(sqlite3_file *file, int level)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xLock(f->real, level);
}

/* xUnlock */
static int
sqlvfs_unlock(sqlite3_file *file, int level)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xUnlock(f->real, level);
}

/* xCheckReservedLock */
static int
sqlvfs_check_reserved(sqlite3_file *file, int *out)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

/* xFileControl */
static int
sqlvfs_file_control(sqlite3_file *file, int op, void *arg)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	int rc;

	if ((rc = sqlvfs_flush(f)) != SQLITE_OK)
		return rc;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

/* xSectorSize */
static int
sqlvfs_sector_size(sqlite3_file *file)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

/* xDeviceCharacteristics */
static int
sqlvfs_device_characteristics(sqlite3_file *file)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* xShmMap: the wal-index lives beside the database, unbuffered. */
static int
sqlvfs_shm_map(
    sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

/* xShmLock */
static int
sqlvfs_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

/* xShmBarrier */
static void
sqlvfs_shm_barrier(sqlite3_file *file)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	f->real->pMethods->xShmBarrier(f->real);
}

/* xShmUnmap */
static int
sqlvfs_shm_unmap(sqlite3_file *file, int delete)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;

	return f->real->pMethods->xShmUnmap(f->real, delete);
}

static const sqlite3_io_methods sqlvfs_io = {
	.iVersion = 2,
	.xClose = sqlvfs_close,
	.xRead = sqlvfs_read,
	.xWrite = sqlvfs_write,
	.xTruncate = sqlvfs_truncate,
	.xSync = sqlvfs_sync,
	.xFileSize = sqlvfs_file_size,
	.xLock = sqlvfs_lock,
	.xUnlock = sqlvfs_unlock,
	.xCheckReservedLock = sqlvfs_check_reserved,
	.xFileControl = sqlvfs_file_control,
	.xSectorSize = sqlvfs_sector_size,
	.xDeviceCharacteristics = sqlvfs_device_characteristics,
	.xShmMap = sqlvfs_shm_map,
	.xShmLock = sqlvfs_shm_lock,
	.xShmBarrier = sqlvfs_shm_barrier,
	.xShmUnmap = sqlvfs_shm_unmap,
};

/* The default VFS this one wraps. */
static sqlite3_vfs *
sqlvfs_real(sqlite3_vfs *vfs)
{
	return vfs->pAppData;
}

/* xOpen: open with the default VFS, then wrap the file. */
static int
sqlvfs_open(
    sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
	struct sqlvfs_file *f = (struct sqlvfs_file *)file;
	sqlite3_vfs *real = sqlvfs_real(vfs);
	int rc;

	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	f->commit_end = -1;
	rc = real->xOpen(real, name, f->real, flags, out);
	if (rc != SQLITE_OK || f->real->pMethods == NULL) {
		/* SQLite calls no xClose on a file without methods. */
		if (f->real->pMethods != NULL)
			f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
	}
	f->buffered = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->base.pMethods = &sqlvfs_io;
	return SQLITE_OK;
}

/* xDelete */
static int
sqlvfs_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	return sqlvfs_real(vfs)->xDelete(sqlvfs_real(vfs), name, sync);
}

/* xAccess */
static int
sqlvfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return sqlvfs_real(vfs)->xAccess(sqlvfs_real(vfs), name, flags, out);
}

/* xFullPathname */
static int
sqlvfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return sqlvfs_real(vfs)->xFullPathname(sqlvfs_real(vfs), name, n, out);
}

/* xDlOpen */
static void *
sqlvfs_dl_open(sqlite3_vfs *vfs, const char *name)
{
	return sqlvfs_real(vfs)->xDlOpen(sqlvfs_real(vfs), name);
}

/* xDlError */
static void
sqlvfs_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	sqlvfs_real(vfs)->xDlError(sqlvfs_real(vfs), n, msg);
}

/* xDlSym */
static void (*sqlvfs_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return sqlvfs_real(vfs)->xDlSym(sqlvfs_real(vfs), h, sym);
}

/* xDlClose */
static void
sqlvfs_dl_close(sqlite3_vfs *vfs, void *h)
{
	sqlvfs_real(vfs)->xDlClose(sqlvfs_real(vfs), h);
}

/* xRandomness */
static int
sqlvfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return sqlvfs_real(vfs)->xRandomness(sqlvfs_real(vfs), n, out);
}

/* xSleep */
static int
sqlvfs_sleep(sqlite3_vfs *vfs, int us)
{
	return sqlvfs_real(vfs)->xSleep(sqlvfs_real(vfs), us);
}

/* xCurrentTime */
static int
sqlvfs_current_time(sqlite3_vfs *vfs, double *out)
{
	return sqlvfs_real(vfs)->xCurrentTime(sqlvfs_real(vfs), out);
}

/* xGetLastError */
static int
sqlvfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return sqlvfs_real(vfs)->xGetLastError(sqlvfs_real(vfs), n, out);
}

/* xCurrentTimeInt64 */
static int
sqlvfs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return sqlvfs_real(vfs)->xCurrentTimeInt64(sqlvfs_real(vfs), out);
}

/* Register the VFS (once per process) and return its name, or NULL. */
const char *
sqlvfs_name(void)
{
	sqlite3_vfs *real;

	if (sqlvfs_vfs.zName != NULL)
		return sqlvfs_vfs.zName;
	if ((real = sqlite3_vfs_find(NULL)) == NULL || real->iVersion < 2 ||
	    real->xCurrentTimeInt64 == NULL) {
		log_warnx("sqlvfs_name: no usable default SQLite VFS");
		return NULL;
	}
	sqlvfs_vfs.iVersion = 2;
	sqlvfs_vfs.szOsFile = (int)sizeof(struct sqlvfs_file) + real->szOsFile;
	sqlvfs_vfs.mxPathname = real->mxPathname;
	sqlvfs_vfs.pAppData = real;
	sqlvfs_vfs.xOpen = sqlvfs_open;
	sqlvfs_vfs.xDelete = sqlvfs_delete;
	sqlvfs_vfs.xAccess = sqlvfs_access;
	sqlvfs_vfs.xFullPathname = sqlvfs_full_pathname;
	sqlvfs_vfs.xDlOpen = sqlvfs_dl_open;
	sqlvfs_vfs.xDlError = sqlvfs_dl_error;
	sqlvfs_vfs.xDlSym = sqlvfs_dl_sym;
	sqlvfs_vfs.xDlClose = sqlvfs_dl_close;
	sqlvfs_vfs.xRandomness = sqlvfs_randomness;
	sqlvfs_vfs.xSleep = sqlvfs_sleep;
	sqlvfs_vfs.xCurrentTime = sqlvfs_current_time;
	sqlvfs_vfs.xGetLastError = sqlvfs_last_error;
	sqlvfs_vfs.xCurrentTimeInt64 = sqlvfs_current_time64;
	sqlvfs_vfs.zName = SQLVFS_NAME;
	if (sqlite3_vfs_register(&sqlvfs_vfs, 0) != SQLITE_OK) {
		log_warnx("sqlvfs_name: cannot register the SQLite VFS");
		sqlvfs_vfs.zName = NULL;
		return NULL;
	}
	return sqlvfs_vfs.zName;
}
