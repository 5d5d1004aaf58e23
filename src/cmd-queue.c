/* imgfetch queue: the daemons' shared queue, as this daemon sees it. */
#include <stdio.h>

#include <jansson.h>

#include "client.h"
#include "cmd.h"
#include "field.h"
#include "imgfetch.h"
#include "output.h"

/* Print the stream, its pending entries and each consumer's share. */
int
cmd_queue(struct cmd_ctx *ctx)
{
	json_t *reply, *list, *c;
	long long length, pending, running;
	char idle[32];
	size_t i;

	if ((reply = client_call(ctx->client, "GET", "/queue", NULL)) == NULL)
		return EXIT_ERROR;
	if (ctx->json) {
		output_json(reply);
		json_decref(reply);
		return EXIT_DONE;
	}
	length = field_int(reply, "length", 0);
	pending = field_int(reply, "pending", 0);
	running = field_int(reply, "running", 0);
	printf("stream %s, group %s: %lld entr%s, %lld pending\n",
	    output_clean(field_string(reply, "stream", "?")),
	    output_clean(field_string(reply, "group", "?")), length,
	    length == 1 ? "y" : "ies", pending);
	printf("this node: %s, running %lld\n",
	    output_clean(field_string(reply, "node", "?")), running);
	list = field_get(reply, "consumers");
	json_array_foreach(list, i, c) {
		/* Idle time is when the consumer last read or claimed. */
		output_duration(
		    idle, sizeof idle, field_int(c, "idle_ms", 0) / 1000);
		printf("  %-24s %6lld pending, idle %s\n",
		    output_clean(field_string(c, "name", "?")),
		    field_int(c, "pending", 0), idle);
	}
	json_decref(reply);
	return EXIT_DONE;
}
