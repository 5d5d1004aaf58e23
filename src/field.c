/* Type-checked reads of the members of the daemon's JSON. */
#include <string.h>

#include "field.h"

/* A member of an object, or NULL when obj is no object or lacks it. */
json_t *
field_get(json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	return json_object_get(obj, key);
}

/* An integer member, or def when absent or not a number. */
long long
field_int(json_t *obj, const char *key, long long def)
{
	json_t *v;
	double d;

	if ((v = field_get(obj, key)) == NULL)
		return def;
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d >= -9e18 && d <= 9e18)
			return (long long)d;
	}
	return def;
}

/* A string member, or def when absent or not a string. */
const char *
field_string(json_t *obj, const char *key, const char *def)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_string(v))
		return def;
	return json_string_value(v);
}

/* An object member, or NULL. */
json_t *
field_object(json_t *obj, const char *key)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_object(v))
		return NULL;
	return v;
}

/* An array member, or NULL. */
json_t *
field_array(json_t *obj, const char *key)
{
	json_t *v;

	if ((v = field_get(obj, key)) == NULL || !json_is_array(v))
		return NULL;
	return v;
}

/* Whether a member is true. */
int
field_true(json_t *obj, const char *key)
{
	return json_is_true(field_get(obj, key));
}

/* Whether a job or item state is one it never leaves. */
int
field_ended(const char *state)
{
	return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
	    strcmp(state, "cancelled") == 0;
}
