"""talkbench.bench"""
