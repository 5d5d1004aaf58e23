/*
 * The client's commands, one file each or per group: cmd-add.c (submit a
 * job), cmd-status.c (status and ls), cmd-cancel.c; wait is watch_run. Each
 * returns the exit status (imgfetch.h).
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

/* A job to submit. */
struct add_opts {
	struct strings urls; /* operands and the lines of -f files */
	struct strings headers; /* "Name: value" */
	const char *dir;
	const char *name;
	int wait; /* follow the job to its end */
};

int add_read(struct strings *, const char *);
int cmd_add(struct cmd_ctx *, struct add_opts *);
int cmd_status(struct cmd_ctx *, long long);
int cmd_ls(struct cmd_ctx *, const char *);
int cmd_cancel(struct cmd_ctx *, long long);

#endif
