/* Human output: sizes, durations, terminal-safe server text, JSON. */
#ifndef OUTPUT_H
#define OUTPUT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

void output_bytes(char *, size_t, double);
void output_duration(char *, size_t, long long);
const char *output_clean(const char *);
void output_json(json_t *);
int output_width(FILE *);

#endif
