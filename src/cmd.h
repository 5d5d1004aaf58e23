/*
 * The client's commands, one file each or per group: cmd-add.c (submit a
 * job: add and scrape), cmd-status.c (status and ls), cmd-cancel.c,
 * cmd-queue.c; wait is watch_run. Each returns the exit status (imgfetch.h).
 */
#ifndef CMD_H
#define CMD_H

#include "buf.h"

struct client;

/* What every command gets: the connection and the global options. */
struct cmd_ctx {
	struct client *client;
	int json; /* print the API's JSON instead of text */
	int quiet; /* waiting: no progress, no line per done item */
};

/* A job to submit: image URLs (add) or pages to scrape (scrape). */
struct add_opts {
	int scrape; /* urls are pages to scrape */
	struct strings urls; /* operands and the lines of -f files */
	struct strings headers; /* "Name: value" */
	const char *dir;
	const char *name;
	int wait; /* follow the job to its end */
	int if_changed; /* 1, 0, or -1: the command's default */
	int dedup; /* 1, 0, or -1: the command's default */
	int same_host; /* scrape: images on the pages' hosts only */
	int follow_next; /* scrape: rel="next" pages to follow, -1 unset */
	long long max_page_size; /* scrape: bytes, -1 unset */
	long timeout; /* seconds per item, -1 unset */
	int retries; /* extra attempts, -1 unset */
	const char *proxy; /* proxy URL ("" direct), NULL unset */
	const char *no_proxy; /* hosts that bypass it, NULL unset */
	const char *user_agent; /* NULL unset */
	int shared; /* onto the daemons' shared queue, not run here */
};

int add_read(struct strings *, const char *);
int cmd_add(struct cmd_ctx *, struct add_opts *);
int cmd_scrape(struct cmd_ctx *, struct add_opts *);
int cmd_status(struct cmd_ctx *, long long);
int cmd_ls(struct cmd_ctx *, const char *);
int cmd_cancel(struct cmd_ctx *, long long);
int cmd_queue(struct cmd_ctx *);

#endif
