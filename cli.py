"""`python cli.py ...` does the same as the `aigc-keras` console script."""

from aigc_keras.cli import main

if __name__ == "__main__":
    main()
