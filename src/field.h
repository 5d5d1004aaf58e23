/*
 * Members of the JSON the daemon sends, read without trusting it: every
 * member is type-checked and a missing or odd one is the default, never
 * dereferenced.
 */
#ifndef FIELD_H
#define FIELD_H

#include <jansson.h>

json_t *field_get(json_t *, const char *);
long long field_int(json_t *, const char *, long long);
const char *field_string(json_t *, const char *, const char *);
json_t *field_object(json_t *, const char *);
json_t *field_array(json_t *, const char *);
int field_true(json_t *, const char *);
int field_ended(const char *);

#endif
