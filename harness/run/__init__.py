"""Running cells: the pipeline of one cell, the worker process, the executor."""
