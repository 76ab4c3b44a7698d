"""The click commands behind `sfconnector <name>`, one module each, imported lazily by `sfconnector.cli`."""
