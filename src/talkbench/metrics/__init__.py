"""talkbench.metrics"""
