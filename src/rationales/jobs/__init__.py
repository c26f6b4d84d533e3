"""Jobs: orchestration of the stages, one library function per command or method, returning a
typed result and printing nothing (``run``, ``compare``, ``verify``, ``processbench``, ``methods/``)."""
