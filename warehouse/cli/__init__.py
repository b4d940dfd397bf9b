"""The `wh` command line, thin over the package."""
