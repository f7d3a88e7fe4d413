"""talkbench.results: what a set of result rows says, computed once for `bench run` summaries and leaderboards.

- ``stats``: the mean and seeded percentile-bootstrap 95 % CI over clips;
- ``summary``: per-metric summaries of result rows (level, estimate, null reasons) and a run's ``summary.json``.

This layer sits above metrics (it reads the metric registry for directions and column order) and below
leaderboards and bench.
"""
