"""The `recsys-platform` command: one module per subcommand, each driving the room it names."""
