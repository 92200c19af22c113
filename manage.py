#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.environment import InvalidEnvironment

    try:
        execute_from_command_line(sys.argv)
    except InvalidEnvironment as error:  # a typo in the environment: the message says it all
        sys.exit(str(error))


if __name__ == "__main__":
    main()
