"""The realtime commands: thin layers over the library (realtime.settings, realtime.api). Each module has
``get_parser()``, ``command(argv)`` (raises on failure) and ``main(argv) -> int`` (fercore.cli.run: one
``error:`` line and an exit status), and is run as ``python -m realtime.commands.NAME`` or its console script."""
