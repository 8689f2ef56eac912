"""Stage perf (rules/perf.smk): serving benchmarks, perf tables, queries per dollar and the deployment guideline."""
