/*
 * Following a job to its end through the daemon's events stream: a bar on
 * a terminal, plain progress lines otherwise, a line per ended item, and a
 * closing summary whose exit status says how the job ended.
 */
#ifndef WATCH_H
#define WATCH_H

struct client;

int watch_run(struct client *, long long, int, int);

#endif
