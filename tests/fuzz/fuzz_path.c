/*
 * libFuzzer: name templates and safe paths. The input is
 * "TEMPLATE\nURL\nCONTENT-TYPE\nDIR\nSHA256": path_check_template and
 * path_check_relative on what they are given, then path_expand of a
 * template that passed, whose result must be a safe relative path whose
 * file name leaves room for a "-N" suffix and ".part".
 */
#include "fuzz.h"

#include "defs.h"
#include "log.h"
#include "path.h"

/* Quiet logging. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_LEVEL_ERROR, "fuzz");
	return 0;
}

/* One input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct path_vars vars;
	char *copy, *field[5], *cause = NULL, *why = NULL, *got;
	const char *tmpl, *dir, *last;

	copy = fuzz_strndup(data, size);
	fuzz_split(copy, field, 5);
	tmpl = field[0];
	dir = field[3] != NULL && *field[3] != '\0' ? field[3] : NULL;

	if (path_check_relative(tmpl, "name", &cause) == -1) {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		free(cause);
		cause = NULL;
	}
	if (dir != NULL && path_check_relative(dir, "dir", &cause) == -1) {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		free(cause);
		cause = NULL;
		dir = NULL; /* the request would have been refused */
	}
	if (path_check_template(tmpl, &cause) == -1) {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		free(cause);
		free(copy);
		return 0;
	}
	memset(&vars, 0, sizeof vars);
	vars.url = field[1] != NULL ? field[1] : "http://h/";
	vars.content_type =
	    field[2] != NULL && *field[2] != '\0' ? field[2] : NULL;
	vars.job = 42;
	vars.n = 7;
	vars.now = 1700000000;
	vars.sha256 = field[4];
	got = path_expand(dir, tmpl, &vars, &cause);
	if (got == NULL) {
		FUZZ_ASSERT(cause != NULL && fuzz_printable(cause));
		free(cause);
	} else {
		FUZZ_ASSERT(path_check_relative(got, "path", &why) == 0);
		last = strrchr(got, '/');
		last = last != NULL ? last + 1 : got;
		FUZZ_ASSERT(*last != '\0');
		FUZZ_ASSERT(strlen(last) <= FILE_NAME_MAX_BYTES);
		FUZZ_ASSERT(strlen(got) <= RELPATH_MAX_BYTES);
		free(got);
	}
	free(copy);
	return 0;
}
