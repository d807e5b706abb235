"""One module per report format; each has render(manifest, rows, fleet, env)."""
