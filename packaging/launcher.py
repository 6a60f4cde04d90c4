"""The standalone bundle's entry point: the ``ifllm-lab`` command."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # feature extraction and imports run worker processes
    from ifllm_lab.cli import main

    sys.exit(main())
