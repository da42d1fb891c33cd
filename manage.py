#!/usr/bin/env python
import os
import sys

# Commands that may run on the development defaults (no DJANGO_SECRET_KEY): the embedded
# platform, by design, and the migration tools, which read the models and sign nothing.
DEVELOPMENT_COMMANDS = frozenset({"platform", "makemigrations", "sqlmigrate", "showmigrations"})


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] and sys.argv[1] in DEVELOPMENT_COMMANDS:
        os.environ.setdefault("CONVEYOR_EMBEDDED", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
