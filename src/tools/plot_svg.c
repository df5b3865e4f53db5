/* SPDX-License-Identifier: MIT */
/*
 * The pictures of a trace as plain SVG: each device's memory in use over
 * time (a step line, as the counter holds its value until the next sample)
 * and the CPU fault latency histogram in power-of-two buckets. Written by
 * hand so that a browser shows them with no other tool and zdev needs no
 * plotting library.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tools/plot.h"

#define SVG_W 960
#define SVG_H 840
#define LEFT 100		/* room for the y tick labels */
#define PLOT_W 800
#define MEM_TOP 80
#define MEM_H 290
#define LAT_TOP 480
#define LAT_H 270

static const char *const colours[] = {
	"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
};

/* A step of 1, 2 or 5 times a power of ten that cuts range in about n. */
static double nice_step(double range, int n)
{
	double raw = range / n, p = 1;

	if (raw <= 0)
		return 1;
	while (p * 10 <= raw)
		p *= 10;
	while (p > raw)
		p /= 10;
	if (raw <= p)
		return p;
	if (raw <= 2 * p)
		return 2 * p;
	if (raw <= 5 * p)
		return 5 * p;
	return 10 * p;
}

/* The top of an axis that shows v: the first tick at or above it. */
static double axis_top(double v)
{
	const double step = nice_step(v, 5);
	double top = step;

	while (top < v)
		top += step;
	return top;
}

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* The frame of a plot: its axes, its title and the axes' names. */
static void put_frame(FILE *f, int top, int h, const char *title, const char *xname,
		      const char *yname)
{
	fprintf(f, "<text class=\"title\" x=\"%d\" y=\"%d\">%s</text>\n", LEFT + PLOT_W / 2,
		top - 14, title);
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", LEFT,
		top + h, LEFT + PLOT_W, top + h);
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", LEFT, top,
		LEFT, top + h);
	fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\">%s</text>\n", LEFT + PLOT_W / 2,
		top + h + 44, xname);
	fprintf(f,
		"<text class=\"label\" transform=\"translate(%d %d) rotate(-90)\">%s</text>\n",
		LEFT - 70, top + h / 2, yname);
}

/* y ticks from 0 to max (in unit), with grid lines. */
static void put_y_ticks(FILE *f, int top, int h, double max, double unit)
{
	const double step = nice_step(max / unit, 5);

	for (double v = 0; v <= max / unit * 1.0001; v += step) {
		const double y = top + h - v * unit / max * h;

		fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n",
			LEFT, y, LEFT + PLOT_W, y);
		fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
			LEFT - 6, y + 4, v);
	}
}

static uint64_t max_bytes(const struct plot_data *pd)
{
	uint64_t max = 0;

	for (unsigned int d = 0; d < pd->ndevices; d++)
		for (size_t i = 0; i < pd->nmem[d]; i++)
			if (pd->mem[d][i].bytes > max)
				max = pd->mem[d][i].bytes;
	return max;
}

static void put_memory(FILE *f, const struct plot_data *pd)
{
	const double end = pd->end_ns ? (double)pd->end_ns : 1e9;
	const bool secs = end >= 1e9;
	const double tunit = secs ? 1e9 : 1e6, tstep = nice_step(end / tunit, 8);
	const uint64_t peak = max_bytes(pd);
	double max = (double)(peak ? peak : 1 << 20), unit = 1 << 20;
	const char *uname = "MiB";
	char yname[64];

	if (max >= (double)(1u << 30)) {
		unit = (double)(1u << 30);
		uname = "GiB";
	} else if (max < (double)(1u << 20)) {
		unit = 1024;
		uname = "KiB";
	}
	max = axis_top(max / unit) * unit;
	snprintf(yname, sizeof(yname), "device memory in use (%s)", uname);
	fputs("<g id=\"device-memory\" class=\"plot\">\n", f);
	put_frame(f, MEM_TOP, MEM_H, "Device memory in use", secs ? "time (s)" : "time (ms)",
		  yname);
	put_y_ticks(f, MEM_TOP, MEM_H, max, unit);
	for (double t = 0; t <= end / tunit * 1.0001; t += tstep) {
		const double x = LEFT + t * tunit / end * PLOT_W;

		fprintf(f, "<line class=\"axis\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x,
			MEM_TOP + MEM_H, x, MEM_TOP + MEM_H + 5);
		fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			x, MEM_TOP + MEM_H + 20, t);
	}
	for (unsigned int d = 0; d < pd->ndevices; d++) {
		const char *c = colours[d % (sizeof(colours) / sizeof(colours[0]))];
		double y = MEM_TOP + MEM_H;

		if (!pd->nmem[d])
			continue;
		fprintf(f, "<polyline class=\"series\" data-device=\"%u\" stroke=\"%s\" points=\"%d,%.1f",
			d, c, LEFT, y);
		for (size_t i = 0; i < pd->nmem[d]; i++) {
			const double x = LEFT + (double)pd->mem[d][i].ts_ns / end * PLOT_W;

			fprintf(f, " %.1f,%.1f", x, y);
			y = MEM_TOP + MEM_H - (double)pd->mem[d][i].bytes / max * MEM_H;
			fprintf(f, " %.1f,%.1f", x, y);
		}
		fprintf(f, " %d,%.1f\"/>\n", LEFT + PLOT_W, y);
		fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n",
			LEFT + 12, MEM_TOP + 8 + 18 * (int)d, c);
		fprintf(f, "<text class=\"legend\" x=\"%d\" y=\"%d\">device %u</text>\n",
			LEFT + 30, MEM_TOP + 19 + 18 * (int)d, d);
	}
	fputs("</g>\n", f);
}

/* A bucket's lower bound, 2^b microseconds, in words. */
static void bucket_name(char *buf, size_t len, unsigned int b)
{
	const unsigned long long us = 1ull << b;

	if (!b)
		snprintf(buf, len, "&lt;2 µs");
	else if (us < 1000)
		snprintf(buf, len, "%llu µs", us);
	else if (us < 1000000)
		snprintf(buf, len, "%.3g ms", (double)us / 1e3);
	else
		snprintf(buf, len, "%.3g s", (double)us / 1e6);
}

static void put_latency(FILE *f, const struct plot_data *pd)
{
	unsigned int first = 0, last = 0;
	uint64_t most = 1;
	char title[96], name[32];
	double bar, top;

	for (unsigned int b = 0; b < PLOT_LAT_BUCKETS; b++) {
		if (!pd->lat[b])
			continue;
		if (!last && !pd->lat[first])
			first = b;
		last = b;
		most = pd->lat[b] > most ? pd->lat[b] : most;
	}
	/* A few buckets either side, so that one bar is not the whole width. */
	first = first > 2 ? first - 2 : 0;
	last = last + 3 < PLOT_LAT_BUCKETS ? last + 2 : PLOT_LAT_BUCKETS - 1;
	if (last - first < 8)
		last = first + 8 < PLOT_LAT_BUCKETS ? first + 8 : PLOT_LAT_BUCKETS - 1;
	bar = (double)PLOT_W / (last - first + 1);
	top = axis_top((double)most);
	snprintf(title, sizeof(title), "CPU fault latency (%llu faults)",
		 (unsigned long long)pd->faults);
	fputs("<g id=\"fault-latency\" class=\"plot\">\n", f);
	put_frame(f, LAT_TOP, LAT_H, title, "latency (lower bound of each power-of-two bucket)",
		  "CPU faults");
	put_y_ticks(f, LAT_TOP, LAT_H, top, 1);
	for (unsigned int b = first; b <= last; b++) {
		const double h = (double)pd->lat[b] / top * LAT_H, x = LEFT + (b - first) * bar;

		bucket_name(name, sizeof(name), b);
		fprintf(f,
			"<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
			"<title>%s: %llu</title></rect>\n",
			x + 2, LAT_TOP + LAT_H - h, bar - 4, h, name, (unsigned long long)pd->lat[b]);
		fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
			x + bar / 2, LAT_TOP + LAT_H + 20, name);
	}
	if (!pd->faults)
		fprintf(f, "<text class=\"label\" x=\"%d\" y=\"%d\">no CPU fault in this trace</text>\n",
			LEFT + PLOT_W / 2, LAT_TOP + LAT_H / 2);
	fputs("</g>\n", f);
}

int plot_write_svg(const char *prog, const struct plot_data *pd, const char *what,
		   const char *out)
{
	FILE *f = fopen(out, "we");
	int ret = 0;

	if (!f) {
		ret = -errno;
		fprintf(stderr, "%s: %s: %s\n", prog, out, strerror(-ret));
		return ret;
	}
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<style>.title{font-size:16px;font-weight:bold;text-anchor:middle}"
		".label{font-size:13px;text-anchor:middle}.tick{font-size:11px}"
		".axis{stroke:#000;stroke-width:1}.grid{stroke:#ddd;stroke-width:1}"
		".series{fill:none;stroke-width:1.5}.bar{fill:#4c72b0}"
		".legend{font-size:12px}</style>\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
		"<text class=\"title\" x=\"%d\" y=\"28\">zdev trace: ",
		SVG_W, SVG_H, SVG_W, SVG_H, SVG_W / 2);
	put_escaped(f, what);
	fputs("</text>\n", f);
	put_memory(f, pd);
	put_latency(f, pd);
	fputs("</svg>\n", f);
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	if (ret)
		fprintf(stderr, "%s: %s: %s\n", prog, out, strerror(-ret));
	return ret;
}
