/*
 * imgfetch, the command-line client: its exit statuses and limits, shared
 * by the client's files (imgfetch.c, client.c, watch.c, output.c, field.c,
 * buf.c and the cmd-*.c commands).
 */
#ifndef IMGFETCH_H
#define IMGFETCH_H

#define nitems(a) (sizeof(a) / sizeof(a)[0])

/* Exit statuses: every item done; a waited-for job had failed or
 * cancelled items; usage, connection and API errors. */
#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_ERROR 2

/* Largest reply body and largest single events line accepted. */
#define REPLY_MAX_BYTES ((size_t)512 * 1024 * 1024)
#define EVENT_MAX_BYTES ((size_t)512 * 1024 * 1024)
/* Seconds allowed to connect to the daemon's socket. */
#define CONNECT_TIMEOUT 10L
/* Times the events stream is reopened when it ends before the job. */
#define STREAM_RETRIES 5
/* Seconds to wait for the stream to close after the final job event. */
#define FINAL_GRACE 2.0
/* Rate is bytes over this many seconds; samples kept for it. */
#define RATE_WINDOW 5.0
#define RATE_SAMPLES 64
/* Least seconds between bar redraws and between plain progress lines. */
#define BAR_INTERVAL 0.25
#define LINE_INTERVAL 1.0
/* Bar width in columns: at least, at most, and room kept for the text. */
#define BAR_MIN 10
#define BAR_MAX 50
#define BAR_TEXT 40
/* Most items whose end is remembered (to report each only once). */
#define SEEN_MAX (4 * 1024 * 1024)
/* Longest server string shown in human output. */
#define TEXT_MAX 8192

#endif
