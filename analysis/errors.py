"""The one exception type for problems a user can fix."""


class StudyError(Exception):
    """A problem in a study's files or settings that the user can fix.

    The message's first line says what is wrong and where (file, column, row, value, rule);
    further lines may list every violation and say what to do. The command-line interface
    prints it without a traceback and exits with status 2.
    """
