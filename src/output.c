/* Human output: sizes, durations, terminal-safe server text, JSON. */
#include <sys/types.h>
#include <sys/ioctl.h>

#include <stdio.h>
#include <string.h>

#include "imgfetch.h"
#include "output.h"

/* Format a byte count in binary units: "512 B", "3.4 MiB". */
void
output_bytes(char *dst, size_t len, double n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
		"PiB", "EiB" };
	size_t i = 0;

	if (!(n >= 0))
		n = 0;
	while (n >= 1024 && i < nitems(units) - 1) {
		n /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(dst, len, "%.0f %s", n, units[i]);
	else
		snprintf(dst, len, "%.1f %s", n, units[i]);
}

/* Format seconds as "2d 3h", "3h 4m", "4m 5s" or "5s". */
void
output_duration(char *dst, size_t len, long long s)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(dst, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(dst, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(dst, len, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(dst, len, "%llds", s);
}

/*
 * A copy of a server string fit for a terminal: control characters become
 * '?' and long strings are cut. Returns one of a few rotating buffers, so a
 * printf may show several of them.
 */
const char *
output_clean(const char *s)
{
	static char bufs[4][TEXT_MAX];
	static size_t next;
	char *b;
	size_t i;

	b = bufs[next++ % nitems(bufs)];
	for (i = 0; s[i] != '\0' && i < TEXT_MAX - 4; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			b[i] = '?';
		else
			b[i] = s[i];
	}
	if (s[i] != '\0') {
		memcpy(b + i, "...", 3);
		i += 3;
	}
	b[i] = '\0';
	return b;
}

/* Print a JSON value as-is, indented, on stdout. */
void
output_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
	fflush(stdout);
}

/* Terminal width of the stream, 80 when unknown. */
int
output_width(FILE *f)
{
	struct winsize ws;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}
