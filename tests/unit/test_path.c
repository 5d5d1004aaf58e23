/* Unit tests for path.c: safe relative paths, templates and expansion. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "defs.h"
#include "path.h"
#include "xmalloc.h"

#include "check.h"

/* Check a relative path is accepted. */
static void
good_relative(const char *s, int line)
{
	char *cause = NULL;
	int rc;

	rc = path_check_relative(s, "dir", &cause);
	check_at(rc == 0, __FILE__, line, "\"%s\" refused: %s", s,
	    cause ? cause : "(no cause)");
	free(cause);
}

/* Check a relative path is refused with a message containing want. */
static void
bad_relative(const char *s, const char *want, int line)
{
	char *cause = NULL;
	int rc;

	rc = path_check_relative(s, "dir", &cause);
	check_at(rc == -1 && cause != NULL && strstr(cause, want) != NULL,
	    __FILE__, line, "\"%s\": rc %d, cause \"%s\", want \"%s\"", s, rc,
	    cause ? cause : "(null)", want);
	free(cause);
}

/* path_check_relative on good and hostile input. */
static void
test_relative(void)
{
	char big[RELPATH_MAX_BYTES + 2], comp[NAME_MAX_BYTES + 2];
	char *cause = NULL;

	good_relative("a", __LINE__);
	good_relative("a/b/c", __LINE__);
	good_relative("a/", __LINE__);
	good_relative("a/b/", __LINE__);
	good_relative(".hidden/x", __LINE__);
	good_relative("a..b/...", __LINE__);
	good_relative("caf\xc3\xa9/\xe6\x97\xa5", __LINE__);
	good_relative("sp ace/tab-less", __LINE__);

	bad_relative("", "dir: empty", __LINE__);
	bad_relative("/etc", "dir: absolute path not allowed", __LINE__);
	bad_relative("/", "absolute", __LINE__);
	bad_relative("//x", "absolute", __LINE__);
	bad_relative("../x", "dir: \"..\" component not allowed", __LINE__);
	bad_relative("..", "\"..\" component", __LINE__);
	bad_relative("a/../b", "\"..\" component", __LINE__);
	bad_relative("a/..", "\"..\" component", __LINE__);
	bad_relative("a/../", "\"..\" component", __LINE__);
	bad_relative(".", "dir: \".\" component not allowed", __LINE__);
	bad_relative("./a", "\".\" component", __LINE__);
	bad_relative("a/./b", "\".\" component", __LINE__);
	bad_relative("a//b", "dir: empty component", __LINE__);
	bad_relative("a//", "empty component", __LINE__);
	bad_relative("a\\b", "dir: backslash not allowed", __LINE__);
	bad_relative("..\\x", "backslash", __LINE__);
	bad_relative("a\nb", "dir: control character not allowed", __LINE__);
	bad_relative("a\rb", "control character", __LINE__);
	bad_relative("a\x01", "control character", __LINE__);
	bad_relative("a\x1b[31m", "control character", __LINE__);
	bad_relative("a\x7f", "control character", __LINE__);
	bad_relative("a\xc2\x85", "control character", __LINE__);
	bad_relative("a\xff", "dir: not valid UTF-8", __LINE__);
	bad_relative("\xc0\xaf", "not valid UTF-8", __LINE__);
	bad_relative("\xed\xa0\x80", "not valid UTF-8", __LINE__);
	bad_relative("a\xc3", "not valid UTF-8", __LINE__);

	/* Component and total length limits, right at the edge. */
	memset(comp, 'c', NAME_MAX_BYTES);
	comp[NAME_MAX_BYTES] = '\0';
	good_relative(comp, __LINE__);
	comp[NAME_MAX_BYTES] = 'c';
	comp[NAME_MAX_BYTES + 1] = '\0';
	bad_relative(comp, "dir: component longer than 255 bytes", __LINE__);

	memset(big, 'a', sizeof big);
	for (size_t i = 100; i < RELPATH_MAX_BYTES; i += 101)
		big[i] = '/';
	big[RELPATH_MAX_BYTES] = '\0';
	good_relative(big, __LINE__);
	big[RELPATH_MAX_BYTES] = 'a';
	big[RELPATH_MAX_BYTES + 1] = '\0';
	bad_relative(big, "dir: longer than 4000 bytes", __LINE__);

	/* The field name given is the one in the message. */
	CHECK(path_check_relative("../x", "download dir", &cause) == -1);
	CHECK_STR(cause, "download dir: \"..\" component not allowed");
	free(cause);
}

/* Check a template is accepted or refused with a message containing want. */
static void
template_case(const char *tmpl, const char *want, int line)
{
	char *cause = NULL;
	int rc;

	rc = path_check_template(tmpl, &cause);
	if (want == NULL) {
		check_at(rc == 0, __FILE__, line, "\"%s\" refused: %s", tmpl,
		    cause ? cause : "(no cause)");
	} else {
		check_at(
		    rc == -1 && cause != NULL && strstr(cause, want) != NULL,
		    __FILE__, line, "\"%s\": rc %d, cause \"%s\", want \"%s\"",
		    tmpl, rc, cause ? cause : "(null)", want);
	}
	free(cause);
}

/* path_check_template. */
static void
test_template(void)
{
	char big[RELPATH_MAX_BYTES + 8];

	template_case(DEFAULT_NAME_TEMPLATE, NULL, __LINE__);
	template_case("{name}", NULL, __LINE__);
	template_case("{job}/{n}-{stem}.{ext}", NULL, __LINE__);
	template_case("{date}/{time}_{host}_{name}", NULL, __LINE__);
	template_case("{{literal}}/{name}", NULL, __LINE__);
	template_case("x}}y{{z", NULL, __LINE__);
	template_case(".{ext}", NULL, __LINE__);
	template_case("..{ext}", NULL, __LINE__);

	template_case("", "name: empty template", __LINE__);
	template_case("{foo}", "name: unknown field \"{foo}\"", __LINE__);
	template_case("{name}/{Host}", "unknown field \"{Host}\"", __LINE__);
	template_case("{ name }", "unknown field \"{ name }\"", __LINE__);
	template_case("{\x01}", "unknown field \"{?}\"", __LINE__);
	template_case("{}", "unknown field \"{}\"", __LINE__);
	template_case("{name", "name: unbalanced \"{\"", __LINE__);
	template_case("{", "unbalanced \"{\"", __LINE__);
	template_case("{name}}", "unbalanced \"}\"", __LINE__);
	template_case("{a{name}}", "unbalanced \"{\"", __LINE__);
	template_case("name}", "name: unbalanced \"}\"", __LINE__);
	template_case("}{name}", "unbalanced \"}\"", __LINE__);
	template_case("../{name}", "name: \"..\" component", __LINE__);
	template_case("{name}/..", "\"..\" component", __LINE__);
	template_case("./{name}", "\".\" component", __LINE__);
	template_case("/{name}", "name: absolute path", __LINE__);
	template_case("{host}//{name}", "empty component", __LINE__);
	template_case("{host}/", "name: must not end with \"/\"", __LINE__);
	template_case("{host}\\{name}", "backslash", __LINE__);
	template_case("{name}\n", "control character", __LINE__);
	template_case("\xff{name}", "not valid UTF-8", __LINE__);

	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	template_case(big, "name: longer than 4000 bytes", __LINE__);
	memset(big, 'a', 300);
	strcpy(big + 300, "{name}");
	template_case(big, "component longer than 255 bytes", __LINE__);
}

/* path_ext_for_type. */
static void
test_ext_for_type(void)
{
	CHECK_STR(path_ext_for_type("image/png"), "png");
	CHECK_STR(path_ext_for_type("image/jpeg"), "jpg");
	CHECK_STR(path_ext_for_type("image/gif"), "gif");
	CHECK_STR(path_ext_for_type("image/webp"), "webp");
	CHECK_STR(path_ext_for_type("image/avif"), "avif");
	CHECK_STR(path_ext_for_type("image/heic"), "heic");
	CHECK_STR(path_ext_for_type("image/bmp"), "bmp");
	CHECK_STR(path_ext_for_type("image/tiff"), "tif");
	CHECK_STR(path_ext_for_type("image/x-icon"), "ico");
	CHECK_STR(path_ext_for_type("image/vnd.microsoft.icon"), "ico");
	CHECK_STR(path_ext_for_type("image/svg+xml"), "svg");
	CHECK_STR(path_ext_for_type("IMAGE/PNG"), "png");
	CHECK_STR(path_ext_for_type("Image/Jpeg; charset=binary"), "jpg");
	CHECK_STR(path_ext_for_type("image/png;q=1"), "png");
	CHECK_STR(path_ext_for_type("  image/gif ; x=y"), "gif");
	CHECK_STR(path_ext_for_type("image/pngx"), NULL);
	CHECK_STR(path_ext_for_type("image/pn"), NULL);
	CHECK_STR(path_ext_for_type("text/html"), NULL);
	CHECK_STR(path_ext_for_type("application/octet-stream"), NULL);
	CHECK_STR(path_ext_for_type(""), NULL);
	CHECK_STR(path_ext_for_type(";image/png"), NULL);
	CHECK_STR(path_ext_for_type(NULL), NULL);
}

/* Expand with the fixed job, item and time the data file assumes. */
static char *
expand(const char *url, const char *type, const char *tmpl, const char *dir,
    char **cause)
{
	struct path_vars vars;

	vars.url = url;
	vars.content_type = type;
	vars.job = 42;
	vars.n = 7;
	vars.now = 1700000000;
	vars.sha256 = NULL;
	*cause = NULL;
	return path_expand(dir, tmpl, &vars, cause);
}

/* Run the cases in data/names.txt. */
static void
test_names_file(void)
{
	const char *file = "data/names.txt";
	char line[8192], *field[5], *p, *got, *cause;
	int lineno = 0, nfields, cases = 0;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		check_at(0, __FILE__, __LINE__, "cannot open %s", file);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		nfields = 0;
		for (p = line; nfields < 5; nfields++) {
			field[nfields] = p;
			if ((p = strchr(p, '\t')) == NULL) {
				nfields++;
				break;
			}
			*p++ = '\0';
		}
		if (nfields != 5) {
			check_at(
			    0, file, lineno, "want 5 fields, got %d", nfields);
			continue;
		}
		cases++;
		got = expand(field[0], strcmp(field[1], "-") ? field[1] : NULL,
		    strcmp(field[2], "-") ? field[2] : NULL,
		    strcmp(field[3], "-") ? field[3] : NULL, &cause);
		if (field[4][0] == '!') {
			check_at(got == NULL && cause != NULL &&
				strstr(cause, field[4] + 1) != NULL,
			    file, lineno,
			    "%s: got \"%s\" (cause \"%s\"), want error \"%s\"",
			    field[0], got ? got : "(null)",
			    cause ? cause : "(null)", field[4] + 1);
		} else {
			check_at(same(got, field[4]), file, lineno,
			    "%s: got \"%s\" (cause \"%s\"), want \"%s\"",
			    field[0], got ? got : "(null)",
			    cause ? cause : "(null)", field[4]);
		}
		free(got);
		free(cause);
	}
	fclose(f);
	check_at(
	    cases > 50, __FILE__, __LINE__, "only %d cases in %s", cases, file);
}

/* Expand a name that must succeed; return it for more checks. */
static char *
expand_ok(const char *url, const char *type, const char *tmpl, int line)
{
	char *got, *cause;

	got = expand(url, type, tmpl, NULL, &cause);
	check_at(got != NULL, __FILE__, line, "%s: refused: %s", url,
	    cause ? cause : "(no cause)");
	free(cause);
	return got;
}

/* Overlong names are cut per component, keeping the extension and UTF-8. */
static void
test_long_names(void)
{
	char url[4096], want[1024], *p, *got, *cause;
	size_t i;

	/* 300 ASCII bytes and ".png": cut to fit (room for "-N.part"). */
	p = url + sprintf(url, "http://h/");
	for (i = 0; i < 300; i++)
		*p++ = 'a';
	strcpy(p, ".png");
	got = expand_ok(url, NULL, "{name}", __LINE__);
	memset(want, 'a', FILE_NAME_MAX_BYTES - 4);
	strcpy(want + FILE_NAME_MAX_BYTES - 4, ".png");
	CHECK_STR(got, want);
	CHECK(got != NULL && strlen(got) == FILE_NAME_MAX_BYTES);
	free(got);

	/* 150 x "é" (2 bytes) and ".jpg": an odd cut would split one. */
	p = url + sprintf(url, "http://h/");
	for (i = 0; i < 150; i++)
		p += sprintf(p, "%%C3%%A9");
	strcpy(p, ".jpg");
	got = expand_ok(url, NULL, "{name}", __LINE__);
	p = want;
	for (i = 0; i < (FILE_NAME_MAX_BYTES - 4) / 2; i++)
		p += sprintf(p, "\xc3\xa9");
	strcpy(p, ".jpg");
	CHECK_STR(got, want);
	CHECK(got != NULL && path_is_utf8(got, strlen(got)));
	free(got);

	/* "x" and 100 x "日" (3 bytes), no extension, type adds one. */
	p = url + sprintf(url, "http://h/x");
	for (i = 0; i < 100; i++)
		p += sprintf(p, "%%E6%%97%%A5");
	*p = '\0';
	got = expand_ok(url, "image/png", "{name}", __LINE__);
	p = want + sprintf(want, "x");
	for (i = 0; i < (FILE_NAME_MAX_BYTES - 5) / 3; i++)
		p += sprintf(p, "\xe6\x97\xa5");
	strcpy(p, ".png");
	CHECK_STR(got, want);
	CHECK(got != NULL && strlen(got) <= FILE_NAME_MAX_BYTES);
	CHECK(got != NULL && path_is_utf8(got, strlen(got)));
	free(got);

	/* Literal text and fields together in one overlong component. */
	p = url + sprintf(url, "http://h/");
	for (i = 0; i < 400; i++)
		*p++ = 'b';
	strcpy(p, ".webp");
	got = expand_ok(url, NULL, "{host}/{job}-{name}", __LINE__);
	CHECK(got != NULL && strlen(got) == 2 + FILE_NAME_MAX_BYTES);
	CHECK(got != NULL && strncmp(got, "h/42-bbb", 8) == 0);
	CHECK(got != NULL && strcmp(got + strlen(got) - 6, "b.webp") == 0);
	free(got);

	/* An "extension" too long to be one is simply cut. */
	p = url + sprintf(url, "http://h/");
	for (i = 0; i < 300; i++)
		*p++ = 'c';
	strcpy(p, ".abcdefghij");
	got = expand_ok(url, NULL, "{name}", __LINE__);
	memset(want, 'c', FILE_NAME_MAX_BYTES);
	want[FILE_NAME_MAX_BYTES] = '\0';
	CHECK_STR(got, want);
	free(got);

	/* Many long components: over RELPATH_MAX_BYTES is refused. */
	p = url + sprintf(url, "http://h/");
	for (i = 0; i < 300; i++)
		*p++ = 'd';
	*p = '\0';
	p = want;
	for (i = 0; i < 20; i++)
		p += sprintf(p, "%s{name}", i == 0 ? "" : "/");
	got = expand(url, NULL, want, NULL, &cause);
	CHECK(got == NULL);
	CHECK_STR(cause, "path: longer than 4000 bytes");
	free(got);
	free(cause);
}

/* Count the slashes in a string. */
static size_t
slashes(const char *s)
{
	size_t n = 0;

	while ((s = strchr(s, '/')) != NULL) {
		n++;
		s++;
	}
	return n;
}

/* The expanded path never leaves the download dir, whatever the URL. */
static void
test_hostile_urls(void)
{
	static const char *urls[] = {
		"http://h/%2e%2e",
		"http://h/%2e%2e/",
		"http://h/%2e%2e%2f",
		"http://h/..%2f",
		"http://h/%2e",
		"http://h/%2f",
		"http://h/%2f%2f",
		"http://h/%00",
		"http://h/..%00",
		"http://h/%2e%2e%5c",
		"http://h/%0a..",
		"http://[::1]/",
		"http://%2e%2e/x",
		"http://h/.%2e/.%2e/x",
	};
	static const char *tmpls[] = {
		"{name}",
		"{stem}",
		"{stem}.{ext}",
		"{host}",
		"{host}/{name}",
	};
	char *got, *cause, *check;
	size_t i, j, want;

	for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		for (j = 0; j < sizeof tmpls / sizeof tmpls[0]; j++) {
			got =
			    expand(urls[i], "image/png", tmpls[j], "d", &cause);
			if (got == NULL) {
				free(cause);
				continue;
			}
			check = NULL;
			check_at(path_check_relative(got, "path", &check) == 0,
			    __FILE__, __LINE__, "%s %s: \"%s\": %s", urls[i],
			    tmpls[j], got, check ? check : "");
			want = strchr(tmpls[j], '/') != NULL ? 1 : 0;
			check_at(strncmp(got, "d/", 2) == 0 &&
				slashes(got + 2) == want,
			    __FILE__, __LINE__,
			    "%s %s: \"%s\" has the wrong shape", urls[i],
			    tmpls[j], got);
			free(check);
			free(got);
		}
	}
}

/* {date} and {time} follow the local time zone. */
static void
test_time_zone(void)
{
	struct path_vars vars = { "http://h/x.png", NULL, 1, 0, 1700000000,
		NULL };
	char *got, *cause = NULL;

	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	got = path_expand(NULL, "{date}T{time}", &vars, &cause);
	/* Without zone data the zone is UTC; either answer is local time. */
	CHECK(got != NULL &&
	    (strcmp(got, "2023-11-15T071320") == 0 ||
		strcmp(got, "2023-11-14T221320") == 0));
	free(got);
	free(cause);
	setenv("TZ", "UTC", 1);
	tzset();

	/* The default template when none is given. */
	got = path_expand("", NULL, &vars, &cause);
	CHECK_STR(got, "h/x.png");
	free(got);

	vars.url = NULL;
	got = path_expand(NULL, "{n}", &vars, &cause);
	CHECK(got == NULL);
	CHECK_STR(cause, "url: missing");
	free(cause);
}

/* path_printable and path_is_utf8. */
static void
test_printable(void)
{
	char big[200], *p;

	p = path_printable("a\x01\n\x1b[0m\xff\xc3\xa9\"", 11);
	CHECK_STR(p, "a???[0m?\xc3\xa9\"");
	free(p);
	p = path_printable("", 0);
	CHECK_STR(p, "");
	free(p);
	p = path_printable("a\0b", 3);
	CHECK_STR(p, "a?b");
	free(p);
	memset(big, 'z', sizeof big);
	p = path_printable(big, sizeof big);
	CHECK(p != NULL && strlen(p) == 64 + 3);
	CHECK(p != NULL && strcmp(p + 64, "...") == 0);
	free(p);

	CHECK(path_is_utf8("", 0));
	CHECK(path_is_utf8("plain", 5));
	CHECK(path_is_utf8("\xf0\x9f\x98\x80", 4));
	CHECK(!path_is_utf8("\xf0\x9f\x98", 3));
	CHECK(!path_is_utf8("\xf5\x80\x80\x80", 4));
	CHECK(!path_is_utf8("\xe0\x80\xaf", 3));
	CHECK(!path_is_utf8("\x80", 1));
}

/* {sha256} and {sha256:N}: checked, expanded, refused until known. */
static void
test_sha256(void)
{
	const char *sha = "9f86d081884c7d659a2feaa0c55ad015"
			  "a3bf4f1b2b0b822cd15d6c15b0f00a08";
	struct path_vars vars = { "http://h/a/cat.png", "image/png", 3, 1,
		1700000000, sha };
	char *got, *cause = NULL;

	template_case("{sha256}.{ext}", NULL, __LINE__);
	template_case("{sha256:2}/{sha256}.{ext}", NULL, __LINE__);
	template_case("{sha256:64}", NULL, __LINE__);
	template_case("{sha256:0}", "unknown field \"{sha256:0}\"", __LINE__);
	template_case("{sha256:65}", "unknown field", __LINE__);
	template_case("{sha256:x}", "unknown field", __LINE__);
	template_case("{sha256:}", "unknown field", __LINE__);
	template_case("{sha256:0002}", "unknown field", __LINE__);
	CHECK(path_template_has_sha256("{sha256:2}/x"));
	CHECK(path_template_has_sha256("a{{{sha256}"));
	CHECK(!path_template_has_sha256("{{sha256}}"));
	CHECK(!path_template_has_sha256("{name}"));
	CHECK(!path_template_has_sha256(NULL));

	got = path_expand("d", "{sha256:2}/{sha256}.{ext}", &vars, &cause);
	CHECK_STR(got, "d/9f/9f86d081884c7d659a2feaa0c55ad015"
		       "a3bf4f1b2b0b822cd15d6c15b0f00a08.png");
	free(got);
	vars.sha256 = NULL;
	got = path_expand(NULL, "{sha256}", &vars, &cause);
	CHECK(got == NULL && cause != NULL && strstr(cause, "{sha256}") != NULL);
	free(got);
	free(cause);
}

/* Run every test, print a summary and fail if any check failed. */
int
main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();

	test_relative();
	test_template();
	test_ext_for_type();
	test_names_file();
	test_long_names();
	test_hostile_urls();
	test_time_zone();
	test_printable();
	test_sha256();

	return check_summary("test_path");
}
