"""talkbench.leaderboards"""
