"""Stage summary (rules/summary.smk): scores, recovery with paired-bootstrap intervals, suites."""
