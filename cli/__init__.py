"""The `vortex` command line."""
