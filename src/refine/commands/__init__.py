"""CLI command groups; each module defines `add_parser(subparsers)`."""
