"""Jinja2 templates of the analysis report (a package so that installs ship them)."""
