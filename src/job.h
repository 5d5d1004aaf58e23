/* Jobs and their items: states, fair scheduling, retries, events. */
#ifndef JOB_H
#define JOB_H

#include <jansson.h>

struct event_base;
struct config;
struct fetcher;
struct writer;
struct store;
struct job_request;
struct jobs;
struct job;
struct job_watch;

/* store may be NULL: nothing is kept across restarts then. */
struct jobs *jobs_create(struct event_base *, struct fetcher *, struct writer *,
    struct store *, const struct config *);
void jobs_destroy(struct jobs *);
/* Load the jobs kept in the store (start-up, before the loop runs). */
int jobs_restore(struct jobs *);
/* Apply a reloaded config: caps and timeouts. */
void jobs_reconfigure(struct jobs *);

/* Who submitted a job: the API client's uid and, if it has one, name. */
struct job_owner {
	unsigned long uid;
	const char *user; /* NULL when the uid has no name */
};

/* For listings and counters: every job, not one uid's. */
#define JOB_OWNER_ANY (-1LL)

/* Called once a submitted job is stored (ok 0) or could not be (-1). */
typedef void (*jobs_accept_cb)(void *arg, struct job *, int ok);

/*
 * Accept a checked request as a new job; its contents are taken over and
 * the request left empty. The job starts once it is stored; cb hears of
 * that from the loop, never from inside this call. Returns NULL with
 * *status (503 when the queue is full) and *cause set when the job cannot
 * be accepted.
 */
struct job *jobs_submit(struct jobs *, struct job_request *,
    const struct job_owner *owner, int *status, char **cause, jobs_accept_cb cb,
    void *arg);
struct job *jobs_find(struct jobs *, unsigned long long id);
/* Forget the accept callback of a job not yet stored (its caller is gone). */
void job_clear_accept(struct job *);
/*
 * {"jobs": [...]} newest first, of one uid's jobs or JOB_OWNER_ANY; NULL
 * if state is not a job state.
 */
json_t *jobs_list_json(struct jobs *, const char *state, long long owner);
/*
 * The /v1/status object; its job and item counters cover one uid's jobs
 * or, with JOB_OWNER_ANY, all of them.
 */
json_t *jobs_status_json(struct jobs *, long long owner);
/* A one-line summary of the counters, for the service manager (static). */
const char *jobs_status_line(struct jobs *);
/* Items queued or active. */
size_t jobs_pending(struct jobs *);
size_t jobs_active(struct jobs *);

/* Shutdown, step one: start nothing new; running items go on. */
void jobs_stop_intake(struct jobs *);
/* Step two: stop running items, keeping them resumable for the next start. */
void jobs_suspend_all(struct jobs *);

/*
 * Called on every job's end, after its watchers heard of it (the shared
 * queue acknowledges its entries so). One hook per daemon.
 */
typedef void (*jobs_end_cb)(void *arg, struct job *);
void jobs_set_end_hook(struct jobs *, jobs_end_cb, void *arg);
/* The job that came from this stream entry, or NULL. */
struct job *jobs_find_queued(struct jobs *, const char *queue_id);
/* The stream entry a job came from ("queue_id"), or NULL. */
const char *job_queue_id(struct job *);

unsigned long long job_id(struct job *);
/*
 * The job's owner: 0 with *owner filled in (the user name borrowed), or -1
 * for a job stored before owners were kept.
 */
int job_owner(struct job *, struct job_owner *owner);
int job_ended(struct job *);
/* Cancel: queued items dropped, active transfers stopped. */
void job_cancel(struct job *);
/* Cancel, then call cb (from the loop) once the store has it too. */
void job_cancel_stored(struct job *, jobs_accept_cb cb, void *arg);

/*
 * Which items a job object lists, and which {"event": "item"} events a
 * watch gets.
 */
enum job_items {
	JOB_ITEMS_ALL, /* every item, every item state change */
	JOB_ITEMS_FAILED, /* only items that end failed or cancelled */
	JOB_ITEMS_NONE
};
json_t *job_json(struct job *, enum job_items);

/*
 * Follow a job's events. The callback gets each event object (borrowed);
 * last is set on the final {"event": "job"} event, after which the watch
 * is gone. Only for jobs that have not ended. Progress and the final event
 * go to every watch; item events, and the items the final job lists, only
 * as items asks.
 */
typedef void (*job_watch_cb)(void *arg, json_t *event, int last);
struct job_watch *job_watch(
    struct job *, enum job_items items, job_watch_cb, void *arg);
void job_unwatch(struct job_watch *);

#endif
