/* Jobs and their items: states, fair scheduling onto transfers, events. */
#ifndef JOB_H
#define JOB_H

#include <jansson.h>

struct event_base;
struct config;
struct fetcher;
struct job_request;
struct jobs;
struct job;
struct job_watch;

struct jobs *jobs_create(struct event_base *, struct fetcher *,
    const struct config *);
void jobs_destroy(struct jobs *);

/*
 * Accept a checked request as a new job; its contents are taken over and
 * the request left empty. Returns NULL with *status (503 when the queue is
 * full) and *cause set when it cannot be accepted.
 */
struct job *jobs_submit(struct jobs *, struct job_request *, int *status,
    char **cause);
struct job *jobs_find(struct jobs *, unsigned long long id);
/* {"jobs": [...]} newest first; NULL if state is not a job state. */
json_t *jobs_list_json(struct jobs *, const char *state);
/* The /v1/status object. */
json_t *jobs_status_json(struct jobs *);
/* Cancel every job that has not ended (shutdown). */
void jobs_cancel_all(struct jobs *);
/* Items queued or active. */
size_t jobs_pending(struct jobs *);

unsigned long long job_id(struct job *);
int job_ended(struct job *);
json_t *job_json(struct job *, int with_items);
/* Cancel: queued items dropped, active transfers stopped. */
void job_cancel(struct job *);

/*
 * Follow a job's events. The callback gets each event object (borrowed);
 * last is set on the final {"event": "job"} event, after which the watch
 * is gone. Only for jobs that have not ended.
 */
typedef void (*job_watch_cb)(void *arg, json_t *event, int last);
struct job_watch *job_watch(struct job *, job_watch_cb, void *arg);
void job_unwatch(struct job_watch *);

#endif
