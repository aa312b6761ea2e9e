"""icx CLI verbs, one module per area; each exposes `commands: list[click.Command]`."""
