"""`python -m talkbench ...`: the `talkbench` console script."""

from talkbench.cli.main import main

if __name__ == "__main__":
    main()
