"""Run every benchmark: `.venv/bin/python -m bench [--quick]` (or `make bench`)."""
import sys

from bench import bargein, browser, calls, campaigns, console, conversation, embeddings, knowledge, webhooks

BENCHMARKS = [knowledge, embeddings, conversation, calls, browser, bargein, campaigns, webhooks, console]


def main() -> None:
    argv = sys.argv[1:]
    for module in BENCHMARKS:
        print(f"\n=== {module.__name__} ===", flush=True)
        module.main(argv)


if __name__ == "__main__":
    main()
