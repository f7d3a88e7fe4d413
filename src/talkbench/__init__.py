"""talkbench: curation, pinned-protocol metrics, reference models and leaderboards for talking-head video research."""

__version__ = "0.1.0"
