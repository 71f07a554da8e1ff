"""tariffstream: the command line and the offline analysis."""
