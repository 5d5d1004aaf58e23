/* imgfetch cancel: cancel a job and say the state it is left in. */
#include <stdio.h>

#include <jansson.h>

#include "client.h"
#include "cmd.h"
#include "field.h"
#include "imgfetch.h"
#include "output.h"

/* Cancel a job and print the state it is left in. */
int
cmd_cancel(struct cmd_ctx *ctx, long long id)
{
	json_t *reply;
	char path[64];

	snprintf(path, sizeof path, "/jobs/%lld", id);
	if ((reply = client_call(ctx->client, "DELETE", path, NULL)) == NULL)
		return EXIT_ERROR;
	if (ctx->json)
		output_json(reply);
	else
		printf("job %lld: %s\n", field_int(reply, "id", id),
		    output_clean(field_string(reply, "state", "?")));
	json_decref(reply);
	return EXIT_DONE;
}
