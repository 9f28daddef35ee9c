"""Reports render from result files only."""
