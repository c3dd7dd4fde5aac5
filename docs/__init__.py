"""The documentation site's generators: python -m docs.generate_protocol, python -m docs.generate_config."""
