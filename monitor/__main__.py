"""Entry for `python -m monitor`: the same CLI as the `xborder` script."""

from monitor.cli.main import main

if __name__ == "__main__":
    main()
