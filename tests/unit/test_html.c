/*
 * Unit tests for html.c: the page corpus in data/pages (each page against
 * its .expected file), targeted cases, and pathological input with timings.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "defs.h"
#include "html.h"
#include "xmalloc.h"

#include "check.h"

#define ORIGIN "http://127.0.0.1:8080"
#define PAGES "data/pages"

/* An expectations file: images, next pages, title. */
struct expected {
	char **images;
	size_t nimages;
	char **next;
	size_t nnext;
	char *title;
};

/* Read a whole file; NULL if it cannot be read. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f;
	char *buf;
	long n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc(n + 1);
	*len = fread(buf, 1, n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Append a string to a growing array. */
static void
push(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = s;
}

/* value with ORIGIN replaced by the test origin. */
static char *
expand(const char *value)
{
	char *s;

	if (strncmp(value, "ORIGIN", 6) == 0) {
		xasprintf(&s, "%s%s", ORIGIN, value + 6);
		return s;
	}
	return xstrdup(value);
}

/* Parse an expectations file; 0 or -1. */
static int
expected_load(const char *path, struct expected *e)
{
	char *buf, *line, *next, *sp;
	size_t len;

	memset(e, 0, sizeof(*e));
	if ((buf = read_file(path, &len)) == NULL)
		return -1;
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if ((sp = strchr(line, ' ')) == NULL) {
			fprintf(stderr, "%s: bad line \"%s\"\n", path, line);
			free(buf);
			return -1;
		}
		*sp++ = '\0';
		if (strcmp(line, "image") == 0)
			push(&e->images, &e->nimages, expand(sp));
		else if (strcmp(line, "next") == 0)
			push(&e->next, &e->nnext, expand(sp));
		else if (strcmp(line, "title") == 0 && e->title == NULL)
			e->title = xstrdup(sp);
		else {
			fprintf(stderr, "%s: bad keyword \"%s\"\n", path, line);
			free(buf);
			return -1;
		}
	}
	free(buf);
	return 0;
}

/* Free an expectations file's contents. */
static void
expected_free(struct expected *e)
{
	size_t i;

	for (i = 0; i < e->nimages; i++)
		free(e->images[i]);
	for (i = 0; i < e->nnext; i++)
		free(e->next[i]);
	free(e->images);
	free(e->next);
	free(e->title);
}

/* Compare two URL lists exactly, in order, printing the difference. */
static void
check_list(const char *what, const char *name, char **got, size_t ngot,
    char **want, size_t nwant)
{
	size_t i;
	int ok = ngot == nwant;

	for (i = 0; ok && i < ngot; i++)
		ok = strcmp(got[i], want[i]) == 0;
	check_at(ok, __FILE__, __LINE__, "%s: %s differ (got %zu, want %zu)",
	    name, what, ngot, nwant);
	if (ok)
		return;
	for (i = 0; i < ngot || i < nwant; i++)
		fprintf(stderr, "  %-60s %s\n", i < ngot ? got[i] : "-",
		    i < nwant ? want[i] : "-");
}

/* One corpus page against its expectations, with same_host off and on. */
static void
test_page(const char *name)
{
	struct expected e;
	struct html_found f;
	char path[512], url[512], *body, *cause = NULL, **local = NULL;
	size_t len, nlocal = 0, i;
	int rc;

	snprintf(path, sizeof(path), PAGES "/%s.expected", name);
	CHECK(expected_load(path, &e) == 0);
	snprintf(path, sizeof(path), PAGES "/%s", name);
	body = read_file(path, &len);
	CHECK(body != NULL);
	if (body == NULL) {
		expected_free(&e);
		return;
	}
	snprintf(url, sizeof(url), ORIGIN "/pages/%s", name);
	rc = html_extract(body, len, url, NULL, 0, &f, &cause);
	check_at(rc == 0, __FILE__, __LINE__, "%s: rc %d (%s)", name, rc,
	    cause ? cause : "");
	check_list("images", name, f.images, f.nimages, e.images, e.nimages);
	check_list("next pages", name, f.next, f.nnext, e.next, e.nnext);
	CHECK_STR(f.title, e.title);
	html_found_finish(&f);

	for (i = 0; i < e.nimages; i++) {
		if (strncmp(e.images[i], ORIGIN "/", strlen(ORIGIN) + 1) == 0)
			push(&local, &nlocal, e.images[i]);
	}
	rc = html_extract(body, len, url, NULL, 1, &f, &cause);
	CHECK_INT(rc, 0);
	check_list(
	    "same-host images", name, f.images, f.nimages, local, nlocal);
	html_found_finish(&f);
	free(local);
	free(body);
	expected_free(&e);
}

/* Every page of the corpus that has an expectations file. */
static void
test_corpus(void)
{
	DIR *d;
	struct dirent *de;
	char name[256];
	size_t n, pages = 0;

	d = opendir(PAGES);
	CHECK(d != NULL);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n <= 9 || n >= sizeof(name) ||
		    strcmp(de->d_name + n - 9, ".expected") != 0)
			continue;
		memcpy(name, de->d_name, n - 9);
		name[n - 9] = '\0';
		test_page(name);
		pages++;
	}
	closedir(d);
	CHECK(pages >= 12);
}

/*
 * Extract from html (NUL-terminated) at page url; check rc 0 and that the
 * images are exactly the NULL-terminated list want.
 */
static void
images_at(const char *html, const char *url, const char *content_type,
    int same_host, const char *const *want, int line)
{
	struct html_found f;
	char *cause = NULL;
	size_t i, n = 0;
	int ok;

	while (want[n] != NULL)
		n++;
	ok = html_extract(html, strlen(html), url, content_type, same_host, &f,
		 &cause) == 0;
	check_at(ok, __FILE__, line, "rc -1: %s", cause ? cause : "");
	free(cause);
	if (!ok)
		return;
	ok = f.nimages == n;
	for (i = 0; ok && i < n; i++)
		ok = strcmp(f.images[i], want[i]) == 0;
	check_at(ok, __FILE__, line, "images differ for %s", html);
	if (!ok) {
		for (i = 0; i < f.nimages || i < n; i++)
			fprintf(stderr, "  %-50s %s\n",
			    i < f.nimages ? f.images[i] : "-",
			    i < n ? want[i] : "-");
	}
	html_found_finish(&f);
}

#define IMAGES(html, ...) \
	images_at(html, ORIGIN "/d/p.html", NULL, 0, \
	    (const char *const[]){ __VA_ARGS__, NULL }, __LINE__)
#define NO_IMAGES(html) \
	images_at(html, ORIGIN "/d/p.html", NULL, 0, \
	    (const char *const[]){ NULL }, __LINE__)

/* srcset parsing by the HTML spec's candidate rules. */
static void
test_srcset(void)
{
	IMAGES("<img srcset='a.jpg 100w, b.jpg 300w, c.jpg 200w'>",
	    ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg 2x, b.jpg, c.jpg 1.5x'>", ORIGIN "/d/a.jpg");
	/* No descriptor is 1x; the first of equals wins. */
	IMAGES("<img srcset='a.jpg, b.jpg 1x'>", ORIGIN "/d/a.jpg");
	/* w candidates rank above x ones (a mixed srcset is invalid). */
	IMAGES("<img srcset='a.jpg 3x, b.jpg 10w'>", ORIGIN "/d/b.jpg");
	/* Commas inside a URL; trailing commas end it. */
	IMAGES("<img srcset='a,1.jpg 1x,b,2.jpg 2x'>", ORIGIN "/d/b,2.jpg");
	/* Commas with no space: all one URL. */
	IMAGES("<img srcset='a.jpg,,,b.jpg 2x'>", ORIGIN "/d/a.jpg,,,b.jpg");
	IMAGES("<img srcset=',,, a.jpg'>", ORIGIN "/d/a.jpg");
	/* Invalid descriptors drop their candidate. */
	IMAGES("<img srcset='a.jpg 2x 3x, b.jpg 1x'>", ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg 0w, b.jpg 1x'>", ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg 1.5w, b.jpg 1x'>", ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg 100h, b.jpg 1x'>", ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg 100w 50h, b.jpg 90w'>", ORIGIN "/d/a.jpg");
	IMAGES("<img srcset='a.jpg 1e1x, b.jpg 2x'>", ORIGIN "/d/a.jpg");
	IMAGES("<img srcset='a.jpg -2x, b.jpg 0.5x'>", ORIGIN "/d/b.jpg");
	IMAGES("<img srcset='a.jpg nanx, b.jpg 0.5x'>", ORIGIN "/d/b.jpg");
	/* A parenthesised descriptor is one token, and an invalid one. */
	IMAGES("<img srcset='a.jpg 2x (x, y), b.jpg 1x'>", ORIGIN "/d/b.jpg");
	NO_IMAGES("<img srcset=''>");
	NO_IMAGES("<img srcset=' , ,, '>");
	NO_IMAGES("<img srcset='a.jpg 1q'>");
	NO_IMAGES("<img srcset='data:image/png;base64,AA 2x'>");
	IMAGES("<img srcset='data:image/png;base64,AA 2x, b.jpg'>",
	    ORIGIN "/d/b.jpg");
	/* Huge widths do not overflow. */
	IMAGES("<img srcset='a.jpg 99999999999999999999999w, b.jpg 5w'>",
	    ORIGIN "/d/a.jpg");
}

/* base href, URL cleaning and what is dropped. */
static void
test_urls(void)
{
	IMAGES("<base href='http://cdn.example.test/x/'><img src='a.png'>",
	    "http://cdn.example.test/x/a.png");
	IMAGES("<base href='sub/'><img src='../a.png'><img src='b.png'>",
	    ORIGIN "/d/a.png", ORIGIN "/d/sub/b.png");
	/* A base that is not a URL is ignored. */
	IMAGES("<base href='http://exa mple.test/'><img src='a.png'>",
	    ORIGIN "/d/a.png");
	IMAGES("<base><base href='/r/'><img src='a.png'>", ORIGIN "/r/a.png");
	IMAGES("<img src=' \t\na b\tc.png\r\n '>", ORIGIN "/d/a%20bc.png");
	IMAGES("<img src='HTTPS://CDN.example.test:443/A.PNG'>",
	    "https://CDN.example.test/A.PNG");
	IMAGES("<img src='http://cdn.example.test:8081/a.png'>",
	    "http://cdn.example.test:8081/a.png");
	NO_IMAGES("<img src='mailto:a@example.test'><img src='data:,x'>"
		  "<img src='JavaScript:x'><img src='   '><img src='#'>");
	IMAGES("<img src='#top'><img src='?q=1'>", ORIGIN "/d/p.html?q=1");
	IMAGES("<a href='x.Jpg'>a</a><a href='x.jpg.html'>b</a>"
	       "<a href='x.png?y.html'>c</a><a href='.png'>d</a>",
	    ORIGIN "/d/x.Jpg", ORIGIN "/d/x.png?y.html", ORIGIN "/d/.png");
	/* Attribute order inside one <img>. */
	IMAGES("<img data-original=d.png data-src=c.png srcset='b.png 2x' "
	       "src=a.png>",
	    ORIGIN "/d/a.png", ORIGIN "/d/b.png", ORIGIN "/d/c.png",
	    ORIGIN "/d/d.png");
}

/* same_host, rel=next, title. */
static void
test_hosts_next(void)
{
	struct html_found f;
	char *cause = NULL;
	const char *page =
	    "<title>\n A \t\n B </title><title>second</title>"
	    "<img src='http://127.0.0.1:8080/a.png'>"
	    "<img src='http://127.0.0.1:9999/b.png'>"
	    "<img src='http://localhost:8080/c.png'>"
	    "<img src='//cdn.example.test/d.png'>"
	    "<link rel=NEXT href='http://cdn.example.test/2'>"
	    "<a rel='next' href='/3'>3</a><a rel='next' href='mailto:x'>x</a>"
	    "<a rel=next href='http://cdn.example.test/2#f'>again</a>";

	images_at(page, ORIGIN "/d/p.html", NULL, 1,
	    (const char *const[]){
		ORIGIN "/a.png", "http://127.0.0.1:9999/b.png", NULL },
	    __LINE__);
	CHECK_INT(
	    html_extract(page, strlen(page), ORIGIN "/", NULL, 0, &f, &cause),
	    0);
	CHECK_INT(f.nimages, 4);
	CHECK_INT(f.nnext, 2);
	if (f.nnext == 2) {
		CHECK_STR(f.next[0], "http://cdn.example.test/2");
		CHECK_STR(f.next[1], ORIGIN "/3");
	}
	CHECK_STR(f.title, "A B");
	html_found_finish(&f);
	CHECK(f.images == NULL && f.nimages == 0 && f.title == NULL);
}

/* Encodings: Content-Type charset, <meta>, BOMs, unknown names. */
static void
test_encodings(void)
{
	const char *latin1 = "<img src='\xe9.png'>";
	const char *meta_late;

	/* The header wins over the default and over a <meta>. */
	images_at(latin1, ORIGIN "/", "text/html; charset=ISO-8859-1", 0,
	    (const char *const[]){ ORIGIN "/%c3%a9.png", NULL }, __LINE__);
	images_at("<meta charset=utf-8><img src='\xe9.png'>", ORIGIN "/",
	    "text/html;charset=\"latin1\"", 0,
	    (const char *const[]){ ORIGIN "/%c3%a9.png", NULL }, __LINE__);
	/* KOI8-R: 0xc1 is Cyrillic a. */
	images_at("<meta charset='koi8-r'><img src='\xc1.png'>", ORIGIN "/",
	    NULL, 0, (const char *const[]){ ORIGIN "/%d0%b0.png", NULL },
	    __LINE__);
	images_at("<img src='\xc1.png'>", ORIGIN "/",
	    "text/html; charset=koi8-r", 0,
	    (const char *const[]){ ORIGIN "/%d0%b0.png", NULL }, __LINE__);
	/* Shift_JIS, a multibyte encoding. */
	images_at("<img src='\x93\xfa.png'>", ORIGIN "/",
	    "text/html; charset=Shift_JIS", 0,
	    (const char *const[]){ ORIGIN "/%e6%97%a5.png", NULL }, __LINE__);
	/* An unknown charset: the body's own bytes decide (UTF-8 here). */
	images_at("<img src='\xc3\xa9.png'>", ORIGIN "/",
	    "text/html; charset=x-no-such", 0,
	    (const char *const[]){ ORIGIN "/%c3%a9.png", NULL }, __LINE__);
	/* A name that is not a plausible label is ignored. */
	images_at("<img src='\xc3\xa9.png'>", ORIGIN "/",
	    "text/html; charset=UTF-8//TRANSLIT", 0,
	    (const char *const[]){ ORIGIN "/%c3%a9.png", NULL }, __LINE__);
	/* A <meta> saying UTF-16 means UTF-8. */
	images_at("<meta charset=utf-16><img src='\xc3\xa9.png'>", ORIGIN "/",
	    NULL, 0, (const char *const[]){ ORIGIN "/%c3%a9.png", NULL },
	    __LINE__);
	/* A <meta> after the first 1024 bytes does not count. */
	meta_late = NULL;
	{
		char buf[2048];

		memset(buf, ' ', sizeof(buf));
		snprintf(buf + 1100, sizeof(buf) - 1100, "%s",
		    "<meta charset=koi8-r><img src='\xc1.png'>");
		meta_late = buf;
		images_at(meta_late, ORIGIN "/", NULL, 0,
		    (const char *const[]){ ORIGIN "/%c3%81.png", NULL },
		    __LINE__);
	}
	/* Byte order marks. */
	images_at("\xef\xbb\xbf<img src='\xc3\xa9.png'>", ORIGIN "/",
	    "text/html; charset=iso-8859-1", 0,
	    (const char *const[]){ ORIGIN "/%c3%a9.png", NULL }, __LINE__);
	{
		static const char utf16[] = "\xff\xfe<\0i\0m\0g\0 \0s\0r\0c\0="
					    "\0x\0\xe9\0.\0p\0n\0g\0>\0";
		struct html_found f;
		char *cause = NULL;

		CHECK_INT(html_extract(utf16, sizeof(utf16) - 1, ORIGIN "/",
			      NULL, 0, &f, &cause),
		    0);
		CHECK_INT(f.nimages, 1);
		if (f.nimages == 1)
			CHECK_STR(f.images[0], ORIGIN "/x%c3%a9.png");
		html_found_finish(&f);
	}
	/* Invalid UTF-8 where UTF-8 is declared: still parsed. */
	images_at("<meta charset=utf-8><img src='a\xff.png'><img src=b.png>",
	    ORIGIN "/", NULL, 0,
	    (const char *const[]){
		ORIGIN "/a%ef%bf%bd.png", ORIGIN "/b.png", NULL },
	    __LINE__);
}

/* Input that is not HTML, and a page URL that is not a URL. */
static void
test_garbage(void)
{
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n',
		0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0,
		0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 10, 'I',
		'D', 'A', 'T', 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d,
		0x0a, 0x2d, 0xb4, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42,
		0x60, 0x82 };
	struct html_found f;
	char *cause = NULL, *junk;
	size_t i;
	unsigned int seed = 1;

	CHECK_INT(html_extract("", 0, ORIGIN "/", NULL, 0, &f, &cause), 0);
	CHECK(f.nimages == 0 && f.nnext == 0 && f.title == NULL);
	html_found_finish(&f);
	CHECK_INT(html_extract(NULL, 0, ORIGIN "/", NULL, 0, &f, &cause), 0);
	html_found_finish(&f);
	CHECK_INT(html_extract((const char *)png, sizeof(png), ORIGIN "/",
		      "image/png", 0, &f, &cause),
	    0);
	CHECK_INT(f.nimages, 0);
	html_found_finish(&f);
	junk = xmalloc(1 << 20);
	for (i = 0; i < 1 << 20; i++) {
		seed = seed * 1103515245 + 12345;
		junk[i] = (char)(seed >> 16);
	}
	CHECK_INT(
	    html_extract(junk, 1 << 20, ORIGIN "/", NULL, 1, &f, &cause), 0);
	html_found_finish(&f);
	free(junk);
	/* NUL bytes inside a page. */
	CHECK_INT(html_extract("<img src='a\0b.png'>\0<img src=c.png>", 36,
		      ORIGIN "/", NULL, 0, &f, &cause),
	    0);
	CHECK_INT(f.nimages, 2);
	if (f.nimages == 2)
		CHECK_STR(f.images[1], ORIGIN "/c.png");
	html_found_finish(&f);

	CHECK_INT(html_extract(
		      "<img src=a.png>", 15, "not a url", NULL, 0, &f, &cause),
	    -1);
	CHECK(cause != NULL && strstr(cause, "page URL") != NULL);
	CHECK(f.nimages == 0 && f.images == NULL);
	free(cause);
	cause = NULL;
	CHECK_INT(html_extract("x", 1, NULL, NULL, 0, &f, &cause), -1);
	free(cause);
}

/* Seconds since a start time. */
static double
since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Build a page of n copies of unit followed by tail. */
static char *
repeat(const char *unit, size_t n, const char *tail, size_t *len)
{
	size_t ul = strlen(unit), tl = strlen(tail), i;
	char *buf;

	buf = xmalloc(ul * n + tl + 1);
	for (i = 0; i < n; i++)
		memcpy(buf + i * ul, unit, ul);
	memcpy(buf + ul * n, tail, tl + 1);
	*len = ul * n + tl;
	return buf;
}

/* Extract from buf, print the time taken, check the image count. */
static void
timed(
    const char *what, const char *buf, size_t len, size_t want_images, int line)
{
	struct html_found f;
	struct timespec t0;
	char *cause = NULL;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = html_extract(buf, len, ORIGIN "/p/", NULL, 0, &f, &cause);
	printf("%-44s %8.2f MB %8.3f s %6zu images\n", what, len / 1e6,
	    since(&t0), f.nimages);
	check_at(rc == 0 && f.nimages == want_images, __FILE__, line,
	    "%s: rc %d, %zu images, want %zu (%s)", what, rc, f.nimages,
	    want_images, cause ? cause : "");
	free(cause);
	html_found_finish(&f);
}

/* Big and pathological pages: they finish, with the right result. */
static void
test_pathological(void)
{
	char *buf, *p;
	size_t len, i, n;

	/* A 5 MB page with 5,000 images among ordinary markup. */
	buf = xmalloc(5 * 1000 * 1000 + 4096);
	p = buf;
	p += sprintf(p,
	    "<!DOCTYPE html><html><head><title>Big</title></head>"
	    "<body>");
	for (i = 0; p - buf < 5 * 1000 * 1000; i++) {
		if (i < 5000)
			p += sprintf(p,
			    "<div class=\"item\"><a href=\"/full/%zu.jpg\">"
			    "<img src=\"/thumb/%zu.jpg\" "
			    "srcset=\"/thumb/%zu.jpg"
			    " 1x, /thumb/%zu@2x.jpg 2x\" alt=\"item %zu\"></a>"
			    "<p>Some <b>text</b> about item %zu, with a "
			    "<span>little</span> markup.</p></div>\n",
			    i, i, i, i, i, i);
		else
			p += sprintf(p,
			    "<div><p>Filler paragraph %zu with <i>words</i>, "
			    "<a href=\"/page/%zu.html\">a link</a> and more "
			    "text to make the page bigger.</p></div>\n",
			    i, i);
	}
	p += sprintf(p, "</body></html>");
	timed("5 MB page, 5,000 images (x3 URLs each)", buf, p - buf, 15000,
	    __LINE__);
	free(buf);

	/* Nesting a million deep; images after it still count. */
	buf = repeat("<div>", 1000 * 1000, "<img src=deep.png>", &len);
	timed("1,000,000 nested <div>", buf, len, 1, __LINE__);
	free(buf);
	buf = repeat("<span><b>", 300 * 1000, "<img src=deep.png>", &len);
	timed("300,000 nested <span><b>", buf, len, 1, __LINE__);
	free(buf);
	buf = repeat("<svg><g>", 300 * 1000, "<img src=deep.png>", &len);
	timed("300,000 nested <svg><g>", buf, len, 1, __LINE__);
	free(buf);
	buf = repeat("<table><tr><td>", 200 * 1000, "<img src=deep.png>", &len);
	timed("200,000 nested tables", buf, len, 1, __LINE__);
	free(buf);
	/* The worst case under the limit: text scanned against the stack. */
	n = HTML_NESTING_MAX;
	buf = repeat("<div>", n, "<b>", &len);
	p = xmalloc(len + 5 * 1000 * 1000 + 32);
	memcpy(p, buf, len);
	memset(p + len, 'x', 5 * 1000 * 1000);
	strcpy(p + len + 5 * 1000 * 1000, "<img src=a.png>");
	timed("512 <div>, <b>, 5 MB of text", p, strlen(p), 1, __LINE__);
	free(p);
	free(buf);
	/* Formatting elements reopened again and again. */
	buf = repeat("<b><i><u><s><em><strong><font><nobr><p>x</p>", 50000,
	    "<img src=a.png>", &len);
	timed("50,000 unclosed formatting runs", buf, len, 1, __LINE__);
	free(buf);
	buf = repeat("<a><b id=1><div></a>x", 100000, "<img src=a.png>", &len);
	timed("100,000 misnested <a><b><div>", buf, len, 1, __LINE__);
	free(buf);
	/* Huge attribute values. */
	buf = repeat("a", 10 * 1000 * 1000, "", &len);
	p = xmalloc(2 * len + 64);
	sprintf(
	    p, "<img src='%s'><img srcset='%s 2x'><img src=b.png>", buf, buf);
	timed("two 10 MB attribute values", p, strlen(p), 1, __LINE__);
	free(p);
	free(buf);
	buf = repeat("x.png 1x,", 1000 * 1000, "", &len);
	p = xmalloc(len + 64);
	sprintf(p, "<img srcset='%s'>", buf);
	timed("a srcset of 1,000,000 candidates", p, strlen(p), 1, __LINE__);
	free(p);
	free(buf);
	buf = repeat("<a href=x.html>", 1000 * 1000, "", &len);
	timed("1,000,000 <a> links", buf, len, 0, __LINE__);
	free(buf);
	buf = repeat("<<<</>", 1000 * 1000, "<img src=a.png>", &len);
	timed("1,000,000 stray '<' runs", buf, len, 1, __LINE__);
	free(buf);
	buf = repeat("<!--", 1000 * 1000, "", &len);
	timed("an unterminated comment", buf, len, 0, __LINE__);
	free(buf);
}

/* Entries cut at the limits. */
static void
test_limits(void)
{
	struct html_found f;
	char *cause = NULL, *buf;
	size_t len;

	buf = repeat("\xc3\xa9", HTML_TITLE_MAX_BYTES, "", &len);
	{
		char *page;

		xasprintf(&page, "<title>%s</title>", buf);
		CHECK_INT(html_extract(page, strlen(page), ORIGIN "/", NULL, 0,
			      &f, &cause),
		    0);
		CHECK(
		    f.title != NULL && strlen(f.title) == HTML_TITLE_MAX_BYTES);
		html_found_finish(&f);
		free(page);
	}
	free(buf);
	buf = repeat("a", URL_MAX_BYTES + 1, "", &len);
	{
		char *page;

		xasprintf(&page, "<img src='%s'><img src='%.*s'>", buf,
		    URL_MAX_BYTES - 100, buf);
		CHECK_INT(html_extract(page, strlen(page), ORIGIN "/", NULL, 0,
			      &f, &cause),
		    0);
		CHECK_INT(f.nimages, 1);
		html_found_finish(&f);
		free(page);
	}
	free(buf);
}

int
main(void)
{
	test_corpus();
	test_srcset();
	test_urls();
	test_hosts_next();
	test_encodings();
	test_garbage();
	test_limits();
	test_pathological();
	return check_summary("test_html");
}
