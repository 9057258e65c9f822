"""``python -m engine``: the ``engine`` command (export, plot, predict), see `engine.cli`."""

from engine.cli import main

if __name__ == "__main__":
    main()
