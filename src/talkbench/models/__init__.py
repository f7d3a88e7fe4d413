"""talkbench.models"""
