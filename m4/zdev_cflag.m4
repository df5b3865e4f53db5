# ZDEV_CHECK_CFLAG(FLAG, ACTION-IF-OK)
# Runs ACTION-IF-OK when the C compiler accepts FLAG without a warning.
AC_DEFUN([ZDEV_CHECK_CFLAG], [
	AS_VAR_PUSHDEF([zdev_cv], [zdev_cv_cflag_$1])
	AC_CACHE_CHECK([whether $CC accepts $1], [zdev_cv], [
		zdev_saved_cflags=$CFLAGS
		CFLAGS="$CFLAGS -Werror $1"
		AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
			[AS_VAR_SET([zdev_cv], [yes])], [AS_VAR_SET([zdev_cv], [no])])
		CFLAGS=$zdev_saved_cflags])
	AS_VAR_IF([zdev_cv], [yes], [$2])
	AS_VAR_POPDEF([zdev_cv])
])
