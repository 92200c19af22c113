"""Run every benchmark: `.venv/bin/python -m bench [--quick]` (or `make bench`)."""
import sys

from bench import bargein, calls, campaigns, conversation, knowledge, webhooks

BENCHMARKS = [knowledge, conversation, calls, bargein, campaigns, webhooks]


def main() -> None:
    argv = sys.argv[1:]
    for module in BENCHMARKS:
        print(f"\n=== {module.__name__} ===", flush=True)
        module.main(argv)


if __name__ == "__main__":
    main()
