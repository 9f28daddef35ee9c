"""Trackers: context managers that measure a phase without touching the code they wrap."""
