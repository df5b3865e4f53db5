/* SPDX-License-Identifier: MIT */
/* Built with -std=c99 -pedantic -Werror: the public header stands alone. */
#include <stdio.h>

#include "zdev.h"

int main(void)
{
	int ok = ZDEV_CHECK_VERSION(ZDEV_VERSION_MAJOR, ZDEV_VERSION_MINOR);

	/* TAP, as every test program reports */
	printf("1..1\n%s 1 - zdev.h builds alone in C99 and its version checks\n",
	       ok ? "ok" : "not ok");
	return ok ? 0 : 1;
}
