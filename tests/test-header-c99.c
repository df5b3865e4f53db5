/* SPDX-License-Identifier: MIT */
/* Built with -std=c99 -pedantic -Werror: the public header stands alone. */
#include "zdev.h"

int main(void)
{
	return ZDEV_CHECK_VERSION(ZDEV_VERSION_MAJOR, ZDEV_VERSION_MINOR) ? 0 : 1;
}
