/*
 * libFuzzer: config_load on a file written from the input, over the
 * defaults. The file lives in a private directory made at start; an
 * @include is read relative to it, where include/sub.conf and
 * include/bad.conf wait. Inputs that could include from elsewhere (an
 * @include with ".." or an absolute path; libconfig 1.5 has no hook to
 * refuse them) are skipped: /dev/zero is no config file.
 */
#include <ftw.h>
#include <unistd.h>

#include "fuzz.h"

#include "config.h"
#include "log.h"

static char fuzz_dir[] = "/tmp/fuzz-config-XXXXXX";
static char fuzz_file[sizeof fuzz_dir + 16];

/* Remove one entry of the private directory. */
static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

/* Remove the private directory at exit. */
static void
remove_dir(void)
{
	nftw(fuzz_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Write a small file. */
static void
write_file(const char *path, const char *text)
{
	FILE *f;

	FUZZ_ASSERT((f = fopen(path, "w")) != NULL);
	fputs(text, f);
	FUZZ_ASSERT(fclose(f) == 0);
}

/* The private directory and its include files. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[sizeof fuzz_dir + 32];

	log_init(LOG_LEVEL_ERROR, "fuzz");
	FUZZ_ASSERT(mkdtemp(fuzz_dir) != NULL);
	atexit(remove_dir);
	snprintf(fuzz_file, sizeof fuzz_file, "%s/fuzz.conf", fuzz_dir);
	snprintf(path, sizeof path, "%s/include", fuzz_dir);
	FUZZ_ASSERT(mkdir(path, 0700) == 0);
	snprintf(path, sizeof path, "%s/include/sub.conf", fuzz_dir);
	write_file(path, "max_transfers = 7;\nheaders = (\"X-A: b\");\n");
	snprintf(path, sizeof path, "%s/include/bad.conf", fuzz_dir);
	write_file(path, "# bad\nbogus = 1;\n");
	return 0;
}

/*
 * Whether an @include in the text could reach outside the directory: a
 * "..", a path starting with '/', or any escape that could spell either.
 */
static int
escapes(const uint8_t *data, size_t size)
{
	const uint8_t *p, *end = data + size;

	if (memmem(data, size, "@include", 8) == NULL)
		return 0;
	for (p = data; p < end; p++) {
		if (*p == '\\')
			return 1;
		if (*p == '.' && p + 1 < end && p[1] == '.')
			return 1;
		if (*p == '"' && p + 1 < end && p[1] == '/')
			return 1;
	}
	return 0;
}

/* One input: the text of the config file. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char *cause = NULL;
	FILE *f;

	if (escapes(data, size))
		return 0;
	FUZZ_ASSERT((f = fopen(fuzz_file, "w")) != NULL);
	FUZZ_ASSERT(fwrite(data, 1, size, f) == size);
	FUZZ_ASSERT(fclose(f) == 0);
	config_init(&cfg);
	if (config_load(&cfg, fuzz_file, &cause) == 0) {
		FUZZ_ASSERT(cause == NULL);
		FUZZ_ASSERT(cfg.workers >= 1 && cfg.max_transfers >= 1);
		FUZZ_ASSERT(cfg.max_job_items >= 1 &&
		    cfg.max_url_length >= 16 && cfg.max_header_bytes >= 16);
		FUZZ_ASSERT(cfg.nallowed_types >= 1);
	} else {
		FUZZ_ASSERT(cause != NULL);
		free(cause);
	}
	config_finish(&cfg);
	return 0;
}
