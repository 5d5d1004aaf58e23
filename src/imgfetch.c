/*
 * imgfetch: the command-line client of imgfetchd. It speaks the daemon's
 * HTTP/JSON API over the daemon's Unix socket (client.c), with libcurl for
 * HTTP and jansson for every JSON body sent or received; a new job goes as
 * a text/uri-list when that form carries all of it (cmd-add.c). Nothing the
 * server sends is trusted: every member is type-checked before use
 * (field.c) and a missing or odd one is shown as absent, never
 * dereferenced. This file reads the command line and runs one command.
 *
 * Exit status: 0 when the command succeeded (for add --wait and wait: every
 * item done), 1 when a waited-for job had failed or cancelled items, 2 for
 * usage errors, connection errors and error replies from the API.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "client.h"
#include "cmd.h"
#include "defs.h"
#include "imgfetch.h"
#include "watch.h"

/* Options that only some commands take. */
#define OPT_ADD 0x1 /* add and scrape */
#define OPT_LS 0x2
#define OPT_SCRAPE 0x4

enum {
	OPT_STATE = 256,
	OPT_IF_CHANGED,
	OPT_NO_IF_CHANGED,
	OPT_DEDUP,
	OPT_NO_DEDUP,
	OPT_SAME_HOST,
	OPT_FOLLOW_NEXT,
	OPT_MAX_PAGE_SIZE,
	OPT_TIMEOUT,
	OPT_RETRIES,
	OPT_PROXY,
	OPT_NO_PROXY,
	OPT_USER_AGENT,
	OPT_SHARED,
};

/* The command line, parsed. */
struct options {
	const char *socket;
	int json;
	int quiet;
	int used; /* OPT_ bits of the options given */
	struct strings files; /* -f files, read once the command is known */
	struct add_opts add;
	const char *state; /* ls --state */
	long long id; /* the job id operand, -1 without one */
};

/* A command: its name, the options it takes, its operands and its run. */
struct command {
	const char *name;
	int allowed; /* OPT_ bits */
	int (*args)(struct options *, const char *, int, char **);
	int (*run)(struct cmd_ctx *, struct options *);
};

/* Print the usage lines to f. */
static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: imgfetch [--socket PATH] [--json] [--quiet] COMMAND "
	    "[ARGS]\n"
	    "       imgfetch add URL... [-f FILE|-] [--dir DIR]\n"
	    "                [--name TEMPLATE] [--wait]\n"
	    "                [--header 'Name: value']... [--if-changed]\n"
	    "                [--dedup] [JOB OPTIONS]\n"
	    "       imgfetch scrape PAGE... [-f FILE|-] [--same-host]\n"
	    "                [--follow-next N] [--max-page-size BYTES]\n"
	    "                [--dir DIR] [--name TEMPLATE] [--wait]\n"
	    "                [--no-if-changed] [--no-dedup] [JOB OPTIONS]\n"
	    "         JOB OPTIONS: [--timeout S] [--retries N]\n"
	    "                [--user-agent UA] [--proxy URL]\n"
	    "                [--no-proxy HOSTS] [--shared]\n"
	    "       imgfetch status [ID]\n"
	    "       imgfetch ls [--state STATE]\n"
	    "       imgfetch cancel ID\n"
	    "       imgfetch wait ID\n"
	    "       imgfetch queue\n");
}

/* Print the help text. */
static void
help(void)
{
	usage(stdout);
	printf(
	    "\n"
	    "Commands:\n"
	    "  add       queue a job of URLs (arguments and/or -f files)\n"
	    "  scrape    queue a job of pages whose images are downloaded\n"
	    "  status    show the daemon's status, or a job and its items\n"
	    "  ls        list jobs, newest first\n"
	    "  cancel    cancel a job\n"
	    "  wait      follow a job until it ends, showing progress\n"
	    "  queue     show the daemons' shared queue: entries, pending,\n"
	    "            consumers\n"
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH     the daemon's socket (else\n"
	    "                        $IMGFETCH_SOCKET, else\n"
	    "                        $XDG_RUNTIME_DIR/imgfetchd.sock,\n"
	    "                        else ./imgfetchd.sock)\n"
	    "  -j, --json            print the API's JSON instead of text\n"
	    "  -f, --file FILE       read URLs (scrape: pages), one a line,\n"
	    "                        from FILE ('-': stdin); '#' comments\n"
	    "                        and blanks skipped\n"
	    "  -d, --dir DIR         save under DIR in the download directory\n"
	    "  -n, --name TEMPLATE   file name template\n"
	    "  -H, --header 'N: v'   send this request header with every URL\n"
	    "  -w, --wait            after add or scrape, wait for the job\n"
	    "                        to end\n"
	    "      --if-changed      fetch conditionally: an image unchanged\n"
	    "                        since the last fetch is not fetched "
	    "again\n"
	    "                        (scrape: on unless --no-if-changed)\n"
	    "      --dedup           keep no second copy of a body already\n"
	    "                        stored (scrape: on unless --no-dedup)\n"
	    "      --same-host       scrape: only images on the page's host\n"
	    "      --follow-next N   scrape: follow up to N rel=\"next\" "
	    "pages\n"
	    "                        (0 to 100)\n"
	    "      --max-page-size BYTES  scrape: largest page read (k, M, G\n"
	    "                        suffixes: KiB, MiB, GiB; at most 1G)\n"
	    "      --timeout SECONDS seconds per item (the daemon caps it)\n"
	    "      --retries N       extra attempts per item (capped too)\n"
	    "      --user-agent UA   the User-Agent of the job's requests\n"
	    "      --proxy URL       the job's proxy ('' for none), where\n"
	    "                        the daemon allows jobs to choose\n"
	    "      --no-proxy HOSTS  hosts the job reaches without it\n"
	    "      --shared          put the job on the daemons' shared queue\n"
	    "                        (any daemon of the group runs it)\n"
	    "  -q, --quiet           waiting: no progress and no line per\n"
	    "                        done item, only failures and the end\n"
	    "      --state STATE     ls: only jobs in STATE\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n"
	    "\n"
	    "Exit status: 0 success (every item done), 1 the job failed or\n"
	    "was cancelled, 2 usage, connection or API error.\n");
}

/* The socket: option, else environment, else the daemon's default. */
static char *
socket_choose(const char *option)
{
	const char *env;
	char *path;
	size_t len;

	if (option != NULL)
		return xstrdup(option);
	if ((env = getenv("IMGFETCH_SOCKET")) != NULL && *env != '\0')
		return xstrdup(env);
	if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0') {
		len = strlen(env) + sizeof "/imgfetchd.sock";
		path = xrealloc(NULL, len);
		snprintf(path, len, "%s/imgfetchd.sock", env);
		return path;
	}
	return xstrdup("imgfetchd.sock");
}

/* Whether a header argument looks like "Name: value". */
static int
header_check(const char *h)
{
	const char *colon;

	if ((colon = strchr(h, ':')) == NULL || colon == h)
		return 0;
	return strcspn(h, " \t") >= (size_t)(colon - h);
}

/* Read an option's whole number from min to max; -1 if it is not one. */
static long
number_parse(const char *option, const char *s, long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
	    n < min || n > max) {
		warnx("%s: expected a number from %ld to %ld, not \"%s\"",
		    option, min, max, s);
		return -1;
	}
	return n;
}

/* Read --follow-next's N, 0 to PAGE_FOLLOW_MAX; -1 if it is not one. */
static int
follow_parse(const char *s)
{
	return (int)number_parse("--follow-next", s, 0, PAGE_FOLLOW_MAX);
}

/*
 * Read --max-page-size's bytes, a number with an optional k, M or G suffix
 * (binary units), 1 to PAGE_SIZE_MAX; -1 if it is not one.
 */
static long long
size_parse(const char *s)
{
	char *end;
	long long n, unit = 1;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (*end == 'k' || *end == 'K')
		unit = 1024;
	else if (*end == 'm' || *end == 'M')
		unit = 1024 * 1024;
	else if (*end == 'g' || *end == 'G')
		unit = 1024 * 1024 * 1024;
	if (unit != 1)
		end++;
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || n < 1 ||
	    n > PAGE_SIZE_MAX / unit) {
		warnx("--max-page-size: expected a size from 1 byte to 1G, "
		      "not \"%s\"",
		    s);
		return -1;
	}
	return n * unit;
}

/* Read a job id operand; -1 if it is not one. */
static long long
id_parse(const char *s)
{
	char *end;
	long long id;

	errno = 0;
	id = strtoll(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0) {
		warnx("bad job id \"%s\"", s);
		return -1;
	}
	return id;
}

/*
 * Take the operands and -f files of add (its URLs) or scrape (its pages):
 * 0, -1 after a usage error, -2 after another (reported).
 */
static int
args_add(struct options *o, const char *cmd, int argc, char **argv)
{
	size_t i;

	for (i = 0; i < (size_t)argc; i++)
		strings_add(&o->add.urls, argv[i]);
	for (i = 0; i < o->files.n; i++) {
		if (add_read(&o->add.urls, o->files.v[i]) != 0)
			return -2;
	}
	if (o->add.urls.n == 0) {
		warnx("%s: no %s given", cmd,
		    strcmp(cmd, "scrape") == 0 ? "pages" : "URLs");
		return -1;
	}
	return 0;
}

/* No operands; returns as args_add does. */
static int
args_none(struct options *o, const char *cmd, int argc, char **argv)
{
	if (argc != 0) {
		warnx("%s: too many arguments", cmd);
		return -1;
	}
	return 0;
}

/* An optional job id; returns as args_add does. */
static int
args_optional_id(struct options *o, const char *cmd, int argc, char **argv)
{
	if (argc > 1) {
		warnx("%s: too many arguments", cmd);
		return -1;
	}
	if (argc == 1 && (o->id = id_parse(argv[0])) < 0)
		return -1;
	return 0;
}

/* A job id; returns as args_add does. */
static int
args_id(struct options *o, const char *cmd, int argc, char **argv)
{
	if (argc == 0) {
		warnx("%s: no job id given", cmd);
		return -1;
	}
	if (argc > 1) {
		warnx("%s: too many arguments", cmd);
		return -1;
	}
	if ((o->id = id_parse(argv[0])) < 0)
		return -1;
	return 0;
}

/* Run add. */
static int
run_add(struct cmd_ctx *ctx, struct options *o)
{
	return cmd_add(ctx, &o->add);
}

/* Run scrape. */
static int
run_scrape(struct cmd_ctx *ctx, struct options *o)
{
	return cmd_scrape(ctx, &o->add);
}

/* Run status. */
static int
run_status(struct cmd_ctx *ctx, struct options *o)
{
	return cmd_status(ctx, o->id);
}

/* Run ls. */
static int
run_ls(struct cmd_ctx *ctx, struct options *o)
{
	return cmd_ls(ctx, o->state);
}

/* Run cancel. */
static int
run_cancel(struct cmd_ctx *ctx, struct options *o)
{
	return cmd_cancel(ctx, o->id);
}

/* Run queue. */
static int
run_queue(struct cmd_ctx *ctx, struct options *o)
{
	(void)o;
	return cmd_queue(ctx);
}

/* Run wait. */
static int
run_wait(struct cmd_ctx *ctx, struct options *o)
{
	return watch_run(ctx->client, o->id, ctx->json, ctx->quiet);
}

static const struct command commands[] = {
	{ "add", OPT_ADD, args_add, run_add },
	{ "scrape", OPT_ADD | OPT_SCRAPE, args_add, run_scrape },
	{ "status", 0, args_optional_id, run_status },
	{ "ls", OPT_LS, args_none, run_ls },
	{ "cancel", 0, args_id, run_cancel },
	{ "wait", 0, args_id, run_wait },
	{ "queue", 0, args_none, run_queue },
};

/* The command called name, or NULL. */
static const struct command *
command_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(commands); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

/*
 * Parse the options before the command (getopt permutes, so after it too):
 * 0, -1 after a usage error (reported), 1 when --help or --version was
 * shown.
 */
static int
options_parse(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dedup", no_argument, NULL, OPT_DEDUP },
		{ "dir", required_argument, NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "header", required_argument, NULL, 'H' },
		{ "follow-next", required_argument, NULL, OPT_FOLLOW_NEXT },
		{ "help", no_argument, NULL, 'h' },
		{ "if-changed", no_argument, NULL, OPT_IF_CHANGED },
		{ "json", no_argument, NULL, 'j' },
		{ "max-page-size", required_argument, NULL, OPT_MAX_PAGE_SIZE },
		{ "name", required_argument, NULL, 'n' },
		{ "no-dedup", no_argument, NULL, OPT_NO_DEDUP },
		{ "no-if-changed", no_argument, NULL, OPT_NO_IF_CHANGED },
		{ "no-proxy", required_argument, NULL, OPT_NO_PROXY },
		{ "proxy", required_argument, NULL, OPT_PROXY },
		{ "retries", required_argument, NULL, OPT_RETRIES },
		{ "shared", no_argument, NULL, OPT_SHARED },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "user-agent", required_argument, NULL, OPT_USER_AGENT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "same-host", no_argument, NULL, OPT_SAME_HOST },
		{ "socket", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "version", no_argument, NULL, 'V' },
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(
		    argc, argv, ":d:f:H:hjn:qs:Vw", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->add.dir = optarg;
			o->used |= OPT_ADD;
			break;
		case 'f':
			strings_add(&o->files, optarg);
			o->used |= OPT_ADD;
			break;
		case 'H':
			if (!header_check(optarg)) {
				warnx("--header: expected 'Name: value', "
				      "not \"%s\"",
				    optarg);
				return -1;
			}
			strings_add(&o->add.headers, optarg);
			o->used |= OPT_ADD;
			break;
		case 'h':
			help();
			return 1;
		case 'j':
			o->json = 1;
			break;
		case 'n':
			o->add.name = optarg;
			o->used |= OPT_ADD;
			break;
		case 's':
			o->socket = optarg;
			break;
		case OPT_STATE:
			o->state = optarg;
			o->used |= OPT_LS;
			break;
		case OPT_IF_CHANGED:
		case OPT_NO_IF_CHANGED:
			o->add.if_changed = ch == OPT_IF_CHANGED;
			o->used |= OPT_ADD;
			break;
		case OPT_DEDUP:
		case OPT_NO_DEDUP:
			o->add.dedup = ch == OPT_DEDUP;
			o->used |= OPT_ADD;
			break;
		case OPT_SAME_HOST:
			o->add.same_host = 1;
			o->used |= OPT_SCRAPE;
			break;
		case OPT_FOLLOW_NEXT:
			if ((o->add.follow_next = follow_parse(optarg)) < 0)
				return -1;
			o->used |= OPT_SCRAPE;
			break;
		case OPT_MAX_PAGE_SIZE:
			if ((o->add.max_page_size = size_parse(optarg)) < 0)
				return -1;
			o->used |= OPT_SCRAPE;
			break;
		case OPT_TIMEOUT:
			if ((o->add.timeout = number_parse("--timeout", optarg,
				 1, 2147483)) < 0)
				return -1;
			o->used |= OPT_ADD;
			break;
		case OPT_RETRIES:
			if ((o->add.retries = (int)number_parse(
				 "--retries", optarg, 0, 100)) < 0)
				return -1;
			o->used |= OPT_ADD;
			break;
		case OPT_PROXY:
			o->add.proxy = optarg;
			o->used |= OPT_ADD;
			break;
		case OPT_NO_PROXY:
			o->add.no_proxy = optarg;
			o->used |= OPT_ADD;
			break;
		case OPT_USER_AGENT:
			o->add.user_agent = optarg;
			o->used |= OPT_ADD;
			break;
		case OPT_SHARED:
			o->add.shared = 1;
			o->used |= OPT_ADD;
			break;
		case 'V':
			printf("imgfetch %s\n", IMGFETCHD_VERSION);
			return 1;
		case 'q':
			o->quiet = 1;
			break;
		case 'w':
			o->add.wait = 1;
			o->used |= OPT_ADD;
			break;
		case ':':
			warnx("option %s needs an argument", argv[optind - 1]);
			return -1;
		default:
			if (optopt != 0)
				warnx("unknown option -%c", optopt);
			else
				warnx("unknown option %s", argv[optind - 1]);
			return -1;
		}
	}
	return 0;
}

/* Free what the options hold. */
static void
options_free(struct options *o)
{
	strings_free(&o->files);
	strings_free(&o->add.urls);
	strings_free(&o->add.headers);
}

/* Connect to the daemon and run the command; its exit status. */
static int
command_run(const struct command *cmd, struct options *o)
{
	struct cmd_ctx ctx;
	char *sock;
	int rv = EXIT_ERROR;

	if (curl_global_init(CURL_GLOBAL_ALL) != 0) {
		warnx("cannot initialise libcurl");
		return EXIT_ERROR;
	}
	sock = socket_choose(o->socket);
	memset(&ctx, 0, sizeof ctx);
	ctx.json = o->json;
	ctx.quiet = o->quiet;
	if ((ctx.client = client_create(sock)) != NULL) {
		rv = cmd->run(&ctx, o);
		client_destroy(ctx.client);
	}
	free(sock);
	curl_global_cleanup();
	return rv;
}

/* Parse the command line, run one command, exit with its status. */
int
main(int argc, char **argv)
{
	const struct command *cmd;
	struct options o;
	int rv = EXIT_ERROR;

	memset(&o, 0, sizeof o);
	o.id = -1;
	o.add.if_changed = -1;
	o.add.dedup = -1;
	o.add.follow_next = -1;
	o.add.max_page_size = -1;
	o.add.timeout = -1;
	o.add.retries = -1;
	switch (options_parse(&o, argc, argv)) {
	case 1:
		rv = EXIT_DONE;
		goto out;
	case -1:
		goto usage;
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		warnx("no command given");
		goto usage;
	}
	if ((cmd = command_find(argv[0])) == NULL) {
		warnx("unknown command \"%s\"", argv[0]);
		goto usage;
	}
	if (o.used & ~cmd->allowed) {
		warnx("%s: option not accepted by this command", cmd->name);
		goto usage;
	}
	switch (cmd->args(&o, cmd->name, argc - 1, argv + 1)) {
	case -1:
		goto usage;
	case -2:
		goto out;
	}
	rv = command_run(cmd, &o);
	goto out;

usage:
	usage(stderr);
	rv = EXIT_ERROR;
out:
	options_free(&o);
	return rv;
}
