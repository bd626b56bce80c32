"""Studies: a YAML grid of notebook runs (`spec`), executed by papermill (`runner`), one record per run
(`record`), measured the same way for every approach (`experiment`).

The top layer below the command line: it may import every other subpackage; none imports it.
"""
