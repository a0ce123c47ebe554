"""The load engine process.

    python -m chaoskit.load SPEC.json                      # in-process, or master when workers > 0
    python -m chaoskit.load --worker --master HOST:PORT    # a distributed worker

stdout carries the protocol (one JSON object per line); anything else goes to stderr.
Exit codes: 0 done, 2 bad spec or refused gateway host, 4 environment problem, 1 a bug.
"""

# locust first: it gevent-patches the process, and must do so before anything else loads.
import locust  # noqa: F401, I001

import argparse
import gc
import logging
import sys
import traceback

from chaoskit.errors import ChaoskitError
from chaoskit.exit_codes import ExitCode, exit_code_for_error

_USAGE = "python -m chaoskit.load SPEC.json | --worker --master HOST:PORT"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaoskit.load", usage=_USAGE)
    parser.add_argument("spec", nargs="?")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--master", default=None)
    args = parser.parse_args(argv)
    if args.worker == (args.spec is not None) or (args.worker and not args.master):
        parser.error("give SPEC.json, or --worker --master HOST:PORT")
    return args


def main(argv: list[str]) -> int:
    """Run the engine; returns the exit code."""
    from chaoskit.load.lifeline import die_with_parent

    die_with_parent()  # never outlive the driver (or master) that started this process
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="load: %(message)s")
    from chaoskit.load.engine_dist import run_master, run_worker
    from chaoskit.load.engine_run import StopSignal, emit, run_local
    from chaoskit.load.spec import check_gateway_host, read_spec

    # Everything imported so far lives as long as the process: move it out of the cyclic
    # collector's reach, so each full collection during the load walks only the objects the
    # load makes (locust --processes does the same before it forks its workers).
    gc.collect()
    gc.freeze()
    try:
        stop = StopSignal()
        if args.worker:
            host, _, port = str(args.master).rpartition(":")
            if not host or not port.isdigit():
                print(f"load: --master: expected HOST:PORT, got {args.master!r}", file=sys.stderr)
                return 2
            return run_worker(host, int(port), stop)
        spec = read_spec(args.spec)
        check_gateway_host(spec)
        if spec.workers > 0:
            return run_master(spec, stop)
        return run_local(spec, stop)
    except ChaoskitError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return int(exit_code_for_error(exc))
    except Exception as exc:  # the runner reads the error line; the traceback goes to stderr
        traceback.print_exc()
        emit({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return int(ExitCode.ERROR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
